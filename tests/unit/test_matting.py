"""Matting backends: flood fill for plain backgrounds, an ONNX segmentation model for busy ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from image_service.matting import load_matting
from image_service.matting.flood_fill import FloodFillMatting
from image_service.matting.onnx_segmentation import PROFILES, OnnxSegmentation, profile_for
from meshforge.errors import BackendError, InvalidInput, ModelNotFound
from meshforge.settings import ImageSettings
from tests.tiny_matting import build_tiny_matting_model

HEIGHT, WIDTH = 150, 200
BOX = (slice(40, 110), slice(60, 140))  # rows, columns of the object


def _box_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[BOX] = True
    return mask


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def plain_background_photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    image = np.full((HEIGHT, WIDTH, 3), (235, 235, 230), dtype=np.int16) + rng.integers(
        -5, 6, (HEIGHT, WIDTH, 3)
    )
    image[BOX] = (200, 40, 40)
    return np.clip(image, 0, 255).astype(np.uint8)


def busy_background_photo() -> np.ndarray:
    """A red box on a grey checkerboard of two very different greys: no single background colour."""
    rows, cols = np.mgrid[:HEIGHT, :WIDTH]
    checker = ((rows // 25 + cols // 25) % 2).astype(bool)
    image = np.where(checker[..., None], np.uint8(60), np.uint8(200)).repeat(3, axis=2).astype(np.uint8)
    image[BOX] = (200, 40, 40)
    return image


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("data") / "models"
    return build_tiny_matting_model(models / "matting" / "u2net.onnx")


def onnx_settings(model: Path) -> ImageSettings:
    return ImageSettings(data_dir=model.parents[2], matting_backend="onnx")  # the default path, under models/


def test_flood_fill_finds_an_object_on_a_plain_background() -> None:
    alpha = FloodFillMatting()(plain_background_photo())
    assert alpha.dtype == np.float32 and alpha.shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(alpha > 0.5, _box_mask())


def test_flood_fill_cannot_separate_an_object_from_a_busy_background() -> None:
    try:
        alpha = FloodFillMatting()(busy_background_photo())
    except InvalidInput:
        return  # it says so: the "object" touches every edge
    assert _iou(alpha > 0.5, _box_mask()) < 0.5


def test_onnx_model_is_found_under_models_and_segments_a_busy_background(tiny_model: Path) -> None:
    matting = load_matting(onnx_settings(tiny_model))
    assert matting.name == "onnx"
    alpha = matting(busy_background_photo())
    assert alpha.shape == (HEIGHT, WIDTH) and alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert _iou(alpha > 0.5, _box_mask()) > 0.9


def test_onnx_backend_reads_the_input_size_from_the_model(tiny_model: Path) -> None:
    assert OnnxSegmentation(tiny_model).input_size == (128, 128)


def test_onnx_backend_uses_the_first_output_as_the_mask(tiny_model: Path) -> None:
    # The tiny model's second output is the inverted mask: reading it would mark the background.
    alpha = OnnxSegmentation(tiny_model)(busy_background_photo())
    assert alpha[75, 100] > 0.9 and alpha[5, 5] < 0.1


def test_onnx_backend_accepts_rgba_and_ignores_its_alpha(tiny_model: Path) -> None:
    rgba = np.dstack([busy_background_photo(), np.full((HEIGHT, WIDTH), 255, np.uint8)])
    assert _iou(OnnxSegmentation(tiny_model)(rgba) > 0.5, _box_mask()) > 0.9


def test_missing_model_is_a_start_up_error_naming_where_it_looked(tmp_path: Path) -> None:
    settings = ImageSettings(data_dir=tmp_path, matting_backend="onnx")
    with pytest.raises(ModelNotFound) as error:
        load_matting(settings)
    assert str(tmp_path / "models" / "matting" / "u2net.onnx") in error.value.message
    assert "scripts/download-models" in error.value.message


def test_absolute_model_path_is_used_as_is(tiny_model: Path, tmp_path: Path) -> None:
    settings = ImageSettings(data_dir=tmp_path, matting_backend="onnx", matting_model_path=tiny_model)
    assert load_matting(settings).name == "onnx"


def test_a_file_that_is_not_an_onnx_model_is_refused_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "u2net.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(BackendError, match="could not load the matting model"):
        OnnxSegmentation(path)


def test_a_model_without_an_image_input_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "not_an_image_model",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
    )
    path = tmp_path / "u2net.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    with pytest.raises(BackendError, match="N×3×H×W"):
        OnnxSegmentation(path)


def test_unknown_matting_backend_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="flood_fill, onnx"):
        load_matting(ImageSettings(data_dir=tmp_path, matting_backend="magic"))


@pytest.mark.parametrize(
    ("path", "family"),
    [
        ("matting/u2net.onnx", "u2net"),
        ("matting/u2netp.onnx", "u2net"),
        ("matting/isnet-general-use.onnx", "isnet"),
        ("matting/RMBG-1.4.onnx", "rmbg"),
        ("briaai/RMBG-1.4/onnx/model.onnx", "rmbg"),
        ("matting/birefnet-general.onnx", "birefnet"),
        ("matting/anything.onnx", "u2net"),
    ],
)
def test_normalisation_profile_follows_the_model_family(path: str, family: str) -> None:
    assert profile_for(Path(path)) == PROFILES[family]
