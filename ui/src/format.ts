/** Pure formatting helpers: no DOM, unit-tested. */
import type { JobState, JobStatus, JobView, StageRecord } from './types';

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

/** The state, with the running stage's count where its service tells: "Reconstructing 3D · 3 / 8 views". */
export function stateLine(job: Pick<JobStatus, 'state' | 'stage_progress'>): string {
  const count = isActive(job) ? job.stage_progress : null;
  const label = stateLabel(job.state);
  return count && count.total > 0 ? `${label} · ${count.done} / ${count.total} ${count.unit}` : label;
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

const STAGE_NAMES: Record<string, string> = {
  generating_images: 'Images',
  reconstructing_3d: '3D mesh',
  post_processing: 'Clean-up and export',
};

/** Backend names as the stages report them → what a person can make sense of. */
const BACKEND_NAMES: [RegExp, string][] = [
  [/procedural/, 'offline shape drawer'],
  [/diffusers|flux/i, 'FLUX'],
  [/^uploaded-images$/, 'your images'],
  [/^url-download$/, 'images from URLs'],
  [/visual_hull/, 'visual hull (offline)'],
  [/triposr/i, 'TripoSR'],
  [/instantmesh/i, 'InstantMesh'],
  [/^trimesh$/, 'mesh clean-up'],
  [/blender/i, 'Blender'],
];

export function stageName(stage: string): string {
  return STAGE_NAMES[stage] ?? stage.replace(/_/g, ' ');
}

export function backendName(backend: string): string {
  return BACKEND_NAMES.find(([pattern]) => pattern.test(backend))?.[1] ?? backend;
}

/** "Images 0.4 s (offline shape drawer) · 3D mesh running (visual hull (offline))", in start order. */
export function stageSummary(stages: Record<string, StageRecord> | undefined | null): string {
  if (!stages) return '';
  const entries = Object.entries(stages);
  entries.sort(([, a], [, b]) => (a.started_at ?? Infinity) - (b.started_at ?? Infinity));
  return entries
    .map(([name, rec]) => {
      const secs = typeof rec.seconds === 'number' ? formatElapsed(rec.seconds) : 'running';
      const backend = rec.backend ? ` (${backendName(rec.backend)})` : '';
      return `${stageName(name)} ${secs}${backend}`;
    })
    .join(' · ');
}

const hostOf = (url: string) => {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
};

/** A short title for a job: its prompt, or what it was made from. */
export function jobTitle(job: Pick<JobStatus, 'request' | 'kind'>, kept?: string): string {
  const req = job.request ?? {};
  if (typeof req.prompt === 'string' && req.prompt.trim()) return req.prompt;
  if (kept) return kept;
  const paths = req.image_paths as unknown;
  if (Array.isArray(paths)) return `${paths.length} uploaded view${paths.length === 1 ? '' : 's'}`;
  const urls = req.image_urls as unknown;
  if (Array.isArray(urls)) {
    const host = urls.length ? hostOf(String(urls[0])) : '';
    return `${urls.length} image${urls.length === 1 ? '' : 's'}${host ? ` from ${host}` : ''}`;
  }
  return job.kind;
}

/** The title kept for an upload: its first file name and how many more. */
export function filesTitle(names: readonly string[]): string {
  if (!names.length) return '';
  return names.length === 1 ? names[0] : `${names[0]} + ${names.length - 1} more`;
}

export function outputFormat(job: Pick<JobStatus, 'request'>): string {
  const f = job.request?.output_format;
  return typeof f === 'string' ? f : 'glb';
}

/** "GLB", "OBJ (zip)", "STL": a format as the page names it. */
export function formatLabel(format: string): string {
  return format === 'obj' ? 'OBJ (zip)' : format.toUpperCase();
}

/** The formats a completed job can be downloaded in, its own first; a server older than conversions
 * lists none: then the job's own alone. */
export function downloadFormats(job: Pick<JobStatus, 'request' | 'formats'>): string[] {
  const own = outputFormat(job);
  const listed = Array.isArray(job.formats) ? job.formats.filter((f) => f !== own) : [];
  return [own, ...listed];
}

/** The file suffix the server gives each format (an OBJ comes zipped with its .mtl and texture). */
export function assetSuffix(format: string): string {
  return format === 'obj' ? '.obj.zip' : `.${format}`;
}

/** A readable download name: the prompt (or title) made file-safe, the job id's start, the suffix. */
export function downloadName(title: string, jobId: string, format: string): string {
  const slug = title
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/, '');
  return `${slug || 'asset'}-${jobId.slice(0, 8)}${assetSuffix(format)}`;
}

/** "1.2 MB", "640 KB", "512 B". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** When a job was made: "14:05" today, "3 Mar 14:05" this year, "3 Mar 2024" before. */
export function formatWhen(seconds: number, now: Date = new Date()): string {
  const d = new Date(seconds * 1000);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (d.toDateString() === now.toDateString()) return time;
  const day = `${d.getDate()} ${d.toLocaleString('en', { month: 'short' })}`;
  return d.getFullYear() === now.getFullYear() ? `${day} ${time}` : `${day} ${d.getFullYear()}`;
}

/** The row's facts: "14:05 · high · seed 42 · GLB". */
export function jobFacts(job: Pick<JobStatus, 'request' | 'created_at'>, now?: Date): string {
  const req = job.request ?? {};
  const parts = [formatWhen(job.created_at, now)];
  if (typeof req.quality_tier === 'string') parts.push(req.quality_tier);
  if (typeof req.seed === 'number') parts.push(`seed ${req.seed}`);
  parts.push(outputFormat(job).toUpperCase());
  return parts.join(' · ');
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

/** "front", "sheet of every view", "drawn by the model 1" (InstantMesh's own views, zero123-0.png …). */
export function viewLabel(view: JobView): string {
  if (view.kind === 'sheet') return 'sheet of every view';
  const generated = /^zero123-(\d+)\.png$/.exec(view.name);
  if (view.kind === 'generated') return `drawn by the model ${generated ? Number(generated[1]) + 1 : view.name}`;
  return view.name.replace(/^\d+-|\.png$/g, '');
}
