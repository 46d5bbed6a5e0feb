/** The job list's state: pure updates, unit-tested. */
import { isActive } from './format';
import type { JobStatus } from './types';

export interface JobsState {
  jobs: JobStatus[]; // newest first
  total: number;
}

export const emptyJobs = (): JobsState => ({ jobs: [], total: 0 });

const newestFirst = (a: JobStatus, b: JobStatus) => b.created_at - a.created_at;

/** Replace the list with a fresh page from GET /3d/jobs. A job we know that the page lacks is kept
 * only if it is newer than everything on the page (submitted after the page was read). */
export function applyList(state: JobsState, page: JobStatus[], total: number): JobsState {
  const ids = new Set(page.map((j) => j.job_id));
  const newest = page.reduce((m, j) => Math.max(m, j.created_at), -Infinity);
  const kept = state.jobs.filter((j) => !ids.has(j.job_id) && j.created_at > newest);
  return { jobs: [...kept, ...page].sort(newestFirst), total: total + kept.length };
}

/** Insert or replace one job (from /3d/status or /3d/cancel), ignoring stale records. */
export function upsertJob(state: JobsState, job: JobStatus): JobsState {
  const index = state.jobs.findIndex((j) => j.job_id === job.job_id);
  if (index === -1) {
    return { jobs: [job, ...state.jobs].sort(newestFirst), total: state.total + 1 };
  }
  if (state.jobs[index].updated_at > job.updated_at) return state;
  const jobs = state.jobs.slice();
  jobs[index] = job;
  return { jobs, total: state.total };
}

export function anyActive(state: JobsState): boolean {
  return state.jobs.some(isActive);
}

/** Polling interval: about a second while any job is active, slower when idle. */
export function pollInterval(state: JobsState, activeMs = 1000, idleMs = 10000): number {
  return anyActive(state) ? activeMs : idleMs;
}
