// The UI's main path in headless Chromium against a running meshforge API (through vite preview's proxy):
// a prompt followed through the event stream to the viewer, the views, downloads under readable names,
// reset view and full screen, uploads with thumbnails and checks before sending, plain errors, a phone
// screen (the result brought into view, 44 px targets) and axe-core on both.
// Usage: node e2e/smoke.mjs <base url> <outdir> [<folder of canonical view PNGs>]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  PHONE, canvasStats, check, checkAxe, follow, launch, run, smallTargets, submitAndGetJob, waitForText,
} from './lib.mjs'; // prettier-ignore

const [base, outdir, photos] = process.argv.slice(2);
if (!base || !outdir) {
  console.error('usage: node e2e/smoke.mjs <base url> <outdir> [<photo folder>]');
  process.exit(2);
}
const app = new URL('/3d-test/', base).toString();
const browser = await launch();

await run('smoke', outdir, browser, async (report) => {
  const step = report.step;
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  report.watch(page);
  const requests = [];
  page.on('request', (r) => requests.push({ method: r.method(), path: new URL(r.url()).pathname, at: Date.now() }));
  // Everything the live region says, in order: it must speak of state changes only.
  await page.addInitScript(() => {
    window.__announced = [];
    document.addEventListener('DOMContentLoaded', () => {
      const node = document.getElementById('announcer');
      new MutationObserver(() => window.__announced.push(node.textContent)).observe(node, {
        subtree: true, childList: true, characterData: true,
      });
    });
  });

  await page.goto(app, { waitUntil: 'networkidle' });
  check((await page.title()).includes('meshforge'), 'the app did not load');
  const health = await waitForText(page, '#health', /^API ok$/);
  const note = await page.textContent('#backend-note');
  check(/offline/.test(note) && /simple shape/.test(note), `the offline drawer is not said before submitting: ${note}`);
  step('load', { health, note });
  await checkAxe(page, 'desktop, empty');
  // The keyboard: a skip link first, and a visible focus ring.
  await page.keyboard.press('Tab');
  const skip = await page.evaluate(() => {
    const a = document.activeElement;
    return { skip: a.classList.contains('skip-link'), top: a.getBoundingClientRect().top, text: a.textContent };
  });
  check(skip.skip && skip.top >= 0, `the first Tab is not a visible skip link: ${JSON.stringify(skip)}`);
  await page.keyboard.press('Enter');
  check((await page.evaluate(() => document.activeElement.id)) === 'create-title', 'the skip link goes nowhere');
  await page.locator('#generate').focus();
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Tab');
  const ring = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return `${document.activeElement.id} ${s.outlineStyle} ${s.outlineWidth}`;
  });
  check(ring === 'generate solid 3px', `no visible focus ring: ${ring}`);
  step('keyboard', { skip: skip.text, ring });
  const listIsLive = await page.evaluate(() => !!document.getElementById('jobs').closest('[aria-live], [role=status], [role=log], [role=alert]'));
  check(!listIsLive, 'the job list is a live region');

  // 1. Prompt → GLB, followed through /3d/events to completion, shown in the viewer.
  await page.fill('#prompt', 'a red cube');
  const cube = await submitAndGetJob(page, '/3d/generate');
  const followed = await follow(page, cube);
  check(followed.progress.length >= 2 && followed.progress.at(-1) === 100, `progress did not advance: ${followed.progress}`);
  check(followed.progress.every((v, i, a) => i === 0 || v >= a[i - 1]), `progress went back: ${followed.progress}`);
  check(/^Images .* · 3D mesh .* · Clean-up and export /.test(followed.stages), `stage names are not for people: ${followed.stages}`);
  const events = requests.filter((r) => r.path === `/3d/events/${cube}`).length;
  const polls = requests.filter((r) => r.path === `/3d/status/${cube}`).length;
  check(events >= 1, 'the job was not followed through /3d/events');
  // One read at submit, one after each stage that lists views (images, reconstruction): no polling.
  check(polls <= 4, `the job was polled ${polls} times besides its event stream`);
  step('prompt_job', { job: cube, ...followed, event_streams: events, status_reads: polls });

  await page.waitForSelector(`body[data-shown="${cube}"]`, { timeout: 30000 });
  await page.waitForTimeout(1200); // the orbit controls settle
  const pixels = await canvasStats(page);
  check(pixels && pixels.colours > 3, `the canvas is blank: ${JSON.stringify(pixels)}`);
  check(pixels.red > pixels.pixels * 0.01, `no red in the canvas: ${JSON.stringify(pixels)}`);
  const stats = await page.textContent('#stats');
  check(/^[\d,]+ vertices · [\d,]+ faces · [\d.]+ (KB|MB)$/.test(stats ?? ''), `no counts and size: ${stats}`);
  check(await page.locator(`li[data-job-id="${cube}"] img.thumb`).isVisible(), 'no preview thumbnail on the finished job');
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('#views img')];
    return imgs.length >= 4 && imgs.every((i) => i.naturalWidth > 0);
  }, null, { timeout: 15000 });
  const views = await page.locator('#views figcaption').allTextContents();
  check(views[0] === 'front' && views.includes('sheet of every view'), `the views are not shown: ${views}`);
  const facts = await page.textContent(`li[data-job-id="${cube}"] .job-facts`);
  check(/^\d\d:\d\d · standard · seed \d+ · GLB$/.test(facts), `the row lacks date, tier or seed: ${facts}`);
  const announced = await page.evaluate(() => window.__announced);
  check(announced.at(-1) === 'a red cube: completed, shown in the viewer', `announcements: ${announced}`);
  check(announced.length <= 6, `the live region spoke ${announced.length} times: ${announced}`);
  await page.screenshot({ path: join(outdir, 'desktop.png') });
  step('viewer', { ...pixels, stats, views, facts, announced });
  await checkAxe(page, 'desktop, model shown');

  // Wireframe, orbit, reset view, full screen.
  await page.check('#wireframe');
  await page.waitForTimeout(300);
  const wire = await canvasStats(page);
  check(wire.red < pixels.red, 'the wireframe toggle changed nothing');
  await page.uncheck('#wireframe');
  const camera = () => page.getAttribute('#viewer', 'data-camera');
  const home = await camera();
  const box = await page.locator('#viewer canvas').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width / 2 + 150, box.y + box.height / 2 + 40, { steps: 8 });
  await page.mouse.up();
  await page.waitForTimeout(800);
  const orbited = await camera();
  check(orbited !== home, 'dragging did not orbit');
  await page.click('#reset-view');
  await page.waitForTimeout(500);
  check((await camera()) === home, `reset view did not return: ${home} → ${await camera()}`);
  await page.click('#fullscreen');
  await page.waitForFunction(
    () => document.fullscreenElement?.id === 'viewer-wrap' && document.getElementById('fullscreen').getAttribute('aria-pressed') === 'true',
    null,
    { timeout: 5000 },
  );
  await page.click('#fullscreen');
  await page.waitForFunction(() => !document.fullscreenElement, null, { timeout: 5000 });
  step('viewer_tools', { home, orbited, red_solid: pixels.red, red_wire: wire.red });

  // 2. The download, under a name from the prompt.
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  check(dl.suggestedFilename() === `a-red-cube-${cube.slice(0, 8)}.glb`, `download named ${dl.suggestedFilename()}`);
  const glbPath = join(outdir, dl.suggestedFilename());
  await dl.saveAs(glbPath);
  check(readFileSync(glbPath).subarray(0, 4).toString('latin1') === 'glTF', 'the download is not a GLB');
  step('download', { file: dl.suggestedFilename(), bytes: readFileSync(glbPath).length });

  // 3. Uploads: a wrong count is refused before anything is sent; four views show as thumbnails.
  if (photos) {
    const files = readdirSync(photos).filter((f) => f.endsWith('.png')).sort().map((f) => join(photos, f));
    await page.check('input[name="source"][value="upload"]');
    await page.setInputFiles('#files', files.slice(0, 3));
    const uploadsBefore = requests.filter((r) => r.path === '/3d/upload').length;
    await page.click('#generate');
    const refused = await waitForText(page, '#create-error .error-summary', /^Give 1, 4 or 8 images, not 3\.$/);
    const said = await page.locator('text=Give 1, 4 or 8 images, not 3.').count();
    check(said === 1, `the count error shows ${said} times`);
    check(requests.filter((r) => r.path === '/3d/upload').length === uploadsBefore, 'three images were uploaded');
    await page.setInputFiles('#files', files);
    await page.waitForFunction(() => [...document.querySelectorAll('#file-list img')].filter((i) => i.naturalWidth > 0).length === 4);
    const listed = await page.locator('#file-list .file-name').allTextContents();
    check(listed.length === 4 && listed[0] === 'front: view0.png', `the file list is wrong: ${listed}`);
    check((await page.textContent('#create-error .error-summary')) === '', 'the count error stayed');
    const imageJob = await submitAndGetJob(page, '/3d/from-image');
    const result = await follow(page, imageJob);
    const title = await page.textContent(`li[data-job-id="${imageJob}"] .job-title`);
    check(title === 'view0.png + 3 more → GLB', `the upload job is titled ${title}`);
    await page.waitForSelector(`body[data-shown="${imageJob}"]`, { timeout: 30000 });
    step('upload_job', { job: imageJob, refused, files: listed, title, ...result });
  }

  // 4. Mistakes found before sending, in plain words, each shown once.
  await page.check('input[name="source"][value="urls"]');
  await page.fill('#urls', 'https://example.com/front.png\nnot a url');
  const fromImageBefore = requests.filter((r) => r.path === '/3d/from-image').length;
  await page.click('#generate');
  const badUrl = await waitForText(page, '#create-error .error-summary', /^Line 2 is not a web address/);
  check(requests.filter((r) => r.path === '/3d/from-image').length === fromImageBefore, 'a bad URL was sent');
  await page.check('input[name="source"][value="prompt"]');
  await page.fill('#prompt', '   ');
  await page.click('#generate');
  const empty = await waitForText(page, '#create-error .error-summary', /^Describe the object to make/);
  step('checked_before_sending', { bad_url: badUrl, empty_prompt: empty });

  // 5. A phone: nothing wider than the screen, 44 px targets, "View" brings the model into view.
  const phone = await browser.newPage({ ...PHONE, acceptDownloads: true });
  report.watch(phone);
  await phone.goto(app, { waitUntil: 'networkidle' });
  await phone.waitForSelector(`li[data-job-id="${cube}"] button.view`);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page is ${overflow}px wider than a phone`);
  const small = await smallTargets(phone);
  check(!small.length, `touch targets under 44 px: ${small.join('; ')}`);
  await checkAxe(phone, 'phone');
  await phone.locator(`li[data-job-id="${cube}"] button.view`).tap();
  await phone.waitForSelector(`body[data-shown="${cube}"]`, { timeout: 30000 });
  await phone.waitForTimeout(800); // the smooth scroll
  const seen = await phone.evaluate(() => {
    const r = document.getElementById('viewer-wrap').getBoundingClientRect();
    return { top: Math.round(r.top), bottom: Math.round(r.bottom), height: innerHeight, focus: document.activeElement?.tagName };
  });
  check(seen.top >= 0 && seen.top < seen.height / 2, `the viewer is not brought into view: ${JSON.stringify(seen)}`);
  check(seen.focus === 'CANVAS', `focus is on ${seen.focus}, not the 3D view`);
  await phone.screenshot({ path: join(outdir, 'phone.png') });
  step('phone', { overflow, small_targets: small.length, viewer: seen });
  check(!report.console_errors.length, `console errors: ${report.console_errors}`);
});
