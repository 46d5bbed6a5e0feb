/**
 * Following a job through GET /3d/events/{id} (Server-Sent Events), with polling as the fallback.
 *
 * The stream is read with fetch, not EventSource: EventSource cannot send the Authorization header, and
 * an API key must never go into a URL (auth.ts). Reconnecting sends `Last-Event-ID` as EventSource
 * would, so the server resumes exactly after the last event seen. Where the stream cannot be had (a
 * proxy that refuses it, an old server) the job is polled on /3d/status instead.
 */
import { ApiError, eventsUrl, failure, send } from './api';
import { isActive } from './format';
import type { JobEventSummary, JobStageEvent, JobStatus } from './types';

export interface SseMessage {
  event: string;
  data: string;
  id: string | null;
}

/** The SSE wire format (HTML spec 9.2.6), fed in chunks as they arrive. */
export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private id: string | null = null;
  lastEventId: string | null = null;

  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop() ?? ''; // an unfinished line waits for the next chunk
    for (const line of lines) {
      if (line === '') {
        if (this.data.length) {
          if (this.id !== null) this.lastEventId = this.id;
          out.push({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
        }
        this.event = '';
        this.data = [];
        this.id = null;
        continue;
      }
      if (line.startsWith(':')) continue; // a comment: the server's keep-alive
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') this.event = value;
      else if (field === 'data') this.data.push(value);
      else if (field === 'id' && !value.includes('\0')) this.id = value;
    }
    return out;
  }
}

export interface FollowHandlers {
  /** A `state` or `progress` event. */
  onSummary(summary: JobEventSummary): void;
  /** A stage finished (`stage` event). */
  onStage(event: JobStageEvent): void;
  /** The whole record: the `end` event, or each poll in the fallback. */
  onRecord(job: JobStatus): void;
  /** How the job is followed now. */
  onMode?(mode: 'events' | 'polling'): void;
  /** Following stopped for good (job gone, access refused). */
  onGone?(err: ApiError): void;
}

export interface FollowOptions {
  fetchFn?: typeof fetch;
  pollMs?: number;
  /** Connections in a row that bring no event before falling back to polling. */
  maxFailures?: number;
  retryMs?: number;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

/** Follow the job until it ends; returns a function that stops following. */
export function followJob(id: string, handlers: FollowHandlers, options: FollowOptions = {}): () => void {
  const controller = new AbortController();
  void run(id, handlers, options, controller.signal).catch((err: unknown) => {
    if (err instanceof ApiError) handlers.onGone?.(err);
  });
  return () => controller.abort();
}

const FINAL_STATUSES = new Set([401, 403, 404]);

async function run(id: string, h: FollowHandlers, o: FollowOptions, signal: AbortSignal): Promise<void> {
  const parser = new SseParser();
  const maxFailures = o.maxFailures ?? 3;
  let failures = 0;
  h.onMode?.('events');
  while (!signal.aborted && failures < maxFailures) {
    const headers: Record<string, string> = { Accept: 'text/event-stream' };
    if (parser.lastEventId) headers['Last-Event-ID'] = parser.lastEventId;
    let received = false;
    try {
      const response = await send(eventsUrl(id), { headers, signal, cache: 'no-store' }, o.fetchFn);
      if (!response.ok) {
        const err = await failure(response);
        if (FINAL_STATUSES.has(response.status)) throw err;
        throw new Error(err.detail);
      }
      if (!(response.headers.get('Content-Type') ?? '').startsWith('text/event-stream') || !response.body) {
        throw new Error('not an event stream');
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const message of parser.push(value)) {
          received = true;
          if (dispatch(message, h)) return; // the end: the stream is over
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && FINAL_STATUSES.has(err.status)) throw err;
    }
    failures = received ? 0 : failures + 1;
    await sleep(o.retryMs ?? 1000, signal);
  }
  if (!signal.aborted) await poll(id, h, o, signal);
}

/** Hand one event to the handlers; true for the job's end. */
function dispatch(message: SseMessage, h: FollowHandlers): boolean {
  let data: unknown;
  try {
    data = JSON.parse(message.data);
  } catch {
    return false;
  }
  if (message.event === 'state' || message.event === 'progress') h.onSummary(data as JobEventSummary);
  else if (message.event === 'stage') h.onStage(data as JobStageEvent);
  else if (message.event === 'end') {
    h.onRecord(data as JobStatus);
    return true;
  }
  return false;
}

async function poll(id: string, h: FollowHandlers, o: FollowOptions, signal: AbortSignal): Promise<void> {
  h.onMode?.('polling');
  while (!signal.aborted) {
    try {
      const response = await send(`/3d/status/${encodeURIComponent(id)}`, { signal, cache: 'no-store' }, o.fetchFn);
      if (!response.ok) {
        const err = await failure(response);
        if (FINAL_STATUSES.has(response.status)) throw err;
      } else {
        const job = (await response.json()) as JobStatus;
        h.onRecord(job);
        if (!isActive(job)) return;
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && FINAL_STATUSES.has(err.status)) throw err;
    }
    await sleep(o.pollMs ?? 1000, signal);
  }
}
