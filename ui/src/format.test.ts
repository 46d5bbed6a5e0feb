import { describe, expect, it } from 'vitest';
import {
  backendName,
  clampProgress,
  downloadFormats,
  downloadName,
  filesTitle,
  formatLabel,
  formatBytes,
  formatWhen,
  jobFacts,
  formatElapsed,
  isActive,
  jobElapsed,
  jobTitle,
  splitLines,
  stageSummary,
  stateLabel,
  viewLabel,
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
  it('lists the stages in the order they started, in human words', () => {
    const text = stageSummary({
      post_processing: { backend: 'trimesh', seconds: 0.1, started_at: 3 },
      generating_images: { backend: 'flux-service:procedural', seconds: 0.423, started_at: 1 },
      reconstructing_3d: { backend: 'visual_hull', seconds: null, started_at: 2 },
    });
    expect(text).toBe(
      'Images 0.4 s (offline shape drawer) · 3D mesh running (visual hull (offline)) · Clean-up and export 0.1 s (mesh clean-up)',
    );
  });
  it('is empty without stages', () => {
    expect(stageSummary({})).toBe('');
    expect(stageSummary(undefined)).toBe('');
  });
  it('passes unknown backends through', () => {
    expect(backendName('some-new-model')).toBe('some-new-model');
  });
});

describe('jobTitle', () => {
  it('uses the prompt, a kept title, or says what the images were', () => {
    expect(jobTitle({ kind: 'prompt', request: { prompt: 'a red cube' } })).toBe('a red cube');
    expect(jobTitle({ kind: 'images', request: { image_paths: ['a', 'b', 'c', 'd'] } })).toBe('4 uploaded views');
    expect(jobTitle({ kind: 'images', request: { image_paths: ['a'] } }, 'chair.png')).toBe('chair.png');
    expect(jobTitle({ kind: 'images', request: { image_urls: ['https://example.com/a.png'] } })).toBe('1 image from example.com');
    expect(jobTitle({ kind: 'images', request: {} })).toBe('images');
    expect(filesTitle(['front.png', 'right.png', 'back.png', 'left.png'])).toBe('front.png + 3 more');
  });
});

describe('download names', () => {
  it('are the prompt made file-safe, the id’s start and the server’s suffix', () => {
    expect(downloadName('A red cube!', '54e973149662470cb389cfe43f9fa5ed', 'glb')).toBe('a-red-cube-54e97314.glb');
    expect(downloadName('Crème brûlée dish', 'abcdef0123', 'obj')).toBe('creme-brulee-dish-abcdef01.obj.zip');
    expect(downloadName('???', 'abcdef0123', 'stl')).toBe('asset-abcdef01.stl');
    expect(downloadName('x'.repeat(100), 'abcdef0123', 'usdz').length).toBeLessThan(70);
  });
});

describe('download formats', () => {
  it('put the job\'s own format first, then what the server converts it to', () => {
    const request = { output_format: 'fbx' };
    expect(downloadFormats({ request, formats: ['glb', 'obj', 'fbx', 'stl', 'usdz'] })).toEqual(['fbx', 'glb', 'obj', 'stl', 'usdz']);
    expect(downloadFormats({ request, formats: [] })).toEqual(['fbx']);
    expect(downloadFormats({ request })).toEqual(['fbx']); // a server older than conversions
  });
  it('name each format as the page shows it', () => {
    expect(formatLabel('obj')).toBe('OBJ (zip)');
    expect(formatLabel('usdz')).toBe('USDZ');
  });
});

describe('row facts', () => {
  it('say when, the tier, the seed and the format', () => {
    const now = new Date(2026, 2, 3, 15, 0);
    const created = new Date(2026, 2, 3, 14, 5).getTime() / 1000;
    const facts = jobFacts({ created_at: created, request: { quality_tier: 'high', seed: 42, output_format: 'stl' } }, now);
    expect(facts).toBe('14:05 · high · seed 42 · STL');
    expect(formatWhen(new Date(2026, 0, 9, 8, 7).getTime() / 1000, now)).toBe('9 Jan 08:07');
    expect(formatWhen(new Date(2024, 0, 9).getTime() / 1000, now)).toBe('9 Jan 2024');
  });
  it('size files for people', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(948301)).toBe('926 KB');
    expect(formatBytes(3 * 1024 * 1024)).toBe('3.0 MB');
  });
});

describe('views', () => {
  it('names the canonical views of docs/views.md', () => {
    expect(viewNames(4)).toEqual(['front', 'right', 'back', 'left']);
    expect(viewNames(8)?.[1]).toBe('front-right');
    expect(viewNames(3)).toBeNull();
  });
  it('label the job’s images for people', () => {
    expect(viewLabel({ name: '01-front-right.png', kind: 'view', url: '' })).toBe('front-right');
    expect(viewLabel({ name: 'sheet.png', kind: 'sheet', url: '' })).toBe('sheet of every view');
    expect(viewLabel({ name: 'zero123-0.png', kind: 'generated', url: '' })).toBe('drawn by the model 1');
  });
  it('splits URL lines', () => {
    expect(splitLines(' http://a/1.png\r\n\n http://a/2.png \n')).toEqual(['http://a/1.png', 'http://a/2.png']);
  });
});
