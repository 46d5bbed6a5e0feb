"""Our TripoSR has the published checkpoint's exact layout and loads model folders strictly.

The manifest (tests/data/triposr/manifest.json) lists every tensor of the published ``model.ckpt``, as
upstream's own code builds it full size; docs/triposr.md records how it was made and the numerical
comparison with upstream.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from meshforge.errors import BackendError  # noqa: E402
from meshforge.models import locate_model  # noqa: E402
from reconstruction_service.triposr.config import load_config, parse_config  # noqa: E402
from reconstruction_service.triposr.model import build_model, load_pretrained  # noqa: E402
from reconstruction_service.triposr.vit import Embeddings  # noqa: E402
from tests.tiny_triposr import REPO_ID, TINY_CONFIG, build_tiny_triposr  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "data" / "triposr"


def test_full_size_model_has_exactly_the_published_checkpoints_tensors() -> None:
    manifest = json.loads((DATA / "manifest.json").read_text())
    model = build_model(load_config(DATA / "config.yaml"), "meta")
    shapes = {name: list(tensor.shape) for name, tensor in model.state_dict().items()}
    assert shapes == manifest["shapes"]
    assert len(shapes) == manifest["tensors"] == 549
    assert sum(math.prod(shape) for shape in shapes.values()) == manifest["parameters"] == 419_275_628


def test_the_normalisation_constants_are_not_part_of_the_checkpoint() -> None:
    model = build_model(load_config(DATA / "config.yaml"), "meta")
    assert "image_tokenizer.image_mean" not in model.state_dict()
    assert {name for name, _ in model.named_buffers()} == {
        "image_tokenizer.image_mean",
        "image_tokenizer.image_std",
    }


def test_published_config_resolves_references_and_names_dino_vit_b16() -> None:
    config = load_config(DATA / "config.yaml")
    assert config.backbone.in_channels == 1024  # from ${tokenizer.num_channels}
    assert (config.vit.hidden_size, config.vit.num_hidden_layers, config.vit.patch_size) == (768, 12, 16)
    assert config.cond_image_size == 512
    assert config.renderer.radius == 0.87


def test_a_config_for_another_architecture_is_refused() -> None:
    other = {**TINY_CONFIG, "backbone_cls": "tsr.models.transformer.other.Transformer2D"}
    with pytest.raises(
        BackendError, match=re.escape("only tsr.models.transformer.transformer_1d.Transformer1D")
    ):
        parse_config(other)
    unknown_vit = {**TINY_CONFIG, "image_tokenizer": {"pretrained_model_name_or_path": "someone/vit"}}
    with pytest.raises(BackendError, match='image tokenizer "someone/vit" is unknown'):
        parse_config(unknown_vit)


def test_tiny_model_in_the_published_layout_loads_strictly_and_is_deterministic(tmp_path: Path) -> None:
    build_tiny_triposr(tmp_path / "models")
    folder = locate_model(
        tmp_path / "models",
        REPO_ID,
        required=("config.yaml", "model.ckpt"),
        setting="MESHFORGE_TRIPOSR_MODEL_PATH",
    )
    model = load_pretrained(folder)
    assert not model.training
    assert all(not p.requires_grad and p.device.type == "cpu" for p in model.parameters())
    images = torch.rand(1, 80, 80, 3, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        first, second = model(images), model(images)
        other = model(images.flip(1))
    assert first.shape == (1, 3, 8, 16, 16)
    assert torch.equal(first, second)
    assert not torch.allclose(first, other)  # the image reaches the triplanes


def test_a_checkpoint_missing_a_tensor_or_holding_an_extra_one_is_refused(tmp_path: Path) -> None:
    folder = build_tiny_triposr(tmp_path / "models")
    state = torch.load(folder / "model.ckpt", weights_only=True)
    state["image_tokenizer.model.pooler.dense.extra"] = torch.zeros(1)
    del state["decoder.layers.0.bias"]
    torch.save(state, folder / "model.ckpt")
    with pytest.raises(BackendError) as refused:
        load_pretrained(folder)
    assert "decoder.layers.0.bias" in refused.value.message
    assert "pooler.dense.extra" in refused.value.message


def test_position_embeddings_are_resized_as_dino_and_transformers_4_35_do() -> None:
    """Scale factor (32 + 0.1) / 14, bicubic: not a resize to exactly 32 × 32 (transformers 5.x)."""
    model = Embeddings(load_config(DATA / "config.yaml").vit)
    table = model.position_embeddings.detach()
    assert torch.equal(model.interpolated_positions(196, 224, 224), table)
    resized = model.interpolated_positions(1024, 512, 512).detach()
    assert resized.shape == (1, 1025, 768)
    assert torch.equal(resized[:, 0], table[:, 0])
    grid = table[:, 1:].reshape(1, 14, 14, 768).permute(0, 3, 1, 2)
    exact_size = torch.nn.functional.interpolate(grid, size=(32, 32), mode="bicubic", align_corners=False)
    exact_size = exact_size.permute(0, 2, 3, 1).reshape(1, 1024, 768)
    assert (resized[:, 1:] - exact_size).abs().max() > 1e-3
