/**
 * Renders the job list in place, keyed by job id, so focus and buttons survive each update. Not a live
 * region: a running job's clock ticks here, and state changes of the user's own jobs are announced
 * once each elsewhere (main.ts).
 */
import { previewUrl } from './api';
import { explainJobFailure } from './errors';
import { estimateFor, remainingText } from './estimate';
import {
  clampProgress,
  formatElapsed,
  isActive,
  jobElapsed,
  jobFacts,
  jobTitle,
  stageSummary,
  stateLabel,
  stateLine,
} from './format';
import type { JobStatus } from './types';

export interface JobListHandlers {
  onCancel(id: string): void;
  onView(id: string, button: HTMLElement): void;
  /** An image URL for a preview path (fetched with the API key, see files.ts). */
  thumbnail(path: string): Promise<string>;
  /** Is this one of the jobs this browser submitted? */
  isMine(id: string): boolean;
  /** A title kept for the job in this browser (upload file names). */
  titleOf(id: string): string | undefined;
}

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = '', text = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** Set text only when it changed: a re-render every half second must not churn the DOM. */
export function setText(node: HTMLElement, text: string): void {
  if (node.textContent !== text) node.textContent = text;
}

interface Row {
  li: HTMLLIElement;
  title: HTMLElement;
  mine: HTMLElement;
  state: HTMLElement;
  facts: HTMLElement;
  elapsed: HTMLElement;
  progress: HTMLProgressElement;
  estimate: HTMLElement;
  stages: HTMLElement;
  message: HTMLElement;
  technical: HTMLDetailsElement;
  technicalText: HTMLElement;
  thumb: HTMLImageElement;
  cancel: HTMLButtonElement;
  view: HTMLButtonElement;
}

export class JobListView {
  private rows = new Map<string, Row>();

  constructor(
    private readonly list: HTMLElement,
    private readonly handlers: JobListHandlers,
  ) {}

  /** `jobs` in order; `known` every job the page knows (for time estimates). */
  render(jobs: readonly JobStatus[], known: readonly JobStatus[], nowSeconds: number, selected: string | null): void {
    const seen = new Set<string>();
    jobs.forEach((job, index) => {
      seen.add(job.job_id);
      const row = this.rows.get(job.job_id) ?? this.create(job.job_id);
      this.update(row, job, known, nowSeconds, selected === job.job_id);
      if (this.list.children[index] !== row.li) this.list.insertBefore(row.li, this.list.children[index] ?? null);
    });
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.li.remove();
        this.rows.delete(id);
      }
    }
  }

  private create(id: string): Row {
    const li = el('li', 'job');
    li.dataset.jobId = id;
    const thumb = el('img', 'thumb');
    thumb.alt = '';
    thumb.hidden = true;
    const body = el('div', 'job-body');
    const head = el('div', 'job-head');
    const title = el('strong', 'job-title');
    const mine = el('span', 'job-mine', 'yours');
    const state = el('span', 'job-state');
    head.append(title, mine, state);
    const meta = el('div', 'job-meta muted');
    const facts = el('span', 'job-facts');
    const elapsed = el('span', 'job-elapsed');
    meta.append(facts, elapsed);
    const progress = el('progress');
    progress.max = 100;
    const estimate = el('div', 'job-estimate muted');
    const stages = el('div', 'job-stages muted');
    const message = el('div', 'job-message');
    const technical = el('details', 'technical');
    const summary = el('summary', '', 'Technical detail');
    const technicalText = el('pre', 'technical-text');
    technical.append(summary, technicalText);
    const actions = el('div', 'job-actions');
    const view = el('button', 'button secondary small view', 'View');
    view.type = 'button';
    view.addEventListener('click', () => this.handlers.onView(id, view));
    const cancel = el('button', 'button secondary small cancel', 'Cancel');
    cancel.type = 'button';
    cancel.addEventListener('click', () => this.handlers.onCancel(id));
    actions.append(view, cancel);
    body.append(head, meta, progress, estimate, stages, message, technical, actions);
    li.append(thumb, body);
    const row: Row = {
      li, title, mine, state, facts, elapsed, progress, estimate, stages, message, technical, technicalText, thumb,
      cancel, view,
    }; // prettier-ignore
    this.rows.set(id, row);
    return row;
  }

  private update(row: Row, job: JobStatus, known: readonly JobStatus[], now: number, selected: boolean): void {
    const active = isActive(job);
    const progress = clampProgress(job.progress);
    const title = jobTitle(job, this.handlers.titleOf(job.job_id));
    // Distinct names for assistive technology: two jobs may share a prompt, never an id.
    const name = `${title} (${job.job_id.slice(0, 8)})`;
    row.li.dataset.state = job.state;
    row.li.dataset.progress = String(progress);
    row.li.classList.toggle('selected', selected);
    row.li.classList.toggle('failed', job.state === 'failed');
    setText(row.title, `${title} → ${String(job.request?.output_format ?? 'glb').toUpperCase()}`);
    row.mine.hidden = !this.handlers.isMine(job.job_id);
    setText(row.state, stateLine(job));
    row.state.className = `job-state state-${job.state}`;
    setText(row.facts, jobFacts(job));
    const elapsed = jobElapsed(job, now);
    setText(row.elapsed, active ? ` · running ${formatElapsed(elapsed)}` : ` · took ${formatElapsed(elapsed)}`);
    if (row.progress.value !== progress) row.progress.value = progress;
    row.progress.setAttribute('aria-label', `Progress of ${name}`);
    row.progress.setAttribute('aria-valuetext', `${progress}%, ${stateLabel(job.state)}`);
    setText(row.estimate, active ? remainingText(job, estimateFor(job, known), elapsed) : '');
    setText(row.stages, stageSummary(job.stages));
    this.updateMessage(row, job, active);
    row.cancel.hidden = !active;
    row.view.hidden = job.state !== 'completed';
    row.view.setAttribute('aria-label', `View ${name}`);
    row.cancel.setAttribute('aria-label', `Cancel ${name}`);
    this.updateThumb(row, job, title);
  }

  private updateMessage(row: Row, job: JobStatus, active: boolean): void {
    if (job.state === 'failed') {
      const { summary, detail } = explainJobFailure(job.message);
      setText(row.message, summary);
      setText(row.technicalText, detail);
      row.technical.hidden = !detail || detail === summary;
    } else {
      setText(row.message, job.state === 'cancelled' || active ? job.message : '');
      row.technical.hidden = true;
    }
    row.message.className = job.state === 'failed' ? 'job-message error' : 'job-message muted';
  }

  private updateThumb(row: Row, job: JobStatus, title: string): void {
    if (job.state !== 'completed') {
      row.thumb.hidden = true;
      return;
    }
    const src = job.preview_url || previewUrl(job.job_id);
    if (row.thumb.dataset.src !== src) {
      row.thumb.dataset.src = src;
      this.handlers.thumbnail(src).then(
        (url) => {
          if (row.thumb.dataset.src === src) row.thumb.src = url;
        },
        () => delete row.thumb.dataset.src, // tried again on the next render
      );
    }
    row.thumb.alt = `Preview of ${title}`;
    row.thumb.hidden = false;
  }
}
