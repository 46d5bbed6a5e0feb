"""Checking user images (uploads and from-image paths) before any job is created."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from fastapi import UploadFile
from PIL import Image, UnidentifiedImageError

from meshforge.errors import InvalidInput, PayloadTooLarge
from meshforge.schemas import CANONICAL_VIEW_COUNTS as VIEW_COUNTS
from meshforge.storage import Storage, atomic_write_bytes

FORMAT_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}


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


def sniff_image(data: bytes, name: str) -> str:
    """The image format, or InvalidInput naming the file when it is not an image Pillow can read."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            fmt = image.format or ""
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InvalidInput(f'"{name}" is not a readable image (PNG, JPEG, WebP, BMP or TIFF)') from exc
    if fmt not in FORMAT_EXTENSIONS:
        raise InvalidInput(f'"{name}" is a {fmt} image; use PNG, JPEG, WebP, BMP or TIFF')
    return fmt


async def store_uploads(
    storage: Storage, files: list[UploadFile], max_bytes: int, max_images: int
) -> list[str]:
    """Validate every file first, then store them all under inputs/uploads/<id>/; returns relative paths."""
    if not files:
        raise InvalidInput("no files were uploaded: send one or more images as multipart field 'files'")
    if len(files) > max_images:
        raise InvalidInput(f"too many images: at most {max_images} per upload")
    checked: list[tuple[bytes, str]] = []
    for upload in files:
        name = upload.filename or "upload"
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise PayloadTooLarge(
                f'"{name}" is larger than the {max_bytes // (1024 * 1024)} MiB upload limit'
            )
        checked.append((data, FORMAT_EXTENSIONS[sniff_image(data, name)]))
    folder = Path("uploads") / uuid.uuid4().hex
    paths = []
    for index, (data, extension) in enumerate(checked):
        relative = folder / f"{index:02d}{extension}"
        atomic_write_bytes(storage.inputs / relative, data)
        paths.append(relative.as_posix())
    return paths
