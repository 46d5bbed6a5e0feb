"""Hostile job ids and paths posted straight to every real stage service of the fleet.

A stage service is internal, but whatever can reach its port must not make it read or write outside
the shared folders: a job id is only ever the orchestrator's 32 hex characters, an output path (which
the dispatcher decides, and every request must carry) lies in the one folder its stage writes to, an
input path in the folders its stage reads from, with symbolic links followed. Every case is refused
with 422 and a message naming the field, nothing is written outside the data folder, and the services
stay healthy. Each request is otherwise valid, with its output where the dispatcher would put it
(orchestrator/stages.py), so that the refusal is the hostile value's.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trimesh
from PIL import Image

from tests.fleet import Fleet

pytestmark = pytest.mark.fleet

# Every hostile name carries this marker, so anything it managed to create can be found afterwards.
MARKER = f"escape-{uuid.uuid4().hex[:8]}"
HOSTILE_JOB_IDS = {
    "parent": f"../../../{MARKER}",
    "absolute": f"/tmp/{MARKER}",
    "nul": "0123456789abcdef\x000123456789abcde",
    "uppercase": "0123456789ABCDEF0123456789ABCDEF",
    "too-long": "0" * 33,
    "trailing-newline": "0" * 32 + "\n",
    "dot-dot": "..",
}


@dataclass
class Stages:
    """The fleet's stage services and its shared folders, plus a folder outside them."""

    fleet: Fleet
    outside: Path

    def url(self, stage: str) -> str:
        return self.fleet.env[f"MESHFORGE_{stage}_SERVICE_URLS"].split(",")[0]

    def folder(self, name: str) -> Path:
        return self.fleet.data_dir / name

    # Where the dispatcher puts a job's output (meshforge.storage's layout), for a fresh job.
    def job_inputs(self, job_id: str | None = None) -> str:
        return str(self.folder("inputs") / "jobs" / (job_id or uuid.uuid4().hex))

    def mesh_path(self) -> str:
        return str(self.folder("cache") / "jobs" / uuid.uuid4().hex / "reconstruction.glb")

    def asset_path(self) -> str:
        return str(self.folder("outputs") / f"{uuid.uuid4().hex}.glb")


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def stages(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stages]:
    outside = tmp_path_factory.mktemp(f"{MARKER}-outside")
    (outside / "secret.png").write_bytes(png_bytes())
    trimesh.creation.box().export(outside / "secret.glb")
    found = Stages(fleet, outside)
    # Links planted inside the shared folders that lead out of them.
    links = {
        found.folder("inputs") / f"{MARKER}.png": outside / "secret.png",
        found.folder("inputs") / f"{MARKER}-dir": outside,
        found.folder("cache") / f"{MARKER}.glb": outside / "secret.glb",
        found.folder("cache") / f"{MARKER}-dir": outside,
        found.folder("outputs") / f"{MARKER}-dir": outside,
        found.folder("inputs") / "jobs" / ("f" * 32): outside,
    }
    for link, target in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    before = sorted(p.name for p in outside.iterdir())
    yield found
    for link in links:
        link.unlink()
    # Nothing was written through a link, and nothing a hostile name made exists outside the data folder.
    assert sorted(p.name for p in outside.iterdir()) == before
    root = fleet.data_dir.parent
    escaped = [
        p
        for p in root.rglob(f"*{MARKER}*")
        if fleet.data_dir not in p.parents and p.resolve() != outside  # pytest links to its own folder
    ]
    assert not escaped, escaped


def post(stages: Stages, stage: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(stages.url(stage) + path, json=body, timeout=60)


def assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["code"] in ("invalid_request", "invalid_input"), answer
    assert field in answer["detail"], answer


def views(stages: Stages) -> list[str]:
    """Real normalised views under inputs/, drawn once for the reconstruction cases."""
    response = post(
        stages,
        "IMAGE",
        "/imagine/generate",
        {"prompt": "a red cube", "num_views": 1, "image_size": 64, "output_dir": stages.job_inputs()},
    )
    assert response.status_code == 200, response.text
    return list(response.json()["image_paths"])


# --- job ids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", HOSTILE_JOB_IDS.values(), ids=HOSTILE_JOB_IDS.keys())
def test_image_service_refuses_hostile_job_ids(stages: Stages, job_id: str) -> None:
    output = {"job_id": job_id, "output_dir": stages.job_inputs()}
    body = {"prompt": "a red cube", "num_views": 1, "image_size": 64, **output}
    assert_refused(post(stages, "IMAGE", "/imagine/generate", body), "job_id")
    body = {"image_paths": ["any.png"], **output}
    assert_refused(post(stages, "IMAGE", "/imagine/from-paths", body), "job_id")
    # Refused by the schema, before any download is tried (the port is loopback's discard port).
    body = {"urls": ["http://127.0.0.1:9/front.png"], **output}
    assert_refused(post(stages, "IMAGE", "/imagine/from-urls", body), "job_id")


@pytest.mark.parametrize("job_id", HOSTILE_JOB_IDS.values(), ids=HOSTILE_JOB_IDS.keys())
def test_reconstruction_service_refuses_hostile_job_ids(stages: Stages, job_id: str) -> None:
    body = {
        "image_paths": [str(stages.folder("inputs") / "any.png")],
        "job_id": job_id,
        "output_path": stages.mesh_path(),
    }
    assert_refused(post(stages, "RECONSTRUCTION", "/reconstruct/mesh", body), "job_id")


@pytest.mark.parametrize("job_id", HOSTILE_JOB_IDS.values(), ids=HOSTILE_JOB_IDS.keys())
def test_postprocess_service_refuses_hostile_job_ids(stages: Stages, job_id: str) -> None:
    body = {
        "mesh_path": str(stages.folder("cache") / "any.glb"),
        "job_id": job_id,
        "output_path": stages.asset_path(),
    }
    assert_refused(post(stages, "POSTPROCESS", "/postprocess/clean", body), "job_id")


def test_a_job_folder_linked_out_of_inputs_is_refused(stages: Stages) -> None:
    job_id = "f" * 32  # inputs/jobs/fff… is a link to the outside folder
    output = {"job_id": job_id, "output_dir": stages.job_inputs(job_id)}
    body = {"prompt": "a red cube", "num_views": 1, "image_size": 64, **output}
    assert_refused(post(stages, "IMAGE", "/imagine/generate", body), "outside inputs/")
    body = {"image_paths": ["any.png"], **output}
    assert_refused(post(stages, "IMAGE", "/imagine/from-paths", body), "outside inputs/")


def test_an_orchestrator_job_id_is_accepted(stages: Stages) -> None:
    job_id = uuid.uuid4().hex
    body = {
        "prompt": "a red cube",
        "num_views": 1,
        "image_size": 64,
        "job_id": job_id,
        "output_dir": stages.job_inputs(job_id),
    }
    response = post(stages, "IMAGE", "/imagine/generate", body)
    assert response.status_code == 200, response.text
    (path,) = response.json()["image_paths"]
    assert Path(path).parent.parent == stages.folder("inputs") / "jobs" / job_id


# --- paths ------------------------------------------------------------------------------------------

OUTSIDE_INPUTS = {
    "parent": f"../../{MARKER}.png",
    "absolute": "/etc/passwd",
    "nul": "front\x00.png",
    "over-long": "a" * 5000 + ".png",
    "long-component": "a" * 300 + ".png",
    "symlink": f"{MARKER}.png",
}


@pytest.mark.parametrize("path", OUTSIDE_INPUTS.values(), ids=OUTSIDE_INPUTS.keys())
def test_image_service_reads_only_under_inputs(stages: Stages, path: str) -> None:
    body = {"image_paths": [path], "output_dir": stages.job_inputs()}
    response = post(stages, "IMAGE", "/imagine/from-paths", body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("invalid_request", "invalid_input"), response.json()


def image_output_dirs(stages: Stages) -> dict[str, tuple[str, str]]:
    """Output folders outside inputs/, each with what its refusal names."""
    outside = "is outside inputs/"
    return {
        "parent": (f"../../{MARKER}", outside),
        "absolute-outside": (f"/tmp/{MARKER}", outside),
        "parent-of-inputs": (f"{stages.folder('inputs')}/../{MARKER}", outside),
        "in-cache": (str(stages.folder("cache") / "jobs" / MARKER), outside),
        "in-outputs": (str(stages.folder("outputs") / MARKER), outside),
        "symlinked-folder": (str(stages.folder("inputs") / f"{MARKER}-dir" / "jobs"), outside),
        "nul": (stages.job_inputs() + "\x00", "output_dir"),
        "empty": ("", "output_dir"),
        "over-long": ("/" + "a" * 5000, "output_dir"),
        "long-component": (str(stages.folder("inputs") / "jobs" / ("a" * 300)), "over 255 bytes"),
    }


def test_image_service_writes_views_only_under_inputs(stages: Stages) -> None:
    # /imagine/from-urls checks its folder the same way, before anything is fetched.
    for name, (output_dir, field) in image_output_dirs(stages).items():
        body = {"prompt": "a red cube", "num_views": 1, "image_size": 64, "output_dir": output_dir}
        response = post(stages, "IMAGE", "/imagine/generate", body)
        assert response.status_code == 422, (name, response.text)
        assert field in response.json()["detail"], (name, response.json())
        body = {"image_paths": ["any.png"], "output_dir": output_dir}
        response = post(stages, "IMAGE", "/imagine/from-paths", body)
        assert response.status_code == 422, (name, response.text)
        assert field in response.json()["detail"], (name, response.json())


def test_every_stage_refuses_a_request_without_its_output_path(stages: Stages) -> None:
    """No stage makes up a name for its output any more: the dispatcher decides every path."""
    good = views(stages)
    mesh = str(stages.folder("cache") / "jobs" / "any" / "reconstruction.glb")
    cases = {
        ("IMAGE", "/imagine/generate"): ({"prompt": "a red cube", "num_views": 1}, "output_dir"),
        ("IMAGE", "/imagine/from-paths"): ({"image_paths": good}, "output_dir"),
        ("IMAGE", "/imagine/from-urls"): ({"urls": ["http://127.0.0.1:9/front.png"]}, "output_dir"),
        ("FLUX", "/generate"): ({"prompt": "a red cube", "width": 32, "height": 32}, "output_path"),
        ("FLUX", "/generate/batch"): ({"images": [{"prompt": "a red cube"}]}, "images.0.output_path"),
        ("RECONSTRUCTION", "/reconstruct/mesh"): ({"image_paths": good}, "output_path"),
        ("POSTPROCESS", "/postprocess/clean"): ({"mesh_path": mesh}, "output_path"),
    }
    for (stage, path), (body, field) in cases.items():
        response = post(stages, stage, path, {"job_id": uuid.uuid4().hex, **body})
        assert_refused(response, f"{field}: this field is required")
        assert response.json()["code"] == "invalid_request", (path, response.json())


FLUX_OUTPUTS = {
    "parent": f"../{MARKER}.png",
    "absolute-outside": f"/tmp/{MARKER}.png",
    "nul": "generated/x\x00.png",
    "not-png": f"generated/{MARKER}.sh",
    "symlinked-folder": f"{MARKER}-dir/drawn.png",
}


@pytest.mark.parametrize("path", FLUX_OUTPUTS.values(), ids=FLUX_OUTPUTS.keys())
def test_flux_service_writes_only_pngs_under_inputs(stages: Stages, path: str) -> None:
    one = {"prompt": "a red cube", "width": 32, "height": 32, "output_path": path}
    response = post(stages, "FLUX", "/generate", one)
    assert response.status_code == 422, response.text
    batch = {"width": 32, "height": 32, "images": [{"prompt": "a red cube", "output_path": path}]}
    response = post(stages, "FLUX", "/generate/batch", batch)
    assert response.status_code == 422, response.text


# What the refusals say: the folders a stage may use.
VIEW_FOLDERS = "(inputs/, cache/)"
CACHE_ONLY = "(cache/)"


def reconstruction_cases(stages: Stages, good: list[str]) -> dict[str, tuple[dict[str, Any], str]]:
    cache, outputs = stages.folder("cache"), stages.folder("outputs")
    mesh = stages.mesh_path()  # where the dispatcher puts a job's mesh
    return {
        "views-absolute-outside": ({"image_paths": ["/etc/passwd"], "output_path": mesh}, VIEW_FOLDERS),
        "views-parent": (
            {"image_paths": [f"{good[0]}/../../../../{MARKER}.png"], "output_path": mesh},
            VIEW_FOLDERS,
        ),
        "views-relative": ({"image_paths": ["views/00-front.png"], "output_path": mesh}, VIEW_FOLDERS),
        "views-nul": ({"image_paths": [good[0] + "\x00"], "output_path": mesh}, "image_paths"),
        "views-too-long": ({"image_paths": ["/" + "a" * 5000], "output_path": mesh}, "image_paths"),
        "views-symlink": (
            {"image_paths": [str(stages.folder("inputs") / f"{MARKER}.png")], "output_path": mesh},
            VIEW_FOLDERS,
        ),
        "views-in-outputs": ({"image_paths": [str(outputs / "x.png")], "output_path": mesh}, VIEW_FOLDERS),
        "mesh-outside": ({"image_paths": good, "output_path": f"/tmp/{MARKER}.glb"}, CACHE_ONLY),
        "mesh-relative": ({"image_paths": good, "output_path": f"{MARKER}.glb"}, CACHE_ONLY),
        "mesh-in-outputs": ({"image_paths": good, "output_path": str(outputs / f"{MARKER}.glb")}, CACHE_ONLY),
        "mesh-in-inputs": (
            {"image_paths": good, "output_path": str(stages.folder("inputs") / f"{MARKER}.glb")},
            CACHE_ONLY,
        ),
        "mesh-parent": ({"image_paths": good, "output_path": f"{cache}/../../{MARKER}.glb"}, CACHE_ONLY),
        "mesh-symlinked-folder": (
            {"image_paths": good, "output_path": str(cache / f"{MARKER}-dir" / "mesh.glb")},
            CACHE_ONLY,
        ),
        "mesh-nul": ({"image_paths": good, "output_path": mesh + "\x00"}, "output_path"),
        "mesh-empty": ({"image_paths": good, "output_path": ""}, "output_path"),
    }


def test_reconstruction_service_reads_views_and_writes_meshes_only_where_it_should(
    stages: Stages,
) -> None:
    good = views(stages)
    for name, (body, field) in reconstruction_cases(stages, good).items():
        response = post(stages, "RECONSTRUCTION", "/reconstruct/mesh", {"resolution": 16, **body})
        assert response.status_code == 422, (name, response.text)
        assert field in response.json()["detail"], (name, response.json())


def postprocess_cases(stages: Stages) -> dict[str, tuple[dict[str, Any], str]]:
    cache, outputs = stages.folder("cache"), stages.folder("outputs")
    mesh = str(cache / "jobs" / "any" / "reconstruction.glb")
    asset = {"output_path": stages.asset_path()}  # where the dispatcher puts a job's asset
    good = {"mesh_path": mesh, **asset}
    preview = {
        "parent": f"../{MARKER}.preview.png",
        "absolute": f"/tmp/{MARKER}.preview.png",
        "in-cache": str(cache / f"{MARKER}.preview.png"),
        "in-inputs": str(stages.folder("inputs") / f"{MARKER}.preview.png"),
        "symlinked-folder": str(outputs / f"{MARKER}-dir" / "preview.png"),
    }
    return {
        "mesh-absolute-outside": ({"mesh_path": str(stages.outside / "secret.glb"), **asset}, CACHE_ONLY),
        "mesh-relative": ({"mesh_path": "jobs/x/reconstruction.glb", **asset}, CACHE_ONLY),
        "mesh-parent": ({"mesh_path": f"{cache}/../../{MARKER}.glb", **asset}, CACHE_ONLY),
        "mesh-nul": ({"mesh_path": mesh + "\x00", **asset}, "mesh_path"),
        "mesh-empty": ({"mesh_path": "", **asset}, "mesh_path"),
        "mesh-symlink": ({"mesh_path": str(cache / f"{MARKER}.glb"), **asset}, CACHE_ONLY),
        "mesh-in-outputs": ({"mesh_path": str(outputs / "x.glb"), **asset}, CACHE_ONLY),
        **{
            f"preview-{name}": ({**good, "preview_path": path}, f'preview path "{path}" is outside outputs/')
            for name, path in preview.items()
        },
        "preview-nul": ({**good, "preview_path": str(outputs / "x\x00.png")}, "preview_path"),
        "preview-empty": ({**good, "preview_path": ""}, "preview_path"),
        "asset-parent": ({"mesh_path": mesh, "output_path": f"../{MARKER}.glb"}, "outside outputs/"),
        "asset-absolute": ({"mesh_path": mesh, "output_path": f"/tmp/{MARKER}.glb"}, "outside outputs/"),
        "asset-nul": ({"mesh_path": mesh, "output_path": "x\x00.glb"}, "output_path"),
        "asset-in-cache": (
            {"mesh_path": mesh, "output_path": str(cache / f"{MARKER}.glb")},
            "outside outputs/",
        ),
        "asset-symlinked-folder": (
            {"mesh_path": mesh, "output_path": str(outputs / f"{MARKER}-dir" / "asset.glb")},
            "outside outputs/",
        ),
        "asset-empty": ({"mesh_path": mesh, "output_path": ""}, "output_path"),
    }


def test_postprocess_service_reads_meshes_and_writes_assets_only_where_it_should(
    stages: Stages,
) -> None:
    for name, (body, field) in postprocess_cases(stages).items():
        response = post(stages, "POSTPROCESS", "/postprocess/clean", body)
        assert response.status_code == 422, (name, response.text)
        assert field in response.json()["detail"], (name, response.json())


def test_every_stage_is_healthy_after_the_hostile_requests(stages: Stages) -> None:
    for stage in ("IMAGE", "FLUX", "RECONSTRUCTION", "POSTPROCESS"):
        response = httpx.get(stages.url(stage) + "/health", timeout=10)
        assert response.status_code == 200 and response.json()["status"] == "ok", stage
