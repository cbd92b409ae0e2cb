#!/usr/bin/env node
// End-to-end test of the certgate web console in a real browser: Debian's Chromium driven by
// playwright-core. It never downloads a browser: it runs /usr/bin/chromium (or --chromium PATH).
//
// Usage (each option also reads an environment variable):
//   node tests/console/e2e.mjs --url http://127.0.0.1:9781 --token cgt_... \
//     --pfx client.p12 --password PW --host api.partner.example --screenshots DIR \
//     [--name partner-client] [--expect-expiry 2036-11-19] [--expect-counts 4,1,1,1] \
//     [--expect-status CERT=WORDS ...] [--anchor CA.pem] [--chromium /usr/bin/chromium]
//
//   --url            CERTGATE_URL            the admin listener (console at /)
//   --token          CERTGATE_TOKEN          an admin token (certgate token create NAME --role admin)
//   --pfx            E2E_PFX                 a PKCS#12 file to upload
//   --password       E2E_PFX_PASSWORD        its password
//   --host           E2E_BIND_HOST           the partner host to bind it to
//   --screenshots    E2E_SCREENSHOTS         where the PNGs go (created if missing)
//   --name           E2E_CERT_NAME           the name to import under (default partner-client)
//   --expect-expiry  E2E_EXPECT_EXPIRY       the certificate's expiry date as YYYY-MM-DD
//   --expect-counts  E2E_EXPECT_COUNTS       dashboard counts after the upload: total,expiring,expired,problems
//   --expect-status  (repeatable)            CERT=WORDS: the dashboard row of CERT shows WORDS
//   --anchor         E2E_ANCHOR              a CA certificate to add as trust anchor 'partner-root'
//   --expect-proxy   E2E_EXPECT_PROXY        host:port the HTTP_PROXY example must name (serve's proxy listener)
//   --duplicate      E2E_DUPLICATE           upload the PFX again under this second name at the end: it
//                                            must warn that it is already stored under --name
//   --also           E2E_ALSO                a stored certificate to bind as the second candidate (the
//                                            partner's CA names pick one): the table lists both in order
//   --renegotiate    E2E_RENEGOTIATE         (yes) tick "Allow renegotiation" under Advanced when binding,
//                                            then add service E2E.Iis with it ticked: both tables must
//                                            say "renegotiation allowed"
//
// Scenario: sign in (after a refused token); upload the PFX with a wrong password and see the
// refusal, which must mention the password, with the form still filled; upload it with the right
// one; see it on the dashboard with its expiry date; open it; bind it to the host; (with --anchor)
// add a trust anchor; add an app and
// grant it the certificate; read the audit log, where the import and the bind carry the token's
// name as actor; sign out. Screenshots of every main page. Exits 1 with the failed step and what
// the page showed on any failed expectation; CSP violations and page errors fail the run too.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const opts = { status: [] };
  const flags = {
    '--url': 'url', '--token': 'token', '--pfx': 'pfx', '--password': 'password', '--host': 'host',
    '--screenshots': 'screenshots', '--name': 'name', '--expect-expiry': 'expectExpiry',
    '--expect-counts': 'expectCounts', '--chromium': 'chromium', '--anchor': 'anchor',
    '--expect-proxy': 'expectProxy', '--duplicate': 'duplicate', '--also': 'also',
    '--renegotiate': 'renegotiate',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') && a.startsWith('--') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => (inline !== undefined ? inline : argv[++i]);
    if (flag === '--expect-status') opts.status.push(value());
    else if (flags[flag]) opts[flags[flag]] = value();
    else if (flag === '--help' || flag === '-h') {
      console.log(fs.readFileSync(new URL(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n'));
      process.exit(0);
    } else fail('arguments', `unknown argument '${a}' (see --help)`);
  }
  const env = process.env;
  opts.url ??= env.CERTGATE_URL;
  opts.token ??= env.CERTGATE_TOKEN;
  opts.pfx ??= env.E2E_PFX;
  opts.password ??= env.E2E_PFX_PASSWORD;
  opts.host ??= env.E2E_BIND_HOST;
  opts.screenshots ??= env.E2E_SCREENSHOTS;
  opts.name ??= env.E2E_CERT_NAME || 'partner-client';
  opts.expectExpiry ??= env.E2E_EXPECT_EXPIRY;
  opts.expectCounts ??= env.E2E_EXPECT_COUNTS;
  opts.anchor ??= env.E2E_ANCHOR;
  opts.expectProxy ??= env.E2E_EXPECT_PROXY;
  opts.renegotiate ??= env.E2E_RENEGOTIATE;
  opts.duplicate ??= env.E2E_DUPLICATE;
  opts.also ??= env.E2E_ALSO;
  opts.chromium ??= env.CHROMIUM || '/usr/bin/chromium';
  const missing = ['url', 'token', 'pfx', 'password', 'host', 'screenshots'].filter((k) => !opts[k]);
  if (missing.length) fail('arguments', `missing ${missing.map((m) => `--${m}`).join(', ')} (see --help)`);
  opts.url = opts.url.replace(/\/+$/, '');
  if (!fs.existsSync(opts.pfx)) fail('arguments', `the PFX file ${opts.pfx} does not exist`);
  if (opts.anchor && !fs.existsSync(opts.anchor)) fail('arguments', `the CA file ${opts.anchor} does not exist`);
  if (!fs.existsSync(opts.chromium)) fail('arguments', `${opts.chromium} does not exist: install Debian's chromium (apt-get install chromium)`);
  return opts;
}

// ---------------------------------------------------------------- reporting

let currentStep = 'start';
let page = null;

function fail(step, message) {
  console.error(`console e2e FAILED at step "${step}": ${message}`);
  process.exit(1);
}

function step(name) {
  currentStep = name;
  console.log(`- ${name}`);
}

async function pageText() {
  try {
    return (await page.locator('body').innerText({ timeout: 2000 })).replace(/\n{2,}/g, '\n').slice(0, 1500);
  } catch (_) {
    return '(page text unavailable)';
  }
}

class Expectation extends Error {}

function expect(cond, message) {
  if (!cond) throw new Expectation(message);
}

// ---------------------------------------------------------------- the run

const opts = parseArgs(process.argv.slice(2));
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  fail('setup', `playwright-core is not installed: run 'npm ci' in tests/console (${e.message})`);
}

fs.mkdirSync(opts.screenshots, { recursive: true });
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-e2e-chromium-'));
const problems = []; // CSP violations, page errors
let context = null;

async function shot(name) {
  const file = path.join(opts.screenshots, `${name}.png`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
}

/** Click a main navigation link and wait for its page heading. */
async function nav(label, heading) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: heading, exact: true }).waitFor();
}

/** The visible text of the first alert on the page, waiting for it to appear. */
async function alertText() {
  const alert = page.locator('[role="alert"]:not([hidden])').first();
  await alert.waitFor({ state: 'visible' });
  return alert.innerText();
}

/** Wait for `success` to show; when the console shows a refusal instead, fail with its words. */
async function outcome(success, what) {
  const refusal = page.locator('[role="alert"]:not([hidden])').first();
  await success.or(refusal).first().waitFor();
  if (!(await success.first().isVisible()) && (await refusal.isVisible())) {
    throw new Expectation(`${what} was refused: ${await refusal.innerText()}`);
  }
}

async function run() {
  step('launch Chromium');
  context = await chromium.launchPersistentContext(profile, {
    executablePath: opts.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
    timeout: 60000,
  });
  context.setDefaultTimeout(30000); // generous: CI runs this beside the other tests on 2 cores
  page = context.pages()[0] || (await context.newPage());
  page.on('console', (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to (execute|apply|load|connect)/i.test(t)) problems.push(`CSP: ${t}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));

  step('open the console: the sign-in page explains where to get a token');
  const resp = await page.goto(`${opts.url}/`);
  expect(resp && resp.ok(), `GET / answered ${resp && resp.status()}`);
  const csp = resp.headers()['content-security-policy'] || '';
  expect(csp.includes("script-src 'self'"), `the page has no strict Content-Security-Policy (got '${csp}')`);
  await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
  expect((await pageText()).includes('certgate token create'), 'the sign-in page does not show the token command');
  await shot('sign-in');

  step('a wrong token is refused in plain words');
  await page.getByLabel('Access token').fill('cgt_not-a-real-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const badToken = await alertText();
  expect(/not valid/i.test(badToken), `expected "not valid" in the refusal, got: ${badToken}`);

  step('sign in with the token');
  await page.getByLabel('Access token').fill(opts.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Certificates', exact: true }).waitFor();
  const session = await page.evaluate(async () => (await fetch('/console/session', { credentials: 'same-origin' })).json());
  expect(session.role === 'admin', `this scenario needs an admin token; the session has role ${session.role}`);
  const actor = session.name;
  expect((await page.locator('#who').innerText()).includes(actor), `the top bar does not name the signed-in token '${actor}'`);

  step('upload the PFX with a wrong password: refused, and the form stays filled');
  await nav('Upload', 'Upload a certificate');
  await page.getByLabel('Name', { exact: true }).fill(opts.name);
  await page.getByLabel('Certificate file').setInputFiles(opts.pfx);
  await page.getByLabel('Password', { exact: true }).fill(`${opts.password}-wrong`);
  await page.getByLabel('Owner (optional)').fill('e2e test team');
  await page.getByRole('button', { name: 'Upload and check' }).click();
  const refusal = await alertText();
  expect(/password/i.test(refusal), `the refusal does not mention the password: ${refusal}`);
  expect(await page.getByLabel('Name', { exact: true }).inputValue() === opts.name, 'the name field was cleared after the refusal');
  expect(await page.getByLabel('Certificate file').evaluate((el) => el.files.length) === 1, 'the chosen file was cleared after the refusal');
  expect(await page.getByLabel('Password', { exact: true }).getAttribute('aria-invalid') === 'true', 'the password field is not marked invalid');
  await shot('upload-refused');

  step('upload it with the right password: the certificate page opens');
  await page.getByLabel('Password', { exact: true }).fill(opts.password);
  await page.getByRole('button', { name: 'Upload and check' }).click();
  await outcome(page.getByRole('heading', { level: 1, name: opts.name, exact: true }), 'the upload with the right password');
  await page.waitForURL((u) => u.hash === `#/certificates/${encodeURIComponent(opts.name)}`);
  await page.getByRole('heading', { level: 1, name: opts.name, exact: true }).waitFor();
  expect((await pageText()).includes(`Imported '${opts.name}'`), 'no confirmation of the import');

  step('the dashboard lists it with its expiry date');
  await nav('Certificates', 'Certificates');
  const row = page.locator(`tr[data-cert="${opts.name}"]`);
  await row.waitFor();
  const rowText = await row.innerText();
  const view = await page.evaluate(async (n) => (await fetch(`/api/v1/certificates/${encodeURIComponent(n)}`, { credentials: 'same-origin' })).json(), opts.name);
  const expiry = opts.expectExpiry || String(view.not_after).slice(0, 10);
  expect(/^\d{4}-\d{2}-\d{2}$/.test(expiry), `no expiry date to look for (API said ${view.not_after})`);
  expect(rowText.includes(expiry), `the dashboard row does not show the expiry date ${expiry}: ${rowText}`);
  expect(rowText.includes('e2e test team'), `the dashboard row does not show the owner: ${rowText}`);
  for (const spec of opts.status) {
    const [cert, words] = [spec.slice(0, spec.indexOf('=')), spec.slice(spec.indexOf('=') + 1)];
    const t = await page.locator(`tr[data-cert="${cert}"] td.status`).innerText();
    expect(t.toLowerCase().includes(words.toLowerCase()), `the status of ${cert} does not say "${words}": ${t}`);
  }
  if (opts.expectCounts) {
    const want = opts.expectCounts.split(',').map(Number);
    const got = [];
    for (const f of ['all', 'expiring', 'expired', 'problems']) got.push(Number(await page.locator(`.stat[data-filter="${f}"] .stat-num`).innerText()));
    expect(JSON.stringify(got) === JSON.stringify(want), `dashboard counts (total, expiring, expired, with problems) are ${got}, expected ${want}`);
  }
  await shot('dashboard');

  step('open the certificate: facts, chain, export links');
  await row.getByRole('link', { name: opts.name, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: opts.name, exact: true }).waitFor();
  const certText = await pageText();
  for (const want of ['Facts', 'Chain to the root', 'Problems', view.serial, expiry]) {
    expect(certText.includes(want), `the certificate page does not show "${want}"`);
  }
  const chain = await page.locator('ol.chain > li').count();
  expect(chain >= 1, 'the chain path is empty');
  const der = await page.getByRole('link', { name: '.cer (DER)' }).getAttribute('href');
  expect(der === `/api/v1/certificates/${encodeURIComponent(opts.name)}/export?format=der`, `unexpected DER export link ${der}`);
  const derBytes = await page.evaluate(async (u) => (await (await fetch(u, { credentials: 'same-origin' })).arrayBuffer()).byteLength, der);
  expect(derBytes > 100, `the DER export returned ${derBytes} bytes`);
  await shot('certificate');

  step(`bind it to ${opts.host}`);
  await nav('Bindings & services', 'Bindings and services');
  const form = page.locator('#binding-form');
  await form.getByLabel('Partner host').fill(opts.host);
  await form.getByLabel('Client certificate').selectOption(opts.name);
  if (opts.also) await form.getByLabel('Other candidates').fill(opts.also);
  if (opts.renegotiate === 'yes') {
    await form.getByText('Advanced: SNI and public-key pins').click();
    await form.getByLabel(/Allow renegotiation/).check();
  }
  await form.getByRole('button', { name: 'Save binding' }).click();
  const esc = (t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const boundTo = opts.also ? `${opts.name}, ${opts.also}` : opts.name;
  await outcome(page.getByText(new RegExp(`(Added|Changed) binding ${esc(opts.host)} → ${esc(boundTo)}`)), 'the binding');
  const bound = await page.locator(`tr[data-destination="${opts.host}"]`).innerText();
  expect(bound.includes(opts.name), `the bindings table does not show ${opts.host} -> ${opts.name}: ${bound}`);
  if (opts.also) {
    const listed = await page.locator(`tr[data-destination="${opts.host}"] ol.candidates li`).allInnerTexts();
    expect(JSON.stringify(listed) === JSON.stringify([opts.name, opts.also]), `the bindings table does not list the candidates in order: ${listed}`);
  }
  if (opts.renegotiate === 'yes') {
    expect(bound.includes('renegotiation allowed'), `the bindings table does not say renegotiation is allowed: ${bound}`);
  }
  await shot('bindings');

  if (opts.renegotiate === 'yes') {
    step('add a named service whose partner asks for the certificate after the request');
    const sform = page.locator('#service-form');
    await sform.getByLabel('Service name').fill('E2E.Iis');
    await sform.getByLabel('Partner URL').fill(`https://${opts.host}/orders`);
    await sform.getByLabel('Client certificate').selectOption(opts.name);
    await sform.getByLabel(/Allow renegotiation/).check();
    await sform.getByRole('button', { name: 'Save service' }).click();
    await outcome(page.getByText(/Added service E2E\.Iis/), 'the service');
    const row = await page.locator('tr[data-service="E2E.Iis"]').innerText();
    expect(row.includes('renegotiation allowed'), `the services table does not say renegotiation is allowed: ${row}`);
  }

  if (opts.anchor) {
    step('add a trust anchor from a CA file');
    await nav('Trust anchors', 'Trust anchors');
    await page.getByLabel('Name', { exact: true }).fill('partner-root');
    await page.getByLabel('CA certificate file').setInputFiles(opts.anchor);
    await page.getByRole('button', { name: 'Add trust anchor' }).click();
    await outcome(page.getByText("Added trust anchor 'partner-root'"), 'the trust anchor');
    const anchorRow = await page.locator('table tbody tr').filter({ hasText: 'partner-root' }).innerText();
    expect(/root/i.test(anchorRow), `the anchor row does not show its CA certificate: ${anchorRow}`);
  }

  step('add an app: its credential is shown once, with the HTTP_PROXY example; grant it the certificate');
  await nav('Apps', 'Apps and grants');
  await page.getByLabel('App name').fill('e2e-app');
  await page.getByRole('button', { name: 'Add app' }).click();
  const secret = page.locator('.notice.secret');
  await outcome(secret, 'adding the app');
  const credential = await secret.getByLabel('Credential').inputValue();
  expect(/^cga_/.test(credential), `the credential shown does not look like one: ${credential}`);
  const proxy = await secret.getByLabel('HTTP_PROXY').inputValue();
  expect(proxy.startsWith(`http://e2e-app:${credential}@`), `unexpected HTTP_PROXY example: ${proxy}`);
  if (opts.expectProxy) expect(proxy.endsWith(`@${opts.expectProxy}`), `the HTTP_PROXY example does not name the proxy listener ${opts.expectProxy}: ${proxy}`);
  const appRow = page.locator('tr[data-app="e2e-app"]');
  await appRow.getByLabel('Certificate to grant to e2e-app').selectOption(opts.name);
  await appRow.getByRole('button', { name: 'Grant', exact: true }).click();
  await outcome(page.getByText(`App e2e-app may now present ${opts.name}`), 'the grant');
  expect((await page.locator('tr[data-app="e2e-app"]').innerText()).includes(opts.name), 'the grant is not listed');
  await shot('apps');

  step('trust anchors and tokens pages load');
  await nav('Trust anchors', 'Trust anchors');
  await shot('trust-anchors');
  await nav('Tokens', 'Tokens');
  expect((await pageText()).includes(actor), `the tokens page does not list '${actor}'`);
  await shot('tokens');

  step('the audit log shows the import and the bind with the token as actor');
  await nav('Audit log', 'Audit log');
  const importRow = page.locator('tr[data-action="cert.import"]').filter({ hasText: opts.name }).first();
  await importRow.waitFor();
  const importText = await importRow.innerText();
  expect(importText.includes(actor), `the import entry does not name '${actor}' as actor: ${importText}`);
  const bindRow = page.locator('tr[data-action="bind"]').filter({ hasText: opts.host }).first();
  await bindRow.waitFor();
  const bindText = await bindRow.innerText();
  expect(bindText.includes(actor) && bindText.includes(opts.name), `the bind entry does not name '${actor}' and ${opts.name}: ${bindText}`);
  const firstAction = await page.locator('table.audit tbody tr').first().getAttribute('data-action');
  expect(firstAction === 'app.grant', `the newest entry is not first (first is ${firstAction}, expected app.grant)`);
  await shot('audit');

  if (opts.duplicate) {
    step(`upload the same PFX again as ${opts.duplicate}: imported, with a warning naming ${opts.name}`);
    await nav('Upload', 'Upload a certificate');
    await page.getByLabel('Name', { exact: true }).fill(opts.duplicate);
    await page.getByLabel('Certificate file').setInputFiles(opts.pfx);
    await page.getByLabel('Password', { exact: true }).fill(opts.password);
    await page.getByRole('button', { name: 'Upload and check' }).click();
    await outcome(page.getByRole('heading', { level: 1, name: opts.duplicate, exact: true }), 'the second upload');
    const text = await pageText();
    expect(text.includes(`Imported '${opts.duplicate}'`), 'no confirmation of the second import');
    expect(text.includes(`already stored as '${opts.name}'`), `the second import does not warn that it is already stored as '${opts.name}'`);
    await shot('upload-duplicate');
  }

  step('sign out');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to the console' }).waitFor();
  const after = await page.evaluate(async () => (await fetch('/console/session', { credentials: 'same-origin' })).status);
  expect(after === 401, `the session still answers ${after} after signing out`);

  expect(!problems.length, `the page reported:\n  ${problems.join('\n  ')}`);
}

try {
  await run();
  console.log('console e2e passed');
} catch (e) {
  const detail = e instanceof Expectation ? e.message : (e && e.stack) || String(e);
  let seen = '';
  if (page) {
    seen = `\n--- the page showed:\n${await pageText()}`;
    try {
      await page.screenshot({ path: path.join(opts.screenshots, 'failure.png'), fullPage: true });
      seen += `\n--- screenshot: ${path.join(opts.screenshots, 'failure.png')}`;
    } catch (_) {
      // no screenshot
    }
  }
  if (problems.length) seen += `\n--- page problems:\n  ${problems.join('\n  ')}`;
  console.error(`console e2e FAILED at step "${currentStep}": ${detail}${seen}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(profile, { recursive: true, force: true });
}
