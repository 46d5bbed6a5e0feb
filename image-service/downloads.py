"""Fetching view images from URLs, with limits on size, time, content type and redirects.

Every hop goes through meshforge.outbound: the URL is parsed and its host resolved once, the address
must be public (or allow-listed by MESHFORGE_OUTBOUND_ALLOWED_NETWORKS), and the connection goes to
exactly that address; redirects are followed by hand, each hop checked the same way. Every failure is
an ``InvalidInput`` whose message names the URL the user gave (credentials removed) and says that it
is "not allowed" or "could not be fetched", with a reason that never describes what a server
answered (status, content type, connection errors), so downloads cannot be used to map a network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from PIL import Image

from meshforge.addresses import IPNetwork
from meshforge.errors import InvalidInput
from meshforge.images import ImageLimits, ImageRejected
from meshforge.images import decode_image as decode_untrusted
from meshforge.outbound import (
    OutboundClient,
    OutboundFailed,
    OutboundRefused,
    Resolver,
    redact,
    system_resolver,
)
from meshforge.settings import ImageSettings, load_settings


@dataclass(frozen=True)
class DownloadLimits:
    max_bytes: int
    timeout_seconds: float
    max_redirects: int
    content_types: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: ImageSettings) -> DownloadLimits:
        return cls(
            max_bytes=settings.download_max_bytes,
            timeout_seconds=settings.download_timeout_seconds,
            max_redirects=settings.download_max_redirects,
            content_types=tuple(t.strip().lower() for t in settings.download_content_types),
        )


class DownloadFailed(InvalidInput):
    """A URL could not be turned into an image; the message names the URL and the reason."""

    def __init__(self, url: str, reason: str) -> None:
        url = redact(url)
        super().__init__(f"could not use the image at {url}: {reason}")
        self.url = url
        self.reason = reason


async def download_image(client: OutboundClient, url: str, limits: DownloadLimits) -> Image.Image:
    """The decoded image at ``url``, or ``DownloadFailed``."""
    return decode_downloaded(await fetch_image(client, url, limits), shown=redact(url))


async def fetch_image(client: OutboundClient, url: str, limits: DownloadLimits) -> bytes:
    """The bytes at ``url``, or ``DownloadFailed``. The time limit covers every hop and byte."""
    shown = redact(url)
    try:
        data = await asyncio.wait_for(_fetch(client, url, limits), limits.timeout_seconds)
    except TimeoutError:
        within = f"no complete answer within {limits.timeout_seconds:g} s (the download time limit)"
        raise DownloadFailed(shown, f"could not be fetched: {within}") from None
    except OutboundRefused as refused:
        raise DownloadFailed(shown, f"not allowed: {refused.why}") from None
    except OutboundFailed as failed:
        raise DownloadFailed(shown, f"could not be fetched: {failed.why}") from None
    return data


async def fetch_images(client: OutboundClient, urls: list[str], limits: DownloadLimits) -> list[bytes]:
    """Every URL's bytes, fetched in parallel; the first failure (in URL order) is raised. They are
    decoded later, inside image-service's bounded work (MESHFORGE_IMAGE_WORK_CONCURRENCY)."""
    results = await asyncio.gather(*(fetch_image(client, u, limits) for u in urls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]


async def _fetch(client: OutboundClient, url: str, limits: DownloadLimits) -> bytes:
    async with client.stream(url, max_redirects=limits.max_redirects) as response:
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not response.is_success or content_type not in limits.content_types:
            # One reason for a status and for a content type: either could describe an internal server.
            raise OutboundFailed(
                url, f"the server did not answer with an image (accepted: {', '.join(limits.content_types)})"
            )
        return await _read_limited(url, response, limits.max_bytes)


async def _read_limited(url: str, response: httpx.Response, max_bytes: int) -> bytes:
    too_large = f"too large (the limit is {max_bytes} bytes)"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise OutboundFailed(url, too_large)
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data.extend(chunk)
        if len(data) > max_bytes:
            raise OutboundFailed(url, too_large)
    return bytes(data)


def decode_downloaded(
    data: bytes, *, shown: str, fit_side: int | None = None, limits: ImageLimits | None = None
) -> Image.Image:
    """Decode and check downloaded bytes with meshforge.images: the header's size first (a bomb is never
    unpacked), then a full decode (truncated, corrupt and animated files are refused); reduced on load
    so the longer side stays ≥ ``fit_side`` when given. Limits default to the settings'."""
    limits = limits or ImageLimits.from_settings(load_settings(ImageSettings))
    try:
        return decode_untrusted(data, shown, limits, fit_side=fit_side)
    except ImageRejected as rejected:
        raise DownloadFailed(shown, rejected.reason) from None


def download_client(
    *,
    allowed_networks: Iterable[IPNetwork | str] | None = None,
    resolver: Resolver = system_resolver,
    transport: httpx.AsyncBaseTransport | None = None,
) -> OutboundClient:
    """One client per process. The allow-list defaults to MESHFORGE_OUTBOUND_ALLOWED_NETWORKS; tests
    inject a resolver (names → loopback) and a transport (to see which address was asked for)."""
    if allowed_networks is None:
        allowed_networks = load_settings(ImageSettings).outbound_allowed_networks
    return OutboundClient(allowed_networks=allowed_networks, resolver=resolver, transport=transport)
