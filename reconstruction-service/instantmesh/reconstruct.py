"""Six Zero123++ views → a coloured mesh in the canonical frame: the LRM's whole inference path.

The transformers may run under half-precision autocast (LayerNorm and softmax stay fp32 there); the
triplanes are then cast back, and mesh extraction always runs in fp32 (mesh.py).
"""

from __future__ import annotations

import numpy as np
import torch

from reconstruction_service.instantmesh.cameras import views_to_tensor, zero123plus_cameras
from reconstruction_service.instantmesh.flexicubes import VoxelGrid
from reconstruction_service.instantmesh.frame import to_canonical
from reconstruction_service.instantmesh.mesh import DEFAULT_CHUNK, LrmMesh, extract_mesh
from reconstruction_service.instantmesh.model import InstantMeshLRM


def triplanes(model: InstantMeshLRM, views: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(6, H, W, 3) uint8 views in Zero123++'s order → one object's triplanes (3, C, 2·low, 2·low), fp32."""
    device = next(model.parameters()).device
    images = views_to_tensor(views).to(device)
    cameras = zero123plus_cameras().unsqueeze(0).to(device)
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32),
    ):
        planes = model(images, cameras)
    return planes[0].float()


def reconstruct(
    model: InstantMeshLRM,
    views: np.ndarray,
    grid: VoxelGrid,
    *,
    dtype: torch.dtype = torch.float32,
    chunk: int = DEFAULT_CHUNK,
) -> LrmMesh:
    """The mesh rotated into the canonical frame (+Y up, front +Z), not yet centred or scaled."""
    mesh = extract_mesh(model.synthesizer, triplanes(model, views, dtype), grid, chunk)
    return LrmMesh(
        vertices=to_canonical(mesh.vertices).astype(np.float32), faces=mesh.faces, colours=mesh.colours
    )
