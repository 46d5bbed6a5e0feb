"""Our Zero123++ v1.2 pipeline on a tiny random folder in the published layout (tests/tiny_zero123plus.py).

Loading goes through the production path (locate_model → every component's own from_pretrained, local
files only), strictly: a missing component, tensor or fine-tuned UNet weight is a clear error. The views
come from upstream's 960×640 grid, view k = row·2 + col, and a cancelled job stops between steps.
The comparison with upstream's own pipeline is in test_instantmesh_zero123plus_conformance.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from PIL import Image  # noqa: E402

from meshforge.cancellation import WorkRegistry, run_cancellable  # noqa: E402
from meshforge.errors import BackendError, InvalidInput, JobCancelled, ModelNotFound  # noqa: E402
from reconstruction_service.instantmesh.zero123plus import (  # noqa: E402
    GRID_HEIGHT,
    GRID_WIDTH,
    VIEW_SIZE,
    MultiViewImages,
    Zero123Plus,
    condition_image,
    split_views,
)
from reconstruction_service.instantmesh.zero123plus_attention import (  # noqa: E402
    BankMode,
    ReferenceAttnProcessor,
    ReferenceBank,
)
from reconstruction_service.instantmesh.zero123plus_loading import (  # noqa: E402
    find_finetuned_unet,
    find_zero123plus_folder,
    load_finetuned_unet,
    load_zero123plus,
)
from tests.tiny_zero123plus import (  # noqa: E402
    build_finetuned_unet,
    build_tiny_zero123plus,
    conformance_image,
)

CPU = torch.device("cpu")
JOB = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("zero123plus-models")
    build_tiny_zero123plus(folder)
    build_finetuned_unet(folder)
    return folder


@pytest.fixture(scope="module")
def pipeline(models_dir: Path) -> Zero123Plus:
    folder = find_zero123plus_folder(models_dir)
    return Zero123Plus(
        load_zero123plus(folder, CPU, torch.float32, unet_weights=find_finetuned_unet(models_dir))
    )


@pytest.fixture
def folder_copy(models_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "sudo-ai" / "zero123plus-v1.2"
    shutil.copytree(models_dir / "sudo-ai" / "zero123plus-v1.2", copy)
    return copy


# --- loading ----------------------------------------------------------------------------------------


def test_the_published_layout_loads_each_component_as_its_own_class(pipeline: Zero123Plus) -> None:
    parts = pipeline.components
    assert [type(m).__name__ for m in (parts.vae, parts.unet, parts.text_encoder, parts.vision_encoder)] == [
        "AutoencoderKL",
        "UNet2DConditionModel",
        "CLIPTextModel",
        "CLIPVisionModelWithProjection",
    ]
    assert len(parts.ramping_coefficients) == parts.tokenizer.model_max_length == 77
    assert parts.feature_extractor_vae.crop_size == {"height": 320, "width": 320}


def test_the_scheduler_is_euler_ancestral_v_prediction_with_instantmeshs_trailing_spacing(
    pipeline: Zero123Plus,
) -> None:
    scheduler = pipeline.components.scheduler
    assert type(scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.timestep_spacing == "trailing"  # the folder says linspace; run.py overrides
    scheduler.set_timesteps(3)
    assert scheduler.timesteps.tolist() == [999.0, 666.0, 332.0]


def test_a_missing_model_names_the_folders_tried_and_the_download_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=re.escape("scripts/download-models sudo-ai/zero123plus-v1.2")):
        find_zero123plus_folder(tmp_path)
    with pytest.raises(ModelNotFound, match="TencentARC/InstantMesh"):
        find_finetuned_unet(tmp_path)


def test_a_component_whose_files_are_missing_is_named(folder_copy: Path) -> None:
    (folder_copy / "vision_encoder" / "model.safetensors").unlink()
    with pytest.raises(
        ModelNotFound, match=re.escape('component "vision_encoder" lacks vision_encoder/model.safetensors')
    ):
        load_zero123plus(folder_copy, CPU, torch.float32)


def test_a_component_missing_from_the_model_index_is_named(folder_copy: Path) -> None:
    index = json.loads((folder_copy / "model_index.json").read_text())
    del index["feature_extractor_vae"]
    (folder_copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelNotFound, match='does not list the component "feature_extractor_vae"'):
        load_zero123plus(folder_copy, CPU, torch.float32)


def test_a_component_of_another_class_is_refused(folder_copy: Path) -> None:
    index = json.loads((folder_copy / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "DDIMScheduler"]
    (folder_copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(BackendError, match="this folder holds another model"):
        load_zero123plus(folder_copy, CPU, torch.float32)


def test_a_component_with_a_missing_tensor_is_refused_not_left_random(folder_copy: Path) -> None:
    from safetensors.torch import load_file, save_file

    path = folder_copy / "text_encoder" / "model.safetensors"
    state = load_file(str(path))
    del state["text_model.final_layer_norm.weight"]
    save_file(state, str(path), metadata={"format": "pt"})
    with pytest.raises(BackendError, match="1 tensors missing"):
        load_zero123plus(folder_copy, CPU, torch.float32)


def test_every_prompt_token_needs_a_ramping_coefficient(folder_copy: Path) -> None:
    index = json.loads((folder_copy / "model_index.json").read_text())
    index["ramping_coefficients"] = index["ramping_coefficients"][:76]
    (folder_copy / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(BackendError, match="76 ramping_coefficients, but the prompt has 77 tokens"):
        load_zero123plus(folder_copy, CPU, torch.float32)


# --- InstantMesh's fine-tuned UNet ------------------------------------------------------------------


def test_the_finetuned_unet_file_in_instantmeshs_folder_replaces_every_unet_weight(
    models_dir: Path, pipeline: Zero123Plus
) -> None:
    path = find_finetuned_unet(models_dir)
    assert path == models_dir / "TencentARC" / "InstantMesh" / "diffusion_pytorch_model.bin"
    finetuned = torch.load(path, weights_only=True)
    loaded = pipeline.components.unet.state_dict()
    assert loaded.keys() == finetuned.keys()
    assert all(torch.equal(loaded[key], finetuned[key]) for key in finetuned)
    plain = load_zero123plus(find_zero123plus_folder(models_dir), CPU, torch.float32)
    assert plain.unet_weights is None
    assert not torch.equal(plain.unet.conv_in.weight, loaded["conv_in.weight"])


def test_a_finetuned_unet_with_a_missing_or_extra_tensor_is_refused(models_dir: Path, tmp_path: Path) -> None:
    unet = load_zero123plus(find_zero123plus_folder(models_dir), CPU, torch.float32).unet
    state = torch.load(find_finetuned_unet(models_dir), weights_only=True)
    state["extra.weight"] = state.pop("conv_in.bias")
    torch.save(state, tmp_path / "unet.bin")
    with pytest.raises(BackendError, match=re.escape("1 tensors missing ['conv_in.bias'], 1 unexpected")):
        load_finetuned_unet(unet, tmp_path / "unet.bin")


def test_a_finetuned_unet_of_another_shape_is_refused(models_dir: Path, tmp_path: Path) -> None:
    unet = load_zero123plus(find_zero123plus_folder(models_dir), CPU, torch.float32).unet
    state = torch.load(find_finetuned_unet(models_dir), weights_only=True)
    state["conv_in.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "unet.bin")
    with pytest.raises(BackendError, match="does not fit Zero123"):
        load_finetuned_unet(unet, tmp_path / "unet.bin")


# --- the views --------------------------------------------------------------------------------------


def test_views_are_cut_from_three_rows_by_two_columns_view_k_at_row_k_div_2_column_k_mod_2() -> None:
    grid = np.zeros((GRID_HEIGHT, GRID_WIDTH, 3), np.uint8)
    for row in range(3):
        for col in range(2):
            grid[row * VIEW_SIZE : (row + 1) * VIEW_SIZE, col * VIEW_SIZE : (col + 1) * VIEW_SIZE] = (
                row * 2 + col
            )
    views = split_views(grid)
    assert views.shape == (6, VIEW_SIZE, VIEW_SIZE, 3)
    assert [int(view.min()) for view in views] == [int(view.max()) for view in views] == [0, 1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def generated(pipeline: Zero123Plus) -> tuple[MultiViewImages, list[tuple[int, int]]]:
    steps: list[tuple[int, int]] = []
    result = pipeline.generate(
        conformance_image(), seed=9, steps=2, on_step=lambda d, n: steps.append((d, n))
    )
    return result, steps


def test_generation_gives_the_960_by_640_grid_and_its_six_views(
    generated: tuple[MultiViewImages, list[tuple[int, int]]],
) -> None:
    result, steps = generated
    assert result.grid.shape == (960, 640, 3) and result.grid.dtype == np.uint8
    assert result.views.shape == (6, 320, 320, 3)
    assert np.array_equal(result.views[3], result.grid[320:640, 320:640])  # row 1, column 1
    assert np.array_equal(result.views[4], result.grid[640:960, 0:320])  # row 2, column 0
    assert result.latents.shape == (1, 4, 120, 80)
    assert steps == [(1, 2), (2, 2)]
    assert [image.size for image in result.view_images()] == [(320, 320)] * 6


def test_the_same_seed_gives_the_same_views_and_the_condition_image_steers_them(
    pipeline: Zero123Plus, generated: tuple[MultiViewImages, list[tuple[int, int]]]
) -> None:
    first, _ = generated
    image = conformance_image()
    again = pipeline.generate(image, seed=9, steps=2)
    other_image = pipeline.generate(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), seed=9, steps=2)
    assert torch.equal(first.latents, again.latents) and np.array_equal(first.grid, again.grid)
    assert not torch.equal(first.latents, other_image.latents)


def test_without_guidance_only_the_conditional_half_runs(
    pipeline: Zero123Plus, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    unet = pipeline.components.unet
    forward = unet.forward

    def recording_forward(sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        batches.append(sample.shape[0])
        return forward(sample, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", recording_forward)
    pipeline.generate(conformance_image(), seed=1, steps=1, guidance=1.0)
    assert batches == [1, 1]  # the reference pass, then the denoising pass (guided: [empty, condition])


def test_zero_steps_are_refused(pipeline: Zero123Plus) -> None:
    with pytest.raises(InvalidInput, match="at least one denoising step"):
        pipeline.generate(conformance_image(), seed=1, steps=0)


def test_transparency_is_composited_on_white_and_other_modes_become_rgb() -> None:
    rgba = Image.new("RGBA", (4, 4), (200, 10, 10, 0))
    rgba.putpixel((0, 0), (200, 10, 10, 255))
    rgb = condition_image(rgba)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (200, 10, 10) and rgb.getpixel((3, 3)) == (255, 255, 255)
    plain = Image.new("RGB", (4, 4), (1, 2, 3))
    assert condition_image(plain) is plain
    assert condition_image(Image.new("L", (4, 4), 7)).getpixel((0, 0)) == (7, 7, 7)


# --- reference attention ----------------------------------------------------------------------------


def test_reference_attention_attends_over_own_and_recorded_tokens_with_queries_from_its_own() -> None:
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attention = Attention(query_dim=16, heads=2, dim_head=8).eval()
    bank = ReferenceBank()
    processor = ReferenceAttnProcessor("block.attn1.processor", bank)
    views, condition = torch.randn(2, 10, 16), torch.randn(2, 4, 16)
    bank.mode = BankMode.WRITE
    processor(attention, condition)
    assert torch.equal(bank.tokens["block.attn1.processor"], condition)
    bank.mode = BankMode.READ
    out = processor(attention, views)
    q = attention.to_q(views).view(2, 10, 2, 8).transpose(1, 2)
    context = torch.cat([views, condition], dim=1)
    k = attention.to_k(context).view(2, 14, 2, 8).transpose(1, 2)
    v = attention.to_v(context).view(2, 14, 2, 8).transpose(1, 2)
    mixed = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 10, 16)
    assert torch.allclose(out, attention.to_out[0](mixed), atol=1e-6)
    assert bank.tokens == {}, "each record is read once"


# --- cancellation -----------------------------------------------------------------------------------


def test_generation_stops_between_denoising_steps_once_its_job_is_cancelled(
    pipeline: Zero123Plus, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = WorkRegistry()
    unet_calls: list[int] = []
    decodes: list[int] = []
    unet, vae = pipeline.components.unet, pipeline.components.vae
    forward, decode = unet.forward, vae.decode

    def counting_forward(*args: Any, **kwargs: Any) -> Any:
        unet_calls.append(args[0].shape[0])
        if len(unet_calls) == 3:  # the reference pass of the second of 10 steps
            registry.cancel(JOB)
        return forward(*args, **kwargs)

    monkeypatch.setattr(unet, "forward", counting_forward)
    monkeypatch.setattr(vae, "decode", lambda *a, **k: decodes.append(1) or decode(*a, **k))
    work = run_cancellable(
        lambda: pipeline.generate(conformance_image(), seed=1, steps=10), job_id=JOB, registry=registry
    )
    with pytest.raises(JobCancelled):
        asyncio.run(work)
    assert len(unet_calls) == 4, "the step in progress finishes; no further step starts"
    assert unet_calls == [2, 2, 2, 2], "guided: [empty condition, condition] in both passes"
    assert decodes == [], "a cancelled job's latents are not decoded"
    assert pipeline.bank.mode is BankMode.OFF and pipeline.bank.tokens == {}
    unet_calls.clear()  # usable again right away
    pipeline.generate(conformance_image(), seed=1, steps=1)
    assert len(unet_calls) == 2 and decodes == [1]
