import { beforeEach, describe, expect, it } from 'vitest';
import { type ApiError, api } from './api';
import { getApiKey, retryAfterSeconds, setApiKey, useKeyStore, withAuth } from './auth';

beforeEach(() => {
  const memory = new Map<string, string>();
  useKeyStore({
    getItem: (k) => memory.get(k) ?? null,
    setItem: (k, v) => void memory.set(k, v),
    removeItem: (k) => void memory.delete(k),
  });
});

describe('the API key', () => {
  it('is sent as a Bearer header once saved, and not before', () => {
    expect(new Headers(withAuth({}).headers).has('Authorization')).toBe(false);
    setApiKey('  mf_abc  ');
    expect(getApiKey()).toBe('mf_abc');
    const headers = new Headers(withAuth({ headers: { 'Content-Type': 'application/json' } }).headers);
    expect(headers.get('Authorization')).toBe('Bearer mf_abc');
    expect(headers.get('Content-Type')).toBe('application/json');
  });
  it('is forgotten when saved empty', () => {
    setApiKey('mf_abc');
    setApiKey('');
    expect(getApiKey()).toBe('');
  });
});

describe('Retry-After', () => {
  it('reads Retry-After seconds', () => {
    expect(retryAfterSeconds('12')).toBe(12);
    expect(retryAfterSeconds(null)).toBeNull();
    expect(retryAfterSeconds('Wed, 21 Oct 2015 07:28:00 GMT')).toBeNull();
  });
});

describe('every API call', () => {
  it('carries the key, and a 429 keeps its Retry-After', async () => {
    setApiKey('mf_abc');
    const seen: (string | null)[] = [];
    const fetchFn = (async (_path: string, init: RequestInit) => {
      seen.push(new Headers(init.headers).get('Authorization'));
      return new Response(JSON.stringify({ detail: 'slow down: try again in 7 s', code: 'rate_limited' }), {
        status: 429,
        headers: { 'Retry-After': '7' },
      });
    }) as unknown as typeof fetch;
    const err = (await api.generate('a cube', { output_format: 'glb', quality_tier: 'standard' }, undefined, fetchFn).catch((e: unknown) => e)) as ApiError;
    expect(seen).toEqual(['Bearer mf_abc']);
    expect(err.status).toBe(429);
    expect(err.retryAfter).toBe(7);
    expect(err.message).toBe('Too many requests: try again in 7 s (slow down)');
  });
});
