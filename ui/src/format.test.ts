import { describe, expect, it } from 'vitest';
import {
  clampProgress,
  formatElapsed,
  isActive,
  jobElapsed,
  jobTitle,
  splitLines,
  stageSummary,
  stateLabel,
  viewNames,
} from './format';

describe('formatElapsed', () => {
  it('formats seconds, minutes and hours', () => {
    expect(formatElapsed(0)).toBe('0.0 s');
    expect(formatElapsed(1.26)).toBe('1.3 s');
    expect(formatElapsed(42.9)).toBe('42 s');
    expect(formatElapsed(65)).toBe('1 min 05 s');
    expect(formatElapsed(3600 + 120 + 5)).toBe('1 h 02 min');
  });
  it('never shows a negative or NaN time', () => {
    expect(formatElapsed(-3)).toBe('0.0 s');
    expect(formatElapsed(Number.NaN)).toBe('0.0 s');
  });
});

describe('jobElapsed', () => {
  it('runs until now while active and stops at the last update once finished', () => {
    expect(jobElapsed({ state: 'reconstructing_3d', created_at: 100, updated_at: 101 }, 105)).toBe(5);
    expect(jobElapsed({ state: 'completed', created_at: 100, updated_at: 101.5 }, 200)).toBe(1.5);
  });
});

describe('states', () => {
  it('knows the terminal states', () => {
    expect(isActive({ state: 'queued' })).toBe(true);
    expect(isActive({ state: 'post_processing' })).toBe(true);
    for (const s of ['completed', 'failed', 'cancelled'] as const) expect(isActive({ state: s })).toBe(false);
  });
  it('labels states for people, passing unknown ones through', () => {
    expect(stateLabel('reconstructing_3d')).toBe('Reconstructing 3D');
    expect(stateLabel('something_new')).toBe('something_new');
  });
});

describe('clampProgress', () => {
  it('keeps progress within 0..100', () => {
    expect(clampProgress(40)).toBe(40);
    expect(clampProgress(140)).toBe(100);
    expect(clampProgress(-1)).toBe(0);
    expect(clampProgress('x')).toBe(0);
    expect(clampProgress(39.6)).toBe(40);
  });
});

describe('stageSummary', () => {
  it('lists the stages in the order they started, with seconds and backend', () => {
    const text = stageSummary({
      post_processing: { backend: 'trimesh', seconds: 0.1, started_at: 3 },
      generating_images: { backend: 'offline', seconds: 0.423, started_at: 1 },
      reconstructing_3d: { backend: 'offline', seconds: null, started_at: 2 },
    });
    expect(text).toBe('generating images 0.42 s (offline) · reconstructing 3d running (offline) · post processing 0.10 s (trimesh)');
  });
  it('is empty without stages', () => {
    expect(stageSummary({})).toBe('');
    expect(stageSummary(undefined)).toBe('');
  });
});

describe('jobTitle', () => {
  it('uses the prompt, or counts the images', () => {
    expect(jobTitle({ kind: 'prompt', request: { prompt: 'a red cube' } })).toBe('a red cube');
    expect(jobTitle({ kind: 'images', request: { image_paths: ['a', 'b', 'c', 'd'] } })).toBe('4 images');
    expect(jobTitle({ kind: 'images', request: { image_urls: ['a'] } })).toBe('1 image');
    expect(jobTitle({ kind: 'images', request: {} })).toBe('images');
  });
});

describe('views', () => {
  it('names the canonical views of docs/views.md', () => {
    expect(viewNames(4)).toEqual(['front', 'right', 'back', 'left']);
    expect(viewNames(8)?.[1]).toBe('front-right');
    expect(viewNames(3)).toBeNull();
  });
  it('splits URL lines', () => {
    expect(splitLines(' http://a/1.png\r\n\n http://a/2.png \n')).toEqual(['http://a/1.png', 'http://a/2.png']);
  });
});
