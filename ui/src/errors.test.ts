import { describe, expect, it } from 'vitest';
import { type ErrorAnswer, explainAnswer, explainJobFailure, firstSentence } from './errors';

const answer = (status: number, body: unknown, extra: Partial<ErrorAnswer> = {}): ErrorAnswer => ({
  status,
  statusText: '',
  contentType: 'application/json',
  body: typeof body === 'string' ? body : JSON.stringify(body),
  retryAfter: null,
  hasKey: false,
  ...extra,
});

describe('refusals in plain words', () => {
  it('says a key is needed on 401, or that the key was refused', () => {
    expect(explainAnswer(answer(401, { detail: 'x', code: 'unauthorized' })).summary).toBe(
      'This server needs an API key: enter it above',
    );
    expect(explainAnswer(answer(401, { detail: 'x', code: 'unauthorized' }, { hasKey: true })).summary).toContain(
      'did not accept the API key',
    );
  });
  it('says when to retry on 429, once', () => {
    const detail = 'API key "a" has reached its limit of 1 new jobs and uploads per minute: try again in 42 s';
    expect(explainAnswer(answer(429, { detail, code: 'rate_limited' }, { retryAfter: 42 })).summary).toBe(
      'Too many requests: try again in 42 s (API key "a" has reached its limit of 1 new jobs and uploads per minute)',
    );
  });
  it('turns validation paths into sentences, keeping the API words as detail', () => {
    const url = explainAnswer(
      answer(422, { detail: 'image_urls.0: Input should be a valid URL, relative URL without a base', code: 'invalid_request' }),
    );
    expect(url.summary).toBe('Image URL 1 is not a web address: use http:// or https://.');
    expect(url.detail).toContain('image_urls.0');
    const count = explainAnswer(answer(422, { detail: 'got 3 images: give 1, 4, 8 images in the canonical view order', code: 'invalid_input' }));
    expect(count.summary).toBe('Give 1, 4 or 8 images, not 3.');
  });
  it('describes a non-JSON body without showing it', () => {
    const page = '<html><body><h1>502 Bad Gateway</h1></body></html>';
    const e = explainAnswer(answer(502, page, { contentType: 'text/html; charset=utf-8', statusText: 'Bad Gateway' }));
    expect(e.summary).toBe('The server is not answering properly right now. Try again in a minute.');
    expect(e.detail).toBe(`HTTP 502 Bad Gateway; the answer was not the API's JSON (text/html, ${page.length} bytes, not shown)`);
  });
  it('names the request id of an internal error', () => {
    const e = explainAnswer(answer(500, { detail: 'internal error (request id r1)', code: 'internal_error', request_id: 'r1' }));
    expect(e.summary).toBe('Something went wrong on the server (request r1). Try again in a minute.');
  });
  it('keeps a short first sentence of other refusals', () => {
    expect(firstSentence('job j is completed. More words here.')).toBe('job j is completed.');
    expect(firstSentence('x'.repeat(300)).length).toBeLessThanOrEqual(160);
  });
});

describe('failed jobs in plain words', () => {
  it('says the offline drawer draws simple shapes, without settings or docs paths', () => {
    const message =
      'image stage failed: The offline procedural image backend only draws one simple shape per prompt (cube, box, sphere) ...; ' +
      'it could not find a shape word in "a wooden chair, front view". To generate arbitrary objects, run flux-service with FLUX ' +
      'weights (MESHFORGE_FLUX_BACKEND=diffusers, see docs/backends.md).';
    const e = explainJobFailure(message);
    expect(e.summary).toContain('simple shapes');
    expect(e.summary).not.toMatch(/MESHFORGE|docs\/|front view/);
    expect(e.detail).toBe(message);
  });
  it('says an image URL could not be fetched', () => {
    const e = explainJobFailure('image stage failed: could not use the image at https://x.invalid/a.png: could not be fetched: its host name could not be resolved');
    expect(e.summary).toBe('An image could not be fetched from its URL: check the address, and that it is public.');
  });
  it('names the stage that failed', () => {
    expect(explainJobFailure('3D reconstruction failed: ValueError: empty hull').summary).toMatch(/^Building the 3D mesh failed\./);
    expect(explainJobFailure('post-processing failed: boom').summary).toMatch(/^Cleaning up and exporting/);
  });
});
