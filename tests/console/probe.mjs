#!/usr/bin/env node
// The console's "Test connection" button in a real browser (Debian's Chromium driven by
// playwright-core; it never downloads a browser).
//
//   node tests/console/probe.mjs --url http://127.0.0.1:9781 --token cgt_... --screenshots DIR \
//     --failing DEST --working DEST --service NAME --unavailable DEST [--chromium /usr/bin/chromium]
//
// Signs in with an operator (or admin) token, opens Bindings & services, clicks Test connection on
// the failing binding, the working binding and the service, and checks the words shown: whether
// the partner is trusted, what it asked for, which certificate goes out and whether it fits, the
// outcome, each problem with "What to do" and a button to the page that does it — and never a
// command line. The binding whose certificate cannot be used is marked unavailable. Screenshots
// probe-failing.png and probe-working.png. Exits 1 with the failed step and the page's text.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function fail(step, message) {
  console.error(`console probe FAILED at step "${step}": ${message}`);
  process.exit(1);
}

const opts = { chromium: process.env.CHROMIUM || '/usr/bin/chromium' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const key = { '--url': 'url', '--token': 'token', '--screenshots': 'screenshots', '--failing': 'failing', '--working': 'working', '--service': 'service', '--unavailable': 'unavailable', '--chromium': 'chromium' }[argv[i]];
  if (!key) fail('arguments', `unknown argument '${argv[i]}'`);
  opts[key] = argv[++i];
}
const missing = ['url', 'token', 'screenshots', 'failing', 'working', 'service', 'unavailable'].filter((k) => !opts[k]);
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
const problems = [];
class Expectation extends Error {}
const expect = (cond, message) => {
  if (!cond) throw new Expectation(message);
};
const step = (name) => {
  currentStep = name;
  console.log(`- ${name}`);
};

/** Click Test connection for `what` and return the report's text and whether it says the path works. */
async function testConnection(what) {
  const before = await page.locator('#probe-report').count();
  const old = before ? await page.locator('#probe-report').innerText() : null;
  await page.getByRole('button', { name: `Test connection to ${what}`, exact: true }).click();
  const report = page.locator('#probe-report');
  await report.filter({ hasText: `Test connection to ${what}:` }).waitFor();
  const text = await report.innerText();
  expect(text !== old, 'the report did not change');
  expect(!/certgate (bind|trust|cert|probe)/.test(text), `the report shows a command line: ${text}`);
  return { text, ok: (await report.getAttribute('data-ok')) === 'true' };
}

async function shot(name) {
  const file = path.join(opts.screenshots, `${name}.png`);
  await page.locator('#probe-report').scrollIntoViewIfNeeded();
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
}

async function run() {
  fs.mkdirSync(opts.screenshots, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-probe-chromium-'));
  step('launch Chromium');
  context = await chromium.launchPersistentContext(profile, {
    executablePath: opts.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
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
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Bindings & services', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Bindings and services', exact: true }).waitFor();

  step(`the binding ${opts.unavailable} is marked unavailable, with the reason`);
  const broken = await page.locator(`tr[data-destination="${opts.unavailable}"]`).innerText();
  expect(broken.includes('Unavailable') && broken.includes('route-unavailable') && broken.includes('does not open'), `the row says: ${broken}`);
  const healthy = await page.locator(`tr[data-destination="${opts.working}"]`).innerText();
  expect(!healthy.includes('Unavailable'), `a healthy binding is marked: ${healthy}`);

  step(`test the failing binding ${opts.failing}`);
  const bad = await testConnection(opts.failing);
  expect(!bad.ok, `the failing binding's report says the path works: ${bad.text}`);
  for (const words of ['the partner path does not work', 'Trusted', 'asks for a client certificate issued by', 'Not among the CAs the partner accepts', 'Failed — ', 'What to do:']) {
    expect(bad.text.includes(words), `the failing report does not say "${words}": ${bad.text}`);
  }
  expect(/bind it instead/.test(bad.text), `the remedy does not name the stored certificate that fits: ${bad.text}`);
  const links = page.locator('#probe-report a.remedy-action');
  expect((await links.count()) > 0, `no problem offers a button: ${bad.text}`);
  for (const href of await links.evaluateAll((as) => as.map((a) => a.getAttribute('href')))) {
    expect(/^#\//.test(href), `a remedy button leaves the console: ${href}`);
  }
  await shot('probe-failing');

  step(`test the working binding ${opts.working}`);
  const good = await testConnection(opts.working);
  expect(good.ok, `the working binding's report says the path does not work: ${good.text}`);
  for (const words of ['the path works end to end', 'Trusted', 'Acceptable to the partner', 'Answered — the partner answered HTTP']) {
    expect(good.text.includes(words), `the working report does not say "${words}": ${good.text}`);
  }
  expect(!good.text.includes('What to do:'), `the working report lists problems: ${good.text}`);
  await shot('probe-working');

  step(`test the service ${opts.service}`);
  const svc = await testConnection(`service ${opts.service}`);
  expect(svc.ok && svc.text.includes('Acceptable to the partner'), `the service's report: ${svc.text}`);

  step('a remedy button opens the page that does it');
  await testConnection(opts.failing);
  const first = page.locator('#probe-report a.remedy-action').first();
  const target = await first.getAttribute('href');
  const label = await first.innerText();
  await first.click();
  await page.waitForFunction((h) => location.hash === h, target);
  await page.getByRole('heading', { level: 1 }).first().waitFor();
  console.log(`  "${label}" opened ${target}`);

  expect(!problems.length, `the page reported:\n  ${problems.join('\n  ')}`);
  fs.rmSync(profile, { recursive: true, force: true });
}

try {
  await run();
  console.log('console probe passed');
} catch (e) {
  const detail = e instanceof Expectation ? e.message : (e && e.stack) || String(e);
  let seen = '';
  if (page) {
    try {
      seen = `\n--- the page showed:\n${(await page.locator('body').innerText({ timeout: 2000 })).slice(0, 2000)}`;
    } catch (_) {
      // no text
    }
  }
  console.error(`console probe FAILED at step "${currentStep}": ${detail}${seen}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
}
