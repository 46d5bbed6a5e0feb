"""Prompts for the image stage, built from the user's prompt: one per view, or one turnaround sheet.

Every prompt carries the same object description (the user's prompt, trimmed) so the views describe
one object; only the view phrase differs. The sheet prompt asks for a character-sheet image with the
views in the canonical order, left to right and top to bottom, in an even grid (``sheet.SheetLayout``).
"""

from __future__ import annotations

from meshforge.geometry.views import CanonicalView
from meshforge.schemas import MAX_SEED

STYLE = (
    "a single object, centered, whole object in frame, plain neutral grey background, soft studio lighting"
)
SHEET_STYLE = (
    "the same single object drawn {count} times, identical in shape, size, colour and details in every "
    "drawing, each drawing centred in its own equal cell of an even {columns} by {rows} grid, nothing "
    "else in the picture, no text, no labels, no borders, no shadows, orthographic, plain neutral grey "
    "background, soft even studio lighting"
)


def object_description(prompt: str) -> str:
    """The user's prompt as the object description every view shares."""
    return prompt.strip().rstrip(".,;")


def view_prompt(prompt: str, view: CanonicalView) -> str:
    return f"{object_description(prompt)}, {view.prompt_phrase}, {STYLE}"


def view_seed(seed: int | None, index: int) -> int | None:
    """Each view gets its own seed derived from the job's, so a job's views are reproducible."""
    return None if seed is None else (seed + index) % (MAX_SEED + 1)


def sheet_prompt(prompt: str, views: tuple[CanonicalView, ...], columns: int, rows: int) -> str:
    """A turnaround (character) sheet of the object from every view, in the canonical reading order."""
    order = ", then ".join(view.prompt_phrase for view in views)
    return (
        f"turnaround reference sheet of {object_description(prompt)}, "
        f"{len(views)} views in reading order from left to right and top to bottom: {order}, "
        + SHEET_STYLE.format(count=len(views), columns=columns, rows=rows)
    )
