"""A job's record as the API shows it: the `job:{id}` hash (or a history entry) decoded into the
public schemas, with storage paths relative (orchestrator/public.py)."""

from __future__ import annotations

import json

from meshforge.schemas import JobState, JobStatus, StageRecord, WebhookDelivery, WebhookState
from orchestrator.public import output_name, stored_detail


def to_status(record: dict[str, str]) -> JobStatus:
    job_id = record["job_id"]
    state = JobState(record["state"])
    asset_path = output_name(record.get("asset_path"))
    stages = public_stages(record.get("stages"))
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
        request=json.loads(record.get("request") or "{}"),
        stages=stages,
        attempts=int(record.get("attempts") or 0),
        webhook=webhook_delivery(record),
    )


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
