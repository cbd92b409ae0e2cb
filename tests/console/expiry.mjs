#!/usr/bin/env node
// The console's Expiry page and renewal flow in a real browser (Debian's Chromium driven by
// playwright-core; it never downloads a browser).
//
//   node tests/console/expiry.mjs --url http://127.0.0.1:9781 --token cgt_... --screenshots DIR \
//     --cert billing --partner partner.test:PORT --exchange DIR [--chromium /usr/bin/chromium]
//
// Signs in with an admin token; the Expiry page lists the certificate (owner, what to do) and
// the pinned partner certificate (marked to act on); a 7-day window keeps only the certificate.
// Then renews the certificate from its link: starts a request (key made inside certgate),
// downloads the CSR into DIR/CERT.csr, waits (at most 60 s) for the test to put the issued
// certificate in DIR/issued.pem, uploads it and completes. Screenshots expiry.png and
// renewal.png. Exits 1 with the failed step and the page's text.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function fail(step, message) {
  console.error(`console expiry FAILED at step "${step}": ${message}`);
  process.exit(1);
}

const opts = { chromium: process.env.CHROMIUM || '/usr/bin/chromium' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const key = { '--url': 'url', '--token': 'token', '--screenshots': 'screenshots', '--cert': 'cert', '--partner': 'partner', '--exchange': 'exchange', '--chromium': 'chromium' }[argv[i]];
  if (!key) fail('arguments', `unknown argument '${argv[i]}'`);
  opts[key] = argv[++i];
}
const missing = ['url', 'token', 'screenshots', 'cert', 'partner', 'exchange'].filter((k) => !opts[k]);
if (missing.length) fail('arguments', `missing ${missing.map((m) => `--${m}`).join(', ')}`);
if (!fs.existsSync(opts.chromium)) fail('arguments', `${opts.chromium} does not exist: apt-get install chromium`);
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  fail('setup', `playwright-core is not installed: run 'npm ci' in tests/console (${e.message})`);
}

let currentStep = 'start';
let page = null;
let context = null;
let profile = null;
const problems = [];
class Expectation extends Error {}
const expect = (cond, message) => {
  if (!cond) throw new Expectation(message);
};
const step = (name) => {
  currentStep = name;
  console.log(`- ${name}`);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function shot(name) {
  const file = path.join(opts.screenshots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
}

const item = (name) => page.locator(`li.expiry-item[data-name="${name}"]`);

async function run() {
  fs.mkdirSync(opts.screenshots, { recursive: true });
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-expiry-chromium-'));
  step('launch Chromium');
  context = await chromium.launchPersistentContext(profile, {
    executablePath: opts.chromium,
    headless: true,
    acceptDownloads: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    timeout: 60000,
  });
  context.setDefaultTimeout(30000);
  page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to (execute|apply|load|connect)/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

  step('sign in');
  await page.goto(`${opts.url}/`);
  await page.getByLabel('Access token').fill(opts.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Certificates', exact: true }).waitFor();

  step('the Expiry page: certificate and partner certificate, owner and what to do');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Expiry', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Expiry', exact: true }).waitFor();
  const cert = await item(opts.cert).innerText();
  for (const words of ['Client certificate', opts.cert, 'Owner: Team Billing', 'ops@example.com', 'What to do:', `Renew ${opts.cert} inside certgate`]) {
    expect(cert.includes(words), `the certificate's entry does not say "${words}": ${cert}`);
  }
  const partner = await item(opts.partner).innerText();
  for (const words of ['partner certificate', 'act before the partner renews', 'trusted by a pin']) {
    expect(partner.toLowerCase().includes(words), `the partner's entry does not say "${words}": ${partner}`);
  }
  expect(await page.locator('li.expiry-item.loud').count() === 1, 'exactly the pinned partner is marked loud');
  const notice = await page.locator('.notice.bad').innerText();
  expect(notice.includes('1 partner trusted by a pin'), `the page does not warn about the pinned partner: ${notice}`);
  await shot('expiry');

  step('a 7-day window keeps the certificate (5 days) and drops the partner (12 days)');
  await page.getByRole('link', { name: '7 days', exact: true }).click();
  await page.getByText('What expires within 7 days').waitFor();
  expect(await item(opts.cert).count() === 1, 'the certificate is not listed within 7 days');
  expect(await item(opts.partner).count() === 0, 'the partner is listed within 7 days');

  step('start a renewal from the certificate\'s entry');
  await item(opts.cert).getByRole('link', { name: `Renew ${opts.cert} inside certgate` }).click();
  await page.getByRole('heading', { level: 1, name: 'Renewal', exact: true }).waitFor();
  const name = page.getByLabel('Name', { exact: true });
  expect(await name.inputValue() === opts.cert, 'the name is not filled in');
  await page.getByLabel('Subject', { exact: true }).fill('CN=billing-renewed,O=Example Ltd');
  await page.getByLabel('Key type').selectOption('ec-p384');
  await page.getByRole('button', { name: 'Make key and CSR' }).click();
  await page.getByText(`Request for '${opts.cert}' started`).waitFor();
  const row = page.locator(`tr[data-name="${opts.cert}"]`);
  const rowText = await row.innerText();
  expect(rowText.includes('ec-p384') && rowText.includes('Renewal'), `the pending row: ${rowText}`);
  const complete = row.getByRole('button', { name: 'Complete' });
  const box = await complete.boundingBox();
  expect(box && box.x + box.width <= 1280, `the Complete button is off screen: ${JSON.stringify(box)}`);
  expect(/\d+ minute/.test(rowText), `the pending row shows no age: ${rowText}`);
  await shot('renewal');

  step('download the CSR');
  const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('link', { name: 'Download CSR' }).click()]);
  const csrFile = path.join(opts.exchange, `${opts.cert}.csr.part`);
  await download.saveAs(csrFile);
  const csr = fs.readFileSync(csrFile, 'utf8');
  expect(csr.startsWith('-----BEGIN CERTIFICATE REQUEST-----'), `the download is not a CSR: ${csr.slice(0, 80)}`);
  expect(!/PRIVATE/.test(csr), 'the download holds a private key');
  fs.renameSync(csrFile, path.join(opts.exchange, `${opts.cert}.csr`));

  step('wait for the CA to issue it');
  const issued = path.join(opts.exchange, 'issued.pem');
  for (let i = 0; i < 120 && !fs.existsSync(issued); i++) await sleep(500);
  expect(fs.existsSync(issued), 'no issued certificate within 60 s');

  step('upload the issued certificate and complete');
  await row.getByLabel(`Issued certificate for ${opts.cert}`).setInputFiles(issued);
  await row.getByRole('button', { name: 'Complete' }).click();
  await page.getByText(`'${opts.cert}' now presents the new certificate`).waitFor();
  await page.getByRole('heading', { level: 1, name: opts.cert }).waitFor();

  step('no pending request is left');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Expiry', exact: true }).click();
  await page.getByRole('link', { name: 'Renewal requests' }).click();
  await page.getByText('No pending requests.').waitFor();

  expect(!problems.length, `the page reported:\n  ${problems.join('\n  ')}`);
}

try {
  await run();
  console.log('console expiry passed');
} catch (e) {
  const detail = e instanceof Expectation ? e.message : (e && e.stack) || String(e);
  let seen = '';
  if (page) {
    try {
      seen = `\n--- the page showed:\n${(await page.locator('body').innerText({ timeout: 2000 })).slice(0, 3000)}`;
    } catch (_) {
      // no text
    }
  }
  console.error(`console expiry FAILED at step "${currentStep}": ${detail}${seen}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  // The browser profile goes once Chromium has closed it.
  if (profile) fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}
