import { describe, expect, it } from 'vitest';
import { ApiError, api, errorMessage, request } from './api';

const respond = (status: number, body: unknown, statusText = '') =>
  (async () =>
    new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, statusText })) as unknown as typeof fetch;

describe('errorMessage', () => {
  it('uses detail exactly as the API words it', () => {
    const detail = "prompt: the prompt is empty: describe the object to generate, e.g. 'a red cube'";
    expect(errorMessage({ detail, code: 'invalid_request' }, 422)).toBe(detail);
  });
  it('joins FastAPI validation lists', () => {
    expect(errorMessage({ detail: [{ msg: 'a' }, { msg: 'b' }] }, 422)).toBe('a; b');
  });
  it('falls back to the text or the HTTP status', () => {
    expect(errorMessage('Bad Gateway from nginx', 502)).toBe('Bad Gateway from nginx');
    expect(errorMessage(null, 503, 'Service Unavailable')).toBe('HTTP 503 Service Unavailable');
    expect(errorMessage({}, 500)).toBe('HTTP 500');
  });
});

describe('request', () => {
  it('returns the JSON body on success', async () => {
    await expect(request('/x', {}, respond(200, { job_id: 'j1' }))).resolves.toEqual({ job_id: 'j1' });
  });
  it('throws ApiError carrying detail, status and code', async () => {
    const err = (await request('/x', {}, respond(409, { detail: 'job j is completed', code: 'conflict' })).catch((e: unknown) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.message).toBe('job j is completed');
    expect(err.status).toBe(409);
    expect(err.code).toBe('conflict');
  });
  it('reports an unreachable API', async () => {
    const failing = (async () => {
      throw new TypeError('Failed to fetch');
    }) as unknown as typeof fetch;
    const err = (await request('/x', {}, failing).catch((e: unknown) => e)) as ApiError;
    expect(err.status).toBe(0);
    expect(err.message).toContain('Failed to fetch');
  });
});

describe('api', () => {
  it('posts prompt jobs as JSON to a relative path', async () => {
    const calls: [string, RequestInit][] = [];
    const spy = (async (url: string, init: RequestInit) => {
      calls.push([url, init]);
      return new Response(JSON.stringify({ job_id: 'j', status_url: '/3d/status/j' }));
    }) as unknown as typeof fetch;
    await api.generate('a red cube', { output_format: 'glb', quality_tier: 'standard' }, spy);
    expect(calls[0][0]).toBe('/3d/generate');
    expect(JSON.parse(calls[0][1].body as string)).toEqual({ prompt: 'a red cube', output_format: 'glb', quality_tier: 'standard' });
    await api.jobs(20, 0, spy);
    expect(calls[1][0]).toBe('/3d/jobs?limit=20&offset=0');
  });
  it('uploads files in the multipart field "files", in order', async () => {
    let form: FormData | null = null;
    const spy = (async (_url: string, init: RequestInit) => {
      form = init.body as FormData;
      return new Response(JSON.stringify({ image_paths: ['uploads/a.png'] }), { status: 201 });
    }) as unknown as typeof fetch;
    const files = ['front.png', 'right.png'].map((n) => new File([new Uint8Array([1])], n, { type: 'image/png' }));
    await api.upload(files, spy);
    expect((form as unknown as FormData).getAll('files').map((f) => (f as File).name)).toEqual(['front.png', 'right.png']);
  });
});
