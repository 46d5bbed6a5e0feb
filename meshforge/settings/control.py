"""The control plane's settings: the orchestrator (public API) and the dispatcher."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from meshforge.settings.base import CommonSettings
from meshforge.settings.shared import (
    ClientTimeouts,
    ImageLimitsSettings,
    OutboundSettings,
    StageUrls,
    TierSettings,
    WebhookSettings,
)


class OrchestratorSettings(CommonSettings, StageUrls, ImageLimitsSettings, OutboundSettings, WebhookSettings):
    """`python -m orchestrator`: the public API, its limits, API keys and quotas, uploads."""

    orchestrator_port: int = Field(default=38100, description="Public API port")

    # Public API limits.
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, description="Largest uploaded image")
    max_images: int = Field(default=8, description="Most images per upload")

    # API keys, ownership and quotas (docs/security.md). Limits: 0 means no limit.
    api_keys_file: Path | None = Field(
        default=None,
        description=(
            'JSON list of API keys (`{"name", "sha256", "admin", "requests_per_minute", '
            '"max_concurrent_jobs"}`, made by `scripts/create-api-key`), relative to the working dir; '
            "once set, every `/3d/*` call needs `Authorization: Bearer <key>` "
            "([security](docs/security.md#api-keys-and-ownership))"
        ),
    )
    api_keys: str | None = Field(default=None, description="The same JSON list inline (added to the file's)")
    default_requests_per_minute: int = Field(
        default=60,
        ge=0,
        description=(
            "Per key, when its entry sets none: new jobs and uploads per minute, over all orchestrators "
            "(0: no limit); beyond it 429 with `Retry-After`"
        ),
    )
    default_max_concurrent_jobs: int = Field(
        default=4,
        ge=0,
        description=(
            "Per key, when its entry sets none: jobs queued or running at once (0: no limit); beyond it 429"
        ),
    )
    idempotency_seconds: float = Field(
        default=86400.0,
        gt=0,
        json_schema_extra={"shown_default": "`86400` (24 h)"},
        description=(
            "How long an `Idempotency-Key` on `POST /3d/generate` or `/3d/from-image` keeps answering "
            "its first job ([API](README.md#idempotent-submits))"
        ),
    )
    max_queued_jobs: int = Field(
        default=1000,
        ge=0,
        description=(
            "Jobs waiting in `3d:queue` beyond which new jobs get 503 with `Retry-After` (0: no cap), "
            "keys on or off"
        ),
    )


class DispatcherSettings(
    CommonSettings, StageUrls, ClientTimeouts, TierSettings, OutboundSettings, WebhookSettings
):
    """`python -m orchestrator.dispatcher`: jobs at once, leases, delivery guarantees, retention."""

    dispatcher_concurrency: int = Field(
        default=4, ge=1, description="Jobs one dispatcher runs at once, so stages overlap across jobs"
    )
    lease_seconds: float = Field(
        default=15.0,
        gt=0,
        description="A dispatcher that stops heartbeating for this long loses its jobs to the others",
    )
    reap_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often dispatchers look for dead dispatchers' jobs"
    )
    dispatcher_metrics_port: int = Field(
        default=38150,
        ge=0,
        le=65535,
        description=(
            "Port of the dispatcher's Prometheus `/metrics` (on `MESHFORGE_HOST`; `0`: none). Each "
            "dispatcher on one host needs its own: one whose port is taken runs on, without metrics "
            "([architecture](docs/architecture.md#metrics-and-logs))"
        ),
    )

    # Delivery guarantees (docs/architecture.md).
    max_attempts: int = Field(
        default=3,
        ge=1,
        description=(
            'A job whose dispatcher died or stalled this many times ends `failed` ("gave up after 3 '
            'attempts …") instead of being requeued again'
        ),
    )
    job_deadline_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How long one attempt at a job may run before it ends `failed`; `0` means no limit",
    )

    # Retention (orchestrator/retention.py).
    job_retention_seconds: float = Field(
        default=604800.0,
        ge=0,
        json_schema_extra={"shown_default": "`604800` (7 days)"},
        description=(
            "A finished (completed, failed, cancelled) job's record, index entries and files "
            "(`outputs/<id>.*`, `inputs/jobs/<id>/`, `cache/jobs/<id>/`) are deleted this long after it "
            "ended; `0` keeps them forever. `cache/jobs/<id>/` goes a minute after the end regardless "
            "([architecture](docs/architecture.md#retention))"
        ),
    )
    upload_retention_seconds: float = Field(
        default=86400.0,
        ge=0,
        json_schema_extra={"shown_default": "`86400` (24 h)"},
        description=(
            "An upload (`inputs/uploads/<id>/`) that no queued or running job uses is deleted this "
            "long after it was made; `0` keeps uploads forever"
        ),
    )
    retention_sweep_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "How often each dispatcher sweeps expired jobs and files (one sweeps at a time, under a "
            "Redis lock)"
        ),
    )
    retention_batch: int = Field(
        default=500,
        ge=1,
        description=(
            "Most jobs (and uploads) one sweep deletes, oldest first, so a backlog never stalls a dispatcher"
        ),
    )
