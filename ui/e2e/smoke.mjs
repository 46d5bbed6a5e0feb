// End-to-end smoke test of the UI against a running meshforge API (through vite preview's proxy).
// Usage: node e2e/smoke.mjs <base url, e.g. http://127.0.0.1:38101> <outdir> [<folder of canonical view PNGs>]
import { chromium } from 'playwright-core';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [base, outdir, photos] = process.argv.slice(2);
if (!base || !outdir) {
  console.error('usage: node e2e/smoke.mjs <base url> <outdir> [<photo folder>]');
  process.exit(2);
}
mkdirSync(outdir, { recursive: true });
const app = new URL('/3d-test/', base).toString();
const report = { app, steps: {} };
const t0 = Date.now();
const step = (name, data) => {
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
const consoleErrors = [];
page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
page.on('pageerror', (e) => consoleErrors.push(String(e)));

/** Submit the form; return the new job id from the API's answer. */
async function submitAndGetJob(path) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(path) && r.request().method() === 'POST', { timeout: 30000 }),
    page.click('#generate'),
  ]);
  const body = await response.json();
  check(response.ok(), `${path} answered ${response.status()}: ${JSON.stringify(body)}`);
  return body.job_id;
}

/** Watch the job's row until it finishes; return the progress values seen, in order. */
async function follow(jobId, timeoutMs = 90000) {
  const row = page.locator(`li[data-job-id="${jobId}"]`);
  const seen = [];
  const deadline = Date.now() + timeoutMs;
  let state = '';
  while (Date.now() < deadline) {
    if (await row.count()) {
      state = (await row.getAttribute('data-state')) ?? '';
      const p = Number(await row.getAttribute('data-progress'));
      if (seen.at(-1) !== p) seen.push(p);
      if (['completed', 'failed', 'cancelled'].includes(state)) break;
    }
    await page.waitForTimeout(40);
  }
  const message = await row.locator('.job-message').textContent().catch(() => '');
  check(state === 'completed', `job ${jobId} ended ${state || 'nowhere'}: ${message}`);
  return { progress: seen, stages: await row.locator('.job-stages').textContent(), elapsed: await row.locator('.job-elapsed').textContent() };
}

async function canvasStats() {
  return page.evaluate(() => {
    const canvas = document.querySelector('#viewer canvas');
    if (!canvas) return null;
    const c = document.createElement('canvas');
    c.width = canvas.width;
    c.height = canvas.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(canvas, 0, 0);
    const data = ctx.getImageData(0, 0, c.width, c.height).data;
    let red = 0;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      if (r > 100 && r > 2 * g && r > 2 * b) red++;
      if (i % 64 === 0) colours.add((r >> 3) * 1024 + (g >> 3) * 32 + (b >> 3));
    }
    return { width: c.width, height: c.height, pixels: data.length / 4, red, colours: colours.size };
  });
}

let failed = null;
try {
  await page.goto(app, { waitUntil: 'networkidle' });
  check((await page.title()).includes('meshforge'), 'the app did not load');
  step('load', { title: await page.title(), health: await page.textContent('#health') });

  // 1. Prompt → GLB, followed to completion, shown in the viewer.
  await page.fill('#prompt', 'a red cube');
  const cube = await submitAndGetJob('/3d/generate');
  const followed = await follow(cube);
  check(followed.progress.length >= 2 && followed.progress.at(-1) === 100, `progress did not advance: ${followed.progress}`);
  check(followed.progress.every((v, i, a) => i === 0 || v >= a[i - 1]), `progress went back: ${followed.progress}`);
  step('prompt_job', { job: cube, ...followed });
  await page.waitForSelector(`body[data-shown="${cube}"]`, { timeout: 30000 });
  await page.waitForTimeout(300);
  const pixels = await canvasStats();
  check(pixels && pixels.colours > 3, `the canvas is blank: ${JSON.stringify(pixels)}`);
  check(pixels.red > pixels.pixels * 0.01, `no red in the canvas: ${JSON.stringify(pixels)}`);
  const stats = await page.textContent('#stats');
  check(/[\d,]+ vertices · [\d,]+ faces/.test(stats ?? ''), `no vertex/face counts: ${stats}`);
  const thumb = page.locator(`li[data-job-id="${cube}"] img.thumb`);
  check(await thumb.isVisible(), 'no preview thumbnail on the finished job');
  await page.screenshot({ path: join(outdir, 'finished.png'), fullPage: true });
  step('viewer', { ...pixels, stats, screenshot: join(outdir, 'finished.png') });

  // Wireframe toggle changes the picture.
  await page.check('#wireframe');
  await page.waitForTimeout(200);
  const wire = await canvasStats();
  check(wire.red < pixels.red, 'the wireframe toggle changed nothing');
  await page.uncheck('#wireframe');
  step('wireframe', { red_solid: pixels.red, red_wire: wire.red });

  // 2. Download the GLB.
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const glbPath = join(outdir, dl.suggestedFilename() || 'asset.glb');
  await dl.saveAs(glbPath);
  const head = readFileSync(glbPath).subarray(0, 4).toString('latin1');
  check(head === 'glTF', `the download is not a GLB: starts with ${JSON.stringify(head)}`);
  step('download', { file: glbPath, bytes: readFileSync(glbPath).length });

  // 3. Upload canonical views → reconstruct.
  if (photos) {
    const files = readdirSync(photos).filter((f) => f.endsWith('.png')).sort().map((f) => join(photos, f));
    await page.check('input[name="source"][value="upload"]');
    await page.setInputFiles('#files', files);
    const listed = await page.locator('#file-list li').allTextContents();
    check(listed.length === files.length && listed[0].startsWith('front:'), `the file list is wrong: ${listed}`);
    const imageJob = await submitAndGetJob('/3d/from-image');
    const result = await follow(imageJob);
    await page.waitForSelector(`body[data-shown="${imageJob}"]`, { timeout: 30000 });
    await page.waitForTimeout(300);
    const px = await canvasStats();
    check(px.colours > 3, 'the reconstructed asset is not drawn');
    await page.screenshot({ path: join(outdir, 'uploaded.png'), fullPage: true });
    step('upload_job', { job: imageJob, files: listed, ...result, colours: px.colours });
  }

  // 4. An empty prompt shows the API's own words.
  await page.check('input[name="source"][value="prompt"]');
  await page.fill('#prompt', '');
  const expected = await page.request.post(new URL('/3d/generate', base).toString(), { data: { prompt: '' } });
  const expectedDetail = (await expected.json()).detail;
  await page.click('#generate');
  await page.waitForSelector('#create-error:not([hidden])', { timeout: 10000 });
  const shown = await page.textContent('#create-error');
  check(shown === expectedDetail, `error shown ${JSON.stringify(shown)} but the API said ${JSON.stringify(expectedDetail)}`);
  step('empty_prompt', { status: expected.status(), shown });

  // 5. Phone-sized screen: nothing wider than the viewport.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  await page.screenshot({ path: join(outdir, 'phone.png'), fullPage: true });
  step('phone', { overflow });
} catch (err) {
  failed = err;
  await page.screenshot({ path: join(outdir, 'failure.png'), fullPage: true }).catch(() => {});
}
report.console_errors = consoleErrors;
report.ok = !failed;
report.error = failed ? String(failed.stack ?? failed) : null;
report.seconds = (Date.now() - t0) / 1000;
writeFileSync(join(outdir, 'report.json'), JSON.stringify(report, null, 2));
await browser.close();
if (failed) {
  console.error(`FAILED: ${failed.message}`);
  console.error(`console errors: ${JSON.stringify(consoleErrors)}`);
  process.exit(1);
}
console.log(`smoke passed in ${report.seconds} s`);
