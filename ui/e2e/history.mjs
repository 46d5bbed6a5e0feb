// The job history against a stack with more jobs than a page, in headless Chromium: "load more" to the
// end, the state filter, the prompt search over the loaded pages, date/tier/seed on every row, the
// user's own job followed and opened though newer jobs push it off the first page, a time estimate
// from recent jobs of the same tier, "mine", and the list on a phone (44 px targets, axe-core).
// Usage: node e2e/history.mjs <base url> <outdir>
import { join } from 'node:path';
import {
  PHONE, check, checkAxe, follow, launch, makeJobs, run, smallTargets, submitAndGetJob, waitForText,
} from './lib.mjs'; // prettier-ignore

const [base, outdir] = process.argv.slice(2);
if (!base || !outdir) {
  console.error('usage: node e2e/history.mjs <base url> <outdir>');
  process.exit(2);
}
const app = new URL('/3d-test/', base).toString();
const api = (path) => new URL(path, base).toString();
const browser = await launch();

await run('history', outdir, browser, async (report) => {
  const step = report.step;
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  report.watch(page);
  const rows = () => page.locator('#jobs > li');
  const total = async (state = '') => (await (await page.request.get(api(`/3d/jobs?limit=1${state && `&state=${state}`}`))).json()).total;
  async function until(what, condition, timeout = 60000) {
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
      if (await condition()) return;
      await page.waitForTimeout(250);
    }
    throw new Error(`${what}: not within ${timeout / 1000} s`);
  }

  // A stack with more than two pages of jobs: some cancelled, then some that fail at once.
  const made = await makeJobs(page.request, base, { cancelled: 10, failing: 32 });
  await until('the failing jobs end', async () => (await total('failed')) >= made.failing.length, 120000);
  const all = await total();
  check(all > 40, `only ${all} jobs`);
  step('stack', { jobs: all, cancelled: made.cancelled.length, failing: made.failing.length });

  // 1. Pages: 20 at first, "load more" to the end, every row with its date, tier and seed.
  await page.goto(app, { waitUntil: 'networkidle' });
  await until('the first page', async () => (await rows().count()) === 20);
  check(/\(20 of \d+ loaded\)/.test(await page.textContent('#jobs-total')), 'the count of loaded jobs is not shown');
  let clicks = 0;
  while (await page.isVisible('#load-more')) {
    const before = await rows().count();
    await page.click('#load-more');
    await until('a page more', async () => (await rows().count()) > before);
    clicks++;
  }
  const ids = await rows().evaluateAll((lis) => lis.map((li) => li.dataset.jobId));
  check(ids.length === all && new Set(ids).size === all, `${ids.length} rows (${new Set(ids).size} distinct) for ${all} jobs`);
  const facts = await page.locator('#jobs .job-facts').allTextContents();
  const bad = facts.filter((f) => !/^\d\d:\d\d · (standard|high) · seed \d+ · [A-Z]+$/.test(f));
  check(!bad.length, `rows without date, tier or seed: ${bad.slice(0, 3)}`);
  step('paging', { rows: ids.length, load_more_clicks: clicks, facts: facts[0] });

  // 2. The state filter asks the server; the search runs over what is loaded, and says so.
  await page.selectOption('#state-filter', 'cancelled');
  const cancelled = await total('cancelled');
  await until('the cancelled jobs alone', async () => {
    const states = await rows().evaluateAll((lis) => lis.map((li) => li.dataset.state));
    return states.length === Math.min(cancelled, 20) && states.every((s) => s === 'cancelled');
  });
  step('state_filter', { cancelled, rows: await rows().count() });
  await page.selectOption('#state-filter', '');
  await until('page 1 again', async () => (await rows().count()) === 20);
  await page.fill('#search', 'cancelled cone');
  const note = await waitForText(page, '#search-note', /^0 of the 20 loaded jobs match; load more to search older ones\.$/);
  while ((await rows().count()) < made.cancelled.length && (await page.isVisible('#load-more'))) {
    await page.click('#load-more');
    await page.waitForTimeout(500);
  }
  const found = await page.locator('#jobs .job-title').allTextContents();
  check(found.length === made.cancelled.length && found.every((t) => t.startsWith('a cancelled cone')), `search found ${found}`);
  await page.fill('#search', '');
  step('search', { note, found: found.length });

  // 3. The user's own job, followed by its id while newer jobs push it off the first page.
  await page.reload({ waitUntil: 'networkidle' });
  await page.fill('#prompt', 'a tall blue cylinder');
  await page.selectOption('#quality', 'high');
  const mine = await submitAndGetJob(page, '/3d/generate');
  const newer = await makeJobs(page.request, base, { failing: 22 });
  await follow(page, mine);
  await page.waitForSelector(`body[data-shown="${mine}"]`, { timeout: 30000 });
  const firstPage = (await (await page.request.get(api('/3d/jobs?limit=20'))).json()).jobs.map((j) => j.job_id);
  check(!firstPage.includes(mine), 'the own job is still on the first page: the test proves nothing');
  check(await page.locator(`li[data-job-id="${mine}"] .job-mine`).isVisible(), 'the own job is not marked "yours"');
  step('own_job_beyond_the_page', { job: mine, newer: newer.failing.length });

  // 4. A time estimate from the recent completed job of the same kind and tier.
  const again = await submitAndGetJob(page, '/3d/generate');
  const estimate = await waitForText(page, `li[data-job-id="${again}"] .job-estimate`, /(left|almost done|longer than usual) \(typically/, 20000);
  await follow(page, again);
  step('estimate', { estimate });

  // 5. "Mine": the jobs of this browser, whatever the server's list holds.
  await page.selectOption('#scope', 'mine');
  await until('the own jobs alone', async () => {
    const shown = await rows().evaluateAll((lis) => lis.map((li) => li.dataset.jobId));
    return shown.length === 2 && shown.includes(mine) && shown.includes(again);
  });
  await checkAxe(page, 'history, mine');
  await page.screenshot({ path: join(outdir, 'history.png') });
  step('mine', { rows: await rows().count() });

  // 6. On a phone: the list with its filters and "load more", every target 44 px, axe-core clean.
  const phone = await browser.newPage(PHONE);
  report.watch(phone);
  await phone.goto(app, { waitUntil: 'networkidle' });
  await phone.waitForSelector('#load-more:not([hidden])');
  await phone.locator('#load-more').scrollIntoViewIfNeeded();
  const small = await smallTargets(phone);
  check(!small.length, `touch targets under 44 px: ${small.join('; ')}`);
  await checkAxe(phone, 'history, phone');
  step('phone', { small_targets: small.length });
  check(!report.console_errors.length, `console errors: ${report.console_errors}`);
});
