"""The JSON bodies of the submits, and the sorting of from_images' inputs into URLs and local files."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshforge.client.errors import InvalidImages
from meshforge.schemas import CANONICAL_VIEW_COUNTS, Origin, OutputFormat, QualityTier

# What one file of an upload is to httpx: (field, (file name, content, content type)).
UploadPart = tuple[str, tuple[str, bytes, str]]


@dataclass(frozen=True)
class JobOptions:
    """The options both submits share (meshforge.schemas.JobOptions); None leaves the server's default."""

    output_format: OutputFormat | str = OutputFormat.glb
    quality_tier: QualityTier | str = QualityTier.standard
    seed: int | None = None
    target_faces: int | None = None
    origin: Origin | str = Origin.bottom
    height_m: float | None = None
    webhook_url: str | None = None  # a newer server's field: sent only when given

    def body(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "output_format": str(self.output_format),
            "quality_tier": str(self.quality_tier),
            "origin": str(self.origin),
            "seed": self.seed,
            "target_faces": self.target_faces,
            "height_m": self.height_m,
            "webhook_url": self.webhook_url,
        }
        return {name: value for name, value in fields.items() if value is not None}


def is_url(image: str | Path) -> bool:
    return isinstance(image, str) and image.lower().startswith(("http://", "https://"))


@dataclass(frozen=True)
class Images:
    """from_images' inputs: all URLs (sent as image_urls) or all local files (uploaded first)."""

    urls: list[str]
    files: list[Path]

    @classmethod
    def sort(cls, images: Sequence[str | Path]) -> Images:
        """Checked before anything is uploaded: 1, 4 or 8 images, not mixed, every file there."""
        if isinstance(images, str | Path):
            raise InvalidImages("give a list of images, not a single string or path")
        counts = ", ".join(str(n) for n in CANONICAL_VIEW_COUNTS[:-1]) + f" or {CANONICAL_VIEW_COUNTS[-1]}"
        if len(images) not in CANONICAL_VIEW_COUNTS:
            raise InvalidImages(
                f"{len(images)} images given: give {counts} views, in the canonical view order "
                "(docs/views.md: the front alone; front, right, back, left; or all eight)"
            )
        urls = [str(image) for image in images if is_url(image)]
        files = [Path(image) for image in images if not is_url(image)]
        if urls and files:
            raise InvalidImages("give either local files or http(s) URLs, not both in one job")
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise InvalidImages(f"no such image file: {', '.join(missing)}")
        return cls(urls, files)


def upload_parts(files: Sequence[Path]) -> list[UploadPart]:
    """The multipart ``files`` fields of POST /3d/upload. Read into memory (the server takes at most
    20 MiB a file) so that a retried upload sends the same bytes again."""
    parts: list[UploadPart] = []
    for path in files:
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        parts.append(("files", (path.name, path.read_bytes(), media_type)))
    return parts
