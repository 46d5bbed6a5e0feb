import { describe, expect, it } from 'vitest';
import { anyActive, applyList, emptyJobs, pollInterval, upsertJob } from './jobs';
import type { JobState, JobStatus } from './types';

const job = (id: string, created: number, state: JobState = 'queued', updated = created): JobStatus => ({
  job_id: id,
  kind: 'prompt',
  state,
  message: '',
  progress: 0,
  created_at: created,
  updated_at: updated,
  request: {},
  stages: {},
});

describe('job list state', () => {
  it('replaces the list with the page, newest first', () => {
    const s = applyList(emptyJobs(), [job('b', 2), job('a', 1)], 2);
    expect(s.jobs.map((j) => j.job_id)).toEqual(['b', 'a']);
    expect(s.total).toBe(2);
  });
  it('keeps a just-submitted job newer than the page, drops older ones that left it', () => {
    let s = upsertJob(emptyJobs(), job('old', 0));
    s = upsertJob(s, job('new', 10));
    s = applyList(s, [job('b', 5), job('a', 4)], 2);
    expect(s.jobs.map((j) => j.job_id)).toEqual(['new', 'b', 'a']);
    expect(s.total).toBe(3);
  });
  it('upserts newer records and ignores stale ones', () => {
    let s = applyList(emptyJobs(), [job('a', 1, 'queued', 1)], 1);
    s = upsertJob(s, job('a', 1, 'reconstructing_3d', 3));
    expect(s.jobs[0].state).toBe('reconstructing_3d');
    s = upsertJob(s, job('a', 1, 'queued', 2));
    expect(s.jobs[0].state).toBe('reconstructing_3d');
    s = upsertJob(s, job('z', 9));
    expect(s.jobs.map((j) => j.job_id)).toEqual(['z', 'a']);
    expect(s.total).toBe(2);
  });
  it('polls about every second while a job is active', () => {
    const active = applyList(emptyJobs(), [job('a', 1, 'generating_images')], 1);
    const idle = applyList(emptyJobs(), [job('a', 1, 'completed'), job('b', 0, 'failed')], 2);
    expect(anyActive(active)).toBe(true);
    expect(pollInterval(active)).toBe(1000);
    expect(anyActive(idle)).toBe(false);
    expect(pollInterval(idle)).toBeGreaterThan(1000);
  });
});
