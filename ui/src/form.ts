/**
 * The "Create" form: a prompt, uploaded images (shown as thumbnails under the view each will be read
 * as) or image URLs, and the job options. Everything that can be checked here is checked before
 * anything is sent: the count of images (1, 4 or 8) before uploading, each URL, an empty prompt.
 */
import { ApiError, api } from './api';
import { ErrorBox } from './errorbox';
import type { Explained } from './errors';
import { filesTitle, splitLines, viewNames } from './format';
import { SubmitKeys } from './idempotency';
import { el } from './joblist';
import type { JobCreated, JobOptions, Origin, OutputFormat, QualityTier } from './types';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** A mistake found before sending: shown like an API refusal, without technical detail. */
export class FormProblem extends Error {}

export interface Submitted {
  created: JobCreated;
  kind: 'prompt' | 'images';
  /** What was sent, for the job's row until its record comes. */
  request: Record<string, unknown>;
  /** A title to keep for the job where its record cannot name it (upload file names). */
  title?: string;
}

/** Check image URL lines: 1, 4 or 8 of them, each an http(s) address with a host. */
export function checkUrls(lines: readonly string[]): string[] {
  if (!lines.length) throw new FormProblem('Enter 1, 4 or 8 image URLs, one per line.');
  lines.forEach((line, i) => {
    let url: URL | null = null;
    try {
      url = new URL(line);
    } catch {
      /* reported below */
    }
    if (!url || !['http:', 'https:'].includes(url.protocol) || !url.hostname) {
      throw new FormProblem(`Line ${i + 1} is not a web address: it must start with http:// or https://.`);
    }
  });
  if (!viewNames(lines.length)) throw new FormProblem(`Give 1, 4 or 8 image URLs, not ${lines.length}.`);
  return lines.slice();
}

export function checkFiles(files: readonly File[]): void {
  if (!files.length) throw new FormProblem('Choose 1, 4 or 8 images first.');
  const other = files.find((f) => f.type && !f.type.startsWith('image/'));
  if (other) throw new FormProblem(`${other.name} is not an image.`);
  if (!viewNames(files.length)) throw new FormProblem(`Give 1, 4 or 8 images, not ${files.length}.`);
}

const wholeNumber = (value: string, what: string, min: number, max: number): number | undefined => {
  if (!value.trim()) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new FormProblem(`${what} must be a whole number from ${min} to ${max.toLocaleString('en')}.`);
  return n;
};

export class CreateForm {
  readonly form = $<HTMLFormElement>('create-form');
  readonly errors = new ErrorBox($('create-error'));
  private readonly button = $<HTMLButtonElement>('generate');
  private readonly keys = new SubmitKeys(); // one Idempotency-Key per submission, kept for its retry
  private readonly fileInput = $<HTMLInputElement>('files');
  private readonly fileList = $<HTMLOListElement>('file-list');
  private files: File[] = [];
  private thumbs: string[] = [];

  constructor(private readonly onSubmitted: (submitted: Submitted) => void) {
    this.form.addEventListener('submit', (e) => void this.submit(e));
    this.form.querySelectorAll('input[name="source"]').forEach((r) => r.addEventListener('change', () => this.showSource()));
    this.fileInput.addEventListener('change', () => this.setFiles(Array.from(this.fileInput.files ?? [])));
    const dropzone = $<HTMLDivElement>('dropzone');
    dropzone.addEventListener('dragover', (e) => {
      e.preventDefault();
      dropzone.classList.add('over');
    });
    dropzone.addEventListener('dragleave', () => dropzone.classList.remove('over'));
    dropzone.addEventListener('drop', (e) => {
      e.preventDefault();
      dropzone.classList.remove('over');
      this.setFiles(Array.from(e.dataTransfer?.files ?? []));
    });
    this.showSource();
  }

  source(): string {
    return this.form.querySelector<HTMLInputElement>('input[name="source"]:checked')?.value ?? 'prompt';
  }

  private showSource(): void {
    const current = this.source();
    this.form.querySelectorAll<HTMLElement>('.source').forEach((div) => {
      div.hidden = div.dataset.source !== current;
    });
  }

  /** The files in name order, each shown as a thumbnail under the view it will be read as. */
  setFiles(files: File[]): void {
    this.thumbs.forEach((url) => URL.revokeObjectURL(url));
    this.files = files.slice().sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
    this.thumbs = this.files.map((f) => URL.createObjectURL(f));
    const names = viewNames(this.files.length);
    this.fileList.replaceChildren(
      ...this.files.map((file, i) => {
        const li = el('li', 'file');
        const img = el('img', 'file-thumb');
        img.src = this.thumbs[i];
        img.alt = '';
        const view = names ? names[i] : '?';
        li.append(img, el('span', 'file-name', `${view}: ${file.name}`));
        return li;
      }),
    );
    this.errors.show(null);
    if (this.files.length && !names) {
      this.errors.show({ summary: `Give 1, 4 or 8 images, not ${this.files.length}.`, detail: '' });
    }
  }

  options(): JobOptions {
    const value = (id: string) => $<HTMLInputElement | HTMLSelectElement>(id).value;
    const options: JobOptions = {
      output_format: (value('format') as OutputFormat) || 'glb',
      quality_tier: (value('quality') as QualityTier) || 'standard',
      origin: (value('origin') as Origin) || 'bottom',
    };
    const seed = wholeNumber(value('seed'), 'The seed', 0, 4_294_967_295);
    if (seed !== undefined) options.seed = seed;
    const faces = wholeNumber(value('target-faces'), 'The face budget', 100, 2_000_000);
    if (faces !== undefined) options.target_faces = faces;
    const height = value('height').trim();
    if (height) {
      const metres = Number(height);
      if (!(metres > 0 && metres <= 10_000)) throw new FormProblem('The height must be a number of metres above 0, at most 10,000.');
      options.height_m = metres;
    }
    const webhook = value('webhook').trim();
    if (webhook) options.webhook_url = webhook;
    return options;
  }

  private async submit(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    this.errors.show(null);
    this.button.disabled = true;
    try {
      const submitted = await this.send();
      this.keys.settled();
      this.onSubmitted(submitted);
    } catch (err) {
      this.keys.settled(err);
      this.errors.show(explainSubmitError(err));
    } finally {
      this.button.disabled = false;
    }
  }

  private async send(): Promise<Submitted> {
    const options = this.options();
    const kind = this.source();
    if (kind === 'upload') {
      checkFiles(this.files);
      const { image_paths } = await api.upload(this.files);
      const request = { ...options, image_paths };
      const created = await api.fromImagePaths(image_paths, options, this.keys.keyFor(request));
      return { created, kind: 'images', request, title: filesTitle(this.files.map((f) => f.name)) };
    }
    if (kind === 'urls') {
      const urls = checkUrls(splitLines($<HTMLTextAreaElement>('urls').value));
      const request = { ...options, image_urls: urls };
      const created = await api.fromImageUrls(urls, options, this.keys.keyFor(request));
      return { created, kind: 'images', request };
    }
    const prompt = $<HTMLTextAreaElement>('prompt').value.trim();
    if (!prompt) throw new FormProblem('Describe the object to make, e.g. “a red cube”.');
    const request = { ...options, prompt };
    return { created: await api.generate(prompt, options, this.keys.keyFor(request)), kind: 'prompt', request };
  }
}

export function explainSubmitError(err: unknown): Explained {
  if (err instanceof FormProblem) return { summary: err.message, detail: '' };
  if (err instanceof ApiError) return { summary: err.message, detail: err.detail };
  return { summary: 'Something went wrong in this page. Reload it and try again.', detail: String(err) };
}
