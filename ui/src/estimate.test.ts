import { describe, expect, it } from 'vitest';
import { estimateFor, remainingText } from './estimate';
import type { JobStatus } from './types';

const job = (id: string, tier: string, seconds: number, state: JobStatus['state'] = 'completed', kind = 'prompt'): JobStatus => ({
  job_id: id, kind, state, message: '', progress: 0, created_at: 1000, updated_at: 1000 + seconds,
  request: { quality_tier: tier },
}); // prettier-ignore

describe('time estimates', () => {
  it('take the median of recent completed jobs of the same kind and tier', () => {
    const running = job('r', 'high', 0, 'post_processing');
    const known = [job('a', 'high', 30), job('b', 'high', 40), job('c', 'high', 90), job('d', 'standard', 5), job('e', 'high', 1, 'failed'), job('f', 'high', 2, 'completed', 'images')];
    expect(estimateFor(running, known)).toEqual({ typical: 40, samples: 3 });
    expect(estimateFor(job('s', 'standard', 0, 'queued', 'images'), known)).toBeNull();
  });
  it('say how long is left, or that it is taking longer than usual', () => {
    const running = job('r', 'high', 0, 'post_processing');
    expect(remainingText(running, { typical: 40, samples: 3 }, 15)).toBe('about 25 s left (typically 40 s)');
    expect(remainingText(running, { typical: 40, samples: 3 }, 39)).toBe('almost done (typically 40 s)');
    expect(remainingText(running, { typical: 40, samples: 3 }, 80)).toBe('taking longer than usual (typically 40 s)');
    expect(remainingText(job('c', 'high', 9), { typical: 40, samples: 3 }, 80)).toBe('');
  });
});
