/**
 * The API key, when the server needs one: kept in this browser (localStorage) and sent as
 * `Authorization: Bearer <key>` on every API call. Never put in a URL, where logs and history keep it.
 */

const STORAGE_KEY = 'meshforge.apiKey';

/** Where the key is kept; an in-memory stand-in where there is no localStorage (tests, private modes). */
export interface KeyStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

function defaultStore(): KeyStore {
  try {
    if (typeof localStorage !== 'undefined') return localStorage;
  } catch {
    /* storage disabled: fall through */
  }
  const memory = new Map<string, string>();
  return {
    getItem: (k) => memory.get(k) ?? null,
    setItem: (k, v) => void memory.set(k, v),
    removeItem: (k) => void memory.delete(k),
  };
}

let store: KeyStore = defaultStore();

export function useKeyStore(replacement: KeyStore): void {
  store = replacement;
}

export function getApiKey(): string {
  return store.getItem(STORAGE_KEY) ?? '';
}

/** Save the key (trimmed); an empty one forgets it. */
export function setApiKey(key: string): void {
  const trimmed = key.trim();
  if (trimmed) store.setItem(STORAGE_KEY, trimmed);
  else store.removeItem(STORAGE_KEY);
}

/** `init` with the Authorization header added when a key is saved. */
export function withAuth(init: RequestInit = {}): RequestInit {
  const key = getApiKey();
  if (!key) return init;
  const headers = new Headers(init.headers);
  headers.set('Authorization', `Bearer ${key}`);
  return { ...init, headers };
}

/** Seconds from a Retry-After header (delay-seconds form), or null. */
export function retryAfterSeconds(value: string | null): number | null {
  if (!value) return null;
  const seconds = Number(value.trim());
  return Number.isFinite(seconds) && seconds >= 0 ? Math.ceil(seconds) : null;
}
