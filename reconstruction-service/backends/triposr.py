"""The TripoSR backend: one image → mesh with vertex colours, by the published stabilityai/TripoSR model.

The model is loaded once, when the process starts, onto the configured device, and kept there; the
service's ExclusiveRunner gives it one job at a time, so one process per GPU is one hot model per GPU.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
import trimesh

from meshforge.accelerator import pick_device, pick_dtype
from meshforge.geometry.views import OBJECT_EXTENT, CanonicalView
from meshforge.geometry.visuals import colour_visual
from meshforge.models import locate_model
from meshforge.schemas import Capabilities
from meshforge.settings import ReconstructionSettings
from reconstruction_service.triposr.extraction import extract_mesh
from reconstruction_service.triposr.model import CONFIG_FILE, TSR, WEIGHTS_FILE, load_pretrained
from reconstruction_service.triposr.preprocess import condition_image, to_tensor

log = logging.getLogger(__name__)

# TripoSR's frame: the input camera looks along −x (the object's front faces +x), +z is up, and the
# image's right is +y (upstream's spherical cameras, azimuth 0). Ours (docs/views.md): front +Z, up +Y,
# right +X. So canonical (X, Y, Z) = TripoSR (y, z, x): a cyclic permutation, a proper rotation.
TRIPOSR_TO_CANONICAL = np.array(
    [
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 0.0, 0.0],
    ]
)


def to_canonical(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Rotate into the canonical frame, centre the bounding box on the origin and scale its longest side
    to OBJECT_EXTENT, as the other backends deliver meshes."""
    vertices = mesh.vertices @ TRIPOSR_TO_CANONICAL.T
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    vertices = (vertices - (low + high) / 2.0) * (OBJECT_EXTENT / float((high - low).max()))
    return trimesh.Trimesh(
        vertices=vertices, faces=mesh.faces, vertex_colors=colour_visual(mesh).vertex_colors, process=False
    )


class TripoSR:
    name = "triposr"

    def __init__(self, settings: ReconstructionSettings, model: TSR | None = None) -> None:
        """``model``: an already-built model on the configured device instead of the files in models/
        (the benchmark's full-size random model); production always loads the files."""
        self.device = pick_device(settings.triposr_device)
        # Half precision only for the transformers (autocast keeps norms and softmax in fp32); the
        # density field and marching cubes always run in fp32 (see extraction.py).
        self.dtype = pick_dtype(settings.triposr_dtype, self.device, gpu_default="float16")
        self.resolution = settings.triposr_mc_resolution
        self.threshold = settings.triposr_mc_threshold
        self.chunk_size = settings.triposr_chunk_size
        if model is None:
            model = self._load(settings)
        self.model = model
        # One image at the model's conditioning size: the image stage then draws just the front view.
        self.capabilities = Capabilities(max_views=1, image_size=model.config.cond_image_size)

    def _load(self, settings: ReconstructionSettings) -> TSR:
        folder = locate_model(
            settings.models_path,
            settings.triposr_model,
            required=(CONFIG_FILE, WEIGHTS_FILE),
            explicit=settings.triposr_model_path,
            setting="MESHFORGE_TRIPOSR_MODEL_PATH",
        )
        started = time.monotonic()
        model = load_pretrained(folder, self.device)
        log.info(
            "TripoSR loaded from %s on %s (%s) in %.1f s",
            folder,
            self.device,
            self.dtype,
            time.monotonic() - started,
        )
        return model

    def reconstruct(
        self, images: list[np.ndarray], views: list[CanonicalView], resolution: int
    ) -> tuple[trimesh.Trimesh, dict[str, Any]]:
        """``resolution`` (the visual hull's voxel count) is not used: TripoSR's marching-cubes grid is
        MESHFORGE_TRIPOSR_MC_RESOLUTION."""
        names = [view.name for view in views]
        used = names.index("front") if "front" in names else 0
        started = time.monotonic()
        image = condition_image(images[used], self.model.config.cond_image_size)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32),
        ):
            planes = self.model(to_tensor(image, self.device))
        model_seconds = time.monotonic() - started
        mesh = extract_mesh(
            self.model.decoder,
            planes[0].float(),
            self.model.config.renderer,
            resolution=self.resolution,
            threshold=self.threshold,
            chunk_size=self.chunk_size,
        )
        detail: dict[str, Any] = {
            "views": names,
            "used_view": names[used],
            "mc_resolution": self.resolution,
            "mc_threshold": self.threshold,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "model_seconds": round(model_seconds, 3),
            "mesh_seconds": round(time.monotonic() - started - model_seconds, 3),
        }
        if len(views) > 1:
            detail["note"] = (
                f"TripoSR reconstructs from one image: it used the {names[used]} view and ignored the "
                f"other {len(views) - 1}"
            )
        return to_canonical(mesh), detail
