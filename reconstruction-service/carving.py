"""The visual hull as a field on a voxel grid: positive inside every silhouette cone, negative outside.

Every silhouette becomes a signed distance map in pixels (positive inside, zero on the outline). A
point's value for one view is that map sampled bilinearly where the point projects, turned into world
units at the point's depth (≈ its distance to the view's cone); its hull value is the minimum over the
views. The zero level set is the visual hull, and because the field varies smoothly across it, marching
cubes places the surface to a fraction of a voxel, not on the staircase a binary occupancy grid gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from meshforge.cancellation import check_cancelled
from meshforge.geometry.sampling import bilinear
from meshforge.geometry.silhouette import foreground_mask
from meshforge.geometry.views import CAMERA_DISTANCE, CanonicalView, camera_for, rotate_points
from reconstruction_service.colours import ViewImage

# Silhouette parts narrower than this many voxels are widened to about this width, so they cannot
# fall between voxel centres and vanish.
THIN_PART_MIN_WIDTH_VOXELS = 1.5
CLAMP_VOXELS = 2.0  # field values are clamped to ±this many voxels; only the sign far out matters
# Blocks of voxels classified at once, and a bound on how fast the field changes per unit length: 1
# across rays (√2 past an image edge), plus the field of view's half-diagonal slope and |value|/depth
# along them; 2 leaves a margin.
_BLOCK = 4
_SUB_BLOCK = 2  # must divide _BLOCK
_LIPSCHITZ = 2.0
# Points sampled at once against one view: a fraction of a second, the longest a cancel waits here.
_SAMPLE_CHUNK = 1 << 18


@dataclass(frozen=True)
class Grid:
    """Cubic voxels of edge ``spacing``; voxel (i, j, k) has its centre at origin + spacing * (i, j, k)."""

    origin: np.ndarray
    spacing: float
    shape: tuple[int, int, int]

    def centres(self, flat_indices: np.ndarray) -> np.ndarray:
        """World positions (N, 3) float32 of the voxels with these flat (C-order) indices."""
        points = np.empty((len(flat_indices), 3), dtype=np.float32)
        for axis, index in enumerate(np.unravel_index(flat_indices, self.shape)):
            points[:, axis] = index
            points[:, axis] *= np.float32(self.spacing)
            points[:, axis] += np.float32(self.origin[axis])
        return points

    def all_centres(self) -> np.ndarray:
        return self.centres(np.arange(math.prod(self.shape)))


@dataclass(frozen=True)
class SilhouetteView:
    image: ViewImage
    signed_distance_px: np.ndarray  # (H, W) float32, positive inside the silhouette


def silhouette_view(image: np.ndarray, view: CanonicalView) -> SilhouetteView:
    """Mask, camera and signed distance map of one input image."""
    array = np.asarray(image)
    mask = foreground_mask(array)
    rgb = array[:, :, :3] if array.ndim == 3 else np.repeat(array[:, :, None], 3, axis=2)
    camera = camera_for(view, mask.shape[0])
    image_view = ViewImage(camera, np.ascontiguousarray(rgb, dtype=np.uint8), mask)
    return SilhouetteView(image_view, _signed_distance_px(mask))


def _signed_distance_px(mask: np.ndarray) -> np.ndarray:
    # Pixel-edge convention: the outline runs half a pixel outside the last foreground pixel centre.
    inside = ndimage.distance_transform_edt(mask) - 0.5
    outside = ndimage.distance_transform_edt(~mask) - 0.5
    return np.where(mask, inside, -outside).astype(np.float32)


def thicken_thin_parts(view: SilhouetteView, voxel_size: float) -> SilhouetteView:
    """Widen silhouette parts narrower than THIN_PART_MIN_WIDTH_VOXELS voxels (at least 2 px) to that width.

    This is the sub-voxel safeguard for thin parts (a pole, a cable, a thin handle). Thin parts are what
    a morphological opening with a disc of the target half-width removes; only those, and the tips of
    sharp corners which the opening also trims, are grown. Thick outlines keep their exact place, so
    unlike dilating the whole silhouette this adds no outward bias to the surface.
    """
    camera = view.image.camera
    half_width = max(1.0, THIN_PART_MIN_WIDTH_VOXELS / 2 * voxel_size * camera.focal_px / CAMERA_DISTANCE)
    core = view.signed_distance_px > half_width
    # One pixel of slack: on a pixel grid the opening would otherwise nibble the outermost ring of a
    # straight outline, and all of the outline would count as thin.
    opened = ndimage.distance_transform_edt(~core) <= half_width + 1.0
    thin = view.image.mask & ~opened
    if not thin.any():
        return view
    to_thin = ndimage.distance_transform_edt(~thin).astype(np.float32)
    signed = np.maximum(view.signed_distance_px, np.float32(half_width - 0.5) - to_thin)
    return SilhouetteView(view.image, signed)


def hull_field(views: Sequence[SilhouetteView], grid: Grid) -> np.ndarray:
    """The hull field on ``grid``, clamped to ±CLAMP_VOXELS voxels (only values near zero matter).

    Most voxels are far inside or far outside. The field is first evaluated at the centres of blocks of
    _BLOCK³ voxels; as it changes by at most _LIPSCHITZ per unit length, a block whose centre value is
    far enough from zero is inside or outside as a whole and takes the clamp value without sampling.
    The blocks left undecided are split into _SUB_BLOCK³ sub-blocks and judged the same way, with the
    smaller margin their size allows, so that only voxels within a few of the surface are sampled
    one by one (about half as many as after the first pass alone). The result is the same voxel for
    voxel: a voxel is only spared sampling where its exact value would have been clamped anyway.
    """
    clamp = CLAMP_VOXELS * grid.spacing
    if min(grid.shape) < 4 * _BLOCK:
        field = _min_over_views(views, grid.all_centres(), floor=-clamp)
        return np.minimum(field, np.float32(clamp)).reshape(grid.shape)
    field = np.full(grid.shape, np.float32(-clamp))
    blocks = _coarse_shape(grid.shape, _BLOCK)
    undecided = _judge_blocks(views, grid, _BLOCK, np.ones(blocks, dtype=bool), field)
    sub_blocks = _coarse_shape(grid.shape, _SUB_BLOCK)
    undecided = _judge_blocks(
        views, grid, _SUB_BLOCK, _expand_blocks(undecided, _BLOCK // _SUB_BLOCK, sub_blocks), field
    )
    band = np.flatnonzero(_expand_blocks(undecided, _SUB_BLOCK, grid.shape))
    check_cancelled()
    flat = field.ravel()
    flat[band] = _min_over_views(views, grid.centres(band), floor=-clamp)
    return np.minimum(flat, np.float32(clamp)).reshape(grid.shape)


def _judge_blocks(
    views: Sequence[SilhouetteView], grid: Grid, size: int, candidates: np.ndarray, field: np.ndarray
) -> np.ndarray:
    """Set ``field`` to +clamp over the ``candidates`` blocks of size³ voxels wholly inside the hull;
    returns which blocks are undecided (those wholly outside keep the -clamp ``field`` starts with)."""
    clamp = CLAMP_VOXELS * grid.spacing
    index = np.flatnonzero(candidates)
    centres = Grid(grid.origin + grid.spacing * (size - 1) / 2, grid.spacing * size, candidates.shape)
    points = centres.centres(index)
    margin = _LIPSCHITZ * grid.spacing * (size - 1) / 2 * math.sqrt(3) + clamp
    values = _min_over_views(views, points, floor=-margin)
    # The field jumps at an image edge the silhouette touches, so blocks there are always sampled.
    uncertain = (np.abs(values) < margin) | _near_image_edge(views, points, margin)
    check_cancelled()  # each of these steps takes a while on a fine grid
    inside = np.zeros(candidates.shape, dtype=bool)
    inside.flat[index[(values >= margin) & ~uncertain]] = True
    field[_expand_blocks(inside, size, grid.shape)] = np.float32(clamp)
    undecided = np.zeros(candidates.shape, dtype=bool)
    undecided.flat[index[uncertain]] = True
    return undecided


def _min_over_views(views: Sequence[SilhouetteView], points: np.ndarray, *, floor: float) -> np.ndarray:
    """The hull field at ``points``, exact above ``floor`` and clamped to it below.

    Points already below ``floor`` skip the remaining views: the minimum can only fall further.
    """
    field = np.full(len(points), np.inf, dtype=np.float32)
    active = np.arange(len(points))
    for view in views:
        for start in range(0, len(active), _SAMPLE_CHUNK):
            check_cancelled()  # a cancelled job stops here, between chunks of one view's carving
            part = active[start : start + _SAMPLE_CHUNK]
            field[part] = np.minimum(field[part], _sample_signed_distance(view, points[part]))
        active = active[field[active] > floor]
    return np.maximum(field, np.float32(floor))


def _sample_signed_distance(view: SilhouetteView, points: np.ndarray) -> np.ndarray:
    """Signed distance to the outline in world units at each point's depth: ≈ distance to the cone."""
    camera = view.image.camera
    cam = rotate_points(points - camera.eye.astype(np.float32), camera.rotation)  # float32 throughout
    depth = np.maximum(cam[:, 2], np.float32(1e-6))
    size = camera.image_size
    u = camera.focal_px * cam[:, 0] / depth + size / 2.0
    v = camera.focal_px * cam[:, 1] / depth + size / 2.0
    # Pixel centres sit at +0.5, so array index = coordinate - 0.5; "nearest" clamps to the border pixel.
    pixels = bilinear(view.signed_distance_px, v - np.float32(0.5), u - np.float32(0.5), outside="nearest")
    # Beyond the image nothing is seen, so it is carved: there the value is at most -0.5 and falls by the
    # distance past the edge. Unlike a flat -inf this keeps the field continuous (unless the silhouette
    # itself touches the edge), which the block classification in hull_field relies on.
    outside = np.flatnonzero((u < 0) | (u > size) | (v < 0) | (v > size))
    if outside.size:
        u_out, v_out = u[outside], v[outside]
        past_u = np.maximum(np.maximum(-u_out, u_out - size), 0)
        past_v = np.maximum(np.maximum(-v_out, v_out - size), 0)
        past_edge = np.hypot(past_u, past_v).astype(np.float32)
        pixels[outside] = np.minimum(pixels[outside], np.float32(-0.5)) - past_edge
    pixels[cam[:, 2] <= 1e-6] = -np.inf  # behind the camera (never inside the canonical volume)
    return pixels * depth / np.float32(camera.focal_px)


def _near_image_edge(views: Sequence[SilhouetteView], points: np.ndarray, distance: float) -> np.ndarray:
    """Whether each point projects within ``distance`` (world units at its depth) of an image edge that
    its silhouette touches.

    Where the (thickened) silhouette keeps off the image's border, every border pixel is at most -0.5
    and the field carries on smoothly past the edge (``_sample_signed_distance``), so only the views
    whose silhouette reaches the border are checked.
    """
    near = np.zeros(len(points), dtype=bool)
    for view in views:
        signed = view.signed_distance_px
        border = max(signed[0].max(), signed[-1].max(), signed[:, 0].max(), signed[:, -1].max())
        if border <= -0.5:
            continue
        camera = view.image.camera
        uv, depth = camera.project(points)
        to_edge_px = np.abs(np.minimum(uv, camera.image_size - uv)).min(axis=1)
        near |= to_edge_px * depth / camera.focal_px < distance
    return near


def _coarse_shape(shape: tuple[int, int, int], size: int) -> tuple[int, int, int]:
    """How many blocks of size³ cover a grid of ``shape`` (the last ones may stick out)."""
    return (-(-shape[0] // size), -(-shape[1] // size), -(-shape[2] // size))


def _expand_blocks(per_block: np.ndarray, size: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Each block's value repeated over its size³ cells, cropped to ``shape``."""
    expanded = per_block
    for axis in range(3):
        expanded = np.repeat(expanded, size, axis=axis)
    return expanded[: shape[0], : shape[1], : shape[2]]
