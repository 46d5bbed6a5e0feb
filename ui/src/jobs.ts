/**
 * The job history: pages of GET /3d/jobs (server-side state filter, "load more"), or the jobs this
 * browser submitted ("mine", fetched by id); a search over the prompts of what is loaded (the API has
 * no search, so it runs here, over the loaded pages); and the user's own jobs merged in whatever the
 * pages hold. The pure parts are exported for the unit tests.
 */
import { ApiError, api } from './api';
import { isActive, jobTitle } from './format';
import type { MyJobs } from './mine';
import type { JobState, JobStatus } from './types';

export const PAGE_SIZE = 20;

export type Scope = 'all' | 'mine';

export const newestFirst = (a: JobStatus, b: JobStatus) => b.created_at - a.created_at;

const RANK: Record<JobState, number> = {
  queued: 0,
  generating_images: 1,
  reconstructing_3d: 2,
  post_processing: 3,
  completed: 4,
  failed: 4,
  cancelled: 4,
};

/**
 * Two records of one job merged: events, status reads and list pages race, so the one further along
 * (state, then progress, then updated_at) wins, and a summary event (no stages, no views, no request)
 * never wipes what a full record told.
 */
export function newer(known: JobStatus | undefined, job: JobStatus): JobStatus {
  if (!known) return job;
  const ahead =
    (RANK[job.state] ?? 0) - (RANK[known.state] ?? 0) || job.progress - known.progress || job.updated_at - known.updated_at;
  const [front, back] = ahead >= 0 ? [job, known] : [known, job];
  const richer = <T>(a: T | undefined, b: T | undefined, empty: (v: T) => boolean) =>
    a !== undefined && !empty(a) ? a : b;
  return {
    ...back,
    ...front,
    request: richer(front.request, back.request, (r) => !Object.keys(r).length) ?? {},
    stages: richer(front.stages, back.stages, (r) => !Object.keys(r).length),
    views: richer(front.views, back.views, (v) => !v.length),
    created_at: front.created_at || back.created_at,
  };
}

export function matches(job: JobStatus, state: JobState | null, search: string, title?: string): boolean {
  if (state && job.state !== state) return false;
  const words = search.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const haystack = `${jobTitle(job, title)} ${job.job_id}`.toLowerCase();
  return words.every((w) => haystack.includes(w));
}

/** The rows to show: the loaded jobs and the user's own, filtered and searched, newest first. */
export function visibleJobs(
  listed: Iterable<JobStatus>,
  own: Iterable<JobStatus>,
  state: JobState | null,
  search: string,
  titleOf: (id: string) => string | undefined = () => undefined,
): JobStatus[] {
  const merged = new Map<string, JobStatus>();
  for (const job of listed) merged.set(job.job_id, job);
  for (const job of own) merged.set(job.job_id, newer(merged.get(job.job_id), job));
  return [...merged.values()].filter((j) => matches(j, state, search, titleOf(j.job_id))).sort(newestFirst);
}

export class History {
  scope: Scope = 'all';
  state: JobState | null = null;
  search = '';
  /** Jobs loaded from the server for the current scope and state, by id. */
  readonly listed = new Map<string, JobStatus>();
  total = 0;
  private generation = 0; // a reset makes answers to older requests stale
  private readonly refused = new Set<string>(); // "mine" ids another API key owns (403)

  constructor(private readonly mine: MyJobs) {}

  reset(scope: Scope, state: JobState | null): void {
    this.scope = scope;
    this.state = state;
    this.listed.clear();
    this.refused.clear();
    this.total = 0;
    this.generation++;
  }

  get canLoadMore(): boolean {
    return this.listed.size < this.total;
  }

  /** Page 1 again (new jobs, changed states), and the loaded jobs still running elsewhere. */
  async refresh(): Promise<void> {
    if (this.scope === 'mine') return this.refreshMine();
    const generation = this.generation;
    const page = await api.jobs({ limit: PAGE_SIZE, offset: 0, state: this.state });
    if (generation !== this.generation) return;
    const known = page.jobs.filter((j) => this.listed.has(j.job_id)).length;
    // 20 jobs all new: more arrived than a page since the last look, so what was loaded has a gap.
    if (this.listed.size && known === 0 && page.jobs.length === PAGE_SIZE) this.listed.clear();
    this.take(page.jobs, page.total);
    const onPage = new Set(page.jobs.map((j) => j.job_id));
    const stale = [...this.listed.values()].filter((j) => isActive(j) && !onPage.has(j.job_id)).slice(0, 10);
    await Promise.all(stale.map((j) => this.recheck(j.job_id, generation)));
  }

  /** The next page (its offset is how many are loaded: a refresh has counted newer arrivals). */
  async loadMore(): Promise<void> {
    const generation = this.generation;
    if (this.scope === 'mine') {
      const next = this.myIds()
        .filter((id) => !this.listed.has(id))
        .slice(0, PAGE_SIZE);
      await Promise.all(next.map((id) => this.recheck(id, generation, true)));
      return;
    }
    const page = await api.jobs({ limit: PAGE_SIZE, offset: this.listed.size, state: this.state });
    if (generation === this.generation) this.take(page.jobs, page.total);
  }

  /** A record from elsewhere (an event, a cancel): kept if it belongs to what is listed. */
  update(job: JobStatus): void {
    const known = this.listed.get(job.job_id);
    if (!known) return;
    if (this.scope === 'all' && this.state && job.state !== this.state) {
      this.listed.delete(job.job_id); // it left the filtered list on the server too
      this.total = Math.max(0, this.total - 1);
    } else {
      this.listed.set(job.job_id, newer(known, job));
    }
  }

  private take(jobs: JobStatus[], total: number): void {
    for (const job of jobs) this.listed.set(job.job_id, newer(this.listed.get(job.job_id), job));
    this.total = Math.max(total, this.listed.size);
  }

  private async refreshMine(): Promise<void> {
    const generation = this.generation;
    const ids = this.myIds();
    this.total = ids.length;
    const first = ids.slice(0, Math.max(PAGE_SIZE, this.listed.size)).filter((id) => {
      const job = this.listed.get(id);
      return !job || isActive(job);
    });
    await Promise.all(first.map((id) => this.recheck(id, generation, true)));
  }

  private myIds(): string[] {
    return this.mine
      .all()
      .map((j) => j.id)
      .filter((id) => !this.refused.has(id));
  }

  private async recheck(id: string, generation: number, add = false): Promise<void> {
    try {
      const job = await api.status(id);
      if (generation !== this.generation) return;
      if (add || this.listed.has(id)) {
        this.listed.set(id, job);
        this.update(job);
      }
    } catch (err) {
      if (!(err instanceof ApiError)) return;
      if (err.status === 404) {
        this.mine.remove(id);
        this.listed.delete(id);
        this.total = Math.max(0, this.total - 1);
      } else if (err.status === 403 && this.scope === 'mine') {
        this.refused.add(id); // another key's job: not this key's to show
        this.total = Math.max(0, this.total - 1);
      }
    }
  }
}
