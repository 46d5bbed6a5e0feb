"""The Khronos glTF-Validator harness (tests/gltf_validator.py) and what it says about the GLBs we write."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from postprocess_service.export import export_mesh
from tests import gltf_validator
from tests.gltf_validator import assert_valid_glb, validate_glb
from tests.meshes import coloured_sphere

GLB_HEADER = struct.Struct("<4sII")  # magic, version, total length
CHUNK_HEADER = struct.Struct("<I4s")  # chunk length, chunk type


def textured_box() -> trimesh.Trimesh:
    mesh = trimesh.creation.box()
    uv = np.random.default_rng(0).random((len(mesh.vertices), 2))
    texture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=texture)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return mesh


def write_trimesh_glb(mesh: trimesh.Trimesh, path: Path) -> Path:
    path.write_bytes(trimesh.exchange.gltf.export_glb(trimesh.Scene(mesh)))
    return path


def split_glb(data: bytes) -> tuple[dict, bytes]:
    """The JSON document and binary chunk of a GLB that has both, as trimesh writes them."""
    json_length, _ = CHUNK_HEADER.unpack_from(data, GLB_HEADER.size)
    json_start = GLB_HEADER.size + CHUNK_HEADER.size
    document = json.loads(data[json_start : json_start + json_length])
    bin_length, _ = CHUNK_HEADER.unpack_from(data, json_start + json_length)
    bin_start = json_start + json_length + CHUNK_HEADER.size
    return document, data[bin_start : bin_start + bin_length]


def join_glb(document: dict, binary: bytes) -> bytes:
    """A well-framed GLB around ``document`` and ``binary``, so only their content can be at fault."""
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)  # chunks are 4-byte aligned; the JSON chunk pads with spaces
    binary += b"\0" * (-len(binary) % 4)
    body = CHUNK_HEADER.pack(len(text), b"JSON") + text + CHUNK_HEADER.pack(len(binary), b"BIN\0") + binary
    return GLB_HEADER.pack(b"glTF", 2, GLB_HEADER.size + len(body)) + body


def test_vertex_coloured_icosphere_from_trimesh_has_no_errors(tmp_path: Path) -> None:
    report = assert_valid_glb(write_trimesh_glb(coloured_sphere(), tmp_path / "sphere.glb"))
    assert report.errors == 0
    assert report.file == str(tmp_path / "sphere.glb")


def test_textured_glb_from_trimesh_has_no_errors(tmp_path: Path) -> None:
    path = write_trimesh_glb(textured_box(), tmp_path / "textured.glb")
    assert "images" in split_glb(path.read_bytes())[0]  # the texture really is embedded, not dropped
    assert assert_valid_glb(path).errors == 0


def test_accessor_reaching_past_its_buffer_fails_with_the_validators_message(tmp_path: Path) -> None:
    document, binary = split_glb(write_trimesh_glb(coloured_sphere(), tmp_path / "ok.glb").read_bytes())
    document["accessors"][0]["count"] *= 10  # ten times more indices than its buffer view holds
    broken = tmp_path / "broken.glb"
    broken.write_bytes(join_glb(document, binary))

    with pytest.raises(AssertionError, match=re.escape("ACCESSOR_TOO_LONG")) as caught:
        assert_valid_glb(broken)
    assert "/accessors/0" in str(caught.value)  # the pointer says where, for the person reading it
    assert "broken.glb" in str(caught.value)


def test_truncated_binary_chunk_is_reported_with_errors(tmp_path: Path) -> None:
    data = write_trimesh_glb(coloured_sphere(), tmp_path / "ok.glb").read_bytes()
    truncated = tmp_path / "truncated.glb"
    truncated.write_bytes(data[: len(data) // 2])

    (report,) = validate_glb(truncated)
    assert report.errors > 0
    assert report.messages and all({"code", "message", "pointer"} <= set(m) for m in report.messages)


def test_reference_to_an_outside_file_is_an_error_even_when_the_file_exists(tmp_path: Path) -> None:
    document, binary = split_glb(write_trimesh_glb(coloured_sphere(), tmp_path / "ok.glb").read_bytes())
    document["buffers"].append({"uri": "outside.bin", "byteLength": 16})
    (tmp_path / "outside.bin").write_bytes(bytes(16))  # there to be read, yet must not be
    referencing = tmp_path / "referencing.glb"
    referencing.write_bytes(join_glb(document, binary))

    with pytest.raises(AssertionError, match=re.escape('external resource "outside.bin" refused')):
        assert_valid_glb(referencing)


def test_reports_come_back_one_per_file_in_argument_order(tmp_path: Path) -> None:
    good = write_trimesh_glb(coloured_sphere(), tmp_path / "good.glb")
    bad = tmp_path / "bad.glb"
    bad.write_bytes(b"not a GLB at all")

    reports = validate_glb(bad, good)
    assert [Path(r.file).name for r in reports] == ["bad.glb", "good.glb"]
    assert [r.errors > 0 for r in reports] == [True, False]


@pytest.mark.parametrize(
    "mesh", [coloured_sphere(), trimesh.creation.box()], ids=["vertex-coloured", "uncoloured"]
)
def test_exported_glb_assets_have_no_errors_or_warnings(tmp_path: Path, mesh: trimesh.Trimesh) -> None:
    report = assert_valid_glb(export_mesh(mesh, tmp_path / "asset.glb", "glb"))
    # Warnings are not failures by the specification, but a clean report keeps real problems visible.
    assert report.warnings == 0, report.describe()


def test_missing_validator_install_says_to_run_bootstrap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gltf_validator, "TOOL_DIR", tmp_path / "no-such-tool")
    with pytest.raises(RuntimeError, match=re.escape("run scripts/bootstrap")):
        validate_glb(tmp_path / "asset.glb")


def test_missing_node_says_to_run_bootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no node on it
    with pytest.raises(RuntimeError, match=re.escape("node is not installed")):
        validate_glb(tmp_path / "asset.glb")
