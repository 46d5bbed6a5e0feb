"""The cameras the reconstruction model is told the six Zero123++ v1.2 views were seen from.

Zero123++ draws one 960 × 640 image: 3 rows × 2 columns of 320² views, view k = row · 2 + col
(``zero123plus.split_views``), at the azimuths and elevations below (azimuth relative to the input
view). InstantMesh's world is z-up; its camera at azimuth a, elevation e sits at
r · (cos e cos a, cos e sin a, sin e), looks at the origin and is an OpenGL camera (it looks along its −z,
+y up). Each camera is 16 numbers: the 3 × 4 camera-to-world matrix (columns x, y, z, position)
flattened row by row, then the normalised intrinsics fx, fy, cx, cy. This is upstream's
``get_zero123plus_input_cameras`` (radius 4.0, fov 30°), computed in float64 and rounded once to float32.
"""

from __future__ import annotations

import math

import numpy as np
import torch

AZIMUTHS_DEG = (30.0, 90.0, 150.0, 210.0, 270.0, 330.0)
ELEVATIONS_DEG = (20.0, -10.0, 20.0, -10.0, 20.0, -10.0)
CAMERA_RADIUS = 4.0
FOV_DEG = 30.0


def camera_to_world(azimuth_deg: float, elevation_deg: float, radius: float) -> np.ndarray:
    """(3, 4): camera axes x (right), y (up), z (backward) and position, as columns; world up is +z."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    position = radius * np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    backward = position / np.linalg.norm(position)
    right = np.cross([0.0, 0.0, 1.0], backward)
    right /= np.linalg.norm(right)
    up = np.cross(backward, right)
    up /= np.linalg.norm(up)
    return np.stack([right, up, backward, position], axis=1)


def zero123plus_cameras(radius: float = CAMERA_RADIUS, fov_deg: float = FOV_DEG) -> torch.Tensor:
    """(6, 16) float32, view k in Zero123++'s order."""
    focal = 0.5 / math.tan(math.radians(fov_deg) / 2.0)
    rows = [
        np.concatenate([camera_to_world(a, e, radius).reshape(-1), [focal, focal, 0.5, 0.5]])
        for a, e in zip(AZIMUTHS_DEG, ELEVATIONS_DEG, strict=True)
    ]
    return torch.from_numpy(np.stack(rows)).float()


def views_to_tensor(views: np.ndarray) -> torch.Tensor:
    """(V, H, W, 3) uint8 → (1, V, 3, H, W) float in 0..1: upstream divides by 255 and feeds 320² as is."""
    pixels = torch.from_numpy(np.ascontiguousarray(views[..., :3])).float() / 255.0
    return pixels.permute(0, 3, 1, 2).unsqueeze(0)
