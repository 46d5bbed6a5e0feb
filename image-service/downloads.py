"""Fetching view images from URLs, with limits on size, time, content type and redirects.

Redirects are followed here rather than by httpx, so every hop is checked (http or https only) and a
failure can say which URL it came from. Every failure is an ``InvalidInput`` whose message starts with
the URL the user gave and says why, because that message ends up in the job status.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

import httpx
from PIL import Image, UnidentifiedImageError

from meshforge.errors import InvalidInput
from meshforge.settings import Settings

MIN_IMAGE_SIDE = 32  # pixels; anything smaller cannot show an object worth reconstructing
MAX_IMAGE_PIXELS = 50_000_000  # width × height; larger images are refused before decoding (memory)
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class DownloadLimits:
    max_bytes: int
    timeout_seconds: float
    max_redirects: int
    content_types: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> DownloadLimits:
        return cls(
            max_bytes=settings.download_max_bytes,
            timeout_seconds=settings.download_timeout_seconds,
            max_redirects=settings.download_max_redirects,
            content_types=tuple(t.strip().lower() for t in settings.download_content_types),
        )


class DownloadFailed(InvalidInput):
    """A URL could not be turned into an image; the message names the URL and the reason."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"could not use the image at {url}: {reason}")
        self.url = url
        self.reason = reason


async def download_image(client: httpx.AsyncClient, url: str, limits: DownloadLimits) -> Image.Image:
    """The decoded image at ``url``, or ``DownloadFailed``. The time limit covers every hop and byte."""
    try:
        data = await asyncio.wait_for(_fetch(client, url, limits), limits.timeout_seconds)
    except TimeoutError:
        reason = f"no complete answer within {limits.timeout_seconds:g} s (the download time limit)"
        raise DownloadFailed(url, reason) from None
    except httpx.HTTPError as exc:
        raise DownloadFailed(url, f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
    return decode_image(data, shown=url)


async def download_images(
    client: httpx.AsyncClient, urls: list[str], limits: DownloadLimits
) -> list[Image.Image]:
    """Every URL's image, fetched in parallel; the first failure (in URL order) is raised."""
    results = await asyncio.gather(*(download_image(client, u, limits) for u in urls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]


async def _fetch(client: httpx.AsyncClient, url: str, limits: DownloadLimits) -> bytes:
    current = url
    for _ in range(limits.max_redirects + 1):
        if httpx.URL(current).scheme not in ("http", "https"):
            raise DownloadFailed(url, f"only http and https can be downloaded, not {current}")
        async with client.stream("GET", current, follow_redirects=False) as response:
            if response.status_code in _REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise DownloadFailed(url, f"{current} answered {response.status_code} without a Location")
                current = str(response.url.join(location))
                continue
            if response.is_error:
                via = "" if current == url else f" (redirected to {current})"
                raise DownloadFailed(url, f"the server answered {response.status_code}{via}")
            _check_content_type(url, response, limits)
            return await _read_limited(url, response, limits.max_bytes)
    raise DownloadFailed(url, f"more than {limits.max_redirects} redirects (last: {current})")


def _check_content_type(url: str, response: httpx.Response, limits: DownloadLimits) -> None:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in limits.content_types:
        raise DownloadFailed(
            url,
            f"not an image: its content type is {content_type or 'missing'}, "
            f"expected one of {', '.join(limits.content_types)}",
        )


async def _read_limited(url: str, response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise DownloadFailed(url, f"too large: {int(declared)} bytes, the limit is {max_bytes}")
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data.extend(chunk)
        if len(data) > max_bytes:
            raise DownloadFailed(url, f"too large: more than the limit of {max_bytes} bytes")
    return bytes(data)


def decode_image(data: bytes, *, shown: str) -> Image.Image:
    """Decode and sanity-check an image (dimensions before decoding, so a bomb is never unpacked)."""
    try:
        image = Image.open(io.BytesIO(data))
        check_dimensions(image.size, shown)
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        raise DownloadFailed(shown, f"not an image: the bytes could not be decoded ({exc})") from None
    return image


def check_dimensions(size: tuple[int, int], shown: str) -> None:
    width, height = size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise DownloadFailed(
            shown, f"{width}×{height} pixels is too small (at least {MIN_IMAGE_SIDE} a side)"
        )
    if width * height > MAX_IMAGE_PIXELS:
        raise DownloadFailed(
            shown, f"{width}×{height} pixels is too large (at most {MAX_IMAGE_PIXELS / 1e6:g} megapixels)"
        )


def download_client() -> httpx.AsyncClient:
    """One client per process; redirects are followed by hand, the total time by ``download_image``."""
    return httpx.AsyncClient(follow_redirects=False, timeout=httpx.Timeout(30.0, connect=5.0))
