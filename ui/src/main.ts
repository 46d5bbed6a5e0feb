/**
 * The page: the create form, the job history (pages, filter, search) with this browser's own jobs
 * followed by their ids through the event stream, the viewer, and the health badge.
 */
import './style.css';
import { ApiError, api } from './api';
import { getApiKey, setApiKey } from './auth';
import { ErrorBox } from './errorbox';
import { explainJobFailure } from './errors';
import { followJob } from './events';
import { objectUrl, forgetFiles } from './files';
import { CreateForm, type Submitted } from './form';
import { isActive, jobTitle, stateLabel } from './format';
import { HEALTH_MS, checkHealth, renderHealth } from './health';
import { JobListView } from './joblist';
import { History, type Scope, newer, visibleJobs } from './jobs';
import { LookPanel } from './look';
import { MyJobs } from './mine';
import type { JobState, JobStatus } from './types';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const mine = new MyJobs();
const history = new History(mine);
const look = new LookPanel();
/** This browser's jobs that are running, or ended while this page followed them. */
const own = new Map<string, JobStatus>();
const followers = new Map<string, () => void>();
/** The last state announced for each own job: only changes are announced. */
const announced = new Map<string, JobState>();
let autoShow: string | null = null; // the job submitted last: shown once it completes

const jobsErrors = new ErrorBox($('jobs-error'));
const announcer = $<HTMLParagraphElement>('announcer');
const loadMore = $<HTMLButtonElement>('load-more');
const search = $<HTMLInputElement>('search');
const scope = $<HTMLSelectElement>('scope');
const stateFilter = $<HTMLSelectElement>('state-filter');

const titleOf = (id: string) => mine.get(id)?.title;
const titleFor = (job: JobStatus) => jobTitle(job, titleOf(job.job_id));

const jobList = new JobListView($('jobs'), {
  onCancel: (id) => void cancelJob(id),
  onView: (id) => showJob(id, true),
  thumbnail: (path) => objectUrl(path),
  isMine: (id) => mine.has(id),
  titleOf,
});

function known(): JobStatus[] {
  const all = new Map(history.listed);
  for (const job of own.values()) all.set(job.job_id, newer(all.get(job.job_id), job));
  return [...all.values()];
}

function findJob(id: string): JobStatus | undefined {
  return own.get(id) ?? history.listed.get(id);
}

function render(): void {
  const query = search.value.trim();
  const rows = visibleJobs(history.listed.values(), own.values(), history.state, query, titleOf);
  jobList.render(rows, known(), Date.now() / 1000, look.shown);
  const loaded = history.listed.size;
  $('jobs-total').textContent = history.total ? `(${loaded} of ${history.total} loaded)` : '';
  loadMore.hidden = !history.canLoadMore;
  loadMore.textContent = `Load more (${loaded} of ${history.total})`;
  $('search-note').textContent = query
    ? `${rows.length} of the ${loaded} loaded jobs match${history.canLoadMore ? '; load more to search older ones' : ''}.`
    : rows.length
      ? ''
      : 'No jobs to show.';
}

function announce(job: JobStatus): void {
  if (announced.get(job.job_id) === job.state) return;
  announced.set(job.job_id, job.state);
  const title = titleFor(job);
  let text = `${title}: ${stateLabel(job.state).toLowerCase()}`;
  if (job.state === 'completed' && autoShow === job.job_id) text += ', shown in the viewer';
  if (job.state === 'failed') text = `${title} failed: ${explainJobFailure(job.message).summary}`;
  announcer.textContent = text;
}

/** A record of an own job (an event, a poll, a cancel): keep it, announce a new state, show it at its end. */
function recordOwn(job: JobStatus): void {
  const merged = newer(own.get(job.job_id), job);
  own.set(job.job_id, merged);
  history.update(merged);
  announce(merged);
  if (!isActive(merged)) {
    if (followers.has(job.job_id)) window.setTimeout(() => void refresh(), 0); // the list's counts move too
    followers.get(job.job_id)?.();
    followers.delete(job.job_id);
    if (merged.state === 'completed' && autoShow === job.job_id) {
      autoShow = null;
      showJob(job.job_id, false);
    }
  }
  render();
}

/** Follow an own job to its end through the event stream (polling where the stream cannot be had). */
function follow(id: string): void {
  if (followers.has(id)) return;
  const stop = followJob(id, {
    onSummary: (s) => {
      const before = own.get(id);
      // Every summary tells the stage's count: a missing one (an older server) is none.
      const count = { stage_progress: s.stage_progress ?? null };
      if (before) recordOwn({ ...before, state: s.state, progress: s.progress, message: s.message, ...count });
    },
    onStage: (e) => {
      const before = own.get(id);
      if (before) recordOwn({ ...before, stages: { ...(before.stages ?? {}), [e.stage]: e.record } });
      // The views are listed once the image stage (and the reconstruction's own views) have run.
      if (e.stage === 'generating_images' || e.stage === 'reconstructing_3d') api.status(id).then(recordOwn, () => {});
    },
    onRecord: recordOwn,
    onMode: (mode) => (document.body.dataset.follow = mode),
    onGone: (err) => {
      followers.delete(id);
      if (err.status === 404) {
        own.delete(id);
        mine.remove(id);
      }
      render();
    },
  });
  followers.set(id, stop);
}

function stopFollowing(): void {
  for (const stop of followers.values()) stop();
  followers.clear();
}

function submitted({ created, kind, request, title }: Submitted): void {
  const now = Date.now() / 1000;
  mine.add({ id: created.job_id, at: now, title });
  autoShow = created.job_id;
  // A placeholder row at once; the first event (or the status read) fills it in.
  own.set(created.job_id, {
    job_id: created.job_id,
    kind,
    state: 'queued',
    message: 'submitted',
    progress: 0,
    created_at: now,
    updated_at: 0,
    request,
  });
  render();
  api.status(created.job_id).then(recordOwn, () => {});
  follow(created.job_id);
}

function showJob(id: string, byUser: boolean): void {
  const job = findJob(id);
  if (!job || job.state !== 'completed') return;
  void look.show(job, titleFor(job)).then(render);
  render();
  // Brought into view on every screen size; the keyboard follows only when the user asked.
  if (byUser || !isTyping()) look.reveal(byUser);
}

function isTyping(): boolean {
  const active = document.activeElement;
  return !!active && ['INPUT', 'TEXTAREA', 'SELECT'].includes(active.tagName);
}

async function cancelJob(id: string): Promise<void> {
  try {
    const job = await api.cancel(id);
    if (mine.has(id)) recordOwn(job);
    else history.update(job);
    jobsErrors.clear();
  } catch (err) {
    if (err instanceof ApiError) jobsErrors.show({ summary: err.message, detail: err.detail });
  }
  render();
}

// --- the list, refreshed; the health badge, re-checked ---------------------------------------------

let refreshTimer: number | undefined;

async function refresh(): Promise<void> {
  window.clearTimeout(refreshTimer);
  try {
    await history.refresh();
    jobsErrors.clear();
  } catch (err) {
    if (err instanceof ApiError) {
      jobsErrors.show({ summary: err.message, detail: err.detail });
      if (err.status === 0 || err.status >= 500) void updateHealth();
    }
  }
  render();
  const busy = known().some(isActive);
  refreshTimer = window.setTimeout(() => void refresh(), busy ? 3000 : 15000);
}

async function loadMorePage(): Promise<void> {
  loadMore.disabled = true;
  try {
    await history.loadMore();
    jobsErrors.clear();
  } catch (err) {
    if (err instanceof ApiError) jobsErrors.show({ summary: err.message, detail: err.detail });
  } finally {
    loadMore.disabled = false;
  }
  render();
}

let healthTimer: number | undefined;

async function updateHealth(): Promise<void> {
  window.clearTimeout(healthTimer);
  renderHealth(await checkHealth());
  healthTimer = window.setTimeout(() => void updateHealth(), HEALTH_MS);
}

/** The own jobs still running when the page opens: followed again. */
async function resumeOwn(): Promise<void> {
  await Promise.all(
    mine
      .all()
      .slice(0, 20)
      .map(async ({ id }) => {
        try {
          const job = await api.status(id);
          if (isActive(job)) {
            own.set(id, job);
            announced.set(id, job.state);
            follow(id);
          }
        } catch (err) {
          if (err instanceof ApiError && err.status === 404) mine.remove(id);
        }
      }),
  );
  render();
}

function resetList(): void {
  history.reset(scope.value as Scope, (stateFilter.value || null) as JobState | null);
  render();
  void refresh().then(() => (history.scope === 'mine' ? loadMorePage() : undefined));
}

// --- the API key ----------------------------------------------------------------------------------

function showKeyState(): void {
  $('key-state').textContent = getApiKey() ? 'key saved in this browser' : 'no key';
}

/** A new key sees other jobs: start the list, the followed jobs and the kept files afresh. */
function saveKey(event: SubmitEvent): void {
  event.preventDefault();
  const input = $<HTMLInputElement>('api-key');
  setApiKey(input.value);
  input.value = '';
  showKeyState();
  forgetFiles();
  stopFollowing();
  own.clear();
  form.errors.clear();
  resetList();
  void updateHealth();
  void resumeOwn();
}

const form = new CreateForm(submitted);
$<HTMLFormElement>('key-form').addEventListener('submit', (e) => saveKey(e));
loadMore.addEventListener('click', () => void loadMorePage());
search.addEventListener('input', render);
scope.addEventListener('change', resetList);
stateFilter.addEventListener('change', resetList);
// The clocks of running jobs: text only, in rows that are not a live region.
window.setInterval(() => {
  if (known().some(isActive)) render();
}, 500);

showKeyState();
void updateHealth();
void refresh();
void resumeOwn();
