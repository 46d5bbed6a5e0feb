"""The UV-space colour baker (postprocess_service.baking): which texels it paints, and with what."""

from __future__ import annotations

import numpy as np
import pytest

from postprocess_service import baking
from postprocess_service.baking import BAND_TEXELS, bake_texture

SIZE = 64
RED, GREEN, BLUE = (250, 0, 0), (0, 250, 0), (0, 0, 250)


def _one_triangle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    uv = np.array([[0.1, 0.1], [0.8, 0.2], [0.3, 0.9]])
    return uv, np.array([[0, 1, 2]]), np.array([RED, GREEN, BLUE], dtype=np.uint8)


def _centres_and_weights(uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every texel centre (row, column order) and its barycentric weights in the triangle, brute force."""
    corners = np.column_stack([uv[:, 0], 1.0 - uv[:, 1]]) * SIZE
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    points = np.column_stack([columns.ravel() + 0.5, rows.ravel() + 0.5])
    a, b, c = corners
    matrix = np.column_stack([b - a, c - a])
    w12 = np.linalg.solve(matrix, (points - a).T).T
    return points, np.column_stack([1 - w12.sum(axis=1), w12])


def _unpadded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Leave the gutters empty so that only what the triangle itself paints is seen.
    monkeypatch.setattr(
        baking, "pad_gutters", lambda texels, filled, width: np.where(filled[..., None], texels, 0)
    )


def test_texels_inside_take_the_interpolated_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    _unpadded(monkeypatch)
    uv, faces, colours = _one_triangle()
    texels = bake_texture(uv, faces, colours, SIZE).reshape(-1, 3).astype(float)
    _, weights = _centres_and_weights(uv)
    inside = (weights >= 1e-6).all(axis=1)
    expected = weights[inside] @ colours.astype(float)
    assert np.abs(texels[inside] - expected).max() <= 0.5 + 1e-6


def test_only_texels_within_the_band_are_painted(monkeypatch: pytest.MonkeyPatch) -> None:
    _unpadded(monkeypatch)
    uv, faces, colours = _one_triangle()
    painted = bake_texture(uv, faces, colours, SIZE).reshape(-1, 3).any(axis=1)
    points, weights = _centres_and_weights(uv)
    corners = np.column_stack([uv[:, 0], 1.0 - uv[:, 1]]) * SIZE
    opposite = np.linalg.norm(corners[[2, 0, 1]] - corners[[1, 2, 0]], axis=1)
    (ax, ay), (bx, by) = corners[1] - corners[0], corners[2] - corners[0]
    doubled_area = abs(ax * by - ay * bx)
    depth = (weights * (doubled_area / opposite)).min(axis=1)  # signed distance to the nearest edge
    box = (points >= corners.min(axis=0) - BAND_TEXELS).all(axis=1) & (
        points <= corners.max(axis=0) + BAND_TEXELS
    ).all(axis=1)
    clearly_in = (depth >= -BAND_TEXELS + 1e-6) & box
    clearly_out = (depth < -BAND_TEXELS - 1e-6) | ~box
    assert painted[clearly_in].all()
    assert not painted[clearly_out].any()


def test_small_batches_and_chunks_bake_the_same_texture(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    # A fan of triangles around the centre: shared edges, a chart border all round.
    angles = np.linspace(0, 2 * np.pi, 25)[:-1]
    uv = np.vstack([[0.5, 0.5], np.column_stack([0.5 + 0.4 * np.cos(angles), 0.5 + 0.4 * np.sin(angles)])])
    faces = np.array([[0, 1 + i, 1 + (i + 1) % 24] for i in range(24)])
    colours = rng.integers(0, 256, (len(uv), 3), dtype=np.uint8)
    whole = bake_texture(uv, faces, colours, SIZE)
    monkeypatch.setattr(baking, "_RUNS_PER_BATCH", 7)
    monkeypatch.setattr(baking, "_CHUNK_TEXELS", 50)
    assert np.array_equal(bake_texture(uv, faces, colours, SIZE), whole)


def test_degenerate_triangles_paint_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    _unpadded(monkeypatch)
    uv = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    texels = bake_texture(uv, np.array([[0, 1, 2]]), np.array([RED, GREEN, BLUE], dtype=np.uint8), SIZE)
    assert not texels.any()
