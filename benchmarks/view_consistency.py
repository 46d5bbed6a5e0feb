"""View consistency of the image stage's strategies, measured as silhouette agreement.

    .venv/bin/python -m benchmarks.view_consistency [--size 256] [--views 8]
    .venv/bin/python -m benchmarks.view_consistency --size 64 --views 4 --prompt "a red cube"  # quick check
    .venv/bin/python -m benchmarks.view_consistency --flux-url http://gpu-host:38120 --prompt "a red teapot" \
        --inputs /srv/meshforge/inputs

For each strategy the views are drawn through the production code (image_service.consistency), matted
and normalised (meshforge.geometry.normalise) and scored by image_service.view_agreement: the IoU, per
view, of the carved visual hull's projection with the view's silhouette (1.0 = one object explains every
view). Prints a Markdown table of mean and worst-view IoU, averaged over the prompts.

Offline (default) the views come from flux-service's procedural backend in-process, which renders one
3D shape from every canonical camera, so every strategy agrees by construction; the rows that matter are
the controls: views of a different random shape each ("inconsistent"), a sheet read in the wrong cell
order ("misordered sheet"), and the sheet cells re-centred as a model's sheet is ("sheet as a model's").
With --flux-url the same strategies run against live flux-service replicas (FLUX.1 on a GPU); they write
each image where they are asked, inside their inputs/ folder, so --inputs names that folder as this
machine sees it (shared storage). Each run's images go to inputs/jobs/<id>/generated/, as a job's do
(the dispatcher's layout, orchestrator/stages.py), and are removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from flux_service.procedural import parse_prompt, render_view
from image_service.backends.base import ImageDrawer
from image_service.backends.flux_replicas import FluxReplicas
from image_service.consistency import DrawnViews, draw_views
from image_service.matting import load_matting
from image_service.sheet import layout_for
from image_service.view_agreement import Agreement, silhouette_of, view_agreement
from meshforge.geometry.normalise import normalise_views
from meshforge.geometry.views import VIEWS_BY_NAME, CanonicalView, view_set
from meshforge.settings import ImageSettings, load_settings
from meshforge.stage_schemas import FluxGenerateRequest, FluxGenerateResponse, ViewConsistency

PROMPTS = ("a red cube", "a tall blue cylinder", "a green torus", "a wide yellow box", "an orange cone")
RANDOM_SHAPES = ("cube", "sphere", "tall cylinder", "cone", "torus", "wide box", "pyramid", "capsule")


def draw_procedural(prompt: str, size: int, view: str | None) -> Image.Image:
    return Image.fromarray(
        render_view(parse_prompt(prompt), VIEWS_BY_NAME[view or "front"], size), mode="RGBA"
    )


class InProcessProcedural:
    """flux-service's procedural drawing without HTTP: the same images, written where asked. An
    ``ImageDrawer`` (image_service/backends/base.py), as the flux-service replicas are."""

    name = "in-process"

    async def draw(self, request: FluxGenerateRequest) -> FluxGenerateResponse:
        started = time.monotonic()
        image = draw_procedural(request.prompt, request.width, request.view)
        Path(request.output_path).parent.mkdir(parents=True, exist_ok=True)
        image.save(request.output_path)
        return FluxGenerateResponse(
            image_path=request.output_path,
            seed=request.seed,
            backend="procedural",
            seconds=time.monotonic() - started,
        )

    async def draw_many(self, requests: list[FluxGenerateRequest]) -> list[FluxGenerateResponse]:
        # The procedural backend draws one image per call (max_batch 1): one after another, in order.
        return [await self.draw(request) for request in requests]

    async def draws_posed_views(self) -> bool:
        return True


def score(
    images: list[Image.Image], views: tuple[CanonicalView, ...], size: int, centre_each: bool
) -> Agreement:
    matting = load_matting(load_settings(ImageSettings))
    normalised = normalise_views(images, size, matting=matting, centre_each=centre_each)
    return view_agreement([silhouette_of(rgba) for rgba in normalised], views)


def inconsistent_views(views: tuple[CanonicalView, ...], size: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    shapes = rng.choice(RANDOM_SHAPES, size=len(views), replace=len(views) > len(RANDOM_SHAPES))
    return [
        draw_procedural(f"a red {shape}", size, view.name) for shape, view in zip(shapes, views, strict=True)
    ]


def misordered(drawn: DrawnViews) -> list[Image.Image]:
    """The sheet's cells one position off, as if the layout had been read wrongly."""
    return drawn.images[1:] + drawn.images[:1]


@contextlib.contextmanager
def inputs_folder(inputs: Path | None) -> Iterator[Path]:
    """The inputs/ folder the images are written under: the given one, or a temporary one."""
    if inputs is not None:
        yield inputs
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp) / "inputs"


async def run(
    drawer: ImageDrawer,
    prompts: list[str],
    views: tuple[CanonicalView, ...],
    size: int,
    inputs: Path | None = None,
) -> dict[str, list[Agreement]]:
    rows: dict[str, list[Agreement]] = {}
    with inputs_folder(inputs) as root:
        for p, prompt in enumerate(prompts):
            for strategy in ViewConsistency:
                job = root / "jobs" / uuid.uuid4().hex  # one job's folder, as the dispatcher makes it
                try:
                    drawn = await draw_views(drawer, prompt, views, size, 7, strategy, job / "generated")
                finally:
                    shutil.rmtree(job, ignore_errors=True)
                rows.setdefault(strategy.value, []).append(score(drawn.images, views, size, not drawn.posed))
                if strategy is ViewConsistency.sheet and drawn.posed:
                    rows.setdefault("sheet as a model's (cells re-centred)", []).append(
                        score(drawn.images, views, size, True)
                    )
                    rows.setdefault("control: misordered sheet", []).append(
                        score(misordered(drawn), views, size, False)
                    )
            if drawer.name == InProcessProcedural.name:
                rows.setdefault("control: inconsistent (random shape per view)", []).append(
                    score(inconsistent_views(views, size, p), views, size, False)
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--views", type=int, default=8, choices=(4, 8))
    parser.add_argument("--flux-url", action="append", help="live flux-service replica(s) instead of offline")
    parser.add_argument("--prompt", action="append", help="prompt(s); default: five procedural shapes")
    parser.add_argument(
        "--inputs",
        type=Path,
        help="the flux-service replicas' inputs/ folder, as this machine sees it (needed with --flux-url)",
    )
    args = parser.parse_args()
    if args.flux_url and args.inputs is None:
        parser.error("--flux-url needs --inputs: the replicas write only under their inputs/ folder")
    views = view_set(args.views)
    drawer = InProcessProcedural() if not args.flux_url else _replicas(args.flux_url)
    prompts = args.prompt or list(PROMPTS)
    started = time.monotonic()
    rows = asyncio.run(run(drawer, prompts, views, args.size, args.inputs))
    layout = layout_for(args.views, args.size)
    print(
        f"{len(prompts)} prompts, {args.views} views at {args.size}² "
        f"(sheet {layout.size[0]}×{layout.size[1]}), "
        f"matting {load_settings(ImageSettings).matting_backend}, {time.monotonic() - started:.1f} s\n"
    )
    print("| views | mean IoU | worst view IoU (mean over prompts) | worst view IoU (any prompt) |")
    print("|---|---|---|---|")
    for name, scores in rows.items():
        mean = np.mean([s.mean_iou for s in scores])
        worst = np.mean([s.min_iou for s in scores])
        print(f"| {name} | {mean:.3f} | {worst:.3f} | {min(s.min_iou for s in scores):.3f} |")


def _replicas(urls: list[str]) -> FluxReplicas:
    from meshforge.http import ReplicaPool, make_client

    return FluxReplicas(ReplicaPool("flux-service", urls, make_client(600.0)))


if __name__ == "__main__":
    main()
