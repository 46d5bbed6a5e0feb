"""Our InstantMesh LRM has the published checkpoint's exact layout and loads it strictly, as run.py does.

The manifest (tests/data/instantmesh/manifest.json) lists every tensor of ``instant_mesh_large.ckpt``
after the ``lrm_generator.`` prefix, as upstream's own code builds the model full size on the meta
device; docs/instantmesh.md records how it was made.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from meshforge.errors import BackendError  # noqa: E402
from meshforge.models import locate_model  # noqa: E402
from reconstruction_service.instantmesh.cameras import zero123plus_cameras  # noqa: E402
from reconstruction_service.instantmesh.config import INSTANT_MESH_LARGE, parse_config  # noqa: E402
from reconstruction_service.instantmesh.model import (  # noqa: E402
    CONFIG_FILE,
    WEIGHTS_FILE,
    build_model,
    load_pretrained,
)
from tests.tiny_instantmesh import (  # noqa: E402
    REPO_ID,
    TINY_CONFIG,
    build_tiny_instantmesh,
    tiny_inputs,
    tiny_state,
    write_checkpoint,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "instantmesh"


def test_full_size_model_has_exactly_the_published_checkpoints_tensors() -> None:
    manifest = json.loads((DATA / "manifest.json").read_text())
    model = build_model(INSTANT_MESH_LARGE, "meta")
    shapes = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    assert shapes == manifest["shapes"]
    assert len(shapes) == manifest["tensors"] == 519
    assert sum(math.prod(shape) for shape in shapes.values()) == manifest["parameters"] == 378_657_644


def test_full_size_parts_have_the_published_sizes() -> None:
    model = build_model(INSTANT_MESH_LARGE, "meta")

    def size(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert size(model.encoder.model) == 114_147_072
    assert size(model.encoder.camera_embedder) == 603_648
    assert size(model.transformer) == 263_702_608
    assert size(model.synthesizer) == 204_316
    # The published layout: separate q/k/v for cross-attention (768 ≠ 1024), packed for self-attention.
    names = set(model.state_dict())
    assert "transformer.layers.0.cross_attn.k_proj_weight" in names
    assert "transformer.layers.0.self_attn.in_proj_weight" in names
    assert "encoder.model.encoder.layer.11.adaLN_modulation.1.weight" in names
    assert not any("pooler" in name or name.endswith("_bias") for name in names)


def test_the_normalisation_constants_are_not_part_of_the_checkpoint() -> None:
    model = build_model(INSTANT_MESH_LARGE, "meta")
    assert {name for name, _ in model.named_buffers()} == {"encoder.image_mean", "encoder.image_std"}
    assert not any(name.endswith(("image_mean", "image_std")) for name in model.state_dict())


def test_a_config_for_another_architecture_is_refused() -> None:
    other = {"model_config": {"target": "src.models.lrm.InstantNeRF", "params": {}}}
    with pytest.raises(BackendError, match=re.escape("only src.models.lrm_mesh.InstantMesh")):
        parse_config(other)
    unknown = {"model_config": {"params": {"encoder_model_name": "someone/vit"}}}
    with pytest.raises(BackendError, match='encoder "someone/vit" is unknown'):
        parse_config(unknown)
    params = dict(TINY_CONFIG["model_config"]["params"], encoder_feat_dim=64)
    with pytest.raises(BackendError, match="encoder_feat_dim 64 is not the ViT's width 32"):
        parse_config({"model_config": {"params": params}})


def test_a_config_without_a_file_is_instant_mesh_large() -> None:
    assert parse_config({"model_config": {"params": {"grid_scale": 2.1}}}) == INSTANT_MESH_LARGE


def test_tiny_model_in_the_published_layout_loads_strictly_and_is_deterministic(tmp_path: Path) -> None:
    build_tiny_instantmesh(tmp_path / "models")
    folder = locate_model(
        tmp_path / "models",
        REPO_ID,
        required=(WEIGHTS_FILE,),
        setting="MESHFORGE_INSTANTMESH_MODEL_PATH",
    )
    assert (folder / CONFIG_FILE).is_file()
    model = load_pretrained(folder)
    assert not model.training
    assert all(not p.requires_grad and p.device.type == "cpu" for p in model.parameters())
    images = torch.from_numpy(tiny_inputs()).unsqueeze(0)
    cameras = zero123plus_cameras().unsqueeze(0)
    with torch.inference_mode():
        first, second = model(images, cameras), model(images, cameras)
        other_images = model(images.flip(-1), cameras)
        other_cameras = model(images, cameras.roll(1, dims=1))
    assert first.shape == (1, 3, 8, 8, 8)
    assert torch.equal(first, second)
    assert not torch.allclose(first, other_images)  # the views reach the triplanes
    assert not torch.allclose(first, other_cameras)  # and so do their cameras (adaLN)


def test_only_the_lrm_generator_tensors_are_loaded(tmp_path: Path) -> None:
    """run.py's prefix handling: the training-only lpips tensor beside them is dropped, not refused."""
    folder = build_tiny_instantmesh(tmp_path / "models")
    checkpoint = torch.load(folder / WEIGHTS_FILE, weights_only=True)
    assert "lpips.net.slice1.0.weight" in checkpoint["state_dict"]
    model = load_pretrained(folder)
    expected = tiny_state()
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in expected.items())


def test_a_checkpoint_missing_a_tensor_or_holding_an_extra_one_is_refused(tmp_path: Path) -> None:
    folder = build_tiny_instantmesh(tmp_path / "models")
    state = tiny_state()
    del state["synthesizer.decoder.net_weight.6.bias"]
    state["transformer.layers.0.cross_attn.in_proj_bias"] = torch.zeros(144)
    write_checkpoint(folder / WEIGHTS_FILE, state)
    with pytest.raises(BackendError) as refused:
        load_pretrained(folder)
    assert "missing: synthesizer.decoder.net_weight.6.bias" in refused.value.message
    assert "unexpected: transformer.layers.0.cross_attn.in_proj_bias" in refused.value.message


def test_a_tensor_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    folder = build_tiny_instantmesh(tmp_path / "models")
    state = tiny_state()
    state["transformer.pos_embed"] = torch.zeros(1, 3 * 5 * 5, 48)
    write_checkpoint(folder / WEIGHTS_FILE, state)
    with pytest.raises(BackendError, match=r"wrong shape: transformer\.pos_embed"):
        load_pretrained(folder)


def test_a_file_without_a_state_dict_or_lrm_tensors_is_refused(tmp_path: Path) -> None:
    folder = build_tiny_instantmesh(tmp_path / "models")
    torch.save(tiny_state(), folder / WEIGHTS_FILE)  # bare tensors: not the Lightning layout
    with pytest.raises(BackendError, match="has no state_dict"):
        load_pretrained(folder)
    torch.save({"state_dict": {"discriminator.weight": torch.zeros(1)}}, folder / WEIGHTS_FILE)
    with pytest.raises(BackendError, match=r"holds no lrm_generator\.\* tensors"):
        load_pretrained(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(BackendError, match="could not be read"):
        load_pretrained(folder)


def test_the_ball_model_gives_one_closed_mesh_whose_colours_follow_the_views(tmp_path: Path) -> None:
    """tests/tiny_instantmesh.py's ``ball=True``: the SDF is a ball, the rest stays random."""
    trimesh = pytest.importorskip("trimesh")
    from reconstruction_service.instantmesh.mesh import extract_mesh, model_grid
    from tests.tiny_instantmesh import BALL_RADIUS

    model = load_pretrained(build_tiny_instantmesh(tmp_path / "models", ball=True))
    images = torch.from_numpy(tiny_inputs()).unsqueeze(0)
    cameras = zero123plus_cameras().unsqueeze(0)
    grid = model_grid(model.config, "cpu")
    with torch.inference_mode():
        mesh = extract_mesh(model.synthesizer, model(images, cameras)[0], grid)
        other = extract_mesh(model.synthesizer, model(1.0 - images, cameras)[0], grid)
    surface = trimesh.Trimesh(mesh.vertices, mesh.faces)
    assert surface.is_watertight and len(surface.split(only_watertight=False)) == 1
    assert surface.volume > 0  # faces point outward
    radii = np.linalg.norm(surface.vertices, axis=1)
    # The 8² planes interpolate u² + v² bilinearly, which shrinks the ball by up to a tenth.
    assert radii.min() > BALL_RADIUS * 0.85 and radii.max() < BALL_RADIUS * 1.02
    assert abs(len(other.vertices) - len(mesh.vertices)) < 0.02 * len(mesh.vertices)  # the same ball
    assert not np.array_equal(mesh.colours[:100], other.colours[:100])  # but the colours follow the views
