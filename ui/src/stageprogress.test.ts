import { describe, expect, it } from 'vitest';
import { stateLine } from './format';

describe('stateLine', () => {
  it("adds the running stage's count to its state", () => {
    const count = { done: 3, total: 8, unit: 'views' };
    expect(stateLine({ state: 'generating_images', stage_progress: count })).toBe('Generating images · 3 / 8 views');
  });
  it('is the state alone without a count, or once the job has ended', () => {
    expect(stateLine({ state: 'reconstructing_3d' })).toBe('Reconstructing 3D');
    expect(stateLine({ state: 'post_processing', stage_progress: null })).toBe('Post-processing');
    const stale = { done: 6, total: 6, unit: 'steps' };
    expect(stateLine({ state: 'completed', stage_progress: stale })).toBe('Completed');
  });
});
