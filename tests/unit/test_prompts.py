"""The image stage's prompts, turnaround-sheet layout and view-consistency strategies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flux_service.procedural import parse_prompt, render_view
from image_service.consistency import draw_views
from image_service.prompts import sheet_prompt, view_prompt, view_seed
from image_service.sheet import MAX_SHEET_SIDE, compose, layout_for, split
from image_service.view_agreement import silhouette_of, view_agreement
from meshforge.geometry.normalise import normalise_views
from meshforge.geometry.views import BACKGROUND_RGB, VIEWS_BY_NAME, view_set
from meshforge.stage_schemas import FluxGenerateRequest, FluxGenerateResponse, ViewConsistency


def test_every_view_prompt_shares_the_object_description_and_names_its_view() -> None:
    prompts = [view_prompt("a red cube. ", view) for view in view_set(8)]
    assert all(p.startswith("a red cube, ") for p in prompts)
    assert "front right view, seen from slightly above" in prompts[1]
    assert len(set(prompts)) == 8


def test_view_seeds_follow_the_job_seed_and_wrap() -> None:
    assert [view_seed(10, i) for i in range(3)] == [10, 11, 12]
    assert view_seed(2**32 - 1, 1) == 0 and view_seed(None, 3) is None


def test_sheet_prompt_lists_the_views_in_reading_order_and_the_grid() -> None:
    prompt = sheet_prompt("a teapot", view_set(4), 4, 1)
    assert prompt.startswith("turnaround reference sheet of a teapot")
    order = [prompt.index(f"{name} view") for name in ("front", "right", "back", "left")]
    assert order == sorted(order)
    assert "4 by 1 grid" in prompt and "neutral grey background" in prompt


@pytest.mark.parametrize(
    ("views", "size", "grid", "cell"),
    [(8, 256, (4, 2), 256), (4, 512, (4, 1), 512), (8, 1024, (4, 2), 512), (8, 200, (4, 2), 192)],
)
def test_sheet_layout_fits_flux_limits(views: int, size: int, grid: tuple[int, int], cell: int) -> None:
    layout = layout_for(views, size)
    assert (layout.columns, layout.rows, layout.cell) == (*grid, cell)
    assert all(side % 16 == 0 and side <= MAX_SHEET_SIDE for side in layout.size)


def test_a_composed_sheet_splits_back_into_the_views_in_order() -> None:
    layout = layout_for(8, 32)
    colours = [(i * 30, 255 - i * 30, 100) for i in range(8)]
    cells = split(compose([Image.new("RGB", (50, 50), c) for c in colours], layout), layout)
    assert [np.asarray(cell.convert("RGB"))[16, 16].tolist() for cell in cells] == [list(c) for c in colours]
    assert all(cell.size == (32, 32) for cell in cells)


def test_a_composed_sheet_keeps_each_renders_alpha_through_the_split() -> None:
    """A renderer's exact matte must survive: guessing the background of a white box lit close to the
    neutral grey once carved the box away."""
    layout = layout_for(4, 32)
    render = Image.new("RGBA", (32, 32), (*BACKGROUND_RGB, 0))
    render.paste((*BACKGROUND_RGB, 255), (8, 8, 24, 24))  # an object exactly the background's colour
    cells = split(compose([render] * 4, layout), layout)
    alphas = [np.asarray(cell.convert("RGBA"))[..., 3] for cell in cells]
    assert all(cell.mode == "RGBA" for cell in cells)
    assert all((alpha == np.asarray(render)[..., 3]).all() for alpha in alphas)


def test_a_sheet_of_another_size_is_resampled_to_the_layout_before_splitting() -> None:
    layout = layout_for(4, 64)
    cells = split(Image.new("RGB", (500, 130), BACKGROUND_RGB), layout)
    assert [cell.size for cell in cells] == [(64, 64)] * 4


class RecordingDrawer:
    """Draws like flux-service's procedural backend (posed) or like a model (sheets allowed)."""

    name = "fake"

    def __init__(self, posed: bool) -> None:
        self.posed = posed
        self.requests: list[FluxGenerateRequest] = []

    async def draw(self, request: FluxGenerateRequest) -> FluxGenerateResponse:
        self.requests.append(request)
        if request.view is not None:
            view = VIEWS_BY_NAME[request.view]
            image = Image.fromarray(render_view(parse_prompt("a red cube"), view, request.width))
        else:  # a "model" sheet: posed renders in the grid, as a perfect model would draw it
            layout = layout_for(8, request.height // 2)
            renders = [render_view(parse_prompt("a red cube"), v, layout.cell) for v in view_set(8)]
            image = compose([Image.fromarray(r) for r in renders], layout)
        Path(request.output_path).parent.mkdir(parents=True, exist_ok=True)
        image.save(request.output_path)
        return FluxGenerateResponse(image_path=request.output_path, backend="drawn", seconds=0.0)

    async def draw_many(self, requests: list[FluxGenerateRequest]) -> list[FluxGenerateResponse]:
        return [await self.draw(request) for request in requests]

    async def draws_posed_views(self) -> bool:
        return self.posed


JOB = "0123456789abcdef0123456789abcdef"


def generated(tmp_path: Path) -> Path:
    """Where image-service has a job's images drawn: the dispatcher's inputs/jobs/<id>, generated/."""
    return tmp_path / "inputs" / "jobs" / JOB / "generated"


def _draw(drawer: RecordingDrawer, strategy: ViewConsistency, tmp_path: Path, seed: int | None = 5):
    folder = generated(tmp_path)
    return asyncio.run(draw_views(drawer, "a red cube", view_set(8), 64, seed, strategy, folder))


@pytest.mark.parametrize("strategy", list(ViewConsistency))
def test_a_single_view_is_one_plain_front_view_prompt_whatever_the_strategy(
    tmp_path: Path, strategy: ViewConsistency
) -> None:
    drawer = RecordingDrawer(posed=False)
    folder = generated(tmp_path)
    drawn = asyncio.run(draw_views(drawer, "a red cube", view_set(1), 64, 5, strategy, folder))
    (request,) = drawer.requests
    assert request.view == "front" and (request.width, request.height) == (64, 64)
    assert request.output_path == str(folder / "00-front.png")
    assert "sheet" not in request.prompt and request.seed == 5
    assert drawn.detail == {"consistency": "single view", "generations": 1}


def test_independent_views_each_get_their_own_seed(tmp_path: Path) -> None:
    drawer = RecordingDrawer(posed=False)
    drawn = _draw(drawer, ViewConsistency.independent, tmp_path)
    assert sorted(r.seed for r in drawer.requests) == list(range(5, 13))
    paths = [r.output_path for r in drawer.requests]  # one file per view, all in the job's folder
    assert paths == [str(generated(tmp_path) / f"{i:02d}-{v.name}.png") for i, v in enumerate(view_set(8))]
    assert drawn.detail["consistency"] == "independent" and len(drawn.images) == 8


def test_anchored_views_share_one_seed_and_the_front_is_drawn_first(tmp_path: Path) -> None:
    drawer = RecordingDrawer(posed=False)
    drawn = _draw(drawer, ViewConsistency.anchored, tmp_path, seed=None)
    assert drawer.requests[0].view == "front"
    assert (
        len({r.seed for r in drawer.requests}) == 1 and drawn.detail["shared_seed"] == drawer.requests[0].seed
    )
    assert all(r.prompt.startswith("a red cube, ") for r in drawer.requests)


def test_a_model_draws_the_sheet_in_one_generation_within_flux_limits(tmp_path: Path) -> None:
    drawer = RecordingDrawer(posed=False)
    drawn = _draw(drawer, ViewConsistency.sheet, tmp_path)
    (request,) = drawer.requests
    assert (request.width, request.height) == (256, 128) and request.view is None
    assert request.output_path == str(generated(tmp_path) / "sheet.png")
    assert request.prompt.startswith("turnaround reference sheet")
    assert drawn.detail["generations"] == 1 and not drawn.posed
    assert [image.size for image in drawn.images] == [(64, 64)] * 8


def test_a_posed_backend_fills_the_sheet_cell_by_cell(tmp_path: Path) -> None:
    drawer = RecordingDrawer(posed=True)
    drawn = _draw(drawer, ViewConsistency.sheet, tmp_path)
    assert [r.view for r in drawer.requests] == [v.name for v in view_set(8)]
    assert drawn.posed and drawn.detail["sheet"]["drawn"].startswith("composed")
    assert Path(drawn.detail["sheet_path"]).is_file()


@pytest.mark.parametrize("posed", [True, False])
def test_sheet_views_agree_on_one_object(tmp_path: Path, posed: bool) -> None:
    drawn = _draw(RecordingDrawer(posed=posed), ViewConsistency.sheet, tmp_path)
    normalised = normalise_views(drawn.images, 64, centre_each=not drawn.posed)
    score = view_agreement([silhouette_of(v) for v in normalised], view_set(8))
    assert score.min_iou > 0.85  # re-centring each 64-px cell costs a little agreement


def test_views_of_different_objects_score_low_agreement() -> None:
    views = view_set(8)
    shapes = ["cube", "sphere", "tall cylinder", "cone", "torus", "wide box", "pyramid", "capsule"]
    images = [render_view(parse_prompt(f"a red {s}"), v, 96) for s, v in zip(shapes, views, strict=True)]
    score = view_agreement([silhouette_of(image) for image in images], views)
    assert score.mean_iou < 0.8 and score.min_iou < 0.6
