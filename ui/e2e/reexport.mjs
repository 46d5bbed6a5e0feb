// A finished GLB job in its other formats, in headless Chromium: the format choice beside the download
// lists what the server converts the job to; choosing STL or OBJ shows that file in the 3D view, with its
// counts, and downloads it under the readable name the page gives downloads. Touch targets ≥ 44 px.
// Usage: node e2e/reexport.mjs <base url> <outdir>
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canvasStats, check, checkAxe, follow, launch, run, smallTargets, submitAndGetJob } from './lib.mjs';

const [base, outdir] = process.argv.slice(2);
if (!base || !outdir) {
  console.error('usage: node e2e/reexport.mjs <base url> <outdir>');
  process.exit(2);
}
const app = new URL('/3d-test/', base).toString();
const browser = await launch();

// What each download must be: a binary STL's size is its header, count and 50 bytes a triangle; an
// OBJ comes as a zip.
const VALID = {
  stl: (b) => b.length > 84 && b.length === 84 + 50 * b.readUInt32LE(80),
  obj: (b) => b.subarray(0, 2).toString() === 'PK',
};
const SUFFIX = { stl: '.stl', obj: '.obj.zip' };
const STATS = /^([\d,]+) vertices · ([\d,]+) faces · [\d.]+ (B|KB|MB)$/;

await run('reexport', outdir, browser, async (report) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  report.watch(page);
  await page.goto(app, { waitUntil: 'networkidle' });
  await page.fill('#prompt', 'a red cube');
  await page.selectOption('#format', 'glb');
  const id = await submitAndGetJob(page, '/3d/generate');
  await follow(page, id);
  await page.click(`li[data-job-id="${id}"] button.view`);
  await page.waitForSelector(`body[data-shown="${id}"][data-shown-format="glb"]`, { timeout: 30000 });

  check(await page.isVisible('#format-choice'), 'no format choice beside the download');
  const options = await page.$$eval('#look-format option', (all) => all.map((o) => ({ value: o.value, text: o.textContent })));
  check(options[0]?.value === 'glb' && /as made/.test(options[0].text), `the job's own format is not first: ${JSON.stringify(options)}`);
  for (const format of ['obj', 'stl', 'fbx', 'usdz']) {
    check(options.some((o) => o.value === format), `${format} is not offered: ${JSON.stringify(options)}`);
  }
  const name = await page.evaluate(() => document.getElementById('look-format').labels[0]?.textContent.trim());
  check(/^Format/.test(name ?? ''), `the format choice is not labelled: ${name}`);
  const small = (await smallTargets(page)).filter((t) => /#look-format|#download/.test(t));
  check(!small.length, `touch targets under 44 px: ${small}`);
  const glbStats = await page.textContent('#stats');
  const glbFaces = STATS.exec(glbStats)?.[2];
  report.step('offered', { job: id, options: options.map((o) => o.value), stats: glbStats });

  for (const format of ['stl', 'obj']) {
    await page.selectOption('#look-format', format);
    await page.waitForSelector(`body[data-shown="${id}"][data-shown-format="${format}"]`, { timeout: 60000 });
    await page.waitForTimeout(800);
    const stats = await page.textContent('#stats');
    const faces = STATS.exec(stats)?.[2];
    check(faces && faces === glbFaces, `${format}: not the GLB's ${glbFaces} faces: ${stats}`);
    const px = await canvasStats(page);
    check(px.colours > 3, `${format} is not drawn: ${JSON.stringify(px)}`);
    // The OBJ comes with the GLB's texture: red; STL has no colours at all.
    if (format === 'obj') check(px.red > px.pixels * 0.01, `the OBJ texture is not drawn: ${JSON.stringify(px)}`);
    const label = await page.textContent('#download');
    check(label === `Download ${format === 'obj' ? 'OBJ (zip)' : 'STL'}`, `${format}: the download says ${label}`);
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    const file = dl.suggestedFilename();
    check(file === `a-red-cube-${id.slice(0, 8)}${SUFFIX[format]}`, `${format} download named ${file}`);
    const path = join(outdir, file);
    await dl.saveAs(path);
    check(VALID[format](readFileSync(path)), `${format}: the download is not a ${format} file`);
    await page.screenshot({ path: join(outdir, `${format}.png`) });
    report.step(format, { stats, canvas: px, download: file });
  }

  await page.selectOption('#look-format', 'glb');
  await page.waitForSelector(`body[data-shown="${id}"][data-shown-format="glb"]`, { timeout: 30000 });
  check((await page.textContent('#download')) === 'Download GLB', 'back to GLB: the download does not say GLB');
  await checkAxe(page, 'a job shown as another format');
  check(!report.console_errors.length, `console errors: ${report.console_errors}`);
});
