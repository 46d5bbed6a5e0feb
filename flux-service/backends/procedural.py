"""The offline text-to-image backend: draws simple shapes named in the prompt (no model, no GPU).

Not FLUX: it understands prompts such as "a tall blue cylinder" and renders that primitive from the
canonical camera the view names, with an exact alpha matte. Anything else is refused with a message
saying how to enable FLUX (flux_service.procedural). The drawing is exact, so seeds change nothing and
a batch is a loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from flux_service.backends.base import ImageJob, Rendered, RenderOptions
from flux_service.procedural import SHAPES, parse_prompt, render_view
from meshforge.cancellation import check_cancelled, report_progress
from meshforge.errors import InvalidInput
from meshforge.geometry.views import FRONT, VIEWS_BY_NAME, CanonicalView
from meshforge.schemas import Capabilities


class ProceduralShapes:
    name = "procedural"
    max_batch = 1
    # A renderer: each view is drawn from the canonical camera it names, so views agree by construction.
    capabilities = Capabilities(posed_views=True)

    def __init__(self) -> None:
        # In /health, so that a client (the web UI) can say what it draws before anyone submits.
        self.detail: dict[str, Any] = {"shapes": list(SHAPES)}

    def generate_batch(self, jobs: Sequence[ImageJob], options: RenderOptions) -> Rendered:
        if options.width != options.height:
            raise InvalidInput(
                f"the procedural backend renders square views; got {options.width}×{options.height}"
            )
        # Parse every prompt first, so that a bad one fails the batch before any drawing.
        shapes = [(parse_prompt(job.prompt), _canonical(job.view)) for job in jobs]
        images = []
        for shape, view in shapes:
            check_cancelled()  # between images: a cancelled job stops drawing here
            images.append(Image.fromarray(render_view(shape, view, options.width), mode="RGBA"))
            report_progress(len(images), len(shapes), "views")
        return Rendered(images, pipeline_calls=len(images))


def _canonical(view: str | None) -> CanonicalView:
    if view is None:
        return FRONT
    if view not in VIEWS_BY_NAME:
        raise InvalidInput(f'unknown view "{view}": use one of {", ".join(VIEWS_BY_NAME)}')
    return VIEWS_BY_NAME[view]
