/**
 * The health badge, re-checked every `HEALTH_MS` and whenever a call finds the API unreachable, and what
 * /health says of the backends: which run each stage, and for the offline shape drawer, that only simple
 * shapes work (with the shapes themselves where the image backend's health lists them).
 */
import { ApiError, api } from './api';
import { backendName } from './format';
import type { HealthResponse } from './types';

export const HEALTH_MS = 10_000;

export interface BackendSummary {
  /** "images: offline shape drawer · 3D mesh: visual hull (offline) · clean-up: mesh clean-up". */
  line: string;
  /** The image backend draws simple shapes offline (no FLUX). */
  offline: boolean;
  /** The shapes it understands, where its health says (detail.shapes). */
  shapes: string[];
  /** Output formats the post-processing replicas write (detail.formats). */
  formats: string[];
}

interface Replica {
  status?: string;
  backend?: string | null;
  detail?: Record<string, unknown>;
}

const STAGE_LABELS: [string, string][] = [
  ['flux-service', 'images'],
  ['reconstruction-service', '3D mesh'],
  ['postprocess-service', 'clean-up'],
];

const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];

/** What the replicas in /health's detail run; null when /health gives no detail (keys on, not admin). */
export function summariseBackends(health: HealthResponse): BackendSummary | null {
  const stages = health.detail?.stages;
  if (!stages || typeof stages !== 'object') return null;
  const byStage = stages as Record<string, Record<string, Replica>>;
  const parts: string[] = [];
  let offline = false;
  const shapes = new Set<string>();
  const formats = new Set<string>();
  for (const [service, label] of STAGE_LABELS) {
    const replicas = Object.values(byStage[service] ?? {});
    const names = [...new Set(replicas.map((r) => r.backend).filter((b): b is string => !!b))];
    if (names.length) parts.push(`${label}: ${names.map(backendName).join(', ')}`);
    for (const replica of replicas) {
      if (service === 'flux-service' && replica.backend === 'procedural') {
        offline = true;
        strings(replica.detail?.shapes).forEach((s) => shapes.add(s));
      }
      if (service === 'postprocess-service') strings(replica.detail?.formats).forEach((f) => formats.add(f));
    }
  }
  return { line: parts.join(' · '), offline, shapes: [...shapes], formats: [...formats] };
}

export interface HealthView {
  status: 'ok' | 'degraded' | 'down';
  text: string;
  backends: BackendSummary | null;
}

export async function checkHealth(): Promise<HealthView> {
  try {
    const health = await api.health();
    const ok = health.status === 'ok';
    return {
      status: ok ? 'ok' : 'degraded',
      text: ok ? 'API ok' : 'API degraded: some services are not answering',
      backends: summariseBackends(health),
    };
  } catch (err) {
    const reachable = err instanceof ApiError && err.status !== 0;
    return { status: 'down', text: reachable ? 'API not answering properly' : 'API unreachable', backends: null };
  }
}

/** The badge, and above the form what the backends are (the offline drawer's limits first). */
export function renderHealth(view: HealthView): void {
  const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
  const badge = $<HTMLSpanElement>('health');
  badge.textContent = view.text;
  badge.dataset.status = view.status;
  badge.title = view.backends?.line ?? '';
  const note = $<HTMLParagraphElement>('backend-note');
  const b = view.backends;
  if (!b) {
    note.hidden = true;
    return;
  }
  let text = '';
  if (b.offline) {
    const shapes = b.shapes.length ? ` (${b.shapes.join(', ')})` : '';
    text = `This server draws its images offline: describe one simple shape${shapes} with a colour, e.g. “a tall blue cylinder”. `;
  }
  if (b.line) text += `Running: ${b.line}.`;
  note.textContent = text.trim();
  note.dataset.offline = String(b.offline);
  note.hidden = !text;
}
