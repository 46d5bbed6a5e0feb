"""Multi-view silhouette reconstruction: the visual hull of views taken in the canonical camera layout.

This is the offline (no GPU) reconstruction backend. Each view's silhouette, seen from its canonical
camera (``meshforge.geometry.views``), sweeps out a cone; the object lies inside every cone, and the
intersection of the cones is the visual hull. The hull is exact where some camera sees an outline
edge-on and too big where none can: concavities (the inside of a bowl) stay filled, and because each
perspective camera sees only the near outline of a face and its cone widens behind it, flat faces
bulge a little (a unit cube from the four horizontal views comes back about 8% wider across the
middle of each face with the current camera distance). Chamfer distances are in docs.

How it is computed (field and carving in ``carving.py``, colours in ``colours.py``):

* Two passes. A coarse 32³ grid over everything the canonical cameras can see, with a conservative
  test (a voxel survives if its bounding ball may reach the hull), gives the occupied box; the fine
  grid then puts ``resolution`` voxels along that box's longest side, padded by two voxels. So the
  fine pass adapts to uploaded photos whose object is not exactly ``OBJECT_EXTENT`` across.
* The fine field is the minimum over views of the signed distance to each silhouette's cone, with parts
  thinner than 1.5 voxels widened first so they survive; marching cubes at level 0, with an empty border
  layer so the surface is closed, gives the mesh, wound outward.
* The hull must cover at least ``MIN_SILHOUETTE_COVERAGE`` of every silhouette when seen from that
  view; otherwise the views do not agree on one object and the input is rejected.

Single image (views == (FRONT,)): a deliberately low-fidelity result, not an error. The object is
assumed to look alike from the front, the back and both sides: the front silhouette also serves as the
right view, and mirrored as the back and left views (the back camera sees the world's +X on its left,
so mirroring keeps the four cones consistent instead of intersecting the outline with its mirror
image). Colours come from the front image through the same four stand-in views, so the back repeats
the front. The caller should tell the user that depth and the hidden sides were guessed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import trimesh
from scipy import ndimage
from skimage import measure

from meshforge.cancellation import check_cancelled, report_progress
from meshforge.errors import InvalidInput
from meshforge.geometry.views import CAMERA_DISTANCE, FOV_DEG, FRONT, VIEWS_BY_NAME, CanonicalView
from meshforge.geometry.visuals import colour_visual
from reconstruction_service.carving import (
    Grid,
    SilhouetteView,
    hull_field,
    silhouette_view,
    thicken_thin_parts,
)
from reconstruction_service.colours import project_vertex_colours

COARSE_RESOLUTION = 32
# Opposite cameras together see at most the frustum's half-width at the origin along each axis; a
# quarter more leaves room for the conservative coarse test at the edges.
COARSE_HALF_EXTENT = 1.25 * CAMERA_DISTANCE * math.tan(math.radians(FOV_DEG) / 2)
FINE_PADDING_VOXELS = 2
MIN_RESOLUTION = 8
MAX_RESOLUTION = 256  # 256³ float32 voxels are already 64 MiB per field copy
# The hull seen from each camera must cover this share of that camera's silhouette (consistent views
# give 100%); less means the views disagree about the object: wrong order, positions or objects.
MIN_SILHOUETTE_COVERAGE = 0.6
_COVERAGE_SAMPLE_LIMIT = 250_000

_INCONSISTENT_VIEWS = (
    "the views do not show one object from the canonical camera positions: {detail}. Check that the "
    "images are given in the canonical order and show the same object, centred, from the positions in "
    "docs/views.md"
)


def reconstruct(
    images: Sequence[np.ndarray], views: Sequence[CanonicalView], *, resolution: int = 96
) -> trimesh.Trimesh:
    """A closed, vertex-coloured mesh of the object the ``images`` show from the canonical ``views``.

    ``images`` are square RGBA (matte in alpha) or RGB (plain background) uint8 arrays, one per view,
    all the same size. ``resolution`` is the number of voxels along the longest side of the object's
    bounding box (64–96 for standard quality, 128–160 for high). The mesh is in world units of the
    canonical convention (front +Z, +Y up), outward-facing, with uint8 RGBA ``visual.vertex_colors``.

    A single FRONT image gives a low-fidelity mesh assuming the object looks alike from the front, back
    and both sides (see the module docstring). Raises ``InvalidInput`` for mismatched or unusable
    images and for views whose silhouettes do not agree on one object, and ``ValueError`` for a
    ``resolution`` outside [MIN_RESOLUTION, MAX_RESOLUTION] (a configuration error, not user input).
    """
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise ValueError(f"resolution must lie in [{MIN_RESOLUTION}, {MAX_RESOLUTION}], got {resolution}")
    _check_inputs(images, views)
    images, views = _stand_in_views_for_single_front(images, views)
    # Progress: each view's silhouette, the field, the coverage check, the surface, each view's colours.
    progress = _Steps(2 * len(views) + 3)
    prepared = []
    for image, view in zip(images, views, strict=True):
        prepared.append(silhouette_view(image, view))
        progress.step()

    fine = _fine_grid(prepared, resolution)
    field = hull_field([thicken_thin_parts(view, fine.spacing) for view in prepared], fine)
    if field.max() <= 0:
        raise InvalidInput(_INCONSISTENT_VIEWS.format(detail="no point lies inside every silhouette"))
    progress.step()
    _check_coverage(prepared, fine, field)
    progress.step()

    check_cancelled()  # between the steps too (carving checks between views, see carving.py)
    mesh = _surface(field, fine)
    progress.step()
    check_cancelled()
    colours = project_vertex_colours(
        mesh, [view.image for view in prepared], voxel_size=fine.spacing, on_view=progress.step
    )
    colour_visual(mesh).vertex_colors = colours
    return mesh


class _Steps:
    """The job's progress through a plan of ``total`` steps (meshforge.cancellation.report_progress)."""

    def __init__(self, total: int) -> None:
        self.done, self.total = 0, total
        report_progress(0, total, "steps")

    def step(self) -> None:
        self.done += 1
        report_progress(self.done, self.total, "steps")


def _check_inputs(images: Sequence[np.ndarray], views: Sequence[CanonicalView]) -> None:
    if len(images) != len(views):
        raise InvalidInput(f"got {len(images)} images for {len(views)} views; give one image per view")
    if not images:
        raise InvalidInput("no images were given")
    shapes = {np.asarray(image).shape[:2] for image in images}
    if len(shapes) != 1:
        sizes = ", ".join(f"{w}×{h}" for h, w in sorted(shapes))
        raise InvalidInput(f"all views must have the same size; got {sizes}")
    height, width = shapes.pop()
    if height != width:
        raise InvalidInput(f"views must be square images; got {width}×{height}")


def _stand_in_views_for_single_front(
    images: Sequence[np.ndarray], views: Sequence[CanonicalView]
) -> tuple[list[np.ndarray], list[CanonicalView]]:
    if tuple(views) != (FRONT,):
        return list(images), list(views)
    front = np.asarray(images[0])
    mirrored = front[:, ::-1]
    names = ("front", "right", "back", "left")
    return [front, front, mirrored, mirrored], [VIEWS_BY_NAME[name] for name in names]


def _fine_grid(views: Sequence[SilhouetteView], resolution: int) -> Grid:
    """Find the occupied box on a coarse grid, then cover it (padded) with ``resolution`` voxels."""
    spacing = 2 * COARSE_HALF_EXTENT / COARSE_RESOLUTION
    origin = np.full(3, -COARSE_HALF_EXTENT + spacing / 2)
    field = hull_field(views, Grid(origin, spacing, (COARSE_RESOLUTION,) * 3))
    # Conservative: keep a voxel if its bounding ball (radius = half its diagonal) may reach the hull.
    occupied = np.argwhere(field > -spacing * math.sqrt(3) / 2)
    if occupied.size == 0:
        raise InvalidInput(_INCONSISTENT_VIEWS.format(detail="no point lies inside every silhouette"))
    low = origin + spacing * (occupied.min(axis=0) - 0.5)
    high = origin + spacing * (occupied.max(axis=0) + 0.5)
    fine_spacing = float((high - low).max()) / resolution
    counts = np.ceil((high - low) / fine_spacing).astype(int) + 2 * FINE_PADDING_VOXELS
    fine_origin = (low + high) / 2 - fine_spacing * (counts - 1) / 2
    return Grid(fine_origin, fine_spacing, (int(counts[0]), int(counts[1]), int(counts[2])))


def _check_coverage(views: Sequence[SilhouetteView], grid: Grid, field: np.ndarray) -> None:
    """Reject hulls that explain too little of some silhouette (the views disagree about the object)."""
    inside = np.flatnonzero(field.ravel() > 0)
    stride = max(1, math.ceil(inside.size / _COVERAGE_SAMPLE_LIMIT))
    points = grid.centres(inside[::stride])
    # Sampled points lie about stride**(1/3) voxels apart; grow each into a disc that closes the gaps.
    gap_world = grid.spacing * (stride ** (1 / 3) + 1)
    for index, view in enumerate(views):
        check_cancelled()
        camera, mask = view.image.camera, view.image.mask
        uv, depth = camera.project(points)
        pixels = np.floor(uv).astype(int)
        size = camera.image_size
        on_image = (pixels[:, 0] >= 0) & (pixels[:, 0] < size) & (pixels[:, 1] >= 0) & (pixels[:, 1] < size)
        hits = np.zeros_like(mask)
        hits[pixels[on_image, 1], pixels[on_image, 0]] = True
        covered = ndimage.distance_transform_edt(~hits) <= gap_world * camera.focal_px / float(depth.min())
        share = (covered & mask).sum() / mask.sum()
        if share < MIN_SILHOUETTE_COVERAGE:
            detail = f"the shape they agree on covers only {share:.0%} of the silhouette in view {index + 1}"
            raise InvalidInput(_INCONSISTENT_VIEWS.format(detail=detail))


def _surface(field: np.ndarray, grid: Grid) -> trimesh.Trimesh:
    """Marching cubes at the hull's zero level; an empty border layer makes the surface closed."""
    outside = min(float(field.min()), -grid.spacing)
    padded = np.pad(field, 1, mode="constant", constant_values=outside)
    vertices, faces, _, _ = measure.marching_cubes(
        padded, level=0.0, spacing=(grid.spacing,) * 3, allow_degenerate=False
    )
    vertices = vertices + (grid.origin - grid.spacing)  # undo the one-voxel pad
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=True)
    if _signed_volume(mesh) < 0:  # skimage's winding follows its gradient convention; make faces point out
        mesh.invert()
    return mesh


def _signed_volume(mesh: trimesh.Trimesh) -> float:
    """Volume by the divergence theorem; negative when the faces wind inward."""
    a, b, c = (np.asarray(mesh.triangles)[:, i] for i in range(3))
    return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)
