"""Turnaround sheets: several views of one object in one image, laid out in an even grid.

Views go in the canonical order, left to right, then top to bottom. Cells are square and their side is
a multiple of 16 (FLUX works on 16-pixel patches), and the sheet stays within flux-service's 2048-pixel
limit per side, so a large view size gets smaller cells (normalisation scales them back up).
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from meshforge.geometry.views import BACKGROUND_RGB

MAX_SHEET_SIDE = 2048
CELL_MULTIPLE = 16
# Columns × rows for each canonical view count: wide sheets, as turnaround sheets usually are.
GRIDS: dict[int, tuple[int, int]] = {1: (1, 1), 4: (4, 1), 8: (4, 2)}


@dataclass(frozen=True)
class SheetLayout:
    columns: int
    rows: int
    cell: int

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the whole sheet."""
        return self.columns * self.cell, self.rows * self.cell

    @property
    def count(self) -> int:
        return self.columns * self.rows

    def box(self, index: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of view ``index``'s cell."""
        row, column = divmod(index, self.columns)
        return column * self.cell, row * self.cell, (column + 1) * self.cell, (row + 1) * self.cell


def layout_for(view_count: int, view_size: int) -> SheetLayout:
    if view_count not in GRIDS:
        raise ValueError(f"no sheet layout for {view_count} views; use {', '.join(map(str, GRIDS))}")
    columns, rows = GRIDS[view_count]
    largest = MAX_SHEET_SIDE // max(columns, rows)
    cell = min(view_size, largest) // CELL_MULTIPLE * CELL_MULTIPLE
    return SheetLayout(columns, rows, max(cell, CELL_MULTIPLE))


def compose(views: list[Image.Image], layout: SheetLayout) -> Image.Image:
    """Paste views (any size; resized to the cell) into one RGBA sheet on the neutral background.

    The cells keep their alpha: a renderer's exact matte then survives the split, and normalisation
    uses it instead of guessing the background (a white box's lit top is close to the grey)."""
    if len(views) != layout.count:
        raise ValueError(
            f"a {layout.columns}×{layout.rows} sheet holds {layout.count} views, not {len(views)}"
        )
    sheet = Image.new("RGBA", layout.size, (*BACKGROUND_RGB, 0))
    for index, view in enumerate(views):
        left, top, _, _ = layout.box(index)
        sheet.paste(
            view.convert("RGBA").resize((layout.cell, layout.cell), Image.Resampling.LANCZOS), (left, top)
        )
    return sheet


def split(sheet: Image.Image, layout: SheetLayout) -> list[Image.Image]:
    """The sheet's cells, one image per view, in the canonical order."""
    if sheet.size != layout.size:
        sheet = sheet.resize(layout.size, Image.Resampling.LANCZOS)
    return [sheet.crop(layout.box(index)) for index in range(layout.count)]
