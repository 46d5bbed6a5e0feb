"""The offline image backend's understanding of prompts: one simple coloured shape, drawn procedurally.

``parse_prompt`` reads "a tall blue cylinder" into a ``ShapeSpec``; ``build_mesh`` turns it into a mesh
in the canonical object frame of ``meshforge.geometry.views``; ``render_view`` draws it from a canonical
camera with the software rasteriser. Anything beyond one shape raises ``UnsupportedPrompt`` with a hint:
drawing something else would silently hand the user the wrong object.

Prompts usually arrive with the multi-view builder's phrases appended ("front view, centered, plain
neutral grey background, studio lighting"). Comma-separated segments that read like such staging and
name no shape are skipped, and colours that belong to a background or a light ("on a white background")
are dropped before colours are read, so the backdrop's grey never paints the object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import trimesh

from meshforge.errors import UnsupportedPrompt
from meshforge.geometry.raster import render_mesh
from meshforge.geometry.views import BACKGROUND_RGB, OBJECT_EXTENT, CanonicalView, camera_for
from meshforge.geometry.visuals import colour_visual

RGB = tuple[int, int, int]


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class ShapeSpec:
    shape: str  # canonical name: cube, box, sphere, cylinder, cone, torus, pyramid, capsule
    colour_name: str  # e.g. "red", "light blue", or "default"
    rgb: RGB
    proportions: tuple[float, float, float]  # bounding-box width (x), height (y), depth (z), unnormalised


SHAPES = ("cube", "box", "sphere", "cylinder", "cone", "torus", "pyramid", "capsule")
_SYNONYMS = {
    "cube": "cube cubes dice cubic",
    "box": "box boxes block blocks crate crates cuboid cuboids",
    "sphere": "sphere spheres ball balls orb orbs globe globes spherical",
    "cylinder": "cylinder cylinders can cans pillar pillars column columns tube tubes cylindrical",
    "cone": "cone cones conical",
    "torus": "torus tori toruses donut donuts doughnut doughnuts ring rings",
    "pyramid": "pyramid pyramids pyramidal",
    "capsule": "capsule capsules pill pills",
}
SHAPE_WORDS: dict[str, str] = {word: shape for shape, words in _SYNONYMS.items() for word in words.split()}
_FAMILY = {"box": "cube"}  # a cube and a box are the same geometry, so naming both is not two shapes
# Natural bounding-box proportions before proportion words; a capsule is a pill, a torus a ring.
_BASE_PROPORTIONS: dict[str, tuple[float, float, float]] = {"capsule": (1, 2, 1), "torus": (1, 1, 0.3)}
_AXIAL = {"cylinder", "cone", "capsule"}  # shapes whose length runs along +Y

# fmt: off
COLOURS: dict[str, RGB] = {
    "red": (215, 35, 35), "green": (40, 170, 60), "blue": (40, 90, 220), "yellow": (240, 215, 40),
    "orange": (245, 135, 30), "purple": (130, 55, 180), "violet": (150, 80, 220), "pink": (245, 140, 180),
    "white": (245, 245, 245), "black": (35, 35, 38), "grey": (175, 175, 175), "brown": (130, 80, 40),
    "cyan": (40, 210, 225), "magenta": (220, 40, 190), "gold": (230, 185, 50), "silver": (200, 203, 210),
    "teal": (30, 150, 150), "navy": (30, 45, 120), "lime": (150, 230, 50), "beige": (225, 210, 170),
    "maroon": (120, 25, 40), "turquoise": (60, 215, 200), "indigo": (75, 40, 160), "crimson": (200, 20, 60),
    "lavender": (190, 160, 230), "scarlet": (235, 40, 25), "olive": (120, 125, 40), "khaki": (195, 180, 120),
    "tan": (210, 180, 140), "cream": (245, 235, 200), "ivory": (250, 248, 230), "coral": (250, 125, 100),
    "salmon": (245, 140, 115), "peach": (250, 195, 160), "mint": (150, 230, 180), "aqua": (60, 220, 220),
    "amber": (245, 170, 20), "bronze": (180, 115, 50), "copper": (190, 100, 55), "rust": (170, 70, 35),
    "charcoal": (55, 58, 62), "emerald": (30, 160, 90), "ruby": (180, 20, 50), "sapphire": (30, 70, 180),
    "azure": (50, 140, 240), "chartreuse": (180, 230, 30), "fuchsia": (230, 40, 170), "plum": (140, 60, 120),
    "burgundy": (120, 20, 45), "mustard": (215, 175, 40),
    "navy blue": (30, 45, 120), "sky blue": (120, 190, 240), "royal blue": (50, 80, 200),
    "baby blue": (160, 200, 240), "forest green": (35, 110, 45), "lime green": (150, 230, 50),
    "olive green": (120, 125, 40), "sea green": (50, 160, 110), "hot pink": (245, 70, 160),
    "off white": (235, 232, 220),
}
# fmt: on
_COLOUR_ALIASES = {"gray": "grey", "golden": "gold"}
MODIFIERS = ("light", "pale", "pastel", "dark", "deep", "bright", "vivid")
DEFAULT_COLOUR: tuple[str, RGB] = ("default", (210, 210, 205))
_MIN_CONTRAST = 40  # some channel must differ this much from the background, or the colour is pushed away

# Proportion words -> effect; "long" stretches an axial shape along its axis and anything else along x.
_PROPORTION_WORDS = {
    **dict.fromkeys(("tall", "high"), "tall"),
    **dict.fromkeys(("short", "flat", "low", "squat", "stubby", "flattened"), "short"),
    **dict.fromkeys(("wide", "broad"), "wide"),
    **dict.fromkeys(("long", "lengthy", "elongated"), "long"),
    **dict.fromkeys(("thin", "slim", "narrow", "skinny", "slender"), "thin"),
}
# Word pairs that look like proportions or shapes but describe the picture, not the object.
_STOP_PHRASES = {
    ("high", "quality"), ("high", "resolution"), ("high", "detail"), ("highly", "detailed"),
    ("low", "poly"), ("high", "poly"), ("low", "angle"), ("high", "angle"), ("ring", "light"),
}  # fmt: skip
# A segment naming no shape but one of these is staging ("front view", "studio lighting"): skipped whole.
_STAGING = _wordset(
    "view views centered centred center centre background backdrop lighting lit studio seen render "
    "rendered rendering photo photograph photorealistic realistic quality detailed resolution isolated "
    "shadow shadows camera angle orthographic perspective 3d 4k 8k hd style illustration"
)
# Inside a segment that names the shape, these nouns carry their own colour words, which are dropped.
_CONTEXT_NOUNS = _wordset("background backgrounds backdrop backdrops lighting light lights shadow shadows")
_CONTEXT_FILLER = _wordset(
    "a an the on in against with over under behind of front and plain neutral solid simple clean uniform "
    "empty blank seamless soft warm cool studio matte gradient pure"
)
# "can" is only a shape after words that make it a noun: "a red can", not "a cube that can roll".
_NOUN_CAN_AFTER = _wordset("a an the one tin soda paint metal big small large tiny huge little").union(
    MODIFIERS, _PROPORTION_WORDS
)

_HINT = (
    "The offline procedural image backend only draws one simple shape per prompt (cube, box, sphere, "
    "cylinder, cone, torus, pyramid, capsule) with an optional colour and proportion, such as "
    '"a tall blue cylinder"; it could not find {problem} in "{prompt}"{detail}. To generate arbitrary '
    "objects, run flux-service with FLUX weights (MESHFORGE_FLUX_BACKEND=diffusers, see docs/backends.md)."
)
_SEGMENT_END = re.compile(r"[,;.!?:()\n]")  # the punctuation that separates parts of a prompt


def parse_prompt(prompt: str) -> ShapeSpec:
    """Read one shape, an optional colour and proportion words; raise ``UnsupportedPrompt`` otherwise."""
    if not prompt.strip():
        raise _unsupported(prompt, "anything to draw")
    segments = [_drop_context_clauses(_drop_stop_phrases(words)) for words in _segments(prompt)]
    segments = [words for words in segments if words and not _is_staging(words)]
    found = [
        (s, i, shape)
        for s, words in enumerate(segments)
        for i in range(len(words))
        if (shape := _shape_of(words, i))
    ]
    if not found:
        raise _unsupported(prompt, "a shape word")
    if len({_FAMILY.get(shape, shape) for _, _, shape in found}) > 1:
        named = " and ".join(dict.fromkeys(f'"{segments[s][i]}"' for s, i, _ in found))
        raise _unsupported(prompt, "a single shape", f" (it names {named})")
    s, i, shape = found[0]
    colour_name, rgb = _pick_colour(segments, s, i)
    return ShapeSpec(shape, colour_name, rgb, _proportions(shape, [w for words in segments for w in words]))


def _unsupported(prompt: str, problem: str, detail: str = "") -> UnsupportedPrompt:
    shown = prompt.strip() if len(prompt.strip()) <= 200 else prompt.strip()[:200] + "…"
    return UnsupportedPrompt(_HINT.format(problem=problem, prompt=shown, detail=detail))


def _segments(prompt: str) -> list[list[str]]:
    """Lower-case words of each comma-separated part; the builder appends its phrases as such parts."""
    return [re.findall(r"[a-z0-9]+", part) for part in _SEGMENT_END.split(prompt.lower())]


def _drop_stop_phrases(words: list[str]) -> list[str]:
    kept: list[str] = []
    for word in words:
        if kept and (kept[-1], word) in _STOP_PHRASES:
            kept.pop()
        else:
            kept.append(word)
    return kept


def _is_colour_word(word: str) -> bool:
    return _COLOUR_ALIASES.get(word, word) in COLOURS or word in MODIFIERS or word in ("sky", "hot", "off")


def _drop_context_clauses(words: list[str]) -> list[str]:
    """Remove "on a white background" and the like: the noun and the colour/filler words before it."""
    kept: list[str] = []
    for i, word in enumerate(words):
        follower = words[i + 1] if i + 1 < len(words) else ""
        if word not in _CONTEXT_NOUNS or (word == "light" and _is_colour_word(follower)):
            kept.append(word)  # "light blue" is a colour, not a lamp
            continue
        while kept and (kept[-1] in _CONTEXT_FILLER or _is_colour_word(kept[-1])):
            kept.pop()
    return kept


def _is_staging(words: list[str]) -> bool:
    return bool(_STAGING.intersection(words)) and not any(_shape_of(words, i) for i in range(len(words)))


def _shape_of(words: list[str], i: int) -> str | None:
    if words[i] == "can" and (
        i == 0 or not (words[i - 1] in _NOUN_CAN_AFTER or _is_colour_word(words[i - 1]))
    ):
        return None
    return SHAPE_WORDS.get(words[i])


def _colour_at(words: list[str], j: int) -> tuple[str, int] | None:
    """The colour name starting at ``words[j]`` and the index of its last word, if one starts there."""
    if j + 1 < len(words) and (pair := f"{words[j]} {words[j + 1]}") in COLOURS:
        return pair, j + 1
    if j < len(words) and (name := _COLOUR_ALIASES.get(words[j], words[j])) in COLOURS:
        return name, j
    return None


def _read_colours(words: list[str]) -> list[tuple[int, str, RGB]]:
    """Every colour phrase as (index of its last word, name, rgb): "red", "light blue", "navy blue"."""
    found: list[tuple[int, str, RGB]] = []
    i = 0
    while i < len(words):
        modifier = words[i] if words[i] in MODIFIERS else None
        colour = _colour_at(words, i + 1 if modifier else i)
        if colour is None:
            i += 1  # a lone "dark" is no colour; the next word is read afresh
            continue
        name, i = colour
        rgb = _away_from_background(_apply_modifier(COLOURS[name], modifier))
        found.append((i, f"{modifier} {name}" if modifier else name, rgb))
        i += 1
    return found


def _pick_colour(segments: list[list[str]], s: int, shape_at: int) -> tuple[str, RGB]:
    """The colour nearest before the shape in its part of the prompt, else the first after it, else any."""
    own = _read_colours(segments[s])
    before = [c for c in own if c[0] < shape_at]
    after = [c for c in own if c[0] > shape_at]
    anywhere = [c for words in segments for c in _read_colours(words)]
    for candidates in (before[-1:], after[:1], anywhere[:1]):
        if candidates:
            return candidates[0][1], candidates[0][2]
    return DEFAULT_COLOUR


def _apply_modifier(rgb: RGB, modifier: str | None) -> RGB:
    colour = np.asarray(rgb, dtype=np.float64)
    if modifier in ("light", "pale", "pastel"):
        colour += (255.0 - colour) * (0.45 if modifier == "light" else 0.6)
    elif modifier in ("dark", "deep"):
        colour *= 0.55
    elif modifier in ("bright", "vivid") and colour.max() > 0:
        colour *= 255.0 / colour.max()
    return _as_rgb(colour)


def _away_from_background(rgb: RGB) -> RGB:
    """Shift a colour too close to the background's grey so the object stays visible in the image."""
    colour = np.asarray(rgb, dtype=np.float64)
    background = np.asarray(BACKGROUND_RGB, dtype=np.float64)
    contrast = np.abs(colour - background).max()
    if contrast >= _MIN_CONTRAST:
        return rgb
    direction = 1.0 if colour.mean() >= background.mean() else -1.0
    return _as_rgb(colour + direction * (_MIN_CONTRAST - contrast))


def _as_rgb(colour: np.ndarray) -> RGB:
    r, g, b = (int(c) for c in np.clip(np.rint(colour), 0, 255))
    return (r, g, b)


def _proportions(shape: str, words: list[str]) -> tuple[float, float, float]:
    """Apply each distinct proportion word once, in order, to the shape's natural proportions.

    The words act on the box around any shape alike: a "flat" torus is squashed, not laid down.
    """
    x, y, z = _BASE_PROPORTIONS.get(shape, (1.0, 1.0, 1.0))
    effects = dict.fromkeys(_PROPORTION_WORDS[w] for w in words if w in _PROPORTION_WORDS)
    for effect in effects:
        if effect == "tall" or (effect == "long" and shape in _AXIAL):
            y *= 2.0
        elif effect == "short":
            y *= 0.5
        elif effect in ("wide", "long"):
            x *= 2.0
        elif effect == "thin":
            x, z = x * 0.5, z * 0.5
    return (float(x), float(y), float(z))


# --- geometry -----------------------------------------------------------------------------------------

_Z_TO_Y = trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0])  # trimesh builds along +Z


def _primitive(shape: str) -> trimesh.Trimesh:
    """The shape in its natural form, +Y up; size and position do not matter yet."""
    if shape in ("cube", "box"):
        return trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    if shape == "sphere":
        return trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    if shape == "torus":
        # Stood up with its hole along Z, facing the front camera, so the hole shows in the front view.
        return trimesh.creation.torus(0.35, 0.15, major_sections=48, minor_sections=24)
    if shape == "cylinder":
        mesh = trimesh.creation.cylinder(radius=0.5, height=1.0, sections=48)
    elif shape == "cone":
        mesh = trimesh.creation.cone(radius=0.5, height=1.0, sections=48)  # apex ends up at +Y
    elif shape == "pyramid":
        # A 4-sided cone has its corners on the axes; a 45° turn puts its base edges along x and z.
        mesh = trimesh.creation.cone(radius=np.sqrt(0.5), height=1.0, sections=4)
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 4, [0, 0, 1]))
    elif shape == "capsule":
        mesh = trimesh.creation.capsule(height=1.0, radius=0.5, count=[24, 24])
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {', '.join(SHAPES)}")
    mesh.apply_transform(_Z_TO_Y)
    return mesh


def build_mesh(spec: ShapeSpec) -> trimesh.Trimesh:
    """The spec's shape, stretched to its proportions and normalised to the canonical object frame.

    The bounding box is centred on the origin and its longest side is ``OBJECT_EXTENT``; every vertex
    carries ``spec.rgb`` (alpha 255). The torus stands upright with its hole along Z (see ``_primitive``).
    """
    proportions = np.asarray(spec.proportions, dtype=np.float64)
    if proportions.shape != (3,) or not (proportions > 0).all():
        raise ValueError(f"proportions must be three positive numbers, got {spec.proportions}")
    mesh = _primitive(spec.shape)
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    target = proportions / proportions.max() * OBJECT_EXTENT
    mesh.apply_transform(np.diag([*(target / mesh.extents), 1.0]))
    colour_visual(mesh).vertex_colors = np.tile([*spec.rgb, 255], (len(mesh.vertices), 1)).astype(np.uint8)
    return mesh


@lru_cache(maxsize=16)
def _shared_mesh(spec: ShapeSpec) -> trimesh.Trimesh:
    """One mesh per spec across the views of a job; rendering only reads it."""
    return build_mesh(spec)


def render_view(spec: ShapeSpec, view: CanonicalView, image_size: int) -> np.ndarray:
    """(H, W, 4) uint8 RGBA of the shape from a canonical view; alpha is the exact silhouette."""
    return render_mesh(_shared_mesh(spec), camera_for(view, image_size)).rgba
