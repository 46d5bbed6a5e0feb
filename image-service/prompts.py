"""The multi-view prompt set: one prompt per canonical view, built from the user's prompt."""

from __future__ import annotations

from meshforge.geometry.views import CanonicalView

STYLE = (
    "a single object, centered, whole object in frame, plain neutral grey background, soft studio lighting"
)


def view_prompt(prompt: str, view: CanonicalView) -> str:
    return f"{prompt.strip().rstrip('.,;')}, {view.prompt_phrase}, {STYLE}"


def view_prompts(prompt: str, views: tuple[CanonicalView, ...]) -> list[str]:
    return [view_prompt(prompt, view) for view in views]


def view_seed(seed: int | None, index: int) -> int | None:
    """Each view gets its own seed derived from the job's, so a job's views are reproducible."""
    return None if seed is None else (seed + index) % 2**32
