"""A job's record as the API shows it: the `job:{id}` hash (or a history entry) decoded into the
public schemas, with storage paths relative (orchestrator/public.py)."""

from __future__ import annotations

import json
import re
from typing import Any

from meshforge.schemas import (
    JobState,
    JobStatus,
    JobView,
    OutputFormat,
    StageProgress,
    StageRecord,
    ViewKind,
    WebhookDelivery,
    WebhookState,
)
from orchestrator.public import output_name, stored_detail


def to_status(record: dict[str, str]) -> JobStatus:
    job_id = record["job_id"]
    state = JobState(record["state"])
    asset_path = output_name(record.get("asset_path"))
    stages = public_stages(record.get("stages"))
    request = json.loads(record.get("request") or "{}")
    return JobStatus(
        job_id=job_id,
        kind=record.get("kind", ""),
        state=state,
        message=record.get("message", ""),
        asset_path=asset_path,
        download_url=f"/3d/download/{job_id}" if state == JobState.completed else None,
        preview_path=output_name(record.get("preview_path")),
        preview_url=f"/3d/preview/{job_id}" if record.get("preview_path") else None,
        progress=int(float(record.get("progress") or 0)),
        created_at=float(record["created_at"]),
        updated_at=float(record["updated_at"]),
        request=request,
        stages=stages,
        attempts=int(record.get("attempts") or 0),
        webhook=webhook_delivery(record),
        views=job_views(job_id, stages),
        stage_progress=stage_progress(record.get("stage_progress"), state.value),
        formats=download_formats(state, request, stages),
    )


def stage_progress(stored: str | None, state: str) -> StageProgress | None:
    """The running stage's count as the dispatcher last wrote it (orchestrator/stage_progress.py), only
    while the job is still in the stage it counts: none once the job has moved on or ended."""
    try:
        count = json.loads(stored) if stored else None
        if not isinstance(count, dict) or count.pop("state", None) != state:
            return None
        return StageProgress.model_validate(count)
    except ValueError:  # not JSON, or not a count (ValidationError is a ValueError): shown as none
        return None


def download_formats(
    state: JobState, request: dict[str, Any], stages: dict[str, StageRecord]
) -> list[OutputFormat]:
    """What a completed job can be downloaded as: the formats post-processing recorded (its own, and
    with a master GLB those it converts to); a record from before conversions: its own format alone."""
    if state != JobState.completed:
        return []
    own = request.get("output_format", OutputFormat.glb.value)
    finished = stages.get(JobState.post_processing.value)
    recorded = finished.detail.get("formats") if finished is not None else None
    listed = set(recorded) if isinstance(recorded, list) else set()
    return [f for f in OutputFormat if f.value == own or f.value in listed]


def webhook_delivery(record: dict[str, str]) -> WebhookDelivery | None:
    """How the job's webhook went, for a job with one."""
    if not record.get("webhook_url"):
        return None

    def number(field: str) -> float | None:
        return float(record[field]) if record.get(field) else None

    state = WebhookState(record.get("webhook_state") or WebhookState.pending.value)
    status = number("webhook_last_status")
    return WebhookDelivery(
        state=state,
        delivery_id=record.get("webhook_delivery_id") or None,
        attempts=int(record.get("webhook_attempts") or 0),
        last_status_code=None if status is None else int(status),
        last_error=record.get("webhook_last_error") or None,
        delivered_at=number("webhook_delivered_at"),
        next_attempt_at=number("webhook_next_at") if state is WebhookState.pending else None,
    )


def public_stages(stored: str | None) -> dict[str, StageRecord]:
    """The ``stages`` field of a job's record (or history entry), as the API shows it."""
    return {
        name: StageRecord(**{**value, "detail": stored_detail(value.get("detail") or {})})
        for name, value in json.loads(stored or "{}").items()
    }


VIEW_NAME = re.compile(r"^\d{2}-[a-z]+(-[a-z]+)*\.png$")  # 00-front.png … 07-front-left.png
SHEET_NAME = "sheet.png"
GENERATED_NAME = re.compile(r"^zero123-\d\.png$")  # InstantMesh's six Zero123++ views, zero123-0.png …


def job_views(job_id: str, stages: dict[str, StageRecord]) -> list[JobView]:
    """The image stage's views and sheet, and the views the reconstruction backend drew itself, as the
    record names them: only files in the job's own folders (``inputs/jobs/<id>/views/``,
    ``…/generated/sheet.png``, ``…/generated/zero123-<k>.png``), by name, never a path."""
    images = stages.get(JobState.generating_images.value)
    if images is None:
        return []
    folder = f"inputs/jobs/{job_id}"
    found = [
        JobView(name=name, kind=ViewKind.view, url=view_url(job_id, name))
        for path in images.detail.get("image_paths") or []
        if isinstance(path, str)
        and path.startswith(f"{folder}/views/")
        and VIEW_NAME.match(name := path.rpartition("/")[2])
    ]
    if images.detail.get("sheet_path") == f"{folder}/generated/{SHEET_NAME}":
        found.append(JobView(name=SHEET_NAME, kind=ViewKind.sheet, url=view_url(job_id, SHEET_NAME)))
    reconstruction = stages.get(JobState.reconstructing_3d.value)
    drawn = reconstruction.detail.get("generated_views") if reconstruction is not None else None
    found += [
        JobView(name=name, kind=ViewKind.generated, url=view_url(job_id, name))
        for path in (drawn if isinstance(drawn, list) else [])
        if isinstance(path, str)
        and path.startswith(f"{folder}/generated/")
        and GENERATED_NAME.match(name := path.rpartition("/")[2])
    ]
    return found


def view_url(job_id: str, name: str) -> str:
    return f"/3d/views/{job_id}/{name}"


def view_file(job_id: str, name: str) -> str:
    """The file of a listed view, relative to inputs/."""
    folder = "generated" if name == SHEET_NAME or GENERATED_NAME.match(name) else "views"
    return f"jobs/{job_id}/{folder}/{name}"
