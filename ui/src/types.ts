/** Types mirroring meshforge/schemas.py (the public API). */

export type OutputFormat = 'glb' | 'obj' | 'fbx' | 'stl' | 'usdz';
export type QualityTier = 'standard' | 'high';
export type JobState =
  | 'queued'
  | 'generating_images'
  | 'reconstructing_3d'
  | 'post_processing'
  | 'completed'
  | 'failed'
  | 'cancelled';

export interface StageRecord {
  backend?: string | null;
  seconds?: number | null;
  started_at?: number | null;
  finished_at?: number | null;
  detail?: Record<string, unknown>;
}

export interface JobStatus {
  job_id: string;
  kind: string;
  state: JobState;
  message: string;
  download_url?: string | null;
  preview_url?: string | null;
  progress: number;
  created_at: number;
  updated_at: number;
  request: Record<string, unknown>;
  stages: Record<string, StageRecord>;
  attempts?: number;
}

export interface JobList {
  jobs: JobStatus[];
  total: number;
  offset?: number;
  limit?: number;
}

export interface JobCreated {
  job_id: string;
  status_url: string;
}

export interface JobOptions {
  output_format: OutputFormat;
  quality_tier: QualityTier;
  seed?: number;
  target_faces?: number;
}
