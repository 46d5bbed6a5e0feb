"""Dual Marching Cubes tables for FlexiCubes, derived from the cube's topology instead of typed in.

A cube's corner c sits at (c & 1, c >> 1 & 1, c >> 2 & 1); a corner is *inside* when its SDF is < 0
and the case id sets bit c for it. The corner and edge numbering is FlexiCubes' (the InstantMesh
checkpoint's ``net_weight`` emits its 12 β and 8 α in this order). For each of the 256 cases:

- **Dual vertices.** The crossed edges (one end inside, one outside) fall into groups: two crossed edges
  of a face belong together; on an ambiguous face (4 crossed edges, diagonal corners alike) each
  *inside* corner keeps its two edges together, so inside corners stay apart. One dual vertex per group.
  Groups are ordered by the smallest corner of the minority side they touch (inside corners when at
  most 4 are inside, outside corners otherwise), then by their smallest edge; edges ascend.
- **Ambiguity check.** A case with 5 or more inside corners and exactly one ambiguous face may meet a
  neighbour across that face that resolves it the other way (FlexiCubes' cases C16/C19); FlexiCubes
  then replaces both cubes' cases by their complements. The table holds (flag, neighbour offset, case).

These rules reproduce upstream's ``tables.py`` (dmc_table, num_vd_table, check_table) entry for entry;
the conformance check in docs/instantmesh.md compared all 256 cases.
"""

from __future__ import annotations

import torch

# (corner, corner) per edge; y-edges list the upper corner first, as FlexiCubes does.
CUBE_EDGES = (
    (0, 1), (1, 5), (4, 5), (0, 4), (2, 3), (3, 7), (6, 7), (2, 6), (2, 0), (3, 1), (7, 5), (6, 4),
)  # fmt: skip
EDGE_AXIS = tuple(next(a for a in range(3) if (p ^ q) >> a & 1) for p, q in CUBE_EDGES)
MAX_DUAL_VERTICES = 4
MAX_GROUP_EDGES = 7


def corner_offset(corner: int) -> tuple[int, int, int]:
    return corner & 1, corner >> 1 & 1, corner >> 2 & 1


def _faces() -> list[tuple[int, int, list[int]]]:
    """(axis, side, corners) for the cube's 6 faces."""
    return [
        (axis, side, [c for c in range(8) if corner_offset(c)[axis] == side])
        for axis in range(3)
        for side in (0, 1)
    ]


def dual_groups(case: int) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """The crossed-edge groups (one per dual vertex, in table order) and the ambiguous faces."""
    inside = [case >> c & 1 for c in range(8)]
    crossed = [e for e, (p, q) in enumerate(CUBE_EDGES) if inside[p] != inside[q]]
    parent = {e: e for e in crossed}

    def root(e: int) -> int:
        while parent[e] != e:
            e = parent[e]
        return e

    ambiguous = []
    for axis, side, corners in _faces():
        on_face = [e for e in crossed if set(CUBE_EDGES[e]) <= set(corners)]
        if len(on_face) == 2:
            parent[root(on_face[0])] = root(on_face[1])
        elif len(on_face) == 4:
            ambiguous.append((axis, side))
            for corner in corners:
                if inside[corner]:
                    first, second = (e for e in on_face if corner in CUBE_EDGES[e])
                    parent[root(first)] = root(second)
    groups: dict[int, list[int]] = {}
    for e in crossed:
        groups.setdefault(root(e), []).append(e)
    minority = 1 if sum(inside) <= 4 else 0

    def order(group: list[int]) -> tuple[int, int]:
        corners = [c for e in group for c in CUBE_EDGES[e] if inside[c] == minority]
        return min(corners), min(group)

    return sorted((sorted(g) for g in groups.values()), key=order), ambiguous


def _build() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dmc = torch.full((256, MAX_DUAL_VERTICES, MAX_GROUP_EDGES), -1, dtype=torch.long)
    count = torch.zeros(256, dtype=torch.long)
    check = torch.zeros((256, 5), dtype=torch.long)
    for case in range(256):
        groups, ambiguous = dual_groups(case)
        count[case] = len(groups)
        for g, edges in enumerate(groups):
            dmc[case, g, : len(edges)] = torch.tensor(edges)
        if len(ambiguous) == 1 and bin(case).count("1") >= 5:
            axis, side = ambiguous[0]
            offset = [0, 0, 0]
            offset[axis] = 1 if side else -1
            check[case] = torch.tensor([1, *offset, 255 - case])
    return dmc, count, check


DMC_TABLE, NUM_DUAL_VERTICES, AMBIGUITY_TABLE = _build()
