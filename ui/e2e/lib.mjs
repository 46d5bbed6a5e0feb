// Shared by the browser tests in e2e/: Chromium, a report of steps, axe-core, touch targets, the canvas.
import { chromium } from 'playwright-core';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const AXE = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'axe-core', 'axe.min.js');

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
      '--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
    ],
  });
}

export const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 1 };

/** Run `body(report)`, then write report.json, close the browser and exit 1 on failure. */
export async function run(name, outdir, browser, body) {
  mkdirSync(outdir, { recursive: true });
  const t0 = Date.now();
  const report = { steps: {}, console_errors: [] };
  report.step = (step, data = {}) => {
    report.steps[step] = { ...data, at_s: (Date.now() - t0) / 1000 };
    console.log(`ok ${step} ${JSON.stringify(data)}`);
  };
  report.watch = (page) => {
    page.on('console', (m) => m.type() === 'error' && report.console_errors.push(m.text()));
    page.on('pageerror', (e) => report.console_errors.push(String(e)));
  };
  let failed = null;
  try {
    await body(report);
  } catch (err) {
    failed = err;
    for (const page of browser.contexts().flatMap((c) => c.pages())) {
      await page.screenshot({ path: join(outdir, `failure-${page.viewportSize()?.width}.png`), fullPage: true }).catch(() => {});
    }
  }
  const { step, watch, ...data } = report;
  data.ok = !failed;
  data.error = failed ? String(failed.stack ?? failed) : null;
  data.seconds = (Date.now() - t0) / 1000;
  writeFileSync(join(outdir, 'report.json'), JSON.stringify(data, null, 2));
  await browser.close();
  if (failed) {
    console.error(`FAILED: ${failed.message}`);
    console.error(`console errors: ${JSON.stringify(report.console_errors)}`);
    process.exit(1);
  }
  console.log(`${name} passed in ${data.seconds} s`);
}

/** axe-core's serious and critical violations on the page as it is now. */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  return result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

export async function checkAxe(page, where) {
  const serious = await axeViolations(page);
  check(!serious.length, `axe-core (${where}): ${JSON.stringify(serious, null, 1)}`);
  return serious.length;
}

/** Visible controls smaller than 44 × 44 CSS px (a radio or checkbox counts by the label around it). */
export async function smallTargets(page) {
  return page.evaluate(() => {
    const selector = 'button, a[href], select, textarea, input, summary';
    const small = [];
    for (const node of document.querySelectorAll(selector)) {
      let target = node;
      if (node.matches('input[type=radio], input[type=checkbox]')) target = node.closest('label') ?? node;
      if (node.matches('input[type=file]')) target = document.querySelector(`label[for="${node.id}"]`) ?? node;
      if (node.classList.contains('skip-link')) continue; // off screen until focused
      const box = target.getBoundingClientRect();
      const style = getComputedStyle(target);
      if (!box.width || !box.height || style.visibility === 'hidden' || target.closest('[hidden]')) continue;
      if (box.width < 44 || box.height < 44) {
        small.push(`${node.tagName.toLowerCase()}#${node.id || ''}.${node.className || ''} ${Math.round(box.width)}×${Math.round(box.height)}`);
      }
    }
    return small;
  });
}

export async function canvasStats(page) {
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

/** Submit the form; return the new job id from the API's answer. */
export async function submitAndGetJob(page, path) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(path) && r.request().method() === 'POST', { timeout: 30000 }),
    page.click('#generate'),
  ]);
  const body = await response.json();
  check(response.ok(), `${path} answered ${response.status()}: ${JSON.stringify(body)}`);
  return body.job_id;
}

/** Watch the job's row until it ends in `want`; return the progress values seen, in order. */
export async function follow(page, jobId, want = 'completed', timeoutMs = 150000) {
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
  check(state === want, `job ${jobId} ended ${state || 'nowhere'}, not ${want}: ${message}`);
  return { progress: seen, stages: await row.locator('.job-stages').textContent(), message };
}

/** Wait until `selector`'s text matches `pattern`; return it. */
export async function waitForText(page, selector, pattern, timeout = 15000) {
  const deadline = Date.now() + timeout;
  let seen = '';
  while (Date.now() < deadline) {
    seen = (await page.locator(selector).count()) ? ((await page.textContent(selector)) ?? '').trim() : '';
    if (pattern.test(seen)) return seen;
    await page.waitForTimeout(100);
  }
  throw new Error(`${selector} never matched ${pattern}: last ${JSON.stringify(seen)}`);
}

/** Make jobs through the API directly (not the page): `count` that fail at once, `cancelled` cancelled. */
export async function makeJobs(request, base, { failing = 0, cancelled = 0, headers = {} }) {
  const ids = { failing: [], cancelled: [] };
  const post = async (prompt) => {
    const r = await request.post(new URL('/3d/generate', base).toString(), { data: { prompt }, headers });
    check(r.ok(), `generate answered ${r.status()}`);
    return (await r.json()).job_id;
  };
  for (let i = 0; i < cancelled; i++) {
    const id = await post(`a cancelled cone ${i}`);
    await request.post(new URL(`/3d/cancel/${id}`, base).toString(), { headers });
    ids.cancelled.push(id);
  }
  // The offline drawer refuses anything but a simple shape: these fail within a moment.
  for (let i = 0; i < failing; i++) ids.failing.push(await post(`a wooden chair number ${i}`));
  return ids;
}

/** The colours of an element as drawn: how many pixels are the danger red, the accent blue, and in all. */
export async function drawnColours(page, selector) {
  const png = (await page.locator(selector).screenshot()).toString('base64');
  return page.evaluate(async (data) => {
    const img = new Image();
    img.src = `data:image/png;base64,${data}`;
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.width;
    c.height = img.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    let red = 0;
    let blue = 0;
    for (let i = 0; i < px.length; i += 4) {
      const [r, g, b] = [px[i], px[i + 1], px[i + 2]];
      if (r > 150 && g < 90 && b < 90) red++;
      if (b > 150 && r < 90) blue++;
    }
    return { red, blue, pixels: px.length / 4 };
  }, png);
}
