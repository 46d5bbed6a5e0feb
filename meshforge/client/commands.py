"""The CLI's commands: each takes the parsed arguments and a Client, prints through Output, and returns
the exit code (meshforge/client/cli.py lists them)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from meshforge.client.bodies import Images
from meshforge.client.config import format_of
from meshforge.client.output import Output, size
from meshforge.client.progress import StageProgress
from meshforge.client.sync import Client
from meshforge.schemas import JobCreated, JobState, JobStatus, OutputFormat

OK, JOB_FAILED = 0, 1


class UsageError(Exception):
    """Arguments that cannot make a request, found before anything is sent (exit code 2)."""


@dataclass(frozen=True)
class Plan:
    """What the arguments of a submit mean, checked before anything is sent or uploaded."""

    output_format: OutputFormat = OutputFormat.glb
    output: Path | None = None
    images: Images | None = None


def plan(args: argparse.Namespace) -> Plan:
    if args.command not in ("generate", "from-image"):
        return Plan()
    images = Images.sort(args.images) if args.command == "from-image" else None
    output = Path(args.output) if args.output else None
    if output is not None and not args.wait:
        raise UsageError("-o needs --wait: download the asset later with 'meshforge download JOB -o FILE'")
    named = format_of(output) if output is not None and not output.is_dir() else None
    if output is not None and not output.is_dir() and named is None and args.format is None:
        raise UsageError(
            f"cannot tell the format from '{output.name}': end it with .glb, .obj.zip, .obj, .fbx, .stl "
            "or .usdz, or give --format"
        )
    if args.format is not None and named is not None and named.value != args.format:
        raise UsageError(f"-o {output} asks for {named.value}, but --format says {args.format}")
    output_format = OutputFormat(args.format) if args.format else named or OutputFormat.glb
    if output is not None and named is OutputFormat.obj and not output.name.lower().endswith(".zip"):
        output = output.with_name(output.name + ".zip")  # the OBJ download is a zip: say so in its name
    return Plan(output_format, output, images)


def run(client: Client, args: argparse.Namespace, plan: Plan, out: Output) -> int:
    handlers: dict[str, Callable[[Client, argparse.Namespace, Plan, Output], int]] = {
        "generate": generate,
        "from-image": from_image,
        "status": status,
        "jobs": jobs,
        "cancel": cancel,
        "download": download,
        "health": health,
    }
    return handlers[args.command](client, args, plan, out)


def generate(client: Client, args: argparse.Namespace, plan: Plan, out: Output) -> int:
    created = client.generate(
        args.prompt,
        output_format=plan.output_format,
        quality_tier=args.tier,
        seed=args.seed,
        target_faces=args.faces,
        origin=args.origin,
        height_m=args.height_m,
        webhook_url=args.webhook_url,
        idempotency_key=args.idempotency_key,
    )
    return _follow(client, args, plan, out, created)


def from_image(client: Client, args: argparse.Namespace, plan: Plan, out: Output) -> int:
    assert plan.images is not None
    created = client.from_images(
        plan.images.files or plan.images.urls,
        output_format=plan.output_format,
        quality_tier=args.tier,
        seed=args.seed,
        target_faces=args.faces,
        origin=args.origin,
        height_m=args.height_m,
        webhook_url=args.webhook_url,
        idempotency_key=args.idempotency_key,
    )
    return _follow(client, args, plan, out, created)


def _follow(client: Client, args: argparse.Namespace, plan: Plan, out: Output, created: JobCreated) -> int:
    """Waits for the job (with a progress bar on stderr), then downloads the asset to -o."""
    if not args.wait:
        out.result(created.model_dump(mode="json"), created.job_id)
        return OK
    out.note(f"job {created.job_id} submitted")
    with StageProgress(created.job_id) as bar:
        final = client.wait(created.job_id, timeout=args.timeout, on_event=bar)
    record = final.model_dump(mode="json")
    if final.state is not JobState.completed:
        out.note(f"job {final.job_id} {final.state.value}: {final.message}")
        if out.as_json:
            out.result(record, "")
        return JOB_FAILED
    took = f" in {final.updated_at - final.created_at:.1f} s"
    if plan.output is None:
        hint = f"download it with 'meshforge download {final.job_id} -o FILE'"
        out.result(record, f"job {final.job_id} completed{took}: {hint}")
        return OK
    path = client.download(final.job_id, plan.output)
    out.result(
        {**record, "output_file": str(path)},
        f"job {final.job_id} completed{took}: wrote {path} ({size(path.stat().st_size)})",
    )
    return OK


def status(client: Client, args: argparse.Namespace, plan: Plan, out: Output) -> int:
    job = client.status(args.job_id, wait=args.wait or None)
    out.result(job.model_dump(mode="json"), _describe(job))
    return OK


def jobs(client: Client, args: argparse.Namespace, plan: Plan, out: Output) -> int:
    page = client.jobs(offset=args.offset, limit=args.limit, state=args.state)
    lines = [_describe(job) for job in page.jobs]
    lines.append(f"{len(page.jobs)} of {page.total} jobs (from {page.offset})")
    out.result(page.model_dump(mode="json"), "\n".join(lines))
    return OK


def cancel(client: Client, args: argparse.Namespace, plan: Plan, out: Output) -> int:
    job = client.cancel(args.job_id)
    out.result(job.model_dump(mode="json"), _describe(job))
    return OK


def download(client: Client, args: argparse.Namespace, plan: Plan, out: Output) -> int:
    if args.preview:
        path = client.preview(args.job_id, args.output)
    else:
        path = client.download(args.job_id, args.output, format=args.format)
    written = path.stat().st_size
    out.result(
        {"job_id": args.job_id, "output_file": str(path), "bytes": written}, f"wrote {path} ({size(written)})"
    )
    return OK


def health(client: Client, args: argparse.Namespace, plan: Plan, out: Output) -> int:
    answer = client.health()
    lines = [f"{answer.service}: {answer.status}"]
    stages = answer.detail.get("stages")
    for stage, replicas in (stages if isinstance(stages, dict) else {}).items():
        for replica, report in (replicas if isinstance(replicas, dict) else {}).items():
            if isinstance(report, dict):
                backend = f" ({report['backend']})" if report.get("backend") else ""
                lines.append(f"  {stage} {replica}: {report.get('status', '?')}{backend}")
    out.result(answer.model_dump(mode="json"), "\n".join(lines))
    return OK


def _describe(job: JobStatus) -> str:
    """One line for people: id, state, progress, when, what, and the message."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.created_at))
    prompt = job.request.get("prompt")
    images = job.request.get("image_paths") or job.request.get("image_urls") or []
    what = f'"{prompt}"' if isinstance(prompt, str) else f"{len(images)} images"
    return f"{job.job_id}  {job.state.value:<17} {job.progress:>3}%  {when}  {what}  {job.message}"
