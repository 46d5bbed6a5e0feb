"""Decoding untrusted images (uploads, downloads, files under inputs/) safely.

Every image a caller sends is treated as hostile. ``decode_image`` accepts it only when:

- its bytes are one of the allowed formats (PNG, JPEG, WebP, BMP, TIFF), recognised by content, never
  by the file name; only those Pillow plugins are ever asked to parse it;
- its header's width × height is within the pixel limit (``MESHFORGE_MAX_IMAGE_PIXELS``), checked
  before a single pixel is decoded, so a small file claiming a huge image (a decompression bomb) is
  never unpacked; Pillow's own bomb guard answers the same way;
- each side is at least ``MIN_IMAGE_SIDE`` pixels;
- it is a still image (one frame: no APNG, animated WebP or multi-page TIFF);
- it decodes completely (truncated and corrupt files are refused; ``LOAD_TRUNCATED_IMAGES`` is never
  set).

An image bigger than the caller needs is reduced while it is loaded (``Image.draft`` lets the JPEG
decoder skip detail; other formats are box-averaged by ``Image.reduce``), so later float work runs near
the working size. Every refusal is an ``ImageRejected`` naming the file (sanitised) and the reason.

The other way, ``encode_png`` turns the images meshforge makes itself into PNG bytes.
"""

from __future__ import annotations

import io
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, ImageFile

from meshforge.errors import InvalidInput
from meshforge.settings import ImageLimitsSettings

# Pillow format name → the extension a stored copy gets (the content decides, not the caller's name).
ALLOWED_FORMATS: dict[str, str] = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
}
FORMATS_TEXT = "PNG, JPEG, WebP, BMP or TIFF"
MIN_IMAGE_SIDE = 32  # pixels; anything smaller cannot show an object worth reconstructing
NAME_LIMIT = 100  # characters of a caller's file name shown in a message
_HEAD_BYTES = 512  # enough to tell what a refused file is instead
# Unicode categories replaced in shown names: controls, format (bidi overrides), surrogates, private,
# unassigned, and the line/paragraph separators that would break a log line.
_UNSHOWN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# How an allowed format's file starts: a file that starts so but cannot be opened is corrupt.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
# Modes Image.reduce averages correctly (RGBA and LA are premultiplied by Pillow while reducing).
_REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA")


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = 16_000_000
    min_side: int = MIN_IMAGE_SIDE

    @classmethod
    def from_settings(cls, settings: ImageLimitsSettings) -> ImageLimits:
        return cls(max_pixels=settings.max_image_pixels)


def shown_name(name: str | None, limit: int = NAME_LIMIT) -> str:
    """A caller's file name made safe to show: control and format characters replaced, cut short.

    File names from a multipart body are attacker-chosen text. They only ever appear in messages,
    never in a path; this keeps NUL bytes, newlines, bidi overrides and 5000-character names out of
    job statuses and logs.
    """
    text = unicodedata.normalize("NFC", name or "") or "upload"
    cleaned = "".join("?" if unicodedata.category(ch) in _UNSHOWN else ch for ch in text)
    cleaned = cleaned.replace('"', "'")
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


class ImageRejected(InvalidInput):
    """An image that cannot be used; the message names the file and says why and what to send."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = shown_name(name)
        self.reason = reason
        super().__init__(f'"{self.name}" cannot be used: {reason}')


def decode_image(
    source: bytes | Path,
    name: str,
    limits: ImageLimits,
    *,
    fit_side: int | None = None,
) -> Image.Image:
    """The fully decoded image; with ``fit_side``, reduced on load so its longer side is at most that.

    Its ``format`` is always one of ``ALLOWED_FORMATS``. Raises ``ImageRejected`` for anything that
    is not a single, complete, allowed, sized image.
    """
    if isinstance(source, Path):
        with source.open("rb") as stream:
            return _decode(stream, name, limits, fit_side)
    return _decode(io.BytesIO(source), name, limits, fit_side)


def check_size(size: tuple[int, int], name: str, limits: ImageLimits) -> None:
    """Refuse an image by the width × height its header claims (before anything is decoded)."""
    width, height = size
    if width * height > limits.max_pixels:
        raise ImageRejected(
            name,
            f"{width}×{height} pixels is too large (at most {limits.max_pixels / 1e6:g} megapixels): "
            "send a smaller image",
        )
    if min(width, height) < limits.min_side:
        raise ImageRejected(
            name, f"{width}×{height} pixels is too small (at least {limits.min_side} pixels a side)"
        )


def reduce_to(image: Image.Image, side: int) -> Image.Image:
    """``image`` box-averaged down so its longer side is ``side`` (unchanged when already no longer).

    A whole-factor ``reduce`` does most of the work (fast, exact box average); a box resize takes off
    the rest, so a 2000-pixel image meant for 1024 is not kept at nearly four times the pixels.
    """
    longer = max(image.size)
    if longer <= side:
        return image
    image = _reducible(image)
    factor = longer // side
    if factor >= 2:
        image = image.reduce(factor)
    width, height = image.size
    if max(width, height) > side:
        scale = side / max(width, height)
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(target, Image.Resampling.BOX)
    return image


def encode_png(image: Image.Image, *, optimize: bool = False) -> bytes:
    """``image`` as PNG bytes, in memory: every service writes its images (views, sheets, textures,
    previews) through this, then stores them atomically, zips them or sends them as they are."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=optimize)
    return buffer.getvalue()


def _decode(stream: IO[bytes], name: str, limits: ImageLimits, fit_side: int | None) -> Image.Image:
    head = stream.read(_HEAD_BYTES)
    if not head:
        raise ImageRejected(name, "the file is empty (0 bytes)")
    stream.seek(0)
    image = _identify(stream, head, name)
    check_size(image.size, name, limits)
    frames = _frames(image, name)
    if frames > 1:
        raise ImageRejected(name, f"it is animated ({frames} frames): send a still image")
    if fit_side is not None and image.format == "JPEG":
        image.draft(None, _draft_size(image.size, fit_side))
    _load(image, name)
    usable = _eight_bit(image)
    if fit_side is not None:
        usable = reduce_to(usable, fit_side)
    usable.format = image.format  # a converted or reduced copy has none; callers name stored files by it
    return usable


def _identify(stream: IO[bytes], head: bytes, name: str) -> ImageFile.ImageFile:
    try:
        return Image.open(stream, formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (its limit is far above ours): the header claims an enormous image.
        claimed = _claimed_pixels(str(exc))
        raise ImageRejected(
            name, f"its header claims {claimed} pixels, far too many to decode: send a smaller image"
        ) from None
    except Exception:
        # A parser fed hostile bytes can fail in any way (Pillow raises UnidentifiedImageError, but
        # also ValueError, struct.error, ...): each means the same thing, it is not a usable image.
        raise ImageRejected(name, _not_an_image(head)) from None


def _frames(image: ImageFile.ImageFile, name: str) -> int:
    """How many frames the file holds (a TIFF's are counted by walking its page chain)."""
    try:
        return int(getattr(image, "n_frames", 1))
    except Exception:  # a broken or looping chain of pages
        reason = f"it is corrupt: the frames of the {image.format} file could not be read"
        raise ImageRejected(name, reason) from None


def _load(image: ImageFile.ImageFile, name: str) -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # a process-wide switch some library might flip: refuse to decode
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; truncated images would pass")
    try:
        image.load()
    except MemoryError:
        raise
    except Exception:  # any decoder failure: truncated, corrupt, or inconsistent with its header
        raise ImageRejected(
            name,
            f"it is truncated or corrupt: the {image.format} data could not be decoded "
            "(send the complete file)",
        ) from None


def _draft_size(size: tuple[int, int], fit_side: int) -> tuple[int, int]:
    """The size to ask the JPEG decoder for so the longer side stays ≥ ``fit_side``."""
    width, height = size
    longer = max(width, height)
    if longer <= fit_side:
        return size
    return math.ceil(width * fit_side / longer), math.ceil(height * fit_side / longer)


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale (PNG, TIFF) as 8-bit: converting it to RGB would clip every value above 255."""
    if not image.mode.startswith("I;16"):
        return image
    # PIL alone (the control plane has no numpy): a linear point map on 32-bit integers, then 8-bit.
    return image.convert("I").point(lambda value: value * (1 / 256)).convert("L")


def _reducible(image: Image.Image) -> Image.Image:
    if image.mode in _REDUCIBLE_MODES:
        return image
    has_alpha = "A" in image.mode or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _claimed_pixels(message: str) -> str:
    found = re.search(r"\((\d+) pixels\)", message)
    return f"{int(found.group(1)) / 1e6:g} million" if found else "hundreds of millions of"


def _not_an_image(head: bytes) -> str:
    """Why the bytes were refused, in words: say what they look like when that is easy to tell."""
    text = head.lstrip().lower()
    claimed = next((fmt for magic, fmt in _MAGIC if head.startswith(magic)), None)
    if claimed is not None:
        return f"it looks like a {claimed} file but could not be decoded: it is truncated or corrupt"
    if head.startswith((b"GIF87a", b"GIF89a")):
        what = "a GIF image"
    elif text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        what = "an SVG drawing"
    elif text.startswith((b"<!doctype html", b"<html")):
        what = "an HTML page"
    elif text.startswith((b"{", b"[")):
        what = "JSON or other text"
    elif _looks_like_text(head):
        what = "text"
    else:
        return f"it is not an image: the bytes could not be decoded as {FORMATS_TEXT}"
    return f"it is {what}: send a {FORMATS_TEXT} image"


def _looks_like_text(head: bytes) -> bool:
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in decoded)
