/** The meshforge API on the same origin, by relative paths (works behind nginx and the vite proxy). */
import { getApiKey, retryAfterSeconds, withAuth } from './auth';
import { explainAnswer, explainNetwork } from './errors';
import type {
  HealthResponse,
  JobCreated,
  JobList,
  JobOptions,
  JobState,
  JobStatus,
  UploadResponse,
} from './types';

/** A failed call: `message` is the plain summary for people, `detail` the technical detail. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string | null,
    readonly retryAfter: number | null = null,
    readonly detail: string = '',
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type Fetch = typeof fetch;

/** Every API call goes through here, so every one carries the saved API key. */
export async function send(path: string, init: RequestInit, fetchFn: Fetch = fetch): Promise<Response> {
  try {
    return await fetchFn(path, withAuth(init));
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    const { summary, detail } = explainNetwork(`${(err as Error).name}: ${(err as Error).message}`);
    throw new ApiError(summary, 0, 'network', null, detail);
  }
}

/** The ApiError for an answer that is not 2xx; the body is read as text and never shown raw. */
export async function failure(response: Response): Promise<ApiError> {
  const body = await response.text().catch(() => '');
  const retryAfter = retryAfterSeconds(response.headers.get('Retry-After'));
  const explained = explainAnswer({
    status: response.status,
    statusText: response.statusText,
    contentType: response.headers.get('Content-Type') ?? '',
    body,
    retryAfter,
    hasKey: !!getApiKey(),
  });
  return new ApiError(explained.summary, response.status, explained.code, retryAfter, explained.detail);
}

export async function request<T>(path: string, init: RequestInit = {}, fetchFn: Fetch = fetch): Promise<T> {
  const response = await send(path, init, fetchFn);
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  try {
    return (text ? JSON.parse(text) : null) as T;
  } catch {
    // A 200 that is not JSON: a proxy's page in front of the API, never the API itself.
    throw new ApiError(
      'The server is not answering properly right now. Try again in a minute.',
      response.status,
      'not_json',
      null,
      `HTTP ${response.status}: the answer was not JSON (${response.headers.get('Content-Type') ?? 'no content type'}, not shown)`,
    );
  }
}

export interface FetchedFile {
  blob: Blob;
  filename: string | null;
}

/** A file (download, preview, view) fetched with the API key, for an object URL: no key in any URL. */
export async function fetchFile(path: string, fetchFn: Fetch = fetch): Promise<FetchedFile> {
  const response = await send(path, {}, fetchFn);
  if (!response.ok) throw await failure(response);
  const disposition = response.headers.get('Content-Disposition') ?? '';
  const match = /filename="?([^";]+)"?/.exec(disposition);
  return { blob: await response.blob(), filename: match ? match[1] : null };
}

const json = (data: unknown, idempotencyKey?: string): RequestInit => ({
  method: 'POST',
  headers: {
    'Content-Type': 'application/json',
    ...(idempotencyKey ? { 'Idempotency-Key': idempotencyKey } : {}),
  },
  body: JSON.stringify(data),
});

export interface JobsQuery {
  limit?: number;
  offset?: number;
  state?: JobState | null;
}

export function jobsPath({ limit = 20, offset = 0, state = null }: JobsQuery = {}): string {
  const query = new URLSearchParams({ limit: String(limit), offset: String(offset) });
  if (state) query.set('state', state);
  return `/3d/jobs?${query}`;
}

export const api = {
  generate: (prompt: string, options: JobOptions, key?: string, f?: Fetch) =>
    request<JobCreated>('/3d/generate', json({ prompt, ...options }, key), f),
  fromImagePaths: (image_paths: string[], options: JobOptions, key?: string, f?: Fetch) =>
    request<JobCreated>('/3d/from-image', json({ image_paths, ...options }, key), f),
  fromImageUrls: (image_urls: string[], options: JobOptions, key?: string, f?: Fetch) =>
    request<JobCreated>('/3d/from-image', json({ image_urls, ...options }, key), f),
  upload: (files: readonly File[], f?: Fetch) => {
    const form = new FormData();
    for (const file of files) form.append('files', file, file.name);
    return request<UploadResponse>('/3d/upload', { method: 'POST', body: form }, f);
  },
  status: (id: string, f?: Fetch) => request<JobStatus>(`/3d/status/${encodeURIComponent(id)}`, {}, f),
  jobs: (query: JobsQuery = {}, f?: Fetch) => request<JobList>(jobsPath(query), {}, f),
  cancel: (id: string, f?: Fetch) =>
    request<JobStatus>(`/3d/cancel/${encodeURIComponent(id)}`, { method: 'POST' }, f),
  health: (f?: Fetch) => request<HealthResponse>('/health', {}, f),
};

/** The job's asset; with `format`, the job converted to that format (GET /3d/download/{id}?format=…). */
export const downloadUrl = (id: string, format?: string) =>
  `/3d/download/${encodeURIComponent(id)}${format ? `?format=${encodeURIComponent(format)}` : ''}`;
export const previewUrl = (id: string) => `/3d/preview/${encodeURIComponent(id)}`;
export const eventsUrl = (id: string) => `/3d/events/${encodeURIComponent(id)}`;
