// When things go wrong, in headless Chromium: the health badge re-checked (down, then back), a job
// followed by polling when the event stream cannot be had, a proxy's 502 page never shown, a failed job
// in plain words with a red bar and its technical detail behind a toggle, announced once; a submit whose
// answer was lost tried again without making a second job.
// Usage: node e2e/resilience.mjs <base url> <outdir>
import { join } from 'node:path';
import { check, checkAxe, drawnColours, follow, launch, run, submitAndGetJob, waitForText } from './lib.mjs';

const [base, outdir] = process.argv.slice(2);
if (!base || !outdir) {
  console.error('usage: node e2e/resilience.mjs <base url> <outdir>');
  process.exit(2);
}
const app = new URL('/3d-test/', base).toString();
const browser = await launch();
const PROXY_PAGE = '<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>';

await run('resilience', outdir, browser, async (report) => {
  const step = report.step;
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const requests = [];
  page.on('request', (r) => requests.push(new URL(r.url()).pathname));
  await page.goto(app, { waitUntil: 'networkidle' });
  await waitForText(page, '#health', /^API ok$/);

  // 1. The badge is re-checked: it says when the API is gone, and when it is back.
  await page.route('**/health', (route) => route.abort('connectionrefused'));
  const down = await waitForText(page, '#health', /^API unreachable$/, 25000);
  await page.unroute('**/health');
  const up = await waitForText(page, '#health', /^API ok$/, 25000);
  step('health_rechecked', { down, up });

  // 2. No event stream (a proxy refuses it): the job is polled instead, to its end and the viewer.
  await page.route('**/3d/events/**', (route) => route.fulfill({ status: 502, contentType: 'text/html', body: PROXY_PAGE }));
  await page.fill('#prompt', 'a red sphere');
  const polled = await submitAndGetJob(page, '/3d/generate');
  const result = await follow(page, polled);
  await page.waitForSelector(`body[data-shown="${polled}"]`, { timeout: 30000 });
  check((await page.getAttribute('body', 'data-follow')) === 'polling', 'the job was not followed by polling');
  const reads = requests.filter((p) => p === `/3d/status/${polled}`).length;
  await page.unroute('**/3d/events/**');
  step('polling_fallback', { job: polled, status_reads: reads, progress: result.progress });

  // 3. A proxy's 502 page on submit: a plain sentence, shown once, the page itself never.
  await page.route('**/3d/generate', (route) => route.fulfill({ status: 502, contentType: 'text/html', body: PROXY_PAGE }));
  await page.fill('#prompt', 'a red cube');
  await page.click('#generate');
  const plain = await waitForText(page, '#create-error .error-summary', /^The server is not answering properly right now\. Try again in a minute\.$/);
  const text = await page.evaluate(() => document.body.innerText);
  check(!/nginx|<html|<center/i.test(text), 'the proxy page shows');
  check((text.match(/not answering properly right now/g) ?? []).length === 1, 'the error shows more than once');
  check(!(await page.isVisible('#create-error pre')), 'the technical detail shows before it is asked for');
  await page.click('#create-error summary');
  const detail = await page.textContent('#create-error pre');
  check(/^HTTP 502.*text\/html.*not shown\)$/.test(detail), `technical detail: ${detail}`);
  await checkAxe(page, 'an error with its detail open');
  await page.unroute('**/3d/generate');
  step('proxy_page', { plain, detail });

  // 4. A job the offline drawer refuses: plain words, red bar, detail behind a toggle, announced once.
  await page.fill('#prompt', 'a wooden chair');
  const chair = await submitAndGetJob(page, '/3d/generate');
  await follow(page, chair, 'failed');
  const row = `li[data-job-id="${chair}"]`;
  await waitForText(page, '#create-error .error-summary', /^$/); // the old error went with the new submit
  const message = await page.textContent(`${row} .job-message`);
  check(/simple shape/.test(message) && !/MESHFORGE_|docs\/|front view/.test(message), `failure message: ${message}`);
  const bar = await drawnColours(page, `${row} progress`);
  check(bar.red > 0 && bar.blue === 0, `the failed bar is not red: ${JSON.stringify(bar)}`);
  await page.click(`${row} .technical summary`);
  const technical = await page.textContent(`${row} .technical pre`);
  check(/MESHFORGE_FLUX_BACKEND/.test(technical), `technical detail: ${technical}`);
  const announced = await page.textContent('#announcer');
  check(announced.startsWith('a wooden chair failed: '), `announced: ${announced}`);
  await page.screenshot({ path: join(outdir, 'failed.png') });
  await checkAxe(page, 'a failed job');
  step('failed_job', { message, bar, announced });

  // 5. A submit whose answer is lost on the way back, after the server made the job: trying again
  // sends the same Idempotency-Key, and the server answers with that job instead of making another.
  await page.fill('#prompt', 'a blue cube');
  const keys = [];
  await page.route('**/3d/generate', async (route) => {
    keys.push(route.request().headers()['idempotency-key']);
    if (keys.length > 1) return route.continue();
    await route.fetch(); // it reaches the server...
    return route.abort('connectionreset'); // ...but the page never hears back
  });
  await page.click('#generate');
  const lost = await waitForText(page, '#create-error .error-summary', /\S/);
  const again = await submitAndGetJob(page, '/3d/generate');
  await page.unroute('**/3d/generate');
  check(keys.length === 2 && /^[0-9a-f]{32}$/.test(keys[0]) && keys[0] === keys[1], `keys sent: ${keys}`);
  const listed = await (await page.request.get(new URL('/3d/jobs?limit=100', base).toString())).json();
  const made = listed.jobs.filter((job) => job.request?.prompt === 'a blue cube').map((job) => job.job_id);
  check(made.length === 1 && made[0] === again, `jobs made for one submission: ${made}`);
  await follow(page, again);
  step('answer_lost', { error: lost, key: keys[0], job: again });
});
