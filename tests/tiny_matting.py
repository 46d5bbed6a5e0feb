"""A tiny hand-built segmentation model in the real U²-Net ONNX layout, for the ONNX matting backend.

Input ``input``: 1×3×S×S float, RGB normalised with ImageNet mean/std (U²-Net's). Outputs: ``mask``
1×1×S×S in 0..1 first, then a side output, as U²-Net has (here the inverse mask, so a backend that read
the wrong output would fail the tests). Its rule is a real, if simple, saliency: colourful pixels are
object, grey ones (any shade, any pattern) background. Layers: a 1×1 convolution that undoes the
normalisation, one that takes the channel differences, Abs, their sum, a 3×3 box blur for soft edges and
a steep sigmoid. With ``centre_prior`` it adds a fixed disc of logits, as salient-object models favour
the image centre: then even a picture that is colourful everywhere (random FLUX weights draw noise) has
one round object in the middle, which is what a pipeline test on random weights needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
COLOURFULNESS_THRESHOLD = 0.3  # summed |channel differences| in 0..1 RGB; greys give 0
STEEPNESS = 20.0


def _conv_weights(matrix: np.ndarray, kernel: int = 1) -> np.ndarray:
    out_channels, in_channels = matrix.shape
    weights = np.zeros((out_channels, in_channels, kernel, kernel), dtype=np.float32)
    weights[:, :, kernel // 2, kernel // 2] = matrix
    return weights


def _centre_disc_logits(size: int, radius: float = 0.6) -> np.ndarray:
    """0 inside a centred disc of ``radius`` (a share of the half-size), strongly negative outside."""
    centres = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    distance = np.hypot(*np.meshgrid(centres, centres, indexing="ij"))
    logits = np.where(distance <= radius, 0.0, -4.0 * STEEPNESS).astype(np.float32)
    return logits.reshape(1, 1, size, size)


def build_tiny_matting_model(path: Path, input_size: int = 128, *, centre_prior: bool = False) -> Path:
    """Write the model to ``path`` (e.g. models/matting/u2net.onnx) and return ``path``."""
    prior = _centre_disc_logits(input_size) if centre_prior else np.zeros((1, 1, 1, 1), np.float32)
    differences = np.array([[1, -1, 0], [0, 1, -1], [1, 0, -1]], dtype=np.float32)
    initialisers = [
        numpy_helper.from_array(_conv_weights(np.diag(IMAGENET_STD)), "unnormalise_w"),
        numpy_helper.from_array(IMAGENET_MEAN, "unnormalise_b"),
        numpy_helper.from_array(_conv_weights(differences), "differences_w"),
        numpy_helper.from_array(_conv_weights(np.ones((1, 3), dtype=np.float32) * STEEPNESS), "sum_w"),
        numpy_helper.from_array(np.array([-STEEPNESS * COLOURFULNESS_THRESHOLD], np.float32), "sum_b"),
        numpy_helper.from_array(np.full((1, 1, 3, 3), 1 / 9, dtype=np.float32), "blur_w"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(prior, "prior"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "unnormalise_w", "unnormalise_b"], ["rgb"]),
        helper.make_node("Conv", ["rgb", "differences_w"], ["signed_differences"]),
        helper.make_node("Abs", ["signed_differences"], ["differences"]),
        helper.make_node("Conv", ["differences", "sum_w", "sum_b"], ["colour_logit"]),
        helper.make_node("Add", ["colour_logit", "prior"], ["logit"]),
        helper.make_node("Conv", ["logit", "blur_w"], ["smooth_logit"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["smooth_logit"], ["mask"]),
        helper.make_node("Sub", ["one", "mask"], ["side"]),
    ]
    shape = [1, 3, input_size, input_size]
    graph = helper.make_graph(
        nodes,
        "tiny_u2net_layout",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, input_size, input_size]),
            helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, 1, input_size, input_size]),
        ],
        initialisers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
