"""Fetching view images from URLs, with limits on size, time, type and redirects."""

from __future__ import annotations

import asyncio
import io

import httpx
from PIL import Image, UnidentifiedImageError

from meshforge.errors import InvalidInput

MAX_REDIRECTS = 3


async def download_image(
    client: httpx.AsyncClient, url: str, *, max_bytes: int, timeout: float
) -> Image.Image:
    """The image at ``url``; every failure is InvalidInput naming the URL and the reason."""
    try:
        return await asyncio.wait_for(_fetch(client, url, max_bytes), timeout)
    except TimeoutError:
        raise InvalidInput(f"could not download {url}: no complete answer within {timeout:.0f} s") from None
    except httpx.TooManyRedirects:
        raise InvalidInput(f"could not download {url}: more than {MAX_REDIRECTS} redirects") from None
    except httpx.HTTPError as exc:
        raise InvalidInput(f"could not download {url}: {type(exc).__name__} {exc}".rstrip()) from None


async def _fetch(client: httpx.AsyncClient, url: str, max_bytes: int) -> Image.Image:
    async with client.stream("GET", url, follow_redirects=True) as response:
        if response.is_error:
            raise InvalidInput(f"could not download {url}: the server answered {response.status_code}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not content_type.startswith("image/"):
            raise InvalidInput(f"{url} is not an image (content type {content_type or 'missing'})")
        declared = int(response.headers.get("content-length") or 0)
        if declared > max_bytes:
            raise InvalidInput(f"{url} is too large ({declared} bytes; the limit is {max_bytes})")
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data.extend(chunk)
            if len(data) > max_bytes:
                raise InvalidInput(f"{url} is too large (over the {max_bytes}-byte limit)")
    try:
        image = Image.open(io.BytesIO(bytes(data)))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInput(f"{url} could not be read as an image") from exc
    return image


def download_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(max_redirects=MAX_REDIRECTS, timeout=httpx.Timeout(30.0, connect=5.0))
