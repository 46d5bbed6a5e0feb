"""How well a set of views agrees on one object: silhouette agreement through a carved visual hull.

Carve a voxel grid with every view's silhouette from its canonical camera (a voxel survives if its
centre projects inside the silhouette in every view), project the surviving hull back into each view
and compare that with the view's own silhouette by intersection over union. Views of one object give an
IoU near 1 in every view (the hull explains each silhouette); views that disagree carve away what some
silhouette shows, and that view's IoU drops. The score is about shape only: colours are not compared.

Silhouettes are compared at ``MASK_SIZE`` pixels, so the score does not depend on the view size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from meshforge.geometry.views import CAMERA_DISTANCE, FOV_DEG, Camera, CanonicalView, camera_for

MASK_SIZE = 96
GRID_RESOLUTION = 96
# The cameras see ±HALF_EXTENT around the origin (frustum half-width at the origin, plus a margin).
HALF_EXTENT = 1.05 * CAMERA_DISTANCE * math.tan(math.radians(FOV_DEG) / 2)


@dataclass(frozen=True)
class Agreement:
    per_view_iou: tuple[float, ...]

    @property
    def mean_iou(self) -> float:
        return float(np.mean(self.per_view_iou))

    @property
    def min_iou(self) -> float:
        return float(np.min(self.per_view_iou))

    def as_detail(self) -> dict[str, float | list[float]]:
        return {
            "mean_iou": round(self.mean_iou, 3),
            "min_iou": round(self.min_iou, 3),
            "per_view_iou": [round(v, 3) for v in self.per_view_iou],
        }


def silhouette_of(rgba: np.ndarray) -> np.ndarray:
    """A normalised view's silhouette (alpha > 127) resampled to MASK_SIZE²."""
    alpha = Image.fromarray(np.ascontiguousarray(np.asarray(rgba)[..., 3]))
    return np.asarray(alpha.resize((MASK_SIZE, MASK_SIZE), Image.Resampling.BILINEAR)) > 127


def view_agreement(silhouettes: list[np.ndarray], views: tuple[CanonicalView, ...]) -> Agreement:
    """Per-view IoU of the carved hull's projection with each (MASK_SIZE², bool) silhouette."""
    if len(silhouettes) != len(views):
        raise ValueError(f"{len(silhouettes)} silhouettes for {len(views)} views")
    cameras = [camera_for(view, MASK_SIZE) for view in views]
    spacing = 2 * HALF_EXTENT / GRID_RESOLUTION
    axis = (np.arange(GRID_RESOLUTION) + 0.5) * spacing - HALF_EXTENT
    points = _carve_grid(cameras[0], silhouettes[0], axis)
    # The hull is the same in any order; the views most across the first one carve away the most,
    # so taking them next leaves the fewest points for the rest to test.
    rest = sorted(range(1, len(cameras)), key=lambda i: abs(float(cameras[i].forward @ cameras[0].forward)))
    for index in rest:
        points = points[_inside(cameras[index], silhouettes[index], points)]
    if len(points) == 0:
        return Agreement(tuple(0.0 for _ in views))
    scores = []
    for camera, mask in zip(cameras, silhouettes, strict=True):
        # A voxel projects to about one pixel; closing fills the odd pixel no voxel centre landed in
        # without growing the outline (splatting whole voxel footprints would, by half a voxel).
        splat = _splat(camera, points)
        projected = ndimage.binary_closing(splat, structure=np.ones((3, 3)), border_value=0) | splat
        union = (projected | mask).sum()
        scores.append(float((projected & mask).sum() / union) if union else 0.0)
    return Agreement(tuple(scores))


def _carve_grid(camera: Camera, mask: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The centres (N, 3) of the grid voxels (``axis`` along x, y and z) inside the first silhouette.

    Every voxel of the full grid is tested here, so its camera coordinates are summed from per-axis
    terms by broadcasting instead of going through a (G³, 3) array of points; the views after it only
    test the voxels that are left.
    """
    shifted = axis[None, :] - camera.eye[:, None]  # (world axis, G)
    x, y, z = shifted[0][:, None, None], shifted[1][None, :, None], shifted[2][None, None, :]
    cam = [row[0] * x + row[1] * y + row[2] * z for row in camera.rotation]
    centre = camera.image_size / 2.0
    u = np.floor(camera.focal_px * cam[0] / cam[2] + centre).astype(np.int64)
    v = np.floor(camera.focal_px * cam[1] / cam[2] + centre).astype(np.int64)
    on_image = (u >= 0) & (u < MASK_SIZE) & (v >= 0) & (v < MASK_SIZE) & (cam[2] > 0)
    inside = np.zeros(on_image.shape, dtype=bool)
    inside[on_image] = mask[v[on_image], u[on_image]]
    return np.stack([axis[index] for index in np.nonzero(inside)], axis=1)


def _pixels(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uv, _ = camera.project(points)
    pixels = np.floor(uv).astype(np.int64)
    on_image = (
        (pixels[:, 0] >= 0) & (pixels[:, 0] < MASK_SIZE) & (pixels[:, 1] >= 0) & (pixels[:, 1] < MASK_SIZE)
    )
    return pixels, on_image


def _inside(camera: Camera, mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    pixels, on_image = _pixels(camera, points)
    keep = np.zeros(len(points), dtype=bool)
    keep[on_image] = mask[pixels[on_image, 1], pixels[on_image, 0]]
    return keep


def _splat(camera: Camera, points: np.ndarray) -> np.ndarray:
    pixels, on_image = _pixels(camera, points)
    image = np.zeros((MASK_SIZE, MASK_SIZE), dtype=bool)
    image[pixels[on_image, 1], pixels[on_image, 0]] = True
    return image
