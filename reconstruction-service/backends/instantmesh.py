"""The InstantMesh backend: one image → Zero123++ v1.2's six views → the InstantMesh LRM → a coloured mesh.

Both models are loaded once, when the process starts, onto the configured device and kept there; the
service's ExclusiveRunner gives them one job at a time, so one process per GPU is one hot pair per GPU.
The six views Zero123++ draws are written to the folder the service names (the job's
``inputs/jobs/<id>/generated/``), so the job's record can list them (docs/instantmesh.md#the-backend).
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from PIL import Image

from meshforge.accelerator import pick_device, pick_dtype
from meshforge.cancellation import report_progress
from meshforge.errors import InvalidInput, ModelNotFound
from meshforge.geometry.views import OBJECT_EXTENT, CanonicalView
from meshforge.models import locate_model
from meshforge.schemas import Capabilities
from meshforge.settings import ReconstructionSettings
from meshforge.storage import atomic_write_bytes
from reconstruction_service.instantmesh.cameras import AZIMUTHS_DEG, ELEVATIONS_DEG
from reconstruction_service.instantmesh.frame import to_canonical
from reconstruction_service.instantmesh.mesh import LrmMesh, extract_mesh, model_grid
from reconstruction_service.instantmesh.model import WEIGHTS_FILE, InstantMeshLRM, load_pretrained
from reconstruction_service.instantmesh.reconstruct import triplanes
from reconstruction_service.instantmesh.zero123plus import VIEW_SIZE, Zero123Plus
from reconstruction_service.instantmesh.zero123plus_loading import (
    FINETUNED_UNET_FILE,
    INSTANTMESH_REPO,
    find_zero123plus_folder,
    load_zero123plus,
)

log = logging.getLogger(__name__)

GENERATED_VIEW = "zero123-{index}.png"  # view k of Zero123++'s grid (orchestrator/records.py lists them)


def locate_models(settings: ReconstructionSettings) -> tuple[Path, Path]:
    """(the TencentARC/InstantMesh folder with the LRM checkpoint and the fine-tuned UNet, the Zero123++
    folder), both looked up before anything is loaded, so one message names every missing model."""
    found: list[Path] = []
    problems: list[str] = []
    lookups = (
        lambda: locate_model(
            settings.models_path,
            INSTANTMESH_REPO,
            required=(WEIGHTS_FILE, FINETUNED_UNET_FILE),
            explicit=settings.instantmesh_model_path,
            setting="MESHFORGE_INSTANTMESH_MODEL_PATH",
        ),
        lambda: find_zero123plus_folder(
            settings.models_path, settings.zero123plus_model_path, "MESHFORGE_ZERO123PLUS_MODEL_PATH"
        ),
    )
    for lookup in lookups:
        try:
            found.append(lookup())
        except ModelNotFound as missing:
            problems.append(missing.message)
    if problems:
        raise ModelNotFound("\n".join(problems))
    return found[0], found[1]


def condition_size(pipeline: Zero123Plus) -> int:
    """The side the folder's VAE image processor brings the condition image to (its crop)."""
    crop = getattr(pipeline.components.feature_extractor_vae, "crop_size", None)
    height = crop.get("height") if isinstance(crop, dict) else getattr(crop, "height", None)
    return int(height) if height else VIEW_SIZE


def square_condition(image: np.ndarray) -> Image.Image:
    """The RGBA view as a square image (Zero123++ takes square inputs; its processors centre-crop), padded
    with transparency, which the pipeline composites on white."""
    if image.shape[2] == 3:  # RGB: opaque everywhere
        image = np.dstack([image, np.full(image.shape[:2], 255, dtype=np.uint8)])
    height, width = image.shape[:2]
    side = max(height, width)
    canvas = np.zeros((side, side, 4), dtype=np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    canvas[top : top + height, left : left + width] = image
    return Image.fromarray(canvas)  # (side, side, 4) uint8: RGBA


def condition_seed(image: np.ndarray) -> int:
    """A seed from the image's pixels: the same view (a job repeated with its seed gives the same one)
    always gets the same six views. The stage request carries no seed of its own."""
    digest = hashlib.sha256(repr(image.shape).encode() + np.ascontiguousarray(image).tobytes()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def write_views(views: np.ndarray, folder: Path) -> list[str]:
    """The six views as PNG files, each committed whole (never for a cancelled job); their paths."""
    paths = []
    for index, view in enumerate(views):
        buffer = io.BytesIO()
        Image.fromarray(view).save(buffer, format="PNG")
        path = folder / GENERATED_VIEW.format(index=index)
        atomic_write_bytes(path, buffer.getvalue())
        paths.append(str(path))
    return paths


def to_trimesh(mesh: LrmMesh) -> trimesh.Trimesh:
    """The LRM's mesh (canonical axes) without the dual vertices no face uses (FlexiCubes keeps some on
    the grid's boundary), its bounding box centred on the origin and its longest side OBJECT_EXTENT, as
    the other backends deliver meshes; colours opaque RGBA."""
    used = np.zeros(len(mesh.vertices), dtype=bool)
    used[mesh.faces.ravel()] = True
    renumbered = np.cumsum(used) - 1
    vertices = mesh.vertices[used].astype(np.float64)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    vertices = (vertices - (low + high) / 2.0) * (OBJECT_EXTENT / float((high - low).max()))
    alpha = np.full((len(vertices), 1), 255, dtype=np.uint8)
    return trimesh.Trimesh(
        vertices=vertices,
        faces=renumbered[mesh.faces],
        vertex_colors=np.hstack([mesh.colours[used], alpha]),
        process=False,
    )


class InstantMesh:
    name = "instantmesh"

    def __init__(
        self,
        settings: ReconstructionSettings,
        *,
        pipeline: Zero123Plus | None = None,
        lrm: InstantMeshLRM | None = None,
    ) -> None:
        """``pipeline`` and ``lrm``: models already built on the configured device instead of the files in
        models/ (the benchmark's full-size random ones); production always loads the files."""
        self.device = pick_device(settings.instantmesh_device)
        self.diffusion_dtype = pick_dtype(settings.zero123plus_dtype, self.device, gpu_default="float16")
        # The LRM's own default is upstream's fp32; half precision only under autocast (reconstruct.py).
        self.lrm_dtype = pick_dtype(settings.instantmesh_dtype, self.device, gpu_default="float32")
        self.steps = settings.zero123plus_steps
        self.guidance = settings.zero123plus_guidance
        self.chunk = settings.instantmesh_chunk_size
        if pipeline is None or lrm is None:
            pipeline, lrm = self._load(settings)
        self.pipeline, self.lrm = pipeline, lrm
        self.grid = model_grid(lrm.config, self.device)
        # One image: the image stage then draws (or keeps) just the front view, at Zero123++'s input size.
        self.capabilities = Capabilities(max_views=1, image_size=condition_size(pipeline))

    def _load(self, settings: ReconstructionSettings) -> tuple[Zero123Plus, InstantMeshLRM]:
        lrm_folder, pipeline_folder = locate_models(settings)
        started = time.monotonic()
        components = load_zero123plus(
            pipeline_folder,
            self.device,
            self.diffusion_dtype,
            unet_weights=lrm_folder / FINETUNED_UNET_FILE,
        )
        lrm = load_pretrained(lrm_folder, self.device)
        log.info(
            "InstantMesh loaded from %s and Zero123++ from %s on %s (%s, LRM %s) in %.1f s",
            lrm_folder,
            pipeline_folder,
            self.device,
            self.diffusion_dtype,
            self.lrm_dtype,
            time.monotonic() - started,
        )
        return Zero123Plus(components), lrm

    def reconstruct(
        self, images: list[np.ndarray], views: list[CanonicalView], resolution: int
    ) -> tuple[trimesh.Trimesh, dict[str, Any]]:
        """As ``reconstruct_keeping_views``, the six views kept nowhere."""
        return self._reconstruct(images, views, None)

    def reconstruct_keeping_views(
        self, images: list[np.ndarray], views: list[CanonicalView], resolution: int, folder: Path
    ) -> tuple[trimesh.Trimesh, dict[str, Any]]:
        """``resolution`` (the visual hull's voxel count) is not used: the FlexiCubes grid is the model's."""
        return self._reconstruct(images, views, folder)

    def _reconstruct(
        self, images: list[np.ndarray], views: list[CanonicalView], folder: Path | None
    ) -> tuple[trimesh.Trimesh, dict[str, Any]]:
        names = [view.name for view in views]
        used = names.index("front") if "front" in names else 0
        seed = condition_seed(images[used])
        # Progress in steps: Zero123++'s denoising steps, then the LRM, then the mesh extraction.
        steps = self.steps + 2
        started = time.monotonic()
        drawn = self.pipeline.generate(
            square_condition(images[used]),
            seed=seed,
            steps=self.steps,
            guidance=self.guidance,
            on_step=lambda done, _: report_progress(done, steps, "steps"),
        )
        views_seconds = time.monotonic() - started
        written = write_views(drawn.views, folder) if folder is not None else []
        started = time.monotonic()
        planes = triplanes(self.lrm, drawn.views, self.lrm_dtype)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the kernels are asynchronous: time them, not their launch
        lrm_seconds = time.monotonic() - started
        report_progress(self.steps + 1, steps, "steps")
        started = time.monotonic()
        extracted = extract_mesh(self.lrm.synthesizer, planes, self.grid, self.chunk)
        if len(extracted.faces) == 0:
            raise InvalidInput(
                "InstantMesh found no surface in the six views Zero123++ drew: check that the image shows "
                "one object on a plain background, and that the model weights are the published ones"
            )
        mesh = to_trimesh(LrmMesh(to_canonical(extracted.vertices), extracted.faces, extracted.colours))
        detail: dict[str, Any] = {
            "views": names,
            "used_view": names[used],
            "generated_views": written,
            "generated_cameras": [
                {"azimuth": azimuth, "elevation": elevation}
                for azimuth, elevation in zip(AZIMUTHS_DEG, ELEVATIONS_DEG, strict=True)
            ],
            "seed": seed,
            "steps": self.steps,
            "guidance": self.guidance,
            "grid": self.lrm.config.grid_res,
            "device": str(self.device),
            "zero123plus_dtype": str(self.diffusion_dtype).removeprefix("torch."),
            "instantmesh_dtype": str(self.lrm_dtype).removeprefix("torch."),
            "views_seconds": round(views_seconds, 3),
            "lrm_seconds": round(lrm_seconds, 3),
            "mesh_seconds": round(time.monotonic() - started, 3),
        }
        if len(views) > 1:
            detail["note"] = (
                f"InstantMesh reconstructs from one image: it used the {names[used]} view and ignored the "
                f"other {len(views) - 1}; Zero123++ drew six views of its own from it"
            )
        return mesh, detail
