"""Checking user images (uploads and from-image paths) before any job is created.

An upload is decoded in full (meshforge.images) before it is stored: a truncated, corrupt, animated,
oversized or non-image file is refused with a 4xx naming the file and the reason, and nothing of the
upload is kept. The caller's file name is only ever shown (sanitised, cut short), never used in a path:
stored files are named by their position and the format found in their bytes.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from functools import lru_cache
from pathlib import Path

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from meshforge.errors import InvalidInput, PayloadTooLarge
from meshforge.images import ALLOWED_FORMATS, ImageLimits, decode_image, shown_name
from meshforge.schemas import CANONICAL_VIEW_COUNTS as VIEW_COUNTS
from meshforge.settings import OrchestratorSettings, load_settings
from meshforge.storage import Storage, atomic_write_bytes

# Checking an upload needs only a small copy: a JPEG is decoded at reduced scale (the whole file is
# still read, so truncation shows), any other format is decoded in full and then dropped.
CHECK_SIDE = 1024


def check_view_count(count: int) -> None:
    if count not in VIEW_COUNTS:
        allowed = ", ".join(str(n) for n in VIEW_COUNTS)
        raise InvalidInput(
            f"got {count} images: give {allowed} images in the canonical view order "
            "(1: front only; 4: front, right, back, left; see docs/views.md)"
        )


def check_image_paths(storage: Storage, paths: list[str]) -> None:
    check_view_count(len(paths))
    for path in paths:
        resolved = storage.input_image(path)
        if not resolved.is_file():
            raise InvalidInput(
                f'image path "{path}" does not exist under inputs/ (upload it with POST /3d/upload)'
            )


@lru_cache
def _decode_slots(count: int) -> threading.BoundedSemaphore:
    """Bounds the decodes running at once in this process (each may briefly hold a full-size image).

    A thread semaphore, taken inside the worker thread: waiting uploads hold no decoded pixels, and it
    does not matter which event loop the request came from.
    """
    return threading.BoundedSemaphore(count)


def checked_extension(data: bytes, name: str, limits: ImageLimits, slots: threading.BoundedSemaphore) -> str:
    """The extension to store ``data`` under (from its content), or ``ImageRejected`` naming the file."""
    with slots:
        image = decode_image(data, name, limits, fit_side=CHECK_SIDE)
    return ALLOWED_FORMATS[str(image.format)]


async def store_uploads(
    storage: Storage,
    files: list[UploadFile],
    max_bytes: int,
    max_images: int,
    limits: ImageLimits | None = None,
) -> list[str]:
    """Validate every file first, then store them all under inputs/uploads/<id>/; returns relative paths."""
    if not files:
        raise InvalidInput("no files were uploaded: send one or more images as multipart field 'files'")
    if len(files) > max_images:
        raise InvalidInput(f"too many images: at most {max_images} per upload")
    settings = load_settings(OrchestratorSettings)
    limits = limits or ImageLimits.from_settings(settings)
    slots = _decode_slots(settings.image_work_concurrency)
    checked: list[tuple[bytes, str]] = []
    for upload in files:
        name = shown_name(upload.filename)
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise PayloadTooLarge(
                f'"{name}" is larger than the {max_bytes // (1024 * 1024)} MiB upload limit'
            )
        checked.append((data, await run_in_threadpool(checked_extension, data, name, limits, slots)))
    folder = Path("uploads") / uuid.uuid4().hex
    paths = []
    try:
        for index, (data, extension) in enumerate(checked):
            relative = folder / f"{index:02d}{extension}"
            atomic_write_bytes(storage.inputs / relative, data)
            paths.append(relative.as_posix())
    except BaseException:
        # All or nothing: an upload that cannot be stored whole (a full disk) leaves no folder that
        # would hold space until retention, and whose ids the caller never got.
        shutil.rmtree(storage.inputs / folder, ignore_errors=True)
        raise
    return paths
