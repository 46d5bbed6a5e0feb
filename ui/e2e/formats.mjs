// The viewer for every output format, in headless Chromium: OBJ (the .obj.zip, unzipped in the browser),
// STL, FBX and USDZ drawn by three.js, USDZ with an AR Quick Look link; each with its counts, its file
// size and a download under a readable name.
// Usage: node e2e/formats.mjs <base url> <outdir>
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canvasStats, check, checkAxe, follow, launch, run, submitAndGetJob } from './lib.mjs';

const [base, outdir] = process.argv.slice(2);
if (!base || !outdir) {
  console.error('usage: node e2e/formats.mjs <base url> <outdir>');
  process.exit(2);
}
const app = new URL('/3d-test/', base).toString();
const browser = await launch();

// What each download starts with: a zip (OBJ, USDZ), binary STL's 80-byte header, FBX's magic.
const MAGIC = { obj: (b) => b.subarray(0, 2).toString() === 'PK', usdz: (b) => b.subarray(0, 2).toString() === 'PK', stl: (b) => b.length > 84, fbx: (b) => /Kaydara FBX|FBX/.test(b.subarray(0, 64).toString('latin1')) };
const SUFFIX = { obj: '.obj.zip', stl: '.stl', fbx: '.fbx', usdz: '.usdz' };

await run('formats', outdir, browser, async (report) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  report.watch(page);
  await page.goto(app, { waitUntil: 'networkidle' });
  await page.fill('#prompt', 'a red cube');
  const jobs = {};
  for (const format of Object.keys(SUFFIX)) {
    await page.selectOption('#format', format);
    jobs[format] = await submitAndGetJob(page, '/3d/generate');
  }
  for (const [format, id] of Object.entries(jobs)) await follow(page, id);

  for (const [format, id] of Object.entries(jobs)) {
    await page.click(`li[data-job-id="${id}"] button.view`);
    await page.waitForSelector(`body[data-shown="${id}"]`, { timeout: 30000 });
    await page.waitForTimeout(800);
    const stats = await page.textContent('#stats');
    check(/^[\d,]+ vertices · [\d,]+ faces · [\d.]+ (KB|MB)$/.test(stats), `${format}: no counts and size: ${stats}`);
    const toolsShown = await page.isVisible('#viewer-tools');
    const data = { job: id, stats };
    const px = await canvasStats(page);
    check(px.colours > 3, `${format} is not drawn: ${JSON.stringify(px)}`);
    // OBJ, FBX and USDZ come with their texture: red; STL has no colours at all.
    if (format !== 'stl') check(px.red > px.pixels * 0.01, `the ${format} texture is not drawn: ${JSON.stringify(px)}`);
    check(toolsShown && !(await page.isVisible('#look-preview')), `${format}: not in the 3D view`);
    data.canvas = px;
    const ar = await page.isVisible('#ar-link');
    check(ar === (format === 'usdz'), `${format}: AR link ${ar ? 'shown' : 'missing'}`);
    if (ar) {
      const link = await page.evaluate(() => {
        const a = document.getElementById('ar-link');
        return { rel: a.rel, href: a.getAttribute('href'), first: a.firstElementChild?.tagName };
      });
      check(link.rel === 'ar' && link.first === 'IMG' && link.href === `/3d/download/${id}`, `AR link: ${JSON.stringify(link)}`);
      data.ar = link;
    }
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    const name = dl.suggestedFilename();
    check(name === `a-red-cube-${id.slice(0, 8)}${SUFFIX[format]}`, `${format} download named ${name}`);
    const path = join(outdir, name);
    await dl.saveAs(path);
    check(MAGIC[format](readFileSync(path)), `${format}: the download is not a ${format} file`);
    await page.screenshot({ path: join(outdir, `${format}.png`) });
    report.step(format, { ...data, download: name });
  }
  await checkAxe(page, 'a USDZ shown');
  check(!report.console_errors.length, `console errors: ${report.console_errors}`);
});
