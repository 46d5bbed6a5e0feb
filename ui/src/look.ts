/**
 * The "Look" panel: one finished job in the 3D viewer (every format the server writes; the server's
 * still preview where three.js cannot read a file), with its counts and file size, the views it was made from, a download under a readable name,
 * and for USDZ an AR Quick Look link. A format choice beside the download shows and offers the job in
 * another format (`?format=`: the server converts it from the job's master GLB on first demand). Every
 * file is fetched with the API key (files.ts).
 */
import { downloadUrl, fetchFile, previewUrl } from './api';
import { getApiKey } from './auth';
import { objectUrl } from './files';
import { downloadFormats, downloadName, formatBytes, formatLabel, outputFormat, viewLabel } from './format';
import { el } from './joblist';
import type { JobStatus, JobView } from './types';
import { DRAWABLE, type MeshStats, Viewer } from './viewer';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The face and vertex counts the server recorded (for formats the browser cannot draw). */
function recordedStats(job: JobStatus): MeshStats | null {
  const detail = job.stages?.post_processing?.detail ?? {};
  const faces = Number(detail.faces);
  const vertices = Number(detail.vertices);
  return Number.isFinite(faces) && faces > 0 ? { faces, vertices: Number.isFinite(vertices) ? vertices : 0 } : null;
}

const count = (n: number) => n.toLocaleString('en');


export class LookPanel {
  private readonly section = $<HTMLElement>('look');
  private readonly title = $<HTMLElement>('look-title');
  private readonly name = $<HTMLSpanElement>('look-name');
  private readonly note = $<HTMLParagraphElement>('look-note');
  private readonly preview = $<HTMLImageElement>('look-preview');
  private readonly stage = $<HTMLDivElement>('viewer-wrap');
  private readonly box = $<HTMLDivElement>('viewer');
  private readonly stats = $<HTMLSpanElement>('stats');
  private readonly download = $<HTMLAnchorElement>('download');
  private readonly formatChoice = $<HTMLLabelElement>('format-choice');
  private readonly formatSelect = $<HTMLSelectElement>('look-format');
  private readonly ar = $<HTMLAnchorElement>('ar-link');
  private readonly arImage = $<HTMLImageElement>('ar-image');
  private readonly tools = $<HTMLDivElement>('viewer-tools');
  private readonly wireframe = $<HTMLInputElement>('wireframe');
  private readonly fullscreen = $<HTMLButtonElement>('fullscreen');
  private readonly views = $<HTMLUListElement>('views');
  private readonly viewsBlock = $<HTMLElement>('views-block');
  private viewer: Viewer | null = null;
  private fileUrl: string | null = null;
  /** The job shown (or being loaded), its title, and which load is the latest (a newer one wins). */
  shown: string | null = null;
  private job: JobStatus | null = null;
  private jobTitle = '';
  private loads = 0;

  constructor() {
    this.wireframe.addEventListener('change', () => this.viewer?.setWireframe(this.wireframe.checked));
    this.formatSelect.addEventListener('change', () => {
      if (this.job) void this.show(this.job, this.jobTitle, this.formatSelect.value);
    });
    $<HTMLButtonElement>('reset-view').addEventListener('click', () => this.viewer?.reset());
    this.fullscreen.addEventListener('click', () => void this.toggleFullscreen());
    document.addEventListener('fullscreenchange', () => {
      const on = document.fullscreenElement === this.stage;
      this.fullscreen.textContent = on ? 'Exit full screen' : 'Full screen';
      this.fullscreen.setAttribute('aria-pressed', String(on));
    });
  }

  /** Bring the panel into view; `focus` moves the keyboard there too (when the user asked for it). */
  reveal(focus: boolean): void {
    const box = this.stage.getBoundingClientRect();
    const onScreen = box.top >= 0 && box.bottom <= window.innerHeight;
    if (!onScreen) {
      // On a phone the panel is far below the list: scroll to it (desktop shows it already).
      const smooth = !window.matchMedia('(prefers-reduced-motion: reduce)').matches;
      this.section.scrollIntoView({ block: 'start', behavior: smooth ? 'smooth' : 'auto' });
    }
    if (!focus) return;
    const target = !this.box.hidden && this.viewer ? this.viewer.canvas : this.title;
    target.focus({ preventScroll: true });
  }

  /** Show the job, as `chosen` (one of its `formats`) or else in its own format. */
  async show(job: JobStatus, title: string, chosen?: string): Promise<void> {
    const id = job.job_id;
    const load = ++this.loads;
    const stale = () => this.shown !== id || this.loads !== load;
    this.shown = id;
    this.job = job;
    this.jobTitle = title;
    const own = outputFormat(job);
    const formats = downloadFormats(job);
    const format = chosen && formats.includes(chosen) ? chosen : own;
    this.offerFormats(formats, format);
    this.name.textContent = `— ${title}`;
    this.stats.textContent = '';
    this.note.textContent = format === own ? 'Loading…' : `Converting to ${formatLabel(format)} and loading…`;
    this.download.hidden = true;
    this.ar.hidden = true;
    document.body.dataset.shown = '';
    document.body.dataset.shownFormat = '';
    this.showViews(job, title);
    const drawable = DRAWABLE.has(format);
    this.showDrawn(drawable);
    if (drawable) this.viewer ??= new Viewer(this.box); // now, so that reveal() can focus its canvas
    const url = format === own ? job.download_url || downloadUrl(id) : downloadUrl(id, format);
    try {
      const file = await fetchFile(url);
      if (stale()) return;
      this.offerDownload(file.blob, downloadName(title, id, format), format);
      if (format === 'usdz') this.offerAr(id, title, url);
      let counts: MeshStats | null = null;
      if (drawable && this.viewer) {
        try {
          counts = await this.viewer.loadData(format, await file.blob.arrayBuffer());
          this.viewer.setWireframe(this.wireframe.checked);
          this.note.textContent = 'Drag to orbit, scroll or pinch to zoom; arrow keys pan when the view has focus.';
        } catch (err) {
          // A file three.js cannot read (a newer flavour of the format): the server's still preview.
          if (stale()) return;
          this.showDrawn(false);
          await this.showPreview(job, title, `${format.toUpperCase()} could not be drawn here (${messageOf(err)})`);
        }
      } else {
        await this.showPreview(job, title, `${format.toUpperCase()} cannot be drawn in the browser`);
      }
      if (stale()) return;
      counts ??= recordedStats(job);
      const size = formatBytes(file.blob.size);
      this.stats.textContent = counts
        ? `${count(counts.vertices)} vertices · ${count(counts.faces)} faces · ${size}`
        : size;
      document.body.dataset.shown = id;
      document.body.dataset.shownFormat = format;
    } catch (err) {
      if (!stale()) {
        const what = format === own ? 'the model' : `the model as ${formatLabel(format)}`;
        this.note.textContent = `Could not load ${what}: ${messageOf(err)}`;
      }
    }
  }

  /** The format choice beside the download: only for a job the server can give in more than one. */
  private offerFormats(formats: string[], chosen: string): void {
    this.formatSelect.replaceChildren(
      ...formats.map((format, index) => {
        const option = el('option', '', index === 0 ? `${formatLabel(format)} (as made)` : formatLabel(format));
        option.value = format;
        option.selected = format === chosen;
        return option;
      }),
    );
    this.formatChoice.hidden = formats.length < 2;
  }

  private showDrawn(drawn: boolean): void {
    this.box.hidden = !drawn;
    this.tools.hidden = !drawn;
    this.preview.hidden = drawn;
    if (!drawn) this.viewer?.clear();
  }

  private async showPreview(job: JobStatus, title: string, why: string): Promise<void> {
    this.preview.src = await objectUrl(job.preview_url || previewUrl(job.job_id));
    this.preview.alt = `Preview of ${title}`;
    this.note.textContent = `${why}: this is the server's preview of it.`;
    if (!this.ar.hidden) this.arImage.src = this.preview.src;
  }

  private offerDownload(blob: Blob, name: string, format: string): void {
    if (this.fileUrl) URL.revokeObjectURL(this.fileUrl);
    this.fileUrl = URL.createObjectURL(blob);
    this.download.href = this.fileUrl;
    this.download.download = name; // a readable name, not the hex id the server gives
    const text = `Download ${formatLabel(format)}`;
    this.download.textContent = text;
    this.download.setAttribute('aria-label', `${text}: ${name}`); // the visible words first (WCAG 2.5.3)
    this.download.hidden = false;
  }

  /** AR Quick Look (iPhone, iPad) opens a USDZ from a link with rel="ar" whose first child is an image. */
  private offerAr(id: string, title: string, url: string): void {
    // With a key the file must come from the fetched copy: a plain URL cannot carry the header.
    this.ar.href = getApiKey() && this.fileUrl ? this.fileUrl : url;
    void objectUrl(previewUrl(id)).then((url) => (this.arImage.src = url), () => {});
    this.arImage.alt = `Open ${title} in AR`;
    this.ar.hidden = false;
  }

  private showViews(job: JobStatus, title: string): void {
    const views: JobView[] = Array.isArray(job.views) ? job.views : [];
    this.views.replaceChildren(
      ...views.map((view) => {
        const li = el('li', view.kind === 'sheet' ? 'view sheet' : 'view');
        const figure = el('figure');
        const img = el('img');
        const label = viewLabel(view);
        img.alt = `${title}: ${label}`;
        img.loading = 'lazy';
        objectUrl(view.url).then(
          (url) => (img.src = url),
          () => (img.alt = `${label} (could not be loaded)`),
        );
        figure.append(img, el('figcaption', '', label));
        li.append(figure);
        return li;
      }),
    );
    this.viewsBlock.hidden = !views.length;
  }

  private async toggleFullscreen(): Promise<void> {
    try {
      if (document.fullscreenElement) await document.exitFullscreen();
      else await this.stage.requestFullscreen();
    } catch (err) {
      this.note.textContent = `Full screen is not available here: ${messageOf(err)}`;
    }
  }
}
