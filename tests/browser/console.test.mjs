// The console and the approval app's Custom UI in headless Chromium, driven as a person
// would: by role and label, one screenshot per step (target/browser-screenshots). The
// browser is the system's Chromium (/usr/bin/chromium, or $SIGNOFF_CHROMIUM); the console is
// `signoff sim serve` from target/debug (or $SIGNOFF_BIN) on the console scenario.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = process.env.SIGNOFF_BIN || `${root}target/debug/signoff`;
const shots = process.env.SIGNOFF_SCREENSHOTS || `${root}target/browser-screenshots`;
const executablePath = process.env.SIGNOFF_CHROMIUM || '/usr/bin/chromium';
mkdirSync(shots, { recursive: true });

let server;
let base;
let browser;
let step = 0;

// Starts `signoff sim serve` and waits for the address it prints.
function serve(scenario) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['sim', 'serve', scenario], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`signoff sim serve printed no address in 10 minutes:\n${out}\n${err}`)), 600_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /signoff console: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`signoff sim serve exited with ${code}:\n${out}\n${err}`));
    });
  });
}

async function shot(page, name) {
  step += 1;
  await page.screenshot({ path: `${shots}/${String(step).padStart(2, '0')}-${name}.png`, fullPage: true });
}

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => { throw e; });
  return page;
}

before(async () => {
  const s = await serve('examples/scenarios/console.yaml');
  server = s.child;
  base = s.url;
  browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill('SIGINT');
});

test('the console shows the site, its pages and their status lozenge', async () => {
  const page = await newPage();
  await page.goto(`${base}/`);
  await page.getByRole('link', { name: 'Travel policy' }).click();
  await page.getByRole('heading', { level: 1, name: 'Travel policy' }).waitFor();
  assert.equal(await page.getByTestId('page-status').textContent(), 'Draft');
  await assert.doesNotReject(page.getByRole('button', { name: 'Approval' }).waitFor());
  await shot(page, 'page-view');
  // Every control has a name a screen reader can read.
  const unnamed = await page.evaluate(() =>
    [...document.querySelectorAll('button, input, select, textarea, a[href]')]
      .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
      .map((e) => e.outerHTML));
  assert.deepEqual(unnamed, []);
  await page.context().close();
});

test('the clock moves virtual time and runs what is due', async () => {
  const page = await newPage();
  await page.goto(`${base}/`);
  await page.waitForFunction(() => document.querySelector('#now').getAttribute('datetime'));
  const before = await page.locator('#now').getAttribute('datetime');
  await page.getByRole('button', { name: '+1 hour' }).click();
  await page.waitForFunction((b) => document.querySelector('#now').getAttribute('datetime') !== b, before);
  const after = await page.locator('#now').getAttribute('datetime');
  assert.equal(Date.parse(after) - Date.parse(before), 3_600_000);
  await page.context().close();
});

test('a site admin blocks analytics and the egress ledger shows it', async () => {
  const page = await newPage();
  await page.goto(`${base}/#/tools/admin`);
  await page.getByLabel('Block analytics egress').check();
  await page.getByText('Saved the settings of northwind-approvals').waitFor();
  await shot(page, 'admin-blocks-analytics');
  // alice edits a page: the app hears of it (minutes later) and counts it in analytics,
  // which the admin has just blocked.
  await page.getByLabel('Acting user').selectOption('alice');
  await page.getByRole('link', { name: 'Security policy' }).click();
  await page.getByText('Edit this page').click();
  await page.getByLabel('Body (storage format)').fill('<p>Use a password manager and a hardware key.</p>');
  await page.getByRole('button', { name: 'Publish as the acting user' }).click();
  await page.getByText(/Published version \d+/).waitFor();
  await page.getByRole('button', { name: '+1 hour' }).click();
  await page.getByText(/invocation\(s\) ran/).first().waitFor();
  await page.getByRole('link', { name: 'Egress ledger' }).click();
  await page.getByRole('heading', { name: 'Egress ledger' }).waitFor();
  const blocked = page.getByRole('cell', { name: 'blocked: analytics_blocked_by_admin' });
  assert.ok((await blocked.count()) > 0, 'a blocked analytics request is in the ledger');
  await shot(page, 'ledger-shows-blocked-analytics');
  await page.goto(`${base}/#/tools/admin`);
  await page.getByLabel('Block analytics egress').uncheck();
  await page.getByText('Saved the settings of northwind-approvals').first().waitFor();
  await page.context().close();
});

test('the storage inspector, the RoA report and the logs show the run', async () => {
  const page = await newPage();
  await page.goto(`${base}/#/tools/storage`);
  await page.getByText(/keys of northwind-approvals on northwind.atlassian.net, stored in realm EU/).waitFor();
  await shot(page, 'storage-inspector');
  await page.getByRole('link', { name: 'RoA report' }).click();
  await page.getByRole('heading', { name: 'approvals' }).waitFor();
  assert.match(await page.locator('pre').first().textContent(), /observed: runs on Atlassian/);
  await page.getByRole('link', { name: 'Logs' }).click();
  await page.getByRole('heading', { name: 'Logs' }).waitFor();
  await page.context().close();
});

// TOTP (RFC 6238: SHA-1, 6 digits, 30 s) of a base32 secret at a time in ms.
export function totp(secret, ms) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(ms / 30_000)));
  const h = createHmac('sha1', key).update(counter).digest();
  const o = h[h.length - 1] & 15;
  const n = (h.readUInt32BE(o) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}
