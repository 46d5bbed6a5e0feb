"""The diffusers FLUX backend on a tiny random FLUX.1 pipeline saved in the real on-disk layout.

The backend loads it through the production code path (locate_model → FluxPipeline.from_pretrained with
local_files_only), on the CPU in float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flux_service.backends.base import ImageJob, RenderOptions
from flux_service.backends.diffusers_flux import DiffusersFlux
from meshforge.errors import InvalidInput, ModelNotFound
from meshforge.settings import FluxSettings
from tests.tiny_flux import build_tiny_flux

SIZE = RenderOptions(32, 32)


def settings_for(data_dir: Path, **overrides: object) -> FluxSettings:
    return FluxSettings(data_dir=data_dir, flux_backend="diffusers", flux_device="cpu", **overrides)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flux-data")
    build_tiny_flux(folder / "models")
    return folder


@pytest.fixture(scope="module")
def flux(data_dir: Path) -> DiffusersFlux:
    return DiffusersFlux.from_settings(settings_for(data_dir, flux_max_batch=4))


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_loads_schnell_from_a_plain_models_folder_with_its_defaults(
    flux: DiffusersFlux, data_dir: Path
) -> None:
    assert flux.name == "diffusers"
    assert flux.detail["folder"] == str(data_dir / "models" / "black-forest-labs" / "FLUX.1-schnell")
    assert (flux.detail["device"], flux.detail["dtype"]) == ("cpu", "float32")
    assert (flux.defaults.steps, flux.defaults.guidance, flux.defaults.max_sequence_length) == (4, 0.0, 256)


def test_loads_from_the_hugging_face_cache_layout(tmp_path: Path) -> None:
    folder = build_tiny_flux(tmp_path / "models", hub_cache=True)
    backend = DiffusersFlux.from_settings(settings_for(tmp_path))
    assert backend.detail["folder"] == str(folder)
    assert "snapshots" in backend.detail["folder"]


def test_dev_gets_dev_defaults_and_settings_override_them(tmp_path: Path) -> None:
    build_tiny_flux(tmp_path / "models", "dev")
    dev = DiffusersFlux.from_settings(settings_for(tmp_path, flux_model="black-forest-labs/FLUX.1-dev"))
    assert (dev.defaults.steps, dev.defaults.guidance, dev.defaults.max_sequence_length) == (50, 3.5, 512)
    tuned = DiffusersFlux.from_settings(
        settings_for(tmp_path, flux_model="black-forest-labs/FLUX.1-dev", flux_steps=8, flux_guidance=2.0)
    )
    assert (tuned.defaults.steps, tuned.defaults.guidance) == (8, 2.0)
    rendered = tuned.generate_batch([ImageJob("a lantern", 1)], RenderOptions(32, 32, steps=2, guidance=5.0))
    assert (rendered.steps, rendered.guidance) == (2, 5.0)


def test_a_missing_model_says_where_it_looked_and_how_to_download(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound) as missing:
        DiffusersFlux.from_settings(settings_for(tmp_path))
    message = missing.value.message
    assert str(tmp_path / "models" / "black-forest-labs" / "FLUX.1-schnell") in message
    assert "models--black-forest-labs--FLUX.1-schnell" in message
    assert "scripts/download-models black-forest-labs/FLUX.1-schnell" in message
    assert "MESHFORGE_FLUX_MODEL_PATH" in message


def test_an_explicit_model_path_is_used(tmp_path: Path) -> None:
    folder = build_tiny_flux(tmp_path / "elsewhere")
    backend = DiffusersFlux.from_settings(settings_for(tmp_path, flux_model_path=folder))
    assert backend.detail["folder"] == str(folder)


def test_draws_the_size_asked_for_with_the_default_steps(flux: DiffusersFlux) -> None:
    rendered = flux.generate_batch([ImageJob("a red cube", 7)], RenderOptions(48, 32))
    assert rendered.images[0].size == (48, 32)
    assert (rendered.steps, rendered.guidance, rendered.pipeline_calls) == (4, 0.0, 1)


def test_same_seed_same_image_other_seed_other_image(flux: DiffusersFlux) -> None:
    first, again, other = flux.generate_batch(
        [ImageJob("a red cube", 7), ImageJob("a red cube", 7), ImageJob("a red cube", 8)], SIZE
    ).images
    assert np.array_equal(pixels(first), pixels(again))
    assert np.abs(pixels(first) - pixels(other)).mean() > 5


def test_an_image_drawn_in_a_batch_equals_the_one_drawn_alone(flux: DiffusersFlux) -> None:
    jobs = [ImageJob("a red cube", 11), ImageJob("a blue sphere", 12), ImageJob("a green vase", 13)]
    batched = flux.generate_batch(jobs, SIZE).images
    for job, image in zip(jobs, batched, strict=True):
        alone = flux.generate_batch([job], SIZE).images[0]
        # Batched matrix products may round differently in the last bit: at most 1 of 255 per channel.
        assert np.abs(pixels(image) - pixels(alone)).max() <= 1, job


def test_large_batches_are_split_into_calls_of_max_batch(flux: DiffusersFlux) -> None:
    jobs = [ImageJob(f"object number {i}", i) for i in range(6)]
    rendered = flux.generate_batch(jobs, SIZE)
    assert len(rendered.images) == 6
    assert rendered.pipeline_calls == 2  # 4 + 2


def test_sizes_that_are_not_multiples_of_16_are_refused(flux: DiffusersFlux) -> None:
    with pytest.raises(InvalidInput, match="multiples of 16"):
        flux.generate_batch([ImageJob("a red cube", 1)], RenderOptions(40, 32))


def test_offload_modes_need_a_gpu(data_dir: Path) -> None:
    with pytest.raises(InvalidInput, match="model_offload moves weights between the CPU and a GPU"):
        DiffusersFlux.from_settings(settings_for(data_dir, flux_memory_mode="model_offload"))


def test_compile_setting_compiles_the_transformer(data_dir: Path) -> None:
    backend = DiffusersFlux.from_settings(settings_for(data_dir, flux_compile=True))
    assert backend.detail["compiled"] is True
    assert backend._pipeline.transformer._compiled_call_impl is not None
