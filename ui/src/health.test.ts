import { describe, expect, it } from 'vitest';
import { summariseBackends } from './health';

const replica = (service: string, backend: string, detail: Record<string, unknown> = {}) => ({
  service, status: 'ok', backend, busy: false, capabilities: null, detail,
}); // prettier-ignore

describe('the backends /health names', () => {
  it('says which backend runs each stage, and that the offline drawer draws simple shapes', () => {
    const summary = summariseBackends({
      service: 'orchestrator',
      status: 'ok',
      detail: {
        redis: 'ok',
        stages: {
          'image-service': { 'http://i': replica('image-service', 'flux-service') },
          'flux-service': { 'http://f0': replica('flux-service', 'procedural'), 'http://f1': replica('flux-service', 'procedural') },
          'reconstruction-service': { 'http://r': replica('reconstruction-service', 'visual_hull') },
          'postprocess-service': { 'http://p': replica('postprocess-service', 'trimesh', { formats: ['glb', 'stl'] }) },
        },
      },
    });
    expect(summary?.line).toBe('images: offline shape drawer · 3D mesh: visual hull (offline) · clean-up: mesh clean-up');
    expect(summary?.offline).toBe(true);
    expect(summary?.shapes).toEqual([]);
    expect(summary?.formats).toEqual(['glb', 'stl']);
  });
  it('lists the shapes where the image backend’s health names them', () => {
    const summary = summariseBackends({
      service: 'orchestrator',
      detail: { stages: { 'flux-service': { f: replica('flux-service', 'procedural', { shapes: ['cube', 'sphere'] }) } } },
    });
    expect(summary?.shapes).toEqual(['cube', 'sphere']);
  });
  it('is null when /health gives the status alone (API keys on, not an admin)', () => {
    expect(summariseBackends({ service: 'orchestrator', status: 'ok', detail: {} })).toBeNull();
  });
});
