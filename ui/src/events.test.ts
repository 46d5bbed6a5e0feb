import { describe, expect, it } from 'vitest';
import { SseParser, followJob } from './events';
import type { JobEventSummary, JobStatus } from './types';

describe('SseParser', () => {
  it('parses events split across chunks, skipping keep-alive comments', () => {
    const p = new SseParser();
    expect(p.push('id: 1-0\nevent: state\nda')).toEqual([]);
    expect(p.push('ta: {"a":1}\n\n: keep-alive\n\nevent: end\r\ndata: x\r\ndata: y\r\n\r\n')).toEqual([
      { event: 'state', data: '{"a":1}', id: '1-0' },
      { event: 'end', data: 'x\ny', id: null },
    ]);
    expect(p.lastEventId).toBe('1-0');
  });
});

const sse = (text: string) =>
  new Response(new Blob([text]).stream(), { headers: { 'Content-Type': 'text/event-stream' } });

const record = (state: JobStatus['state']): JobStatus => ({
  job_id: 'j', kind: 'prompt', state, message: '', progress: 100, created_at: 1, updated_at: 2, request: {},
}); // prettier-ignore

describe('followJob', () => {
  it('resumes with Last-Event-ID after a dropped stream and ends on `end`', async () => {
    const seen: string[] = [];
    const lastIds: (string | null)[] = [];
    let call = 0;
    const fetchFn = (async (_url: string, init: RequestInit) => {
      lastIds.push(new Headers(init.headers).get('Last-Event-ID'));
      call++;
      if (call === 1) return sse('id: 5-0\nevent: state\ndata: {"job_id":"j","state":"generating_images","progress":5,"message":""}\n\n');
      return sse(`id: 9-0\nevent: end\ndata: ${JSON.stringify(record('completed'))}\n\n`);
    }) as unknown as typeof fetch;
    await new Promise<void>((done) => {
      followJob(
        'j',
        {
          onSummary: (s: JobEventSummary) => seen.push(s.state),
          onStage: () => {},
          onRecord: (job) => {
            seen.push(job.state);
            done();
          },
        },
        { fetchFn, retryMs: 1 },
      );
    });
    expect(seen).toEqual(['generating_images', 'completed']);
    expect(lastIds).toEqual([null, '5-0']);
  });
  it('falls back to polling /3d/status when the stream cannot be had', async () => {
    const modes: string[] = [];
    const urls: string[] = [];
    const fetchFn = (async (url: string) => {
      urls.push(url);
      if (url.startsWith('/3d/events/')) return new Response('<html>no</html>', { status: 502, headers: { 'Content-Type': 'text/html' } });
      return new Response(JSON.stringify(record(urls.length > 4 ? 'completed' : 'reconstructing_3d')));
    }) as unknown as typeof fetch;
    const final = await new Promise<JobStatus>((done) => {
      followJob(
        'j',
        {
          onSummary: () => {},
          onStage: () => {},
          onRecord: (job) => job.state === 'completed' && done(job),
          onMode: (m) => modes.push(m),
        },
        { fetchFn, retryMs: 1, pollMs: 1, maxFailures: 2 },
      );
    });
    expect(final.state).toBe('completed');
    expect(modes).toEqual(['events', 'polling']);
    expect(urls.filter((u) => u.startsWith('/3d/events/')).length).toBe(2);
  });
});
