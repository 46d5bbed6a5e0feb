"""Drawing the views of one prompt so that they agree on one object (docs/images.md).

Three strategies (``ViewConsistency``):

* independent: one generation per view with its own prompt and seed. Views sampled independently
  disagree (shape, proportions, colours, details), which ruins reconstruction; kept as the control.
* anchored: every view uses the same seed and the same object description, only the view phrase
  differs; the front view is drawn first (a failure stops before the other calls are spent).
* sheet: one generation of a turnaround sheet showing every view in an even grid, split into views.
  One image shares one sampling of the object, so shape, scale and colours agree across the cells.

A backend that renders the canonical cameras itself (flux-service's procedural shapes) is consistent by
construction and cannot draw a sheet; for it the sheet is composed cell by cell from posed renders, so
the same splitting, matting and normalisation code runs as for a model's sheet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from image_service.backends.base import ImageDrawer
from image_service.prompts import sheet_prompt, view_prompt, view_seed
from image_service.sheet import compose, layout_for, split
from meshforge.cancellation import report_progress
from meshforge.errors import BackendError
from meshforge.geometry.views import CanonicalView
from meshforge.images import encode_png
from meshforge.schemas import random_seed
from meshforge.stage_schemas import FluxGenerateRequest, FluxGenerateResponse, ViewConsistency
from meshforge.storage import atomic_write_bytes


@dataclass
class DrawnViews:
    images: list[Image.Image]
    backend: str
    posed: bool  # views sit exactly in the canonical frame (keep their placement when normalising)
    detail: dict[str, Any] = field(default_factory=dict)


async def draw_views(
    drawer: ImageDrawer,
    prompt: str,
    views: tuple[CanonicalView, ...],
    size: int,
    seed: int | None,
    strategy: ViewConsistency,
    folder: Path,
) -> DrawnViews:
    report_progress(0, len(views), "views")  # each drawing call adds its views (backends/flux_replicas.py)
    posed = await drawer.draws_posed_views()
    if len(views) == 1:  # nothing to agree with; a sheet prompt would ask for a "grid" of one drawing
        answers = await _per_view(drawer, prompt, views, size, lambda _: seed, folder)
        return _drawn(answers, drawer, posed, {"consistency": "single view", "generations": 1})
    if strategy is ViewConsistency.independent:
        answers = await _per_view(drawer, prompt, views, size, lambda i: view_seed(seed, i), folder)
        return _drawn(answers, drawer, posed, {"consistency": strategy.value, "generations": len(views)})
    shared = seed if seed is not None else random_seed()  # one seed even when none given
    if strategy is ViewConsistency.anchored:
        front = await _per_view(drawer, prompt, views[:1], size, lambda _: shared, folder)
        rest = await _per_view(drawer, prompt, views[1:], size, lambda _: shared, folder, first_index=1)
        detail = {"consistency": strategy.value, "generations": len(views), "shared_seed": shared}
        return _drawn(front + rest, drawer, posed, detail)
    return await _sheet(drawer, prompt, views, size, shared, folder, posed)


async def _sheet(
    drawer: ImageDrawer,
    prompt: str,
    views: tuple[CanonicalView, ...],
    size: int,
    seed: int,
    folder: Path,
    posed: bool,
) -> DrawnViews:
    layout = layout_for(len(views), size)
    target = folder / "sheet.png"
    if posed:
        answers = await _per_view(drawer, prompt, views, layout.cell, lambda _: seed, folder)
        sheet = compose([_open(a) for a in answers], layout)
        atomic_write_bytes(target, encode_png(sheet), durable=False)  # never half a sheet under its name
        how = "composed from posed renders, one per cell"
    else:
        width, height = layout.size
        request = FluxGenerateRequest(
            prompt=sheet_prompt(prompt, views, layout.columns, layout.rows),
            width=width,
            height=height,
            seed=seed,
            output_path=str(target),
            return_b64=False,
        )
        answers = [await drawer.draw(request)]
        target = Path(answers[0].image_path)
        how = "one generation"
    detail = {
        "consistency": ViewConsistency.sheet.value,
        "generations": len(answers),
        "shared_seed": seed,
        "sheet": {"columns": layout.columns, "rows": layout.rows, "cell": layout.cell, "drawn": how},
        "sheet_path": str(target),
    }
    with Image.open(target) as sheet:  # a composed sheet keeps the renders' alpha; a model's is RGB
        cells = split(sheet.copy(), layout)
    return DrawnViews(cells, _backend(answers, drawer), posed, detail)


async def _per_view(
    drawer: ImageDrawer,
    prompt: str,
    views: tuple[CanonicalView, ...],
    size: int,
    seed_of: Callable[[int], int | None],
    folder: Path,
    first_index: int = 0,
) -> list[FluxGenerateResponse]:
    requests = [
        FluxGenerateRequest(
            prompt=view_prompt(prompt, view),
            width=size,
            height=size,
            seed=seed_of(index),
            view=view.name,
            output_path=str(folder / f"{index:02d}-{view.name}.png"),
            return_b64=False,
        )
        for index, view in enumerate(views, start=first_index)
    ]
    return await drawer.draw_many(requests)


def _drawn(
    answers: list[FluxGenerateResponse], drawer: ImageDrawer, posed: bool, detail: dict[str, Any]
) -> DrawnViews:
    return DrawnViews([_open(answer) for answer in answers], _backend(answers, drawer), posed, detail)


def _backend(answers: list[FluxGenerateResponse], drawer: ImageDrawer) -> str:
    return f"{drawer.name}:{'+'.join(sorted({answer.backend for answer in answers}))}"


def _open(answer: FluxGenerateResponse) -> Image.Image:
    try:
        image = Image.open(answer.image_path)
        image.load()
    except OSError as exc:
        raise BackendError(
            f"the image flux-service wrote ({answer.image_path}) cannot be read: {exc}"
        ) from exc
    return image
