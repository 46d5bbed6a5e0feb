import { describe, expect, it } from 'vitest';
import { ApiError, api, downloadUrl, jobsPath, request } from './api';

const respond = (status: number, body: unknown, headers: Record<string, string> = {}, statusText = '') =>
  (async () =>
    new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, statusText, headers })) as unknown as typeof fetch;

describe('request', () => {
  it('returns the JSON body on success', async () => {
    await expect(request('/x', {}, respond(200, { job_id: 'j1' }))).resolves.toEqual({ job_id: 'j1' });
  });
  it('throws an ApiError with a plain summary, the status, the code and the API words as detail', async () => {
    const err = (await request('/x', {}, respond(409, { detail: 'job j is completed', code: 'conflict' })).catch(
      (e: unknown) => e,
    )) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.message).toBe('job j is completed');
    expect(err.status).toBe(409);
    expect(err.code).toBe('conflict');
    expect(err.detail).toContain('HTTP 409');
  });
  it('never shows a proxy page: a 502 of HTML becomes a plain sentence', async () => {
    const html = '<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>';
    const err = (await request('/x', {}, respond(502, html, { 'Content-Type': 'text/html' }, 'Bad Gateway')).catch(
      (e: unknown) => e,
    )) as ApiError;
    expect(err.message).toBe('The server is not answering properly right now. Try again in a minute.');
    expect(err.message + err.detail).not.toContain('<');
    expect(err.detail).toContain('text/html');
  });
  it('a 200 that is not JSON is an error too, not shown', async () => {
    const err = (await request('/x', {}, respond(200, '<html>login</html>')).catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe('not_json');
    expect(err.message).not.toContain('<');
  });
  it('reports an unreachable API plainly, the browser words as detail', async () => {
    const failing = (async () => {
      throw new TypeError('Failed to fetch');
    }) as unknown as typeof fetch;
    const err = (await request('/x', {}, failing).catch((e: unknown) => e)) as ApiError;
    expect(err.status).toBe(0);
    expect(err.message).toMatch(/^Cannot reach the server/);
    expect(err.detail).toContain('Failed to fetch');
  });
});

describe('api', () => {
  it('posts prompt jobs as JSON to a relative path', async () => {
    const calls: [string, RequestInit][] = [];
    const spy = (async (url: string, init: RequestInit) => {
      calls.push([url, init]);
      return new Response(JSON.stringify({ job_id: 'j', status_url: '/3d/status/j' }));
    }) as unknown as typeof fetch;
    await api.generate('a red cube', { output_format: 'glb', quality_tier: 'standard' }, undefined, spy);
    expect(calls[0][0]).toBe('/3d/generate');
    expect(JSON.parse(calls[0][1].body as string)).toEqual({ prompt: 'a red cube', output_format: 'glb', quality_tier: 'standard' });
    await api.jobs({ limit: 20, offset: 40, state: 'failed' }, spy);
    expect(calls[1][0]).toBe('/3d/jobs?limit=20&offset=40&state=failed');
    await api.generate('a red cube', { output_format: 'glb', quality_tier: 'standard' }, 'k1', spy);
    expect((calls[2][1].headers as Record<string, string>)['Idempotency-Key']).toBe('k1');
    expect((calls[0][1].headers as Record<string, string>)['Idempotency-Key']).toBeUndefined();
  });
  it('pages the job list, with the state filter only when one is chosen', () => {
    expect(jobsPath()).toBe('/3d/jobs?limit=20&offset=0');
    expect(jobsPath({ offset: 20, state: null })).toBe('/3d/jobs?limit=20&offset=20');
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

describe('downloadUrl', () => {
  it('asks for another format with ?format=, and for the asset itself without', () => {
    expect(downloadUrl('abc')).toBe('/3d/download/abc');
    expect(downloadUrl('abc', 'stl')).toBe('/3d/download/abc?format=stl');
  });
});
