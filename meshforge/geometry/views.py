"""The canonical multi-view convention, shared by every backend and by the tests.

Written out for people in docs/views.md; this module is the single source of the numbers.

World frame: right-handed, +Y up, the object's front faces +Z (the glTF convention). The object is
centred at the origin and scaled so that its bounding box's longest side is ``OBJECT_EXTENT``.
Cameras sit on a sphere of radius ``CAMERA_DISTANCE`` around the origin and look at it with +Y up.
Azimuth turns counter-clockwise seen from above, starting at +Z: the "right" view (azimuth 90°) is the
camera a viewer reaches by walking to their right from the front, at +X. Elevation lifts the camera
above the horizontal plane.

Images are square, pinhole, with a vertical and horizontal field of view of ``FOV_DEG``. Camera
coordinates follow OpenCV: x to the right of the image, y down the image, z forward (depth).
Pixel (0, 0) is the top-left pixel and its centre is at (0.5, 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CAMERA_DISTANCE = 6.0
FOV_DEG = 18.0
OBJECT_EXTENT = 1.0
BACKGROUND_RGB: tuple[int, int, int] = (128, 128, 128)


@dataclass(frozen=True)
class CanonicalView:
    name: str
    azimuth_deg: float
    elevation_deg: float

    @property
    def prompt_phrase(self) -> str:
        """How the multi-view prompt builder names this view to a text-to-image model."""
        phrase = f"{self.name.replace('-', ' ')} view"
        if self.elevation_deg >= 20:
            phrase += ", seen from slightly above"
        elif self.elevation_deg <= -20:
            phrase += ", seen from slightly below"
        return phrase


FRONT = CanonicalView("front", 0.0, 0.0)

VIEW_SETS: dict[int, tuple[CanonicalView, ...]] = {
    1: (FRONT,),
    4: (
        FRONT,
        CanonicalView("right", 90.0, 0.0),
        CanonicalView("back", 180.0, 0.0),
        CanonicalView("left", 270.0, 0.0),
    ),
    8: (
        FRONT,
        CanonicalView("front-right", 45.0, 30.0),
        CanonicalView("right", 90.0, 0.0),
        CanonicalView("back-right", 135.0, 30.0),
        CanonicalView("back", 180.0, 0.0),
        CanonicalView("back-left", 225.0, 30.0),
        CanonicalView("left", 270.0, 0.0),
        CanonicalView("front-left", 315.0, 30.0),
    ),
}

VIEWS_BY_NAME: dict[str, CanonicalView] = {v.name: v for views in VIEW_SETS.values() for v in views}


def view_set(count: int) -> tuple[CanonicalView, ...]:
    """The canonical views for ``count`` images, in the order images are given."""
    try:
        return VIEW_SETS[count]
    except KeyError:
        allowed = ", ".join(str(n) for n in VIEW_SETS)
        raise ValueError(f"there is no canonical layout for {count} images; use {allowed}") from None


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: world points -> pixel coordinates and depth."""

    rotation: np.ndarray  # (3, 3) world -> camera
    eye: np.ndarray  # (3,) camera centre in world coordinates
    focal_px: float
    image_size: int

    @property
    def forward(self) -> np.ndarray:
        """Unit viewing direction in world coordinates."""
        forward: np.ndarray = self.rotation[2]
        return forward

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return rotate_points(np.asarray(points, dtype=np.float64) - self.eye, self.rotation)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) as (x, y) and depth (N,) of world points (N, 3)."""
        cam = self.to_camera(points)
        depth = cam[:, 2]
        centre = self.image_size / 2.0
        safe = np.where(np.abs(depth) < 1e-9, 1e-9, depth)
        uv = self.focal_px * cam[:, :2] / safe[:, None] + centre
        return uv, depth


def rotate_points(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``points @ rotation.T`` for points (N, 3) and a 3×3 matrix, in the points' precision.

    Written out rather than left to BLAS: OpenBLAS threads even this tall, thin product, and on a busy
    two-core machine its threads wait on one another, 10-30 times longer than the arithmetic takes.
    """
    x, y, z = np.asarray(points).T
    matrix = np.asarray(rotation, dtype=np.result_type(points, np.float32))
    return np.stack([x * row[0] + y * row[1] + z * row[2] for row in matrix], axis=1)


def camera_position(view: CanonicalView, distance: float = CAMERA_DISTANCE) -> np.ndarray:
    az, el = math.radians(view.azimuth_deg), math.radians(view.elevation_deg)
    return distance * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])


def camera_for(view: CanonicalView, image_size: int) -> Camera:
    eye = camera_position(view)
    forward = -eye / np.linalg.norm(eye)
    world_up = np.array([0.0, 1.0, 0.0])
    if abs(forward @ world_up) > 0.999:  # looking straight down or up: any horizontal "up" will do
        world_up = np.array([0.0, 0.0, -1.0])
    right = np.cross(forward, world_up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    focal = (image_size / 2.0) / math.tan(math.radians(FOV_DEG) / 2.0)
    return Camera(rotation=rotation, eye=eye, focal_px=focal, image_size=image_size)
