"""Geometry of a drawn layout (NumPy only): free slots, edge lanes, crossing counts.

Pure functions on the arrays a ``Layout`` keeps; no state, no locking.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

_SCAN = 64  # free-slot search gives up after this many full gaps and goes to an end


def free_slot(c: Sequence[float], t: float, s: float, room: Sequence[float] | None = None) -> float:
    """The y nearest ``t`` where a node fits among the sorted centres ``c``, ``s`` apart
    (and ``room[j]`` more from ``c[j]``: the module boxes between them).

    >>> free_slot([0.0, 36.0], 10.0, 36.0)   # no room between: the nearer end
    -36.0
    >>> free_slot([0.0], 10.0, 36.0, [20.0])  # a box's title and padding in between
    56.0
    """
    if not c:
        return t
    n = len(c)
    extra = room if room is not None else [0.0] * n

    def gap(j: int) -> tuple[float, float]:  # feasible centres between c[j-1] and c[j]
        lo = c[j - 1] + s + extra[j - 1] if j > 0 else -np.inf
        hi = c[j] - s - extra[j] if j < n else np.inf
        return lo, hi

    i = bisect.bisect_left(c, t)
    lo, hi = gap(i)
    if lo <= hi:
        return min(max(t, lo), hi)
    down = c[-1] + s + extra[-1]
    for j in range(i + 1, min(n, i + _SCAN) + 1):
        lo, hi = gap(j)
        if lo <= hi:
            down = lo
            break
    up = c[0] - s - extra[0]
    for j in range(i - 1, max(0, i - _SCAN) - 1, -1):
        lo, hi = gap(j)
        if lo <= hi:
            up = hi
            break
    return up if t - up <= down - t else down


def box_room(upper: str, lower: str, pad: float, title: float) -> float:
    """Extra space between a node of group ``upper`` and one of ``lower`` right under
    it: ``pad`` per module box that ends between them, ``pad + title`` per box that
    begins (groups are dotted module paths).

    >>> box_room("model.fc1", "model.fc2", 8.0, 16.0)   # fc1's box ends, fc2's begins
    32.0
    """
    if not (pad or title) or upper == lower:
        return 0.0
    a = upper.split(".") if upper else []
    b = lower.split(".") if lower else []
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    return (len(a) - common) * pad + (len(b) - common) * (pad + title)


@dataclass(frozen=True)
class EdgePaths:
    """Edges as 4-point polylines, ready to batch into one painter path.

    ``points[:, 0]`` is the tail port (right side of the source), ``points[:, 3]``
    the head port (left side of the target). A direct edge repeats its ports in
    ``points[:, 1:3]``; a routed edge (skipping layers or going back) runs from
    ``points[:, 1]`` to ``points[:, 2]`` along a lane above or below the layers
    it passes.
    """

    src: np.ndarray  # int64 node index (arrival order, as in positions()) of each tail
    dst: np.ndarray  # int64 node index of each head
    points: np.ndarray  # float64 (E, 4, 2)
    routed: np.ndarray  # bool (E,)


def route_edges(a: Mapping[str, np.ndarray], node_gap: float, layer_gap: float) -> EdgePaths:
    """Every drawn edge of ``a`` (the per-node arrays of a Layout) as a polyline."""
    src, dst, layer, xy, rects = a["src"], a["dst"], a["layer"], a["xy"], a["rects"]
    pts = np.empty((len(src), 4, 2))
    pts[:, 0, 0] = pts[:, 1, 0] = rects[src, 2]
    pts[:, 0, 1] = pts[:, 1, 1] = xy[src, 1]
    pts[:, 2, 0] = pts[:, 3, 0] = rects[dst, 0]
    pts[:, 2, 1] = pts[:, 3, 1] = xy[dst, 1]
    ls, ld = layer[src], layer[dst]
    long = (ls >= 0) & (ld >= 0) & (ld - ls != 1)
    routed = np.zeros(len(src), bool)
    if long.any():
        routed[long] = _route(pts, long, ls[long], ld[long], a, node_gap, layer_gap)
    return EdgePaths(src, dst, pts, routed)


def _route(pts, long, ls, ld, a, node_gap: float, layer_gap: float) -> np.ndarray:
    """Lanes for the long edges in ``pts[long]``; returns which ones needed one."""
    drawn = a["drawn"] & (a["layer"] >= 0)
    nl = len(a["col_x"])
    top = np.full(nl, np.inf)
    bot = np.full(nl, -np.inf)
    np.minimum.at(top, a["layer"][drawn], a["rects"][drawn, 1])
    np.maximum.at(bot, a["layer"][drawn], a["rects"][drawn, 3])
    fwd = ld > ls
    lo = np.where(fwd, ls + 1, ld)  # the columns the edge passes
    hi = np.where(fwd, ld - 1, ls)
    t = _range_reduce(top, lo, hi, np.minimum)
    b = _range_reduce(bot, lo, hi, np.maximum)
    y0, y3 = pts[long, 0, 1], pts[long, 3, 1]
    clear = node_gap / 2
    direct = fwd & ((np.maximum(y0, y3) <= t - clear) | (np.minimum(y0, y3) >= b + clear))
    up, down = t - node_gap, b + node_gap
    cost_up = np.abs(y0 - up) + np.abs(y3 - up)
    cost_down = np.abs(y0 - down) + np.abs(y3 - down)
    lane = np.where(cost_up <= cost_down, up, down)
    right = a["col_x"] + a["col_w"] / 2 + layer_gap / 2
    left = a["col_x"] - a["col_w"] / 2 - layer_gap / 2
    sub = pts[long]
    sub[:, 1, 0] = np.where(direct, sub[:, 1, 0], right[ls])
    sub[:, 2, 0] = np.where(direct, sub[:, 2, 0], left[ld])
    sub[:, 1, 1] = np.where(direct, sub[:, 1, 1], lane)
    sub[:, 2, 1] = np.where(direct, sub[:, 2, 1], lane)
    pts[long] = sub
    return ~direct


def _range_reduce(vals: np.ndarray, lo: np.ndarray, hi: np.ndarray, op) -> np.ndarray:
    """op-reduction of ``vals[lo:hi + 1]`` for each pair (sparse table; lo <= hi)."""
    tables = [vals]
    while 2 ** len(tables) <= len(vals):
        prev, half = tables[-1], 2 ** (len(tables) - 1)
        tables.append(op(prev[:-half], prev[half:]))
    k = np.floor(np.log2(hi - lo + 1)).astype(np.int64)
    out = np.empty(len(lo))
    for j in np.unique(k).tolist():
        s = k == j
        out[s] = op(tables[j][lo[s]], tables[j][hi[s] - 2**j + 1])
    return out


def count_crossings(group: np.ndarray, a: np.ndarray, b: np.ndarray) -> int:
    """Crossing pairs among edges (a -> b) between two layers; one layer pair per group.

    Edges i and j of one group cross when a_i < a_j and b_i > b_j. Vectorized
    merge-sort inversion count, O(E log^2 E).

    >>> count_crossings(np.zeros(3), np.array([0, 1, 2]), np.array([2, 1, 0]))
    3
    """
    group, a, b = np.asarray(group), np.asarray(a), np.asarray(b)
    n = len(a)
    if n < 2:
        return 0
    o = np.lexsort((b, a, group))
    g, b = group[o], b[o]
    o2 = np.lexsort((b, g))
    new = np.ones(n, bool)
    new[1:] = (g[o2][1:] != g[o2][:-1]) | (b[o2][1:] != b[o2][:-1])
    r = np.empty(n, np.int64)
    r[o2] = np.cumsum(new) - 1  # dense rank of (group, b): groups never interleave
    return _inversions(r)


def _inversions(r: np.ndarray) -> int:
    """Pairs i < j with r[i] > r[j], for ranks 0 <= r < len(r)."""
    n = len(r)
    idx = np.arange(n)
    total = 0
    width = 1
    while width < n:
        pair = idx // (2 * width)
        right = (idx // width) % 2 == 1
        key = pair * n + r  # each half-block is sorted; left halves are globally sorted
        left = key[~right]
        rk = key[right]
        end = np.searchsorted(left, (pair[right] + 1) * n)
        total += int((end - np.searchsorted(left, rk, side="right")).sum())
        key.sort(kind="stable")
        r = key - pair * n
        width *= 2
    return total
