"""Stage backends for the throughput benchmarks, registered only by ``benchmarks.stage_process``.

Two families, each on the stage services' own registries (``BackendRegistry``), so that the services run
their real code around them (HTTP, validation, files, replica exclusivity):

* ``instant-benchmark``: answers at once with a precomputed tiny asset (a 32² PNG, a 12-triangle box,
  a GLB of that box), so a job's time is the control plane's alone (``benchmarks.control_plane``);
* ``sleeping-benchmark``: the same assets after sleeping a GPU-like latency per call, so replicas and
  dispatcher slots are what limits throughput (``benchmarks.pipelining``).

No production module imports this one: the names exist only in a process started by the launcher.
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

from meshforge.schemas import Capabilities
from meshforge.storage import atomic_write_bytes

if TYPE_CHECKING:  # each service imports only its own stage's modules (and trimesh only where used)
    import numpy as np
    import trimesh

    from flux_service.backends.base import ImageGenerator, ImageJob, Rendered, RenderOptions
    from meshforge.geometry.views import CanonicalView
    from meshforge.settings import FluxSettings, PostprocessSettings, ReconstructionSettings
    from postprocess_service.backends.base import FinishJob, MeshFinisher
    from reconstruction_service.backends.base import Reconstructor

INSTANT = "instant-benchmark"
SLEEPING = "sleeping-benchmark"
BACKEND_SECONDS = "benchmark_backend_seconds"  # the detail key a backend reports its own time under
SERVICES = ("flux-service", "image-service", "reconstruction-service", "postprocess-service")


@functools.cache
def tiny_image(width: int, height: int) -> Image.Image:
    """A disc on a transparent background: its own alpha, so image-service skips matting."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse(
        (width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(200, 40, 40, 255)
    )
    return image


@functools.cache
def tiny_mesh() -> trimesh.Trimesh:
    import trimesh

    return trimesh.creation.box(extents=(1.0, 1.0, 1.0))


@functools.cache
def tiny_glb() -> bytes:
    exported = tiny_mesh().export(file_type="glb")
    assert isinstance(exported, bytes)
    return exported


@functools.cache
def tiny_png() -> bytes:
    buffer = io.BytesIO()
    tiny_image(32, 32).save(buffer, format="PNG")
    return buffer.getvalue()


def _pause(seconds: float) -> float:
    """Sleep like a GPU call of ``seconds`` (none for instant backends); returns the time taken."""
    started = time.perf_counter()
    if seconds > 0:
        time.sleep(seconds)
    return time.perf_counter() - started


class BenchImages:
    """flux-service's ImageGenerator: one precomputed image per job, one pause per batch (a GPU call)."""

    max_batch = 32
    capabilities = Capabilities(posed_views=True, batch=True)

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds
        self.detail: dict[str, Any] = {"seconds_per_call": seconds}

    def generate_batch(self, jobs: Sequence[ImageJob], options: RenderOptions) -> Rendered:
        from flux_service.backends.base import Rendered

        _pause(self.seconds)
        return Rendered([tiny_image(options.width, options.height)] * len(jobs))


class BenchReconstructor:
    """reconstruction-service's Reconstructor: the precomputed box, whatever the views."""

    capabilities = Capabilities(max_views=1)

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds

    def reconstruct(
        self, images: list[np.ndarray], views: list[CanonicalView], resolution: int
    ) -> tuple[trimesh.Trimesh, dict[str, Any]]:
        return tiny_mesh(), {BACKEND_SECONDS: _pause(self.seconds)}


class BenchFinisher:
    """postprocess-service's MeshFinisher: the precomputed GLB (and PNG preview) copied where asked."""

    formats = frozenset({"glb"})

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds

    def finish(self, job: FinishJob) -> dict[str, Any]:
        started = time.perf_counter()
        _pause(self.seconds)
        atomic_write_bytes(job.output_path, tiny_glb())
        if job.preview_path is not None:
            atomic_write_bytes(job.preview_path, tiny_png())
        mesh = tiny_mesh()
        own = time.perf_counter() - started
        return {"vertices": len(mesh.vertices), "faces": len(mesh.faces), BACKEND_SECONDS: own}


def _names(seconds: float) -> tuple[tuple[str, float], ...]:
    """Each benchmark backend's name and pause."""
    return ((INSTANT, 0.0), (SLEEPING, seconds))


def install(service: str, seconds: float = 0.0) -> None:
    """Register both benchmark backends on ``service``'s registry; ``seconds``: the sleeping one's pause.

    image-service has no stage backend of its own (its images come from flux-service, and the tiny
    images carry their own alpha, so its matting never runs): nothing to register there.
    """
    if service == "flux-service":
        from flux_service.backends import BACKENDS as FLUX

        for name, pause in _names(seconds):

            def images(_: FluxSettings, name: str = name, pause: float = pause) -> ImageGenerator:
                return BenchImages(name, pause)

            FLUX.register(name)(images)
    elif service == "reconstruction-service":
        from reconstruction_service.backends import BACKENDS as RECONSTRUCTION

        for name, pause in _names(seconds):

            def mesh(_: ReconstructionSettings, name: str = name, pause: float = pause) -> Reconstructor:
                return BenchReconstructor(name, pause)

            RECONSTRUCTION.register(name)(mesh)
    elif service == "postprocess-service":
        from postprocess_service.backends import BACKENDS as POSTPROCESS

        for name, pause in _names(seconds):

            def asset(_: PostprocessSettings, name: str = name, pause: float = pause) -> MeshFinisher:
                return BenchFinisher(name, pause)

            POSTPROCESS.register(name)(asset)
    elif service != "image-service":
        raise ValueError(f"no stage service {service!r}: choose from {', '.join(SERVICES)}")
