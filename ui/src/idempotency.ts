/**
 * One Idempotency-Key per submission. Trying the same request again after it got no answer (a network
 * error) or a server error reuses the key, so the server makes the job once even if the first try did
 * reach it; a success, a refusal (4xx) or a different request starts a new key.
 */
import { ApiError } from './api';

export type KeyMaker = () => string;

/** 32 hex digits from the browser's random source (crypto.randomUUID needs HTTPS; this does not). */
export const randomKey: KeyMaker = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');

export function mayHaveReachedServer(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 0 || err.status >= 500);
}

export class SubmitKeys {
  private last: { request: string; key: string } | null = null;

  constructor(private readonly makeKey: KeyMaker = randomKey) {}

  /** The key for submitting `request` now. */
  keyFor(request: unknown): string {
    const text = JSON.stringify(request);
    if (this.last?.request === text) return this.last.key;
    this.last = { request: text, key: this.makeKey() };
    return this.last.key;
  }

  /** How the submission went: only one that may have reached the server keeps its key for a retry. */
  settled(err: unknown = null): void {
    if (!mayHaveReachedServer(err)) this.last = null;
  }
}
