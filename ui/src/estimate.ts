/**
 * How long a running job will likely take: the median time of recent completed jobs of the same kind
 * and quality tier among those the page has loaded. Progress moves within a stage only where its work
 * reports a count, so this is what tells a person on a stage that counts nothing that all is well.
 */
import { formatElapsed, isActive } from './format';
import type { JobStatus } from './types';

export interface Estimate {
  /** Typical total seconds. */
  typical: number;
  /** How many finished jobs it is drawn from. */
  samples: number;
}

const MAX_SAMPLES = 10;

const tierOf = (job: Pick<JobStatus, 'request'>) => String(job.request?.quality_tier ?? 'standard');

function median(values: number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The estimate for `job` from `known` jobs (any order), or null with no completed job alike. */
export function estimateFor(job: JobStatus, known: Iterable<JobStatus>): Estimate | null {
  const alike = [...known]
    .filter(
      (j) => j.job_id !== job.job_id && j.state === 'completed' && j.kind === job.kind && tierOf(j) === tierOf(job),
    )
    .sort((a, b) => b.created_at - a.created_at)
    .slice(0, MAX_SAMPLES)
    .map((j) => j.updated_at - j.created_at)
    .filter((s) => Number.isFinite(s) && s > 0);
  if (!alike.length) return null;
  return { typical: median(alike), samples: alike.length };
}

/** "about 25 s left", "almost done", "longer than usual (typically 30 s)"; '' for a finished job. */
export function remainingText(job: JobStatus, estimate: Estimate | null, elapsed: number): string {
  if (!isActive(job) || !estimate) return '';
  const left = estimate.typical - elapsed;
  const typical = formatElapsed(estimate.typical);
  if (left > 3) return `about ${formatElapsed(left)} left (typically ${typical})`;
  if (left > -0.25 * estimate.typical) return `almost done (typically ${typical})`;
  return `taking longer than usual (typically ${typical})`;
}
