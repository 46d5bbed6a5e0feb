"""A finished job's master GLB and its conversions, in process: the finisher keeps the master beside a
non-GLB asset (never for a GLB), a conversion reads it back with its texture or its sRGB vertex colours,
the convert route refuses paths outside outputs/ and answers busy when full, the files go with the job,
and the record lists the formats."""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh
from fastapi.testclient import TestClient

import postprocess_service.app as service
import postprocess_service.backends.trimesh_finisher as finisher_module
from meshforge.cancellation import WorkRegistry, run_cancellable
from meshforge.errors import JobCancelled, NotFound
from meshforge.schemas import JobState, OutputFormat
from meshforge.settings import PostprocessSettings, load_settings
from meshforge.storage import Storage
from orchestrator.records import download_formats, to_status
from postprocess_service.backends.base import FinishJob
from postprocess_service.backends.trimesh_finisher import TrimeshFinisher
from postprocess_service.convert import ConvertJob, convert_master, load_master
from postprocess_service.export import export_mesh, texture_image
from postprocess_service.texturing import bake_vertex_colours
from tests.gltf_validator import assert_valid_glb
from tests.meshes import coloured_sphere

JOB = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
NO_BLENDER = Path("/nonexistent/python")


def reconstruction(tmp_path: Path) -> Path:
    """A raw mesh where the dispatcher puts it: cache/jobs/<id>/reconstruction.glb."""
    path = tmp_path / "cache" / "jobs" / JOB / "reconstruction.glb"
    path.parent.mkdir(parents=True)
    path.write_bytes(coloured_sphere().export(file_type="glb"))
    return path


def finish(tmp_path: Path, output_format: str, **extra: Any) -> tuple[FinishJob, dict[str, Any]]:
    outputs = tmp_path / "outputs"
    suffix = OutputFormat(output_format).asset_suffix
    job = FinishJob(
        reconstruction(tmp_path), outputs / f"{JOB}{suffix}", output_format, texture_size=128, **extra
    )
    finisher = TrimeshFinisher(PostprocessSettings(data_dir=tmp_path, blender_python=NO_BLENDER))
    return job, finisher.finish(job)


# --- the master ------------------------------------------------------------------------------------------


def test_a_non_glb_job_keeps_its_textured_mesh_as_a_valid_master_glb(tmp_path: Path) -> None:
    master = tmp_path / "outputs" / f"{JOB}.master.glb"
    job, detail = finish(tmp_path, "obj", master_path=master)
    assert job.output_path.is_file()
    assert_valid_glb(master)
    mesh = load_master(master)
    assert texture_image(mesh) is not None and len(mesh.faces) == detail["faces"]


def test_an_stl_job_keeps_a_vertex_coloured_master_and_a_glb_job_none(tmp_path: Path) -> None:
    master = tmp_path / "stl" / "outputs" / f"{JOB}.master.glb"
    finish(tmp_path / "stl", "stl", master_path=master)
    assert_valid_glb(master)
    assert load_master(master).visual.kind == "vertex"  # an STL job bakes no texture
    finish(tmp_path / "glb", "glb")
    assert sorted(p.name for p in (tmp_path / "glb" / "outputs").iterdir()) == [f"{JOB}.glb"]


def test_a_job_cancelled_after_its_asset_never_gets_a_master(tmp_path: Path) -> None:
    registry = WorkRegistry()
    master = tmp_path / "outputs" / f"{JOB}.master.glb"
    real_export = finisher_module.export_mesh

    def export_then_cancel(mesh: trimesh.Trimesh, path: Path, output_format: str) -> Path:
        written = real_export(mesh, path, output_format)
        registry.cancel(JOB)  # between the asset and the master
        return written

    finisher_module.export_mesh = export_then_cancel
    try:
        with pytest.raises(JobCancelled):
            asyncio.run(
                run_cancellable(
                    lambda: finish(tmp_path, "usdz", master_path=master), job_id=JOB, registry=registry
                )
            )
    finally:
        finisher_module.export_mesh = real_export
    assert (tmp_path / "outputs" / f"{JOB}.usdz").is_file()  # the dispatcher's discard removes it
    assert sorted(p.name for p in master.parent.iterdir()) == [f"{JOB}.usdz"]


# --- reading it back -------------------------------------------------------------------------------------


def test_a_vertex_coloured_master_reads_back_in_srgb(tmp_path: Path) -> None:
    sphere = coloured_sphere()
    master = export_mesh(sphere, tmp_path / "m.glb", "glb")  # COLOR_0 in linear light
    read = load_master(master)
    # The GLB keeps every vertex in order (no UV seams): the colours match but for 8-bit rounding.
    error = np.abs(read.visual.vertex_colors.astype(int) - sphere.visual.vertex_colors.astype(int))
    assert error[:, :3].max() <= 12 and np.median(error[:, :3]) <= 1


@pytest.mark.parametrize("output_format", ["obj", "stl", "usdz", "glb"])
def test_a_textured_master_converts_with_the_same_faces(tmp_path: Path, output_format: str) -> None:
    master = export_mesh(bake_vertex_colours(coloured_sphere(), 128), tmp_path / "m.glb", "glb")
    target = tmp_path / f"out{OutputFormat(output_format).asset_suffix}"
    answer = convert_master(ConvertJob(master, target, output_format), NO_BLENDER, 10.0)
    assert answer["faces"] == len(load_master(master).faces) and answer["writer"] == "trimesh"
    assert answer["bytes"] == target.stat().st_size > 0
    if output_format == "obj":
        with zipfile.ZipFile(target) as archive:
            assert sorted(archive.namelist()) == ["out.mtl", "out.obj", "out.png"]


def test_a_missing_master_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no longer on disk"):
        load_master(tmp_path / "gone.master.glb")


# --- the route -------------------------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MESHFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MESHFORGE_BLENDER_PYTHON", str(NO_BLENDER))
    load_settings.cache_clear()
    with TestClient(service.app) as test_client:
        yield test_client
    load_settings.cache_clear()


def convert_body(tmp_path: Path, **changes: str) -> dict[str, str]:
    outputs = tmp_path / "outputs"
    master = outputs / f"{JOB}.glb"
    if not master.exists():
        export_mesh(coloured_sphere(), master, "glb")
    body = {
        "job_id": JOB,
        "source_path": str(master),
        "output_format": "stl",
        "output_path": str(outputs / f"{JOB}.stl"),
    }
    return {**body, **changes}


def test_the_convert_route_writes_the_file_and_answers_its_size(client: TestClient, tmp_path: Path) -> None:
    response = client.post("/postprocess/convert", json=convert_body(tmp_path))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["backend"] == "trimesh" and answer["faces"] == len(coloured_sphere().faces)
    assert answer["bytes"] == Path(answer["output_path"]).stat().st_size == 84 + 50 * answer["faces"]


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("source_path", "/etc/passwd", "not inside the shared storage folders"),
        ("output_path", "/tmp/elsewhere.stl", "not inside the shared storage folders"),
        ("output_path", "relative/name.stl", "not inside the shared storage folders"),
    ],
)
def test_the_convert_route_refuses_paths_outside_outputs(
    client: TestClient, tmp_path: Path, field: str, value: str, says: str
) -> None:
    response = client.post("/postprocess/convert", json=convert_body(tmp_path, **{field: value}))
    assert response.status_code == 422 and says in response.json()["detail"]


def test_the_convert_route_never_overwrites_its_master_nor_reads_a_non_glb(
    client: TestClient, tmp_path: Path
) -> None:
    body = convert_body(tmp_path)
    same = client.post("/postprocess/convert", json={**body, "output_path": body["source_path"]})
    assert same.status_code == 422 and "never overwrites its master" in same.json()["detail"]
    stl = client.post("/postprocess/convert", json=body)
    assert stl.status_code == 200
    not_glb = client.post("/postprocess/convert", json={**body, "source_path": body["output_path"]})
    assert not_glb.status_code == 422 and "is not a GLB" in not_glb.json()["detail"]


def test_the_convert_route_refuses_fbx_without_blender_and_is_busy_when_full(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fbx = client.post("/postprocess/convert", json=convert_body(tmp_path, output_format="fbx"))
    assert fbx.status_code == 422 and fbx.json()["code"] == "unsupported_format"
    monkeypatch.setattr(service, "_conversions", asyncio.Semaphore(0))  # every slot taken
    busy = client.post("/postprocess/convert", json=convert_body(tmp_path))
    assert busy.status_code == 503 and busy.json()["code"] == "busy"
    assert int(busy.headers["Retry-After"]) >= 1


# --- with the job ----------------------------------------------------------------------------------------


def test_discarding_a_job_removes_its_master_and_conversions_only(tmp_path: Path) -> None:
    storage = Storage(PostprocessSettings(data_dir=tmp_path))
    storage.ensure()
    mine = [storage.asset_path(JOB, ".fbx"), storage.preview_path(JOB), storage.master_path(JOB)]
    mine += [storage.asset_path(JOB, OutputFormat(f).asset_suffix) for f in ("obj", "stl", "usdz", "glb")]
    others = [storage.master_path(OTHER), storage.asset_path(OTHER, ".stl")]
    for path in mine + others:
        path.write_bytes(b"x")
    assert sorted(storage.discard_job_outputs(JOB)) == sorted(mine)
    assert sorted(storage.outputs.iterdir()) == sorted(others)


def record(
    state: JobState, stages: dict[str, Any] | None = None, output_format: str = "obj"
) -> dict[str, str]:
    return {
        "job_id": JOB,
        "state": state.value,
        "created_at": "1",
        "updated_at": "2",
        "request": json.dumps({"output_format": output_format}),
        "stages": json.dumps(stages or {}),
    }


def test_the_status_lists_the_recorded_formats_once_completed() -> None:
    finished = {"post_processing": {"detail": {"faces": 10, "formats": ["glb", "obj", "stl", "usdz"]}}}
    assert to_status(record(JobState.completed, finished)).formats == ["glb", "obj", "stl", "usdz"]
    assert to_status(record(JobState.post_processing, finished)).formats == []
    older = {"post_processing": {"detail": {"faces": 10}}}  # before conversions: no master
    assert to_status(record(JobState.completed, older, "fbx")).formats == ["fbx"]
    odd = {"post_processing": {"detail": {"formats": "glb"}}}
    assert download_formats(
        JobState.completed, {"output_format": "stl"}, to_status(record(JobState.completed, odd)).stages
    ) == ["stl"]
