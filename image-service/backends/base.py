"""The image stage's view source: FLUX-style text-to-image calls, however they are reached."""

from __future__ import annotations

from typing import Protocol

from meshforge.stage_schemas import FluxGenerateRequest, FluxGenerateResponse


class ImageDrawer(Protocol):
    """Draws one image per request (flux-service replicas over HTTP, or a backend in-process)."""

    name: str

    async def draw(self, request: FluxGenerateRequest) -> FluxGenerateResponse:
        """Draw ``request`` and write it to ``request.output_path``."""
        ...

    async def draw_many(self, requests: list[FluxGenerateRequest]) -> list[FluxGenerateResponse]:
        """Draw requests that share size and sampling settings, in as few model calls as the
        replicas allow; answers in the order of ``requests``."""
        ...

    async def draws_posed_views(self) -> bool:
        """True when the backend renders the canonical camera named by ``view`` itself (a renderer,
        not a model): its views agree by construction and sit exactly in the canonical frame."""
        ...
