/** The meshforge API on the same origin, by relative paths (works behind nginx and the vite proxy). */
import { getApiKey, plainMessage, retryAfterSeconds, withAuth } from './auth';
import type { JobCreated, JobList, JobOptions, JobStatus } from './types';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null,
    readonly retryAfter: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/**
 * The message of an error response exactly as the API words it: `detail` when it is a string;
 * FastAPI-style lists of {msg} are joined; otherwise a fallback naming the HTTP status.
 */
export function errorMessage(body: unknown, status: number, statusText = ''): string {
  if (body && typeof body === 'object' && 'detail' in body) {
    const detail = (body as { detail: unknown }).detail;
    if (typeof detail === 'string' && detail) return detail;
    if (Array.isArray(detail)) {
      const parts = detail
        .map((d) => (d && typeof d === 'object' && 'msg' in d ? String((d as { msg: unknown }).msg) : String(d)))
        .filter(Boolean);
      if (parts.length) return parts.join('; ');
    }
  }
  if (typeof body === 'string' && body.trim()) return body.trim();
  return `HTTP ${status}${statusText ? ` ${statusText}` : ''}`;
}

export function errorCode(body: unknown): string | null {
  if (body && typeof body === 'object' && 'code' in body) {
    const code = (body as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return null;
}

type Fetch = typeof fetch;

/** Every API call goes through here, so every one carries the saved API key. */
async function send(path: string, init: RequestInit, fetchFn: Fetch): Promise<Response> {
  try {
    return await fetchFn(path, withAuth(init));
  } catch (err) {
    throw new ApiError(`cannot reach the API: ${(err as Error).message}`, 0, 'network');
  }
}

function parse(text: string): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text; /* not JSON: keep the text */
  }
}

async function failure(response: Response): Promise<ApiError> {
  const body = parse(await response.text());
  const retryAfter = retryAfterSeconds(response.headers.get('Retry-After'));
  const detail = errorMessage(body, response.status, response.statusText);
  const message = plainMessage(response.status, detail, retryAfter, !!getApiKey());
  return new ApiError(message, response.status, errorCode(body), retryAfter);
}

export async function request<T>(path: string, init: RequestInit = {}, fetchFn: Fetch = fetch): Promise<T> {
  const response = await send(path, init, fetchFn);
  if (!response.ok) throw await failure(response);
  return parse(await response.text()) as T;
}

export interface FetchedFile {
  blob: Blob;
  filename: string | null;
}

/** A file (download, preview) fetched with the API key, for an object URL: no key in any URL. */
export async function fetchFile(path: string, fetchFn: Fetch = fetch): Promise<FetchedFile> {
  const response = await send(path, {}, fetchFn);
  if (!response.ok) throw await failure(response);
  const disposition = response.headers.get('Content-Disposition') ?? '';
  const match = /filename="?([^";]+)"?/.exec(disposition);
  return { blob: await response.blob(), filename: match ? match[1] : null };
}

const json = (data: unknown): RequestInit => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify(data),
});

export const api = {
  generate: (prompt: string, options: JobOptions, f?: Fetch) =>
    request<JobCreated>('/3d/generate', json({ prompt, ...options }), f),
  fromImagePaths: (image_paths: string[], options: JobOptions, f?: Fetch) =>
    request<JobCreated>('/3d/from-image', json({ image_paths, ...options }), f),
  fromImageUrls: (image_urls: string[], options: JobOptions, f?: Fetch) =>
    request<JobCreated>('/3d/from-image', json({ image_urls, ...options }), f),
  upload: (files: readonly File[], f?: Fetch) => {
    const form = new FormData();
    for (const file of files) form.append('files', file, file.name);
    return request<{ image_paths: string[] }>('/3d/upload', { method: 'POST', body: form }, f);
  },
  status: (id: string, f?: Fetch) => request<JobStatus>(`/3d/status/${encodeURIComponent(id)}`, {}, f),
  jobs: (limit = 20, offset = 0, f?: Fetch) => request<JobList>(`/3d/jobs?limit=${limit}&offset=${offset}`, {}, f),
  cancel: (id: string, f?: Fetch) =>
    request<JobStatus>(`/3d/cancel/${encodeURIComponent(id)}`, { method: 'POST' }, f),
};

export const downloadUrl = (id: string) => `/3d/download/${encodeURIComponent(id)}`;
export const previewUrl = (id: string) => `/3d/preview/${encodeURIComponent(id)}`;
