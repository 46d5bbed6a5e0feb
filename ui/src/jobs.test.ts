import { describe, expect, it } from 'vitest';
import { History, PAGE_SIZE, matches, newer, visibleJobs } from './jobs';
import { MyJobs } from './mine';
import type { JobState, JobStatus } from './types';

const job = (id: string, created: number, state: JobState = 'queued', updated = created, extra: Partial<JobStatus> = {}): JobStatus => ({
  job_id: id,
  kind: 'prompt',
  state,
  message: '',
  progress: 0,
  created_at: created,
  updated_at: updated,
  request: { prompt: `prompt ${id}` },
  stages: {},
  ...extra,
});

const memoryStore = () => {
  const m = new Map<string, string>();
  return { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v), removeItem: (k: string) => void m.delete(k) };
};

describe('merging records of one job', () => {
  it('keeps the record further along, whatever order they come in', () => {
    const a = job('a', 1, 'reconstructing_3d', 3, { progress: 40 });
    const stale = job('a', 1, 'generating_images', 2, { progress: 5 });
    expect(newer(a, stale).state).toBe('reconstructing_3d');
    expect(newer(stale, a).state).toBe('reconstructing_3d');
    expect(newer(a, job('a', 1, 'completed', 9, { progress: 100 })).state).toBe('completed');
  });
  it('never lets a summary event wipe the views, stages or request of a full record', () => {
    const full = job('a', 1, 'generating_images', 2, {
      views: [{ name: '00-front.png', kind: 'view', url: '/3d/views/a/00-front.png' }],
      stages: { generating_images: { seconds: 1 } },
    });
    const summary = { ...full, state: 'reconstructing_3d' as const, progress: 40, views: undefined, stages: undefined, request: {} };
    const merged = newer(full, summary);
    expect(merged.state).toBe('reconstructing_3d');
    expect(merged.views?.length).toBe(1);
    expect(merged.stages?.generating_images?.seconds).toBe(1);
    expect(merged.request.prompt).toBe('prompt a');
  });
});

describe('what the list shows', () => {
  it('merges the user’s own jobs into the loaded pages, filtered and newest first', () => {
    const listed = [job('b', 2, 'completed'), job('a', 1, 'failed')];
    const own = [job('mine', 9, 'generating_images'), job('a', 1, 'failed')];
    expect(visibleJobs(listed, own, null, '').map((j) => j.job_id)).toEqual(['mine', 'b', 'a']);
    expect(visibleJobs(listed, own, 'failed', '').map((j) => j.job_id)).toEqual(['a']);
  });
  it('searches prompts (every word), kept titles and ids', () => {
    const red = job('r1', 1, 'completed', 1, { request: { prompt: 'a red cube' } });
    expect(matches(red, null, 'RED cube')).toBe(true);
    expect(matches(red, null, 'red sphere')).toBe(false);
    expect(matches(red, null, 'r1')).toBe(true);
    const upload = job('u1', 1, 'completed', 1, { request: { image_paths: ['x'] } });
    expect(matches(upload, null, 'chair', 'chair-front.png')).toBe(true);
  });
});

describe('History', () => {
  it('pages with offset = what is loaded, so newer arrivals are not skipped', async () => {
    const server: JobStatus[] = Array.from({ length: 45 }, (_, i) => job(`j${i}`, 100 - i, 'completed'));
    const asked: string[] = [];
    const originalFetch = globalThis.fetch;
    globalThis.fetch = (async (url: string) => {
      asked.push(url);
      const q = new URL(url, 'http://x').searchParams;
      const offset = Number(q.get('offset'));
      const limit = Number(q.get('limit'));
      return new Response(JSON.stringify({ jobs: server.slice(offset, offset + limit), total: server.length, offset, limit }));
    }) as typeof fetch;
    try {
      const history = new History(new MyJobs(memoryStore()));
      await history.refresh();
      expect(history.listed.size).toBe(PAGE_SIZE);
      expect(history.canLoadMore).toBe(true);
      server.unshift(job('new', 200, 'completed')); // a job arrives: page 1 sees it on the next refresh
      await history.refresh();
      await history.loadMore();
      await history.loadMore();
      expect(history.listed.size).toBe(46);
      expect(history.canLoadMore).toBe(false);
      expect(asked.at(-1)).toContain('offset=41');
    } finally {
      globalThis.fetch = originalFetch;
    }
  });
});

describe('MyJobs', () => {
  it('keeps ids newest first, once each, and forgets removed ones', () => {
    const mine = new MyJobs(memoryStore());
    mine.add({ id: 'a', at: 1 });
    mine.add({ id: 'b', at: 2, title: 'front.png + 3 more' });
    mine.add({ id: 'a', at: 3 });
    expect(mine.all().map((j) => j.id)).toEqual(['a', 'b']);
    expect(mine.get('b')?.title).toBe('front.png + 3 more');
    mine.remove('a');
    expect(mine.has('a')).toBe(false);
  });
});
