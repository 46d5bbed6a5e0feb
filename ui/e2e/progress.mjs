// Progress within a stage, in headless Chromium: while a high-tier job runs, its row names the stage's
// count ("Post-processing · 3 / 6 steps") and its bar moves between the stages' start values, never
// back; once the job is completed the row shows no count.
// Usage: node e2e/progress.mjs <base url> <outdir>
import { join } from 'node:path';
import { check, checkAxe, launch, run, submitAndGetJob } from './lib.mjs';

const [base, outdir] = process.argv.slice(2);
if (!base || !outdir) {
  console.error('usage: node e2e/progress.mjs <base url> <outdir>');
  process.exit(2);
}
const app = new URL('/3d-test/', base).toString();
const browser = await launch();
const COUNT = / · (\d+) \/ (\d+) ([a-z]+)$/;
const STAGE_STARTS = new Set([0, 5, 40, 80, 100]);

await run('progress', outdir, browser, async (report) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  report.watch(page);
  await page.goto(app, { waitUntil: 'networkidle' });
  await page.fill('#prompt', 'a red cube');
  await page.selectOption('#quality', 'high');
  const id = await submitAndGetJob(page, '/3d/generate');
  const row = page.locator(`li[data-job-id="${id}"]`);
  const counts = [];
  const progress = [];
  let state = '';
  let shot = false;
  const deadline = Date.now() + 180000;
  while (Date.now() < deadline) {
    if (await row.count()) {
      state = (await row.getAttribute('data-state')) ?? '';
      const value = Number(await row.getAttribute('data-progress'));
      if (progress.at(-1) !== value) progress.push(value);
      const line = ((await row.locator('.job-state').textContent()) ?? '').trim();
      const match = COUNT.exec(line);
      if (match && counts.at(-1) !== line) {
        counts.push(line);
        check(Number(match[1]) <= Number(match[2]), `a count past its total: ${line}`);
        if (!shot) {
          await page.screenshot({ path: join(outdir, 'progress.png') });
          await checkAxe(page, 'a row showing a stage count');
          shot = true;
        }
      }
      if (['completed', 'failed', 'cancelled'].includes(state)) break;
    }
    await page.waitForTimeout(50);
  }
  check(state === 'completed', `the job ended ${state || 'nowhere'}`);
  check(counts.length > 0, `no stage count was shown; progress seen: ${progress}`);
  check(progress.some((p) => !STAGE_STARTS.has(p)), `progress only at stage starts: ${progress}`);
  check(progress.every((p, i) => i === 0 || p >= progress[i - 1]), `progress went back: ${progress}`);
  const final = ((await row.locator('.job-state').textContent()) ?? '').trim();
  check(final === 'Completed', `a completed row still shows a count: ${final}`);
  report.step('followed', { job: id, counts, progress });
  check(!report.console_errors.length, `console errors: ${report.console_errors}`);
});
