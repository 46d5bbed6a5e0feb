"""Load, clean and decimate the raw reconstructed mesh before it is placed (placement.py) and exported.

The reconstruction stage hands over a marching-cubes surface: closed, vertex-coloured, +Y up, front
facing +Z, longest side about one unit. No function here modifies the mesh it is given, and every
one keeps the vertex colours, which fast-simplification would otherwise drop without a word.
"""

from __future__ import annotations

import logging
import re
import struct
import threading
from pathlib import Path

import fast_simplification
import numpy as np
import trimesh
from numpy.typing import NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import cKDTree

from meshforge.cancellation import check_cancelled
from meshforge.errors import InvalidInput
from postprocess_service.holes import fill_holes

log = logging.getLogger(__name__)

LOADABLE_SUFFIXES: frozenset[str] = frozenset({".glb", ".gltf", ".obj", ".ply", ".stl"})
DECIMATION_TOLERANCE = 0.05
# fast-simplification's default aggressiveness first; a gentler pass is only tried when the default
# one collapsed a thin part (a rod, a sheet) into a fin and so opened a surface that was closed.
_AGGRESSIVENESS: tuple[float, ...] = (7.0, 4.0)
_MIN_TARGET_FACES = 4  # a tetrahedron: the smallest closed surface
# Parser errors whose text helps a person ("incorrect header on GLB file"). Others, such as an
# ImportError from trimesh's text-encoding detector or a KeyError naming a PLY property, would only
# mislead, so their text goes to the log alone.
_TELLING_PARSE_ERRORS = (ValueError, IndexError, EOFError, struct.error)
# fast-simplification keeps the mesh being simplified in module-global C++ state between its load,
# simplify and read-back calls, so two threads decimating at once would mix their meshes.
_SIMPLIFIER_LOCK = threading.Lock()


# ---------------------------------------------------------------------------------------------- loading


def load_mesh(path: Path) -> trimesh.Trimesh:
    """Read a glb/gltf/obj/ply/stl file as one vertex-coloured mesh; unusable files raise InvalidInput."""
    path = Path(path)
    suffix = path.suffix.lower()
    kind = suffix.lstrip(".").upper()
    if suffix not in LOADABLE_SUFFIXES:
        readable = ", ".join(sorted(s.lstrip(".") for s in LOADABLE_SUFFIXES))
        raise _unreadable(
            path, f"{kind or 'a file without extension'} is not a format this stage reads ({readable})"
        )
    if not path.is_file():
        raise _unreadable(path, "there is no such file")
    if path.stat().st_size == 0:
        raise _unreadable(path, "the file is empty")
    try:
        loaded = trimesh.load(path, file_type=suffix.lstrip("."), process=False)
        mesh = _merge_into_one_mesh(loaded)
    except Exception as exc:  # trimesh's parsers raise anything from KeyError to struct.error on bad bytes
        log.info("could not parse %s", path, exc_info=True)
        raise _unreadable(path, f"it is damaged or not a valid {kind} file{_parse_detail(exc)}") from exc
    if mesh is None or len(mesh.faces) == 0:
        raise _unreadable(path, "it contains no triangles")
    if not np.isfinite(mesh.vertices).all():
        raise _unreadable(path, "some vertex coordinates are not finite numbers")
    return mesh


def vertex_colours(mesh: trimesh.Trimesh) -> NDArray[np.uint8] | None:
    """Per-vertex RGBA colours of any kind of visual (vertex, face or texture), or None when uncoloured."""
    visual = mesh.visual
    if visual is None or visual.kind is None:
        return None
    if isinstance(visual, trimesh.visual.TextureVisuals):
        visual = visual.to_color()
    # ColorVisuals averages face colours onto the vertices when only face colours are set.
    colours = np.asarray(visual.vertex_colors, dtype=np.uint8)
    return colours if colours.shape == (len(mesh.vertices), 4) else None


def _merge_into_one_mesh(loaded: object) -> trimesh.Trimesh | None:
    if isinstance(loaded, trimesh.Scene):
        # dump() bakes every node's transform into a copy of its geometry.
        parts = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)]
    elif isinstance(loaded, trimesh.Trimesh):
        parts = [loaded]
    else:  # point clouds and paths have no surface to post-process
        parts = []
    parts = [_bare_mesh(part) for part in parts if len(part.faces) > 0]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    merged = trimesh.util.concatenate(parts)
    return merged if isinstance(merged, trimesh.Trimesh) else None


def _bare_mesh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Only geometry and vertex colours: loader metadata (a PLY's raw arrays, file paths) stays behind."""
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= len(mesh.vertices)):
        raise ValueError("faces refer to vertices that do not exist")
    return trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices, dtype=np.float64),
        faces=faces,
        vertex_colors=vertex_colours(mesh),
        process=False,
    )


def _unreadable(path: Path, reason: str) -> InvalidInput:
    # Only the file name: the server's folder layout is of no use to the person reading the message.
    return InvalidInput(f'the mesh file "{path.name}" could not be read: {reason}')


def _parse_detail(exc: Exception, limit: int = 200) -> str:
    text = re.sub(r"\s+", " ", str(exc)).strip()
    if not text or not isinstance(exc, _TELLING_PARSE_ERRORS):
        return ""
    return f" ({text if len(text) <= limit else text[: limit - 1] + '…'})"


# --------------------------------------------------------------------------------------------- cleaning


def clean_mesh(
    mesh: trimesh.Trimesh, *, min_fragment_fraction: float = 0.02, close_holes: bool = True
) -> trimesh.Trimesh:
    """Merge, de-duplicate and orient the mesh, drop fragments much smaller than the main body, and
    (by default) close its holes so the result is watertight."""
    if not 0.0 <= min_fragment_fraction <= 1.0:
        raise ValueError(f"min_fragment_fraction must lie in [0, 1], not {min_fragment_fraction}")
    cleaned = mesh.copy()
    _remove_duplicates_and_degenerates(cleaned)
    if len(cleaned.faces) == 0:
        raise InvalidInput("the mesh has no usable triangles: every face is degenerate (zero area)")
    check_cancelled()  # each sub-step takes seconds on a large mesh: safe points between them
    _drop_small_fragments(cleaned, min_fragment_fraction)
    check_cancelled()
    if close_holes and not cleaned.is_watertight:
        fill_holes(cleaned)
        check_cancelled()
    _orient_outward(cleaned)
    return cleaned


def _remove_duplicates_and_degenerates(mesh: trimesh.Trimesh) -> None:
    # Merge on position alone: differing normals or UVs on a seam must not keep the surface split.
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()


def _drop_small_fragments(mesh: trimesh.Trimesh, min_fragment_fraction: float) -> None:
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    sizes = np.bincount(labels)
    # The largest component always passes its own threshold, so something is always kept.
    keep = (sizes >= min_fragment_fraction * sizes.max())[labels]
    if not keep.all():
        mesh.update_faces(keep)
        mesh.remove_unreferenced_vertices()


def _orient_outward(mesh: trimesh.Trimesh) -> None:
    # trimesh's fix_normals is fix_winding followed by fix_inversion. Its fix_winding walks the faces one
    # by one in Python through networkx (20-30 s at 330k faces; networkx is not a declared dependency), so
    # the winding is made consistent here with whole-array operations and only fix_inversion is reused.
    _make_winding_consistent(mesh)
    if mesh.body_count > 1:
        trimesh.repair.fix_inversion(mesh, multibody=True)
    # fix_inversion only flips bodies it judges inverted (and, for one body, does just what follows); a
    # closed surface must end with positive volume. The volume alone is summed here: trimesh's
    # mesh.volume computes the whole inertia tensor on the way, several times as long.
    if mesh.is_watertight and signed_volume(mesh) < 0:
        mesh.invert()


def signed_volume(mesh: trimesh.Trimesh) -> float:
    """Volume by the divergence theorem: negative when a closed surface's faces wind inward."""
    a, b, c = (mesh.vertices[mesh.faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)


def _make_winding_consistent(mesh: trimesh.Trimesh) -> None:
    """Flip faces so that every two neighbours traverse their shared edge in opposite directions."""
    if mesh.is_winding_consistent:
        return
    graph = _face_adjacency_graph(mesh)
    parent, disagrees = _spanning_forest(graph)
    flip = _parity_to_root(parent, disagrees)
    if flip.any():
        faces = mesh.faces.copy()
        faces[flip] = faces[flip, ::-1]
        mesh.faces = faces


def _face_adjacency_graph(mesh: trimesh.Trimesh) -> csr_matrix:
    """Faces joined by a manifold edge, weighted 2 where both run it the same way, else 1 (not 0 and 1:
    sparse matrices drop stored zeros)."""
    shared = np.asarray(trimesh.grouping.group_rows(mesh.edges_sorted, require_count=2)).reshape(-1, 2)
    same_way = mesh.edges[shared[:, 0], 0] == mesh.edges[shared[:, 1], 0]
    pairs = np.sort(shared // 3, axis=1)  # mesh.edges holds three edges per face, in face order
    # Two faces sharing two edges must count once, or their weights would add up.
    pairs, first = np.unique(pairs, axis=0, return_index=True)
    weight = np.where(same_way[first], 2, 1)
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    count = len(mesh.faces)
    return csr_matrix((np.concatenate([weight, weight]), (rows, cols)), shape=(count, count))


def _spanning_forest(graph: csr_matrix) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """A breadth-first parent per face (roots are their own) and whether it disagrees with that parent."""
    count = graph.shape[0]
    parent = np.arange(count)
    _, labels = connected_components(graph, directed=False)
    for root in np.unique(labels, return_index=True)[1]:
        order, predecessors = breadth_first_order(graph, root, directed=False, return_predecessors=True)
        parent[order[1:]] = predecessors[order[1:]]
    children = np.flatnonzero(parent != np.arange(count))
    disagrees = np.zeros(count, dtype=bool)
    disagrees[children] = np.asarray(graph[parent[children], children]).ravel() == 2
    return parent, disagrees


def _parity_to_root(parent: NDArray[np.int64], disagrees: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Whether each face is wound against its tree's root: the XOR of the disagreements on the way.

    Pointer jumping doubles how far every face has looked each round: log2(depth) rounds, no face loop.
    """
    parity = disagrees.copy()
    parent = parent.copy()
    while True:
        grandparent = parent[parent]
        if np.array_equal(grandparent, parent):
            return parity
        parity = parity ^ parity[parent]
        parent = grandparent


# ------------------------------------------------------------------------------------------- decimation


def decimate(mesh: trimesh.Trimesh, target_faces: int) -> trimesh.Trimesh:
    """Quadric-decimate to within ±5% of ``target_faces``; meshes already small enough come back as is."""
    if target_faces < _MIN_TARGET_FACES:
        raise ValueError(f"target_faces must be at least {_MIN_TARGET_FACES}, not {target_faces}")
    if len(mesh.faces) <= target_faces:
        return mesh
    must_stay_closed = bool(mesh.is_watertight)
    candidates: list[trimesh.Trimesh] = []
    for aggressiveness in _AGGRESSIVENESS:
        check_cancelled()
        candidates.append(_decimate_to_count(mesh, target_faces, aggressiveness, must_stay_closed))
        if all(_rank(candidates[-1], target_faces, must_stay_closed)[:2]):
            break
    best = max(candidates, key=lambda m: _rank(m, target_faces, must_stay_closed))
    _carry_colours_over(mesh, best)
    return best


def _decimate_to_count(
    mesh: trimesh.Trimesh, target_faces: int, aggressiveness: float, must_stay_closed: bool
) -> trimesh.Trimesh:
    first = _simplify(mesh, target_faces, aggressiveness, must_stay_closed)
    if _within_tolerance(len(first.faces), target_faces):
        return first
    # The simplifier can stop short of (or overshoot) the count on some shapes; scaling the request by
    # how far the first pass landed usually puts the single retry inside the tolerance.
    adjusted = round(target_faces * target_faces / max(len(first.faces), 1))
    adjusted = int(np.clip(adjusted, _MIN_TARGET_FACES, len(mesh.faces) - 1))
    second = _simplify(mesh, adjusted, aggressiveness, must_stay_closed)
    return min((first, second), key=lambda m: abs(len(m.faces) - target_faces))


def _simplify(
    mesh: trimesh.Trimesh, count: int, aggressiveness: float, must_stay_closed: bool
) -> trimesh.Trimesh:
    with _SIMPLIFIER_LOCK:
        points, faces = fast_simplification.simplify(
            mesh.vertices, mesh.faces, target_count=count, agg=aggressiveness
        )
    result = trimesh.Trimesh(vertices=points, faces=faces, process=False)
    if must_stay_closed and not result.is_watertight:
        _remove_collapsed_fins(result)
    result.remove_unreferenced_vertices()
    return result


def _remove_collapsed_fins(mesh: trimesh.Trimesh) -> None:
    """Drop every face that shares its three vertices with another face.

    When a rod or sheet thinner than the local edge length collapses, it leaves two back-to-back
    triangles over the same vertices, whose edges are then shared by four faces. Removing both faces
    of each pair gives those edges back to the two faces of the surface around them.
    """
    _, inverse, counts = np.unique(
        np.sort(mesh.faces, axis=1), axis=0, return_inverse=True, return_counts=True
    )
    duplicated = counts[inverse.reshape(-1)] > 1
    if duplicated.any() and not duplicated.all():
        mesh.update_faces(~duplicated)


def _within_tolerance(faces: int, target_faces: int) -> bool:
    return abs(faces - target_faces) <= DECIMATION_TOLERANCE * target_faces


def _rank(mesh: trimesh.Trimesh, target_faces: int, must_stay_closed: bool) -> tuple[bool, bool, int]:
    # Landing on the face budget matters most, then staying closed, then landing close to the target.
    closed_enough = bool(mesh.is_watertight) or not must_stay_closed
    return (
        _within_tolerance(len(mesh.faces), target_faces),
        closed_enough,
        -abs(len(mesh.faces) - target_faces),
    )


def _carry_colours_over(source: trimesh.Trimesh, result: trimesh.Trimesh) -> None:
    colours = vertex_colours(source)
    if colours is None:
        return
    # Decimated vertices stay on (or very near) the original surface, so the nearest original vertex
    # is a faithful colour sample.
    _, nearest = cKDTree(source.vertices).query(result.vertices)
    result.visual = trimesh.visual.ColorVisuals(result, vertex_colors=colours[nearest])
