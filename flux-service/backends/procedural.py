"""The offline text-to-image backend: draws simple shapes named in the prompt (no model, no GPU).

Not FLUX: it understands prompts such as "a tall blue cylinder" and renders that primitive from the
canonical camera the view names, with an exact alpha matte. Anything else is refused with a message
saying how to enable FLUX (flux_service.procedural).
"""

from __future__ import annotations

from PIL import Image

from flux_service.procedural import parse_prompt, render_view
from meshforge.errors import InvalidInput
from meshforge.geometry.views import FRONT, VIEWS_BY_NAME, CanonicalView


class ProceduralShapes:
    name = "procedural-shapes"

    def generate(
        self, prompt: str, width: int, height: int, seed: int | None, view: str | None
    ) -> Image.Image:
        if width != height:
            raise InvalidInput(f"the procedural backend renders square views; got {width}×{height}")
        return Image.fromarray(render_view(parse_prompt(prompt), _canonical(view), width), mode="RGBA")


def _canonical(view: str | None) -> CanonicalView:
    if view is None:
        return FRONT
    if view not in VIEWS_BY_NAME:
        raise InvalidInput(f'unknown view "{view}": use one of {", ".join(VIEWS_BY_NAME)}')
    return VIEWS_BY_NAME[view]
