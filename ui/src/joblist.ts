/** Renders the job list in place, keyed by job id, so focus and buttons survive each poll. */
import { clampProgress, formatElapsed, isActive, jobElapsed, jobTitle, outputFormat, stageSummary, stateLabel } from './format';
import type { JobStatus } from './types';
import { previewUrl } from './api';

export interface JobListHandlers {
  onCancel(id: string): void;
  onView(id: string): void;
  /** An image URL for a preview path (fetched with the API key, see files.ts). */
  thumbnail(path: string): Promise<string>;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = '', text = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

interface Row {
  li: HTMLLIElement;
  title: HTMLElement;
  state: HTMLElement;
  elapsed: HTMLElement;
  progress: HTMLProgressElement;
  stages: HTMLElement;
  message: HTMLElement;
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

  render(jobs: readonly JobStatus[], nowSeconds: number, selected: string | null): void {
    const seen = new Set<string>();
    jobs.forEach((job, index) => {
      seen.add(job.job_id);
      const row = this.rows.get(job.job_id) ?? this.create(job.job_id);
      this.update(row, job, nowSeconds, selected === job.job_id);
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
    const state = el('span', 'job-state');
    const elapsed = el('span', 'job-elapsed muted');
    head.append(title, state, elapsed);
    const progress = el('progress');
    progress.max = 100;
    progress.setAttribute('aria-label', 'progress');
    const stages = el('div', 'job-stages muted');
    const message = el('div', 'job-message');
    const actions = el('div', 'job-actions');
    const cancel = el('button', 'button secondary small cancel', 'Cancel');
    cancel.type = 'button';
    cancel.addEventListener('click', () => this.handlers.onCancel(id));
    const view = el('button', 'button secondary small view', 'View');
    view.type = 'button';
    view.addEventListener('click', () => this.handlers.onView(id));
    actions.append(view, cancel);
    body.append(head, progress, stages, message, actions);
    li.append(thumb, body);
    const row: Row = { li, title, state, elapsed, progress, stages, message, thumb, cancel, view };
    this.rows.set(id, row);
    return row;
  }

  private update(row: Row, job: JobStatus, now: number, selected: boolean): void {
    const active = isActive(job);
    const progress = clampProgress(job.progress);
    row.li.dataset.state = job.state;
    row.li.dataset.progress = String(progress);
    row.li.classList.toggle('selected', selected);
    row.title.textContent = `${jobTitle(job)} → ${outputFormat(job).toUpperCase()}`;
    row.state.textContent = stateLabel(job.state);
    row.state.className = `job-state state-${job.state}`;
    row.elapsed.textContent = formatElapsed(jobElapsed(job, now));
    row.progress.value = progress;
    row.progress.setAttribute('aria-valuetext', `${progress}%`);
    row.stages.textContent = stageSummary(job.stages);
    const showMessage = job.state === 'failed' || job.state === 'cancelled' || (active && !!job.message);
    row.message.textContent = showMessage ? job.message : '';
    row.message.className = job.state === 'failed' ? 'job-message error' : 'job-message muted';
    row.cancel.hidden = !active;
    row.view.hidden = job.state !== 'completed';
    row.view.setAttribute('aria-label', `View ${jobTitle(job)}`);
    row.cancel.setAttribute('aria-label', `Cancel ${jobTitle(job)}`);
    if (job.state === 'completed') {
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
      row.thumb.alt = `Preview of ${jobTitle(job)}`;
      row.thumb.hidden = false;
    } else {
      row.thumb.hidden = true;
    }
  }
}
