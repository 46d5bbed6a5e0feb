/**
 * The jobs this browser submitted, by id, kept in localStorage: followed to their end whatever the job
 * list shows (another page, another filter), and shown as "Mine". A title is kept for jobs whose record
 * cannot name them well (uploads lose their file names on the server).
 */
import type { KeyStore } from './auth';

const STORAGE_KEY = 'meshforge.myJobs';
const MAX_KEPT = 200;

export interface MyJob {
  id: string;
  /** When it was submitted (seconds, as the API's created_at). */
  at: number;
  title?: string;
}

function memoryStore(): KeyStore {
  const memory = new Map<string, string>();
  return {
    getItem: (k) => memory.get(k) ?? null,
    setItem: (k, v) => void memory.set(k, v),
    removeItem: (k) => void memory.delete(k),
  };
}

function defaultStore(): KeyStore {
  try {
    if (typeof localStorage !== 'undefined') return localStorage;
  } catch {
    /* storage disabled */
  }
  return memoryStore();
}

export class MyJobs {
  constructor(private readonly store: KeyStore = defaultStore()) {}

  /** Newest first. */
  all(): MyJob[] {
    try {
      const parsed = JSON.parse(this.store.getItem(STORAGE_KEY) ?? '[]') as unknown;
      if (!Array.isArray(parsed)) return [];
      return parsed.filter(
        (j): j is MyJob => !!j && typeof j === 'object' && typeof j.id === 'string' && typeof j.at === 'number',
      );
    } catch {
      return [];
    }
  }

  has(id: string): boolean {
    return this.all().some((j) => j.id === id);
  }

  get(id: string): MyJob | undefined {
    return this.all().find((j) => j.id === id);
  }

  add(job: MyJob): void {
    const rest = this.all().filter((j) => j.id !== job.id);
    this.save([job, ...rest].slice(0, MAX_KEPT));
  }

  /** A job the server no longer knows, or that another key owns. */
  remove(id: string): void {
    this.save(this.all().filter((j) => j.id !== id));
  }

  private save(jobs: MyJob[]): void {
    try {
      this.store.setItem(STORAGE_KEY, JSON.stringify(jobs));
    } catch {
      /* full or disabled: following still works for this page */
    }
  }
}
