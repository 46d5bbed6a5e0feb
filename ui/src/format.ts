/** Pure formatting helpers: no DOM, unit-tested. */
import type { JobState, JobStatus, StageRecord } from './types';

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(['completed', 'failed', 'cancelled']);

export function isActive(job: Pick<JobStatus, 'state'>): boolean {
  return !TERMINAL_STATES.has(job.state);
}

const STATE_LABELS: Record<JobState, string> = {
  queued: 'Queued',
  generating_images: 'Generating images',
  reconstructing_3d: 'Reconstructing 3D',
  post_processing: 'Post-processing',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

export function stateLabel(state: string): string {
  return (STATE_LABELS as Record<string, string>)[state] ?? state;
}

/** Seconds → "0.4 s", "12 s", "1 min 05 s", "1 h 02 min". */
export function formatElapsed(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '0.0 s';
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 60) return `${Math.floor(seconds)} s`;
  const total = Math.floor(seconds);
  if (total < 3600) {
    const m = Math.floor(total / 60);
    const s = total % 60;
    return `${m} min ${String(s).padStart(2, '0')} s`;
  }
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  return `${h} h ${String(m).padStart(2, '0')} min`;
}

/** How long the job has run: until now while active, until its last update once finished. */
export function jobElapsed(job: Pick<JobStatus, 'state' | 'created_at' | 'updated_at'>, nowSeconds: number): number {
  const end = isActive(job) ? nowSeconds : job.updated_at;
  return Math.max(0, end - job.created_at);
}

export function clampProgress(progress: unknown): number {
  const n = typeof progress === 'number' ? progress : Number(progress);
  if (!Number.isFinite(n)) return 0;
  return Math.min(100, Math.max(0, Math.round(n)));
}

/** "images 0.42 s (offline) · reconstruction 0.80 s (offline)" in the order the stages started. */
export function stageSummary(stages: Record<string, StageRecord> | undefined | null): string {
  if (!stages) return '';
  const entries = Object.entries(stages);
  entries.sort(([, a], [, b]) => (a.started_at ?? Infinity) - (b.started_at ?? Infinity));
  return entries
    .map(([name, rec]) => {
      const secs = typeof rec.seconds === 'number' ? `${rec.seconds.toFixed(2)} s` : 'running';
      const backend = rec.backend ? ` (${rec.backend})` : '';
      return `${name.replace(/_/g, ' ')} ${secs}${backend}`;
    })
    .join(' · ');
}

/** A short title for a job: its prompt, or the number of images it was made from. */
export function jobTitle(job: Pick<JobStatus, 'request' | 'kind'>): string {
  const req = job.request ?? {};
  if (typeof req.prompt === 'string' && req.prompt.trim()) return req.prompt;
  const images = (req.image_paths ?? req.image_urls) as unknown;
  if (Array.isArray(images)) return `${images.length} image${images.length === 1 ? '' : 's'}`;
  return job.kind;
}

export function outputFormat(job: Pick<JobStatus, 'request'>): string {
  const f = job.request?.output_format;
  return typeof f === 'string' ? f : 'glb';
}

/** Canonical view names (docs/views.md) for 1, 4 or 8 images, in order. */
export const VIEW_SETS: Record<number, readonly string[]> = {
  1: ['front'],
  4: ['front', 'right', 'back', 'left'],
  8: ['front', 'front-right', 'right', 'back-right', 'back', 'back-left', 'left', 'front-left'],
};

/** The view name each of `count` images will be read as, or null where the count is not allowed. */
export function viewNames(count: number): readonly string[] | null {
  return VIEW_SETS[count] ?? null;
}

/** Non-empty trimmed lines. */
export function splitLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}
