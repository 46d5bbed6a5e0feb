"""The procedural image backend: prompt parsing, shape building in the canonical frame, and rendering."""

from __future__ import annotations

import numpy as np
import pytest

from flux_service.procedural import (
    COLOURS,
    MODIFIERS,
    SHAPES,
    ShapeSpec,
    build_mesh,
    parse_prompt,
    render_view,
)
from meshforge.errors import UnsupportedPrompt
from meshforge.geometry.views import BACKGROUND_RGB, FRONT, OBJECT_EXTENT, VIEW_SETS, VIEWS_BY_NAME

STAGING = ", {view}, centered, plain neutral grey background, studio lighting"


def _spec(shape: str, proportions: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> ShapeSpec:
    return ShapeSpec(shape, "red", COLOURS["red"], proportions)


# --- parsing -------------------------------------------------------------------------------------------


def test_simple_prompt_gives_shape_colour_and_proportions() -> None:
    spec = parse_prompt("a tall blue cylinder")
    assert spec == ShapeSpec("cylinder", "blue", COLOURS["blue"], (1.0, 2.0, 1.0))


@pytest.mark.parametrize(
    ("word", "shape"),
    [
        ("Cube", "cube"), ("dice", "cube"), ("box", "box"), ("blocks", "box"), ("crate", "box"),
        ("ball", "sphere"), ("orbs", "sphere"), ("globe", "sphere"), ("SPHERES", "sphere"),
        ("can", "cylinder"), ("pillar", "cylinder"), ("columns", "cylinder"), ("tube", "cylinder"),
        ("cones", "cone"), ("donut", "torus"), ("doughnuts", "torus"), ("ring", "torus"), ("tori", "torus"),
        ("pyramids", "pyramid"), ("pill", "capsule"), ("capsules", "capsule"),
    ],
)  # fmt: skip
def test_synonyms_and_plurals_map_to_canonical_shapes(word: str, shape: str) -> None:
    assert parse_prompt(f"a {word}").shape == shape


@pytest.mark.parametrize("prompt", ["a cubed potato", "a boxing glove", "a string of pearls", "a cannon"])
def test_shape_words_match_whole_words_only(prompt: str) -> None:
    with pytest.raises(UnsupportedPrompt):
        parse_prompt(prompt)


def test_prompt_without_shape_raises_unsupported_prompt_with_hint() -> None:
    with pytest.raises(UnsupportedPrompt) as caught:
        parse_prompt("a red sports car")
    message = caught.value.message
    assert caught.value.code == "unsupported_prompt" and caught.value.status_code == 422
    assert "cube, box, sphere, cylinder, cone, torus, pyramid, capsule" in message
    assert 'could not find a shape word in "a red sports car"' in message
    assert "MESHFORGE_FLUX_BACKEND=diffusers" in message and "docs/backends.md" in message


@pytest.mark.parametrize("prompt", ["", "   ", "\n"])
def test_empty_prompt_is_rejected(prompt: str) -> None:
    with pytest.raises(UnsupportedPrompt, match="could not find anything to draw"):
        parse_prompt(prompt)


def test_two_shapes_are_rejected() -> None:
    with pytest.raises(UnsupportedPrompt, match='names "cube" and "sphere"'):
        parse_prompt("a red cube on a blue sphere")


def test_cube_and_box_together_name_one_shape() -> None:
    assert parse_prompt("a cube-shaped box").shape == "cube"
    assert parse_prompt("two red cubes").shape == "cube"


def test_view_phrase_is_ignored() -> None:
    plain = parse_prompt("a tall blue cylinder")
    for view in VIEW_SETS[8]:
        assert parse_prompt("a tall blue cylinder" + STAGING.format(view=view.prompt_phrase)) == plain


def test_background_colour_does_not_paint_the_object() -> None:
    assert parse_prompt("a cube" + STAGING.format(view="front view")).colour_name == "default"
    assert parse_prompt("a sphere on a red background").colour_name == "default"
    assert parse_prompt("a green cone on a white background").colour_name == "green"
    assert parse_prompt("a pink torus under warm white light").colour_name == "pink"


def test_staging_words_do_not_change_proportions() -> None:
    spec = parse_prompt("high quality render of a box, low angle, high resolution")
    assert spec.proportions == (1.0, 1.0, 1.0)


def test_can_as_a_verb_is_not_a_shape() -> None:
    assert parse_prompt("a cube that can roll").shape == "cube"
    assert parse_prompt("a red can").shape == "cylinder"


def test_colour_words_and_modifiers() -> None:
    assert parse_prompt("a Light Blue ball").colour_name == "light blue"
    assert parse_prompt("a navy blue box").colour_name == "navy blue"
    assert parse_prompt("a gray cube").colour_name == "grey"
    assert parse_prompt("a golden ring").colour_name == "gold"
    assert parse_prompt("a cube, painted red").colour_name == "red"
    light, plain, dark = (parse_prompt(f"a {m} blue cube").rgb for m in ("light", "", "dark"))
    assert sum(light) > sum(plain) > sum(dark)


def test_prompt_without_colour_gets_neutral_default() -> None:
    spec = parse_prompt("a pyramid")
    assert spec.colour_name == "default"
    assert max(spec.rgb) - min(spec.rgb) < 10 and min(spec.rgb) > 180


@pytest.mark.parametrize("modifier", [None, *MODIFIERS])
def test_every_colour_stays_visibly_different_from_background(modifier: str | None) -> None:
    for name in COLOURS:
        rgb = parse_prompt(f"a {modifier or ''} {name} cube").rgb
        assert np.abs(np.subtract(rgb, BACKGROUND_RGB)).max() >= 40, (modifier, name, rgb)


@pytest.mark.parametrize(
    ("prompt", "proportions"),
    [
        ("a tall box", (1.0, 2.0, 1.0)),
        ("a flat box", (1.0, 0.5, 1.0)),
        ("a wide box", (2.0, 1.0, 1.0)),
        ("a long box", (2.0, 1.0, 1.0)),
        ("a long cylinder", (1.0, 2.0, 1.0)),
        ("a thin pillar", (0.5, 1.0, 0.5)),
        ("a tall thin cone", (0.5, 2.0, 0.5)),
        ("a huge tiny big small cube", (1.0, 1.0, 1.0)),
        ("a capsule", (1.0, 2.0, 1.0)),
    ],
)
def test_proportion_words(prompt: str, proportions: tuple[float, float, float]) -> None:
    assert parse_prompt(prompt).proportions == proportions


# --- geometry ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_built_mesh_follows_the_canonical_convention(shape: str) -> None:
    mesh = build_mesh(_spec(shape, (1.0, 1.5, 0.8)))
    np.testing.assert_allclose(mesh.bounds.mean(axis=0), 0.0, atol=1e-9)
    assert mesh.extents.max() == pytest.approx(OBJECT_EXTENT)
    assert mesh.is_watertight and len(mesh.faces) <= 5000
    assert (mesh.visual.vertex_colors == [*COLOURS["red"], 255]).all()


def test_tall_cylinder_is_twice_as_high_as_wide() -> None:
    extents = build_mesh(parse_prompt("a tall blue cylinder")).extents
    assert extents[1] == pytest.approx(OBJECT_EXTENT)
    assert extents[1] / extents[0] == pytest.approx(2.0) and extents[2] == pytest.approx(extents[0])


def test_cone_apex_points_up() -> None:
    vertices = build_mesh(_spec("cone")).vertices
    apex = vertices[np.argmax(vertices[:, 1])]
    np.testing.assert_allclose(apex, (0.0, OBJECT_EXTENT / 2, 0.0), atol=1e-9)


def test_pyramid_base_edges_are_aligned_with_x_and_z() -> None:
    vertices = build_mesh(_spec("pyramid")).vertices
    base = vertices[np.isclose(vertices[:, 1], -OBJECT_EXTENT / 2)]
    corners = base[np.abs(base[:, 0]) > 1e-9]
    np.testing.assert_allclose(np.abs(corners[:, [0, 2]]), OBJECT_EXTENT / 2, atol=1e-9)
    assert len(corners) == 4


def test_torus_hole_faces_the_front_camera() -> None:
    size = 64
    front = render_view(_spec("torus"), FRONT, size)[..., 3] > 0
    side = render_view(_spec("torus"), VIEWS_BY_NAME["right"], size)[..., 3] > 0
    centre = size // 2
    assert not front[centre, centre] and front[centre, 5:centre].any()  # a hole ringed by the torus
    assert side[centre, centre]  # edge-on from the side


# --- rendering -----------------------------------------------------------------------------------------


def test_cube_front_view_mask_is_a_centered_square() -> None:
    rgba = render_view(parse_prompt("a red cube"), FRONT, 64)
    rows, cols = np.nonzero(rgba[..., 3])
    assert rgba.shape == (64, 64, 4) and rgba.dtype == np.uint8
    assert rows.min() == cols.min() == 64 - 1 - rows.max() == 64 - 1 - cols.max()
    assert (rgba[..., 3] > 0).sum() == (rows.max() - rows.min() + 1) ** 2


def test_pixels_of_red_cube_are_red() -> None:
    spec = parse_prompt("a red cube" + STAGING.format(view="front view"))
    for view in VIEW_SETS[8]:
        rgba = render_view(spec, view, 64).astype(int)
        object_rgb = rgba[..., :3][rgba[..., 3] == 255]
        assert len(object_rgb) > 300
        assert (object_rgb[:, 0] > 2 * object_rgb[:, 1]).all() and (
            object_rgb[:, 0] > 2 * object_rgb[:, 2]
        ).all()


def test_tall_shape_renders_taller_than_wide() -> None:
    alpha = render_view(parse_prompt("a tall pillar"), FRONT, 64)[..., 3] > 0
    rows, cols = np.nonzero(alpha)
    assert (rows.max() - rows.min()) > 1.8 * (cols.max() - cols.min())


def test_same_prompt_gives_identical_pixels() -> None:
    view = VIEWS_BY_NAME["front-left"]
    first = render_view(parse_prompt("a teal donut"), view, 48)
    second = render_view(parse_prompt("a teal donut"), view, 48)
    np.testing.assert_array_equal(first, second)
