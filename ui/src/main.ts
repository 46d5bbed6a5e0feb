import './style.css';
import { ApiError, api, downloadUrl, fetchFile, previewUrl } from './api';
import { getApiKey, setApiKey, withAuth } from './auth';
import { forgetFiles, objectUrl, saveFile } from './files';
import { isActive, jobTitle, outputFormat, splitLines, viewNames } from './format';
import { JobListView } from './joblist';
import { applyList, emptyJobs, pollInterval, upsertJob, type JobsState } from './jobs';
import type { JobOptions, JobStatus, OutputFormat, QualityTier } from './types';
import { Viewer } from './viewer';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const form = $<HTMLFormElement>('create-form');
const createError = $<HTMLParagraphElement>('create-error');
const generateButton = $<HTMLButtonElement>('generate');
const fileInput = $<HTMLInputElement>('files');
const dropzone = $<HTMLDivElement>('dropzone');
const fileList = $<HTMLOListElement>('file-list');
const jobsError = $<HTMLParagraphElement>('jobs-error');
const jobsTotal = $<HTMLSpanElement>('jobs-total');
const lookName = $<HTMLSpanElement>('look-name');
const lookNote = $<HTMLParagraphElement>('look-note');
const lookPreview = $<HTMLImageElement>('look-preview');
const viewerBox = $<HTMLDivElement>('viewer');
const stats = $<HTMLSpanElement>('stats');
const download = $<HTMLAnchorElement>('download');
const wireframe = $<HTMLInputElement>('wireframe');
const keyForm = $<HTMLFormElement>('key-form');
const keyInput = $<HTMLInputElement>('api-key');
const keyState = $<HTMLSpanElement>('key-state');

let state: JobsState = emptyJobs();
let selectedFiles: File[] = [];
let followed: string | null = null; // the job submitted last: shown once it completes
let shown: string | null = null; // the job in the viewer
let viewer: Viewer | null = null;
let pollTimer: number | undefined;

const jobList = new JobListView($('jobs'), {
  onCancel: (id) => void cancelJob(id),
  onView: (id) => void show(id),
  thumbnail: (path) => objectUrl(path),
});

function showError(target: HTMLElement, message: string | null): void {
  target.textContent = message ?? '';
  target.hidden = !message;
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

function options(): JobOptions {
  return {
    output_format: ($<HTMLSelectElement>('format').value as OutputFormat) || 'glb',
    quality_tier: ($<HTMLSelectElement>('quality').value as QualityTier) || 'standard',
  };
}

function source(): string {
  return (form.querySelector<HTMLInputElement>('input[name="source"]:checked')?.value ?? 'prompt');
}

function showSource(): void {
  const current = source();
  form.querySelectorAll<HTMLElement>('.source').forEach((div) => {
    div.hidden = div.dataset.source !== current;
  });
}

function setFiles(files: File[]): void {
  selectedFiles = files.slice().sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  const names = viewNames(selectedFiles.length);
  fileList.replaceChildren(
    ...selectedFiles.map((file, i) => {
      const li = document.createElement('li');
      li.textContent = `${names ? names[i] : '?'}: ${file.name}`;
      return li;
    }),
  );
  if (selectedFiles.length && !names) {
    const li = document.createElement('li');
    li.className = 'error';
    li.textContent = `${selectedFiles.length} images: give 1, 4 or 8.`;
    fileList.append(li);
  }
}

async function submit(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  showError(createError, null);
  generateButton.disabled = true;
  try {
    const opts = options();
    let created;
    const kind = source();
    if (kind === 'upload') {
      if (!selectedFiles.length) throw new Error('choose 1, 4 or 8 images first');
      const { image_paths } = await api.upload(selectedFiles);
      created = await api.fromImagePaths(image_paths, opts);
    } else if (kind === 'urls') {
      created = await api.fromImageUrls(splitLines($<HTMLTextAreaElement>('urls').value), opts);
    } else {
      // Sent as typed: the API words the error for an empty prompt.
      created = await api.generate($<HTMLTextAreaElement>('prompt').value, opts);
    }
    followed = created.job_id;
    try {
      state = upsertJob(state, await api.status(created.job_id));
    } catch {
      /* the next poll will list it */
    }
    renderJobs();
    schedulePoll(0);
  } catch (err) {
    showError(createError, messageOf(err));
  } finally {
    generateButton.disabled = false;
  }
}

async function cancelJob(id: string): Promise<void> {
  try {
    state = upsertJob(state, await api.cancel(id));
    showError(jobsError, null);
  } catch (err) {
    showError(jobsError, messageOf(err));
  }
  renderJobs();
}

function renderJobs(): void {
  jobList.render(state.jobs, Date.now() / 1000, shown);
  jobsTotal.textContent = state.total ? `(${state.total})` : '';
  if (followed) {
    const job = state.jobs.find((j) => j.job_id === followed);
    if (job && job.state === 'completed') {
      followed = null;
      void show(job.job_id);
    } else if (job && !isActive(job)) {
      followed = null;
    }
  }
}

async function show(id: string): Promise<void> {
  const job: JobStatus | undefined = state.jobs.find((j) => j.job_id === id);
  if (!job) return;
  shown = id;
  renderJobs();
  const format = outputFormat(job);
  lookName.textContent = `— ${jobTitle(job)}`;
  const assetPath = job.download_url || downloadUrl(id);
  download.dataset.path = assetPath;
  download.dataset.name = `${id}.${format}`;
  download.textContent = `Download ${format.toUpperCase()}`;
  download.hidden = false;
  stats.textContent = '';
  document.body.dataset.shown = '';
  if (format === 'glb') {
    lookPreview.hidden = true;
    viewerBox.hidden = false;
    lookNote.textContent = 'Loading…';
    try {
      viewer ??= new Viewer(viewerBox);
      const file = await fetchFile(assetPath);
      const counts = await viewer.loadData(await file.blob.arrayBuffer());
      if (shown !== id) return;
      viewer.setWireframe(wireframe.checked);
      stats.textContent = `${counts.vertices.toLocaleString('en')} vertices · ${counts.faces.toLocaleString('en')} faces`;
      lookNote.textContent = 'Drag to orbit, scroll or pinch to zoom; arrow keys pan when the view has focus.';
      document.body.dataset.shown = id;
    } catch (err) {
      lookNote.textContent = `Could not load the model: ${messageOf(err)}`;
    }
  } else {
    viewer?.clear();
    viewerBox.hidden = true;
    lookPreview.src = await objectUrl(job.preview_url || previewUrl(id)).catch(() => '');
    if (shown !== id) return;
    lookPreview.alt = `Preview of ${jobTitle(job)}`;
    lookPreview.hidden = false;
    lookNote.textContent = `${format.toUpperCase()} cannot be shown in the browser: here is its preview.`;
    document.body.dataset.shown = id;
  }
}

async function poll(): Promise<void> {
  try {
    const page = await api.jobs(20);
    state = applyList(state, page.jobs, page.total);
    showError(jobsError, null);
  } catch (err) {
    showError(jobsError, err instanceof ApiError ? err.message : messageOf(err));
  }
  renderJobs();
  schedulePoll(pollInterval(state));
}

function schedulePoll(ms: number): void {
  window.clearTimeout(pollTimer);
  pollTimer = window.setTimeout(() => void poll(), ms);
}

async function checkHealth(): Promise<void> {
  const badge = $<HTMLSpanElement>('health');
  try {
    const response = await fetch('/health', withAuth());
    const body = (await response.json()) as { status?: string };
    badge.textContent = `API ${body.status ?? 'unknown'}`;
    badge.dataset.status = body.status ?? 'unknown';
  } catch {
    badge.textContent = 'API unreachable';
    badge.dataset.status = 'down';
  }
}

function showKeyState(): void {
  keyState.textContent = getApiKey() ? 'key saved in this browser' : 'no key';
}

/** A new key sees other jobs: start the list and the kept files afresh. */
function saveKey(event: SubmitEvent): void {
  event.preventDefault();
  setApiKey(keyInput.value);
  keyInput.value = '';
  showKeyState();
  forgetFiles();
  state = emptyJobs();
  showError(createError, null);
  renderJobs();
  void checkHealth();
  schedulePoll(0);
}

async function saveDownload(event: MouseEvent): Promise<void> {
  event.preventDefault();
  const path = download.dataset.path;
  if (!path) return;
  try {
    await saveFile(path, download.dataset.name ?? 'asset');
  } catch (err) {
    lookNote.textContent = `Could not download: ${messageOf(err)}`;
  }
}

keyForm.addEventListener('submit', (e) => saveKey(e));
download.addEventListener('click', (e) => void saveDownload(e));
form.addEventListener('submit', (e) => void submit(e));
form.querySelectorAll('input[name="source"]').forEach((r) => r.addEventListener('change', showSource));
fileInput.addEventListener('change', () => setFiles(Array.from(fileInput.files ?? [])));
dropzone.addEventListener('dragover', (e) => {
  e.preventDefault();
  dropzone.classList.add('over');
});
dropzone.addEventListener('dragleave', () => dropzone.classList.remove('over'));
dropzone.addEventListener('drop', (e) => {
  e.preventDefault();
  dropzone.classList.remove('over');
  setFiles(Array.from(e.dataTransfer?.files ?? []).filter((f) => f.type.startsWith('image/')));
});
wireframe.addEventListener('change', () => viewer?.setWireframe(wireframe.checked));
window.setInterval(() => {
  if (state.jobs.some(isActive)) jobList.render(state.jobs, Date.now() / 1000, shown);
}, 250);

showSource();
showKeyState();
void checkHealth();
void poll();
