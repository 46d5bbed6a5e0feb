/**
 * Types mirroring the public API's OpenAPI document (meshforge/schemas.py). tests/test_ui_types.py checks
 * every interface's field names and every union's values here against the live /openapi.json: keep the
 * names of interfaces equal to the schema names, and mark a field optional (`?`) unless the schema
 * requires it.
 */

export type OutputFormat = 'glb' | 'obj' | 'fbx' | 'stl' | 'usdz';
export type QualityTier = 'standard' | 'high';
export type Origin = 'bottom' | 'center';
/** view: a normalised input view; sheet: the turnaround sheet they were cut from; generated: a view the
 * reconstruction backend drew itself (InstantMesh's Zero123++ views). */
export type ViewKind = 'view' | 'sheet' | 'generated';
export type WebhookState = 'pending' | 'delivered' | 'failed';
export type JobState =
  | 'queued'
  | 'generating_images'
  | 'reconstructing_3d'
  | 'post_processing'
  | 'completed'
  | 'failed'
  | 'cancelled';
/** The `event:` names of GET /3d/events/{job_id}. */
export type JobEventName = 'state' | 'progress' | 'stage' | 'end';

export interface StageRecord {
  backend?: string | null;
  seconds?: number | null;
  started_at?: number | null;
  finished_at?: number | null;
  detail?: Record<string, unknown>;
}

/** An image the job made or used on its way to the mesh, served (PNG) at `url`. */
export interface JobView {
  name: string;
  kind: ViewKind;
  url: string;
}

export interface WebhookDelivery {
  state: WebhookState;
  delivery_id?: string | null;
  attempts?: number;
  last_status_code?: number | null;
  last_error?: string | null;
  delivered_at?: number | null;
  next_attempt_at?: number | null;
}

/** How far the running stage has got, where its service tells: `done` of `total` `unit` ("views", "steps"…). */
export interface StageProgress {
  done: number;
  total: number;
  unit: string;
}

export interface JobStatus {
  job_id: string;
  kind: string;
  state: JobState;
  message: string;
  asset_path?: string | null;
  download_url?: string | null;
  preview_path?: string | null;
  preview_url?: string | null;
  progress: number;
  created_at: number;
  updated_at: number;
  request: Record<string, unknown>;
  stages?: Record<string, StageRecord>;
  attempts?: number;
  webhook?: WebhookDelivery | null;
  /** Missing from records of servers older than the views API: treat as empty. */
  views?: JobView[];
  /** Only while a stage whose service tells is running; null (or missing) otherwise. */
  stage_progress?: StageProgress | null;
  /** What a completed job can be downloaded as (`?format=` on its download); empty until completed, and
   * missing from servers older than conversions: treat as the job's own format alone. */
  formats?: OutputFormat[];
}

export interface JobList {
  jobs: JobStatus[];
  total: number;
  offset: number;
  limit: number;
}

export interface JobCreated {
  job_id: string;
  status_url: string;
}

export interface UploadResponse {
  image_paths: string[];
}

export interface ErrorResponse {
  detail: string;
  code: string;
  request_id?: string | null;
}

export interface Capabilities {
  max_views?: number | null;
  image_size?: number | null;
  posed_views?: boolean;
  batch?: boolean;
}

/** GET /health; `detail` (the stage replicas) only for admins, or for everyone with keys off. */
export interface HealthResponse {
  service: string;
  status?: string;
  backend?: string | null;
  busy?: boolean;
  capabilities?: Capabilities | null;
  detail?: Record<string, unknown>;
}

/** The options shared by POST /3d/generate and /3d/from-image (GenerateRequest without `prompt`). */
export interface JobOptions {
  output_format?: OutputFormat;
  quality_tier?: QualityTier;
  seed?: number | null;
  target_faces?: number | null;
  origin?: Origin;
  height_m?: number | null;
  webhook_url?: string | null;
}

/** The data of a `state` or `progress` event. */
export interface JobEventSummary {
  job_id: string;
  state: JobState;
  progress: number;
  message: string;
  /** Missing from servers older than in-stage progress. */
  stage_progress?: StageProgress | null;
}

/** The data of a `stage` event: a stage finished. */
export interface JobStageEvent {
  job_id: string;
  stage: string;
  record: StageRecord;
}
