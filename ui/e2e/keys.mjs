// The API key field, in headless Chromium, against a meshforge API started WITH keys (through vite preview):
// every call carries it as a Bearer header, the event stream, the views and the downloads included.
// Usage: KEY=<a valid key> TINY_KEY=<a key allowed 1 request a minute> node e2e/keys.mjs <base url> <outdir>
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [base, outdir] = process.argv.slice(2);
const { KEY: key, TINY_KEY: tinyKey } = process.env;
if (!base || !outdir || !key || !tinyKey) {
  console.error('usage: KEY=... TINY_KEY=... node e2e/keys.mjs <base url> <outdir>');
  process.exit(2);
}
mkdirSync(outdir, { recursive: true });
const app = new URL('/3d-test/', base).toString();
const report = { app, steps: {} };
const t0 = Date.now();
const step = (name, data = {}) => {
  report.steps[name] = { ...data, at_s: (Date.now() - t0) / 1000 };
  console.log(`ok ${name} ${JSON.stringify(data)}`);
};
function check(condition, message) {
  if (!condition) throw new Error(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run',
    '--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
  ],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const apiCalls = []; // every request to the API: its URL and whether it carried a Bearer key
page.on('request', (r) => {
  const url = new URL(r.url());
  if (url.pathname.startsWith('/3d/') || url.pathname === '/health') {
    apiCalls.push({ url: r.url(), auth: r.headers()['authorization'] ?? null });
  }
});

const text = async (selector) => ((await page.textContent(selector)) ?? '').trim();
async function waitForText(selector, pattern, timeout = 15000) {
  const deadline = Date.now() + timeout;
  let seen = '';
  while (Date.now() < deadline) {
    seen = (await page.locator(selector).count()) ? await text(selector) : '';
    if (pattern.test(seen)) return seen;
    await page.waitForTimeout(100);
  }
  throw new Error(`${selector} never matched ${pattern}: last ${JSON.stringify(seen)}`);
}
async function saveKey(value) {
  await page.fill('#api-key', value);
  await page.click('#save-key');
}
async function submitPrompt(prompt) {
  await page.check('input[name="source"][value="prompt"]');
  await page.fill('#prompt', prompt);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/3d/generate') && r.request().method() === 'POST'),
    page.click('#generate'),
  ]);
  return response;
}

let failed = null;
try {
  // 1. No key: the list and a submission say plainly that a key is needed.
  await page.goto(app, { waitUntil: 'networkidle' });
  const needs = await waitForText('#jobs-error .error-summary', /^This server needs an API key: enter it above$/);
  const refused = await submitPrompt('a red cube');
  check(refused.status() === 401, `generate without a key answered ${refused.status()}`);
  await waitForText('#create-error .error-summary', /^This server needs an API key: enter it above$/);
  step('no_key', { jobs_error: needs });

  // 2. A wrong key is refused in words too.
  await saveKey('mf_not_a_key_of_this_server');
  const wrong = await waitForText('#jobs-error .error-summary', /did not accept the API key/);
  step('wrong_key', { jobs_error: wrong });

  // 3. The right key: kept in this browser, sent on every call.
  await saveKey(key);
  const afterKey = apiCalls.length;
  await waitForText('#jobs-error .error-summary', /^$/);
  check((await page.evaluate(() => localStorage.getItem('meshforge.apiKey'))) === key, 'the key is not in localStorage');
  check((await page.inputValue('#api-key')) === '', 'the key stays visible in the field');
  step('key_saved', { key_state: await text('#key-state') });

  // 4. A job followed to completion: the viewer, the thumbnail and the download all fetch with the key.
  const created = await submitPrompt('a red cube');
  check(created.ok(), `generate answered ${created.status()}`);
  const jobId = (await created.json()).job_id;
  await page.waitForSelector(`li[data-job-id="${jobId}"][data-state="completed"]`, { timeout: 120000 });
  await page.waitForSelector(`body[data-shown="${jobId}"]`, { timeout: 30000 });
  await page.waitForFunction(
    (id) => document.querySelector(`li[data-job-id="${id}"] img.thumb`)?.naturalWidth > 0,
    jobId,
    { timeout: 15000 },
  );
  await page.waitForFunction(
    () => {
      const imgs = [...document.querySelectorAll('#views img')];
      return imgs.length > 0 && imgs.every((i) => i.naturalWidth > 0);
    },
    null,
    { timeout: 15000 },
  );
  const stats = await text('#stats');
  check(/vertices/.test(stats), `the viewer shows no model: ${stats}`);
  check(apiCalls.some((c) => c.url.includes(`/3d/events/${jobId}`)), 'the job was not followed through /3d/events');
  check(await page.isHidden('#backend-note'), 'a key without admin rights sees the backends');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  check(dl.suggestedFilename() === `a-red-cube-${jobId.slice(0, 8)}.glb`, `download named ${dl.suggestedFilename()}`);
  const glb = join(outdir, dl.suggestedFilename());
  await dl.saveAs(glb);
  check(readFileSync(glb).subarray(0, 4).toString('latin1') === 'glTF', 'the download is not a GLB');
  await page.screenshot({ path: join(outdir, 'with-key.png'), fullPage: true });
  step('job_with_key', { job: jobId, stats, download: dl.suggestedFilename() });

  // 5. The key survives a reload.
  await page.reload({ waitUntil: 'networkidle' });
  await page.waitForSelector(`li[data-job-id="${jobId}"]`, { timeout: 15000 });
  step('reload', { key_state: await text('#key-state') });

  // 6. A key allowed one job a minute: the second submission says when to retry.
  await saveKey(tinyKey);
  check((await submitPrompt('a blue cube')).ok(), 'the first job of the tiny key was refused');
  const limited = await submitPrompt('a green cube');
  check(limited.status() === 429, `the second job answered ${limited.status()}`);
  const wait = Number(limited.headers()['retry-after']);
  const shown = await waitForText('#create-error .error-summary', /^Too many requests: try again in \d+ s/);
  check(shown.startsWith(`Too many requests: try again in ${wait} s`), `${shown} does not match Retry-After ${wait}`);
  await page.screenshot({ path: join(outdir, 'rate-limited.png'), fullPage: true });
  step('rate_limited', { shown });

  // 7. No key ever in a URL; every API call after the key was saved carried it as a Bearer header.
  const leaked = apiCalls.filter((c) => c.url.includes(key) || c.url.includes(tinyKey));
  check(!leaked.length, `a key went into a URL: ${JSON.stringify(leaked)}`);
  const bare = apiCalls
    .slice(afterKey)
    .filter((c) => new URL(c.url).pathname.startsWith('/3d/') && !c.auth?.startsWith('Bearer '));
  check(!bare.length, `API calls without the key: ${JSON.stringify(bare.slice(0, 5))}`);
  step('every_call_with_key', { api_calls: apiCalls.length, after_key: apiCalls.length - afterKey });
} catch (err) {
  failed = err;
  await page.screenshot({ path: join(outdir, 'failure.png'), fullPage: true }).catch(() => {});
}
report.ok = !failed;
report.error = failed ? String(failed.stack ?? failed) : null;
report.seconds = (Date.now() - t0) / 1000;
writeFileSync(join(outdir, 'report.json'), JSON.stringify(report, null, 2));
await browser.close();
if (failed) {
  console.error(`FAILED: ${failed.message}`);
  process.exit(1);
}
console.log(`keys UI test passed in ${report.seconds} s`);
