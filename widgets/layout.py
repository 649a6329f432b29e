"""Layered layout of a growing autograd graph (Qt-free, NumPy only).

Nodes arrive in execution order: every input before the op that reads it. Layers
run left to right along x (inputs on the left, the loss on the right), the order
within a layer runs along y, downwards as in Qt. Positions are node centres.

Two ways to place nodes, one set of rules:

- ``add_node()`` places an op one layer right of its deepest input, in the free
  slot of that layer nearest the mean y of its inputs. A leaf (a node without
  inputs) waits in a staging column left of layer 0 until its first consumer
  arrives, then sits one layer before that consumer, next to it. Placed nodes
  never move, so the drawing does not jump while a model runs.
- ``relayout()`` is the tidy pass, for a worker thread: the same layers, the order
  within layers by barycenter sweeps (vectorized per layer; the sweep with the
  fewest crossings is kept), y by straightening, x from column widths.

Edges that skip layers are routed along a lane around the layers they pass.

>>> lay = Layout()
>>> lay.add_nodes([10, 11, 12, 13], [(), (), (10, 11), (12,)])   # x, w, mul, tanh
>>> lay.layers().tolist()
[0, 0, 1, 2]
>>> lay.relayout().crossings
0
>>> x0, y0, x1, y1 = lay.box("")
>>> bool(x0 < lay.node_xy(13)[0] < x1)
True
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Progress = Callable[[float], "bool | None"]
_SCAN = 64  # free-slot search gives up after this many full gaps and goes to an end


class LayoutCancelled(Exception):
    """relayout() stopped because its progress callback returned False."""


@dataclass(frozen=True)
class RelayoutStats:
    """What one relayout() did."""

    nodes: int  # nodes laid out (the snapshot; later arrivals were placed on top)
    layers: int  # number of layers
    crossings_initial: int  # crossings between adjacent layers in arrival order
    crossings: int  # crossings of the kept order, never above crossings_initial


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


class Layout:
    """Incremental layered layout of a DAG whose nodes arrive in execution order.

    ``add_node`` is cheap and thread-safe; ``relayout`` works on a snapshot, so a
    worker thread can run it while nodes keep arriving (they are placed on top
    of the new layout when it is committed).

    >>> lay = Layout(node_height=20, node_gap=10)
    >>> lay.add_node(1, ())
    >>> lay.pending().tolist()          # a leaf waits for its first consumer
    [1]
    >>> lay.add_node(2, (1,), width=60)
    >>> lay.layers().tolist(), lay.pending().tolist()
    ([0, 1], [])
    """

    def __init__(
        self,
        *,
        node_height: float = 24.0,
        node_gap: float = 12.0,
        layer_gap: float = 48.0,
        default_width: float = 80.0,
        long_edge_weight: float = 0.25,
    ) -> None:
        self.node_height = float(node_height)
        self.node_gap = float(node_gap)  # vertical space between nodes of a layer
        self.layer_gap = float(layer_gap)  # horizontal space between columns
        self.default_width = float(default_width)
        self.long_edge_weight = float(long_edge_weight)  # pull of an edge skipping layers
        self._lock = threading.RLock()
        # the graph, append-only, indexed by arrival
        self._ids: list[int] = []
        self._index: dict[int, int] = {}
        self._preds: list[tuple[int, ...]] = []
        self._kind: list[str] = []
        self._width: list[float] = []
        self._group: list[int] = []  # index into _groups
        self._groups: list[str] = []
        self._group_index: dict[str, int] = {}
        self._esrc: list[int] = []
        self._edst: list[int] = []
        self._wmax = 0.0
        self._reset_view(np.ones(0, bool), {})
        self._version = 0
        self._cache: dict[str, object] = {}

    @property
    def sep(self) -> float:
        """Distance between the centres of neighbours in a layer."""
        return self.node_height + self.node_gap

    def _reset_view(self, visible: np.ndarray, collapsed: dict[str, float | None]) -> None:
        self._visible = visible  # over the nodes known at the last relayout
        self._collapsed = collapsed
        self._key_cache: dict[int, str | None] = {}
        self._box_rep: dict[str, int] = {}  # collapsed scope -> node drawn as its box
        self._box_width: dict[int, float] = {}
        self._rep: list[int] = []  # drawn node standing for each node; -1 hidden
        self._vsrc: list[int] = []  # drawn edges
        self._vdst: list[int] = []
        self._layer: list[int] = []  # -1: not placed (pending leaf, hidden or merged)
        self._x: list[float] = []
        self._y: list[float] = []
        self._col_x: list[float] = []
        self._col_w: list[float] = []
        self._slots: list[list[float]] = []  # sorted centres per layer
        self._last_y = 0.0

    # -- input -------------------------------------------------------------------

    def add_node(
        self,
        id: int,
        preds: Iterable[int] = (),
        kind: str = "",
        width: float | None = None,
        group: str = "",
    ) -> None:
        """Add one node after all its ``preds`` (ids of earlier nodes) and place it.

        ``kind`` is kept for the caller ("op", "parameter", ...); leaves are the
        nodes without preds, whatever their kind. ``group`` is the module scope
        ("model.fc1"), used by ``box`` and by collapsing.
        """
        with self._lock:
            id = int(id)
            if id in self._index:
                raise ValueError(f"node {id} was added twice")
            i = len(self._ids)
            ps: list[int] = []
            for p in preds:
                j = self._index.get(int(p))
                if j is None:
                    raise ValueError(f"node {id}: input {p} is unknown (inputs come first)")
                if j not in ps:
                    ps.append(j)
            g = self._group_index.get(group)
            if g is None:
                g = self._group_index[group] = len(self._groups)
                self._groups.append(group)
            w = self.default_width if width is None else float(width)
            self._ids.append(id)
            self._index[id] = i
            self._preds.append(tuple(ps))
            self._kind.append(kind or ("op" if ps else "leaf"))
            self._width.append(w)
            self._group.append(g)
            self._esrc.extend(ps)
            self._edst.extend([i] * len(ps))
            self._wmax = max(self._wmax, w)
            self._place(i)
            self._version += 1

    def add_nodes(
        self,
        ids: Sequence[int],
        preds: Sequence[Iterable[int]],
        kinds: Sequence[str] | None = None,
        widths: Sequence[float] | None = None,
        groups: Sequence[str] | None = None,
    ) -> None:
        """``add_node`` for each node in turn (same order rules)."""
        for k, id in enumerate(ids):
            self.add_node(
                id,
                preds[k],
                "" if kinds is None else kinds[k],
                None if widths is None else widths[k],
                "" if groups is None else groups[k],
            )

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id: object) -> bool:
        return id in self._index

    def kind(self, id: int) -> str:
        return self._kind[self._index[id]]

    # -- incremental placement ---------------------------------------------------------

    def _place(self, i: int) -> None:
        r = self._view_rep(i)
        self._rep.append(r)
        self._layer.append(-1)
        self._x.append(np.nan)
        self._y.append(np.nan)
        if r < 0:
            return
        rep = self._rep
        mapped: list[int] = []
        for p in self._preds[i]:
            q = rep[p]
            if q >= 0 and q != r and q not in mapped:
                mapped.append(q)
        self._vsrc.extend(mapped)
        self._vdst.extend([r] * len(mapped))
        if not mapped:
            return
        if self._layer[r] < 0:
            self._place_op(r, mapped)
        else:  # a member of a drawn box: its new leaves go next to the box
            self._place_leaves(r, mapped)

    def _view_rep(self, i: int) -> int:
        if i < len(self._visible) and not self._visible[i]:
            return -1
        key = self._collapse_key(self._group[i])
        if key is None:
            return i
        r = self._box_rep.setdefault(key, i)
        if r == i:
            width = self._collapsed[key]
            self._box_width[i] = self._width[i] if width is None else width
        return r

    def _collapse_key(self, g: int) -> str | None:
        if g not in self._key_cache:
            name = self._groups[g]
            hits = [s for s in self._collapsed if name == s or name.startswith(s + ".")]
            self._key_cache[g] = min(hits, key=len) if hits else None
        return self._key_cache[g]

    def _place_op(self, v: int, mapped: list[int]) -> None:
        layer, ys = self._layer, self._y
        L = 1
        for q in mapped:
            L = max(L, layer[q] + 1)
        tw = ty = 0.0
        for q in mapped:
            if layer[q] >= 0:
                w = 1.0 if layer[q] == L - 1 else self.long_edge_weight
                tw += w
                ty += w * ys[q]
        target = ty / tw if tw else self._last_y
        self._put(v, L, self._free_slot(L, target))
        self._last_y = ys[v]
        self._place_leaves(v, mapped)

    def _place_leaves(self, v: int, mapped: list[int]) -> None:
        L = max(self._layer[v] - 1, 0)
        waiting = [q for q in mapped if self._layer[q] < 0]
        if not waiting:
            return
        mid = (len(waiting) - 1) / 2
        for k, q in enumerate(waiting):
            self._put(q, L, self._free_slot(L, self._y[v] + (k - mid) * self.sep))

    def _put(self, v: int, L: int, y: float) -> None:
        width = self._box_width.get(v, self._width[v])
        while len(self._col_x) <= L:  # a new column, sized for the widest node so far
            w = max(self._wmax, width)
            if self._col_x:
                x = self._col_x[-1] + self._col_w[-1] / 2 + self.layer_gap + w / 2
            else:
                x = w / 2
            self._col_x.append(x)
            self._col_w.append(w)
            self._slots.append([])
        self._col_w[L] = max(self._col_w[L], width)
        self._layer[v] = L
        self._x[v] = self._col_x[L]
        self._y[v] = y
        bisect.insort(self._slots[L], y)

    def _free_slot(self, L: int, t: float) -> float:
        """The y nearest ``t`` where a node fits in layer ``L`` without overlap."""
        c = self._slots[L] if L < len(self._slots) else []
        if not c:
            return t
        s, n = self.sep, len(c)

        def gap(j: int) -> tuple[float, float]:  # feasible centres between c[j-1] and c[j]
            lo = c[j - 1] + s if j > 0 else -np.inf
            hi = c[j] - s if j < n else np.inf
            return lo, hi

        i = bisect.bisect_left(c, t)
        lo, hi = gap(i)
        if lo <= hi:
            return min(max(t, lo), hi)
        down = c[-1] + s
        for j in range(i + 1, min(n, i + _SCAN) + 1):
            lo, hi = gap(j)
            if lo <= hi:
                down = lo
                break
        up = c[0] - s
        for j in range(i - 1, max(0, i - _SCAN) - 1, -1):
            lo, hi = gap(j)
            if lo <= hi:
                up = hi
                break
        return up if t - up <= down - t else down

    # -- relayout ------------------------------------------------------------------

    def relayout(
        self,
        sweeps: int = 4,
        *,
        visible: np.ndarray | Sequence[bool] | None = None,
        collapsed: Mapping[str, float | None] | Iterable[str] = (),
        straighten: int = 4,
        progress: Progress | None = None,
    ) -> RelayoutStats:
        """Lay out every node known now, from scratch; deterministic.

        ``sweeps`` rounds of barycenter ordering (down then up), ``straighten``
        passes of y straightening. ``visible`` masks the nodes known now (arrival
        order; hidden nodes and their edges are not drawn, later nodes are
        visible). ``collapsed`` names module scopes drawn as one box node each (a
        mapping gives the box width); inner scopes go into the outer box.
        ``progress(fraction)`` is called along the way; returning False raises
        ``LayoutCancelled`` and leaves the layout as it was.
        """
        with self._lock:
            n, m = len(self._ids), len(self._esrc)
            esrc = np.array(self._esrc[:m], np.int64)
            edst = np.array(self._edst[:m], np.int64)
            group = np.array(self._group, np.int64)
            groups = list(self._groups)
            width = np.array(self._width, np.float64)
        if visible is None:
            visible = np.ones(n, bool)
        visible = np.array(visible, bool)
        if visible.shape != (n,):
            raise ValueError(f"visible has shape {visible.shape}; the layout has {n} nodes")
        if not isinstance(collapsed, Mapping):
            collapsed = dict.fromkeys(collapsed)
        collapsed = {str(s): (None if w is None else float(w)) for s, w in collapsed.items()}
        if "" in collapsed:
            raise ValueError("the top-level scope '' cannot be collapsed")
        plan = _Plan(self, esrc, edst, group, groups, width, visible, collapsed)
        stats = plan.run(sweeps, straighten, progress)
        with self._lock:
            plan.commit(self)
            for i in range(n, len(self._ids)):
                self._place(i)
            self._version += 1
        return stats

    # -- output --------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        """Per-node arrays of the current state, cached until the next change."""
        with self._lock:
            if self._cache.get("version") == self._version:
                return self._cache  # type: ignore[return-value]
            n = len(self._ids)
            rep = np.array(self._rep, np.int64)
            layer = np.array(self._layer, np.int64)
            x = np.array(self._x, np.float64)
            y = np.array(self._y, np.float64)
            width = np.array(self._width, np.float64)
            for r, w in self._box_width.items():
                width[r] = w
            drawn = rep == np.arange(n)
            pending = drawn & (layer < 0)
            if pending.any():  # staging column, left of layer 0
                wp = width[pending].max()
                left = self._col_x[0] - self._col_w[0] / 2 if self._col_x else 0.0
                x[pending] = left - self.layer_gap - wp / 2
                y[pending] = self.node_height / 2 + self.sep * np.arange(pending.sum())
            safe = np.maximum(rep, 0)
            hidden = rep < 0
            x, y, width = x[safe], y[safe], width[safe]
            layer = np.where(hidden, -1, layer[safe])
            x[hidden] = y[hidden] = np.nan
            xy = np.stack([x, y], axis=1)
            h = self.node_height / 2
            rects = np.stack([x - width / 2, y - h, x + width / 2, y + h], axis=1)
            code = np.unique(
                np.array(self._vsrc, np.int64) * max(n, 1) + np.array(self._vdst, np.int64)
            )
            src, dst = np.divmod(code, max(n, 1))
            out = {
                "ids": np.array(self._ids, np.int64),
                "xy": xy,
                "rects": rects,
                "layer": layer,
                "drawn": drawn,
                "pending": pending,
                "src": src,
                "dst": dst,
                "col_x": np.array(self._col_x, np.float64),
                "col_w": np.array(self._col_w, np.float64),
            }
            for a in out.values():
                a.setflags(write=False)
            self._cache = {**out, "version": self._version}
            return out

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 (n,), centres float64 (n, 2)) in arrival order, read-only.

        A node inside a collapsed scope gets its box's centre; a hidden node NaN.
        """
        a = self._arrays()
        return a["ids"], a["xy"]

    def rects(self) -> np.ndarray:
        """Node rectangles (x0, y0, x1, y1) in arrival order, float64 (n, 4)."""
        return self._arrays()["rects"]

    def layers(self) -> np.ndarray:
        """Layer of each node in arrival order; -1 for pending leaves and hidden nodes."""
        return self._arrays()["layer"]

    def drawn(self) -> np.ndarray:
        """Mask of the nodes drawn as themselves (not hidden, not inside a box)."""
        return self._arrays()["drawn"]

    def pending(self) -> np.ndarray:
        """Ids of the leaves still waiting for their first consumer (staging column)."""
        a = self._arrays()
        return a["ids"][a["pending"]]

    def node_xy(self, id: int) -> tuple[float, float]:
        x, y = self._arrays()["xy"][self._index[id]]
        return float(x), float(y)

    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(src, dst) int64 node indices of the drawn edges, sorted, no duplicates."""
        a = self._arrays()
        return a["src"], a["dst"]

    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of every drawn node; zeros when there is none."""
        a = self._arrays()
        r = a["rects"][a["drawn"]]
        if not len(r):
            return (0.0, 0.0, 0.0, 0.0)
        return (
            float(r[:, 0].min()),
            float(r[:, 1].min()),
            float(r[:, 2].max()),
            float(r[:, 3].max()),
        )

    def box(self, scope: str, pad: float = 0.0) -> tuple[float, float, float, float] | None:
        """Rectangle around the drawn nodes of ``scope`` and its inner scopes.

        For a collapsed scope this is its box node. None when nothing is drawn.
        """
        with self._lock:
            hit = [
                g
                for g, name in enumerate(self._groups)
                if not scope or name == scope or name.startswith(scope + ".")
            ]
            group = np.array(self._group, np.int64)
            rep = np.array(self._rep, np.int64)
        r = self.rects()
        members = np.unique(rep[np.isin(group, hit) & (rep >= 0)])
        if not len(members):
            return None
        r = r[members]
        return (
            float(r[:, 0].min() - pad),
            float(r[:, 1].min() - pad),
            float(r[:, 2].max() + pad),
            float(r[:, 3].max() + pad),
        )

    def crossings(self) -> int:
        """Crossings among the edges between adjacent layers, as drawn now."""
        a = self._arrays()
        src, dst, layer, y = a["src"], a["dst"], a["layer"], a["xy"][:, 1]
        one = (layer[src] >= 0) & (layer[dst] - layer[src] == 1)
        return count_crossings(layer[src[one]], y[src[one]], y[dst[one]])

    def edge_paths(self) -> EdgePaths:
        """Every drawn edge as a polyline; see EdgePaths."""
        a = self._arrays()
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
            routed[long] = self._route(pts, long, ls[long], ld[long], a)
        return EdgePaths(src, dst, pts, routed)

    def _route(self, pts, long, ls, ld, a) -> np.ndarray:
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
        clear = self.node_gap / 2
        direct = fwd & ((np.maximum(y0, y3) <= t - clear) | (np.minimum(y0, y3) >= b + clear))
        up, down = t - self.node_gap, b + self.node_gap
        cost_up = np.abs(y0 - up) + np.abs(y3 - up)
        cost_down = np.abs(y0 - down) + np.abs(y3 - down)
        lane = np.where(cost_up <= cost_down, up, down)
        right = a["col_x"] + a["col_w"] / 2 + self.layer_gap / 2
        left = a["col_x"] - a["col_w"] / 2 - self.layer_gap / 2
        sub = pts[long]
        sub[:, 1, 0] = np.where(direct, sub[:, 1, 0], right[ls])
        sub[:, 2, 0] = np.where(direct, sub[:, 2, 0], left[ld])
        sub[:, 1, 1] = np.where(direct, sub[:, 1, 1], lane)
        sub[:, 2, 1] = np.where(direct, sub[:, 2, 1], lane)
        pts[long] = sub
        return ~direct


class _Plan:
    """One relayout, computed from a snapshot without touching the Layout."""

    def __init__(self, lay, esrc, edst, group, groups, width, visible, collapsed) -> None:
        self.n = n = len(group)
        self.lw = lay.long_edge_weight
        self.sep = lay.sep
        self.h = lay.node_height
        self.layer_gap = lay.layer_gap
        self.visible = visible
        self.collapsed = collapsed
        idx = np.arange(n)
        rep = np.where(visible, idx, -1)
        keys = sorted(collapsed)
        self.box_rep: dict[str, int] = {}
        self.width = width.copy()
        if keys:
            key_of_group = np.full(len(groups) + 1, -1)
            for g, name in enumerate(groups):
                hits = [k for k, s in enumerate(keys) if name == s or name.startswith(s + ".")]
                if hits:
                    key_of_group[g] = min(hits, key=lambda k: len(keys[k]))
            key = key_of_group[group]
            sel = (key >= 0) & visible
            members, ks = idx[sel], key[sel]
            uk, first = np.unique(ks, return_index=True)
            first_member = np.full(len(keys), -1)
            first_member[uk] = members[first]
            rep[sel] = first_member[ks]
            box_w = np.zeros(len(keys))
            np.maximum.at(box_w, ks, width[sel])
            for k, r in zip(uk.tolist(), members[first].tolist(), strict=True):
                self.box_rep[keys[k]] = r
                given = collapsed[keys[k]]
                self.width[r] = box_w[k] if given is None else given
        self.rep = rep
        es, ed = rep[esrc], rep[edst]
        keep = (es >= 0) & (ed >= 0) & (es != ed)
        es, ed, member = es[keep], ed[keep], edst[keep]
        # a box takes its place in time with its first member that has an outside input
        t = np.full(n, n)
        np.minimum.at(t, ed, member)
        self.time = np.where(t < n, t, idx)
        code = np.unique(es * max(n, 1) + ed)
        self.es, self.ed = np.divmod(code, max(n, 1))
        self.drawn = idx[rep == idx]

    def run(self, sweeps: int, straighten: int, progress: Progress | None) -> RelayoutStats:
        def tick(f: float) -> None:
            if progress is not None and progress(f) is False:
                raise LayoutCancelled(f"relayout cancelled at {f:.0%}")

        tick(0.0)
        self._assign_layers()
        tick(0.1)
        self._order(sweeps, lambda k: tick(0.1 + 0.6 * k / max(sweeps, 1)))
        self._coordinates(straighten, lambda k: tick(0.7 + 0.3 * k / max(straighten, 1)))
        tick(1.0)
        return RelayoutStats(self.n, self.nl, self.crossings_initial, self.crossings)

    def _assign_layers(self) -> None:
        """Longest path in arrival order; a leaf goes one layer before its first consumer."""
        n, t = self.n, self.time
        fwd = t[self.es] < t[self.ed]
        fs, fd = self.es[fwd], self.ed[fwd]
        o = np.argsort(fd, kind="stable")
        src = fs[o].tolist()
        bnd = np.searchsorted(fd[o], np.arange(n + 1)).tolist()
        order = self.drawn[np.argsort(t[self.drawn], kind="stable")].tolist()
        layer = [-1] * n
        first = [-1] * n
        for v in order:
            a, b = bnd[v], bnd[v + 1]
            if a == b:
                continue
            L = 1
            for p in src[a:b]:
                if layer[p] + 1 > L:
                    L = layer[p] + 1
            layer[v] = L
            for p in src[a:b]:
                if layer[p] < 0:
                    layer[p] = L - 1
                    first[p] = v
        self.layer = lay = np.array(layer, np.int64)
        self.first = np.array(first, np.int64)
        self.is_leaf = np.diff(np.array(bnd)) == 0
        # a leaf read only through back edges (into a box that merges several steps)
        bs, bd = self.es[~fwd], self.ed[~fwd]
        sel = (lay[bs] < 0) & (lay[bd] >= 0)
        bs, bd = bs[sel], bd[sel]
        o = np.lexsort((bd, t[bd], bs))
        s, d = bs[o], bd[o]
        first_of = np.unique(s, return_index=True)[1]
        s, d = s[first_of], d[first_of]
        lay[s] = np.maximum(lay[d] - 1, 0)
        self.first[s] = d
        down = (lay[self.es] >= 0) & (lay[self.ed] > lay[self.es])
        self.fs, self.fd = self.es[down], self.ed[down]
        self.nl = int(lay.max()) + 1 if n else 0

    def _group(self, nodes: np.ndarray) -> tuple[np.ndarray, list[int], np.ndarray]:
        """Bounds of each layer in ``nodes`` (sorted by layer) and local indices."""
        lay = self.layer[nodes]
        nb = np.searchsorted(lay, np.arange(self.nl + 1))
        loc = np.zeros(self.n, np.int64)
        loc[nodes] = np.arange(len(nodes)) - nb[lay]
        return nb, nb.tolist(), loc

    def _sides(self, loc: np.ndarray, wd: np.ndarray, wu: np.ndarray):
        """Edges grouped by the layer of the moving end, for down and for up passes."""
        out = []
        for node, other, w in ((self.fd, self.fs, wd), (self.fs, self.fd, wu)):
            o = np.argsort(self.layer[node], kind="stable")
            node, other, w = node[o], other[o], w[o]
            eb = np.searchsorted(self.layer[node], np.arange(self.nl + 1)).tolist()
            wsum = np.bincount(node, w, minlength=self.n)
            has = wsum > 0
            inv = np.where(has, 1 / np.where(has, wsum, 1), 0.0)
            out.append((eb, loc[node], other, w, inv, has))
        return out

    def _order(self, sweeps: int, tick: Callable[[int], None]) -> None:
        lay = self.layer
        placed = self.drawn[lay[self.drawn] >= 0]
        # start from arrival order, each leaf just before its first consumer
        key = np.where(self.is_leaf, self.time[self.first] - 0.5, self.time).astype(np.float64)
        nodes = placed[np.lexsort((placed, key[placed], lay[placed]))]
        nb, nbl, loc = self._group(nodes)
        size = np.diff(nb)
        pos = np.zeros(self.n)
        pos[nodes] = loc[nodes] - (size[lay[nodes]] - 1) / 2
        # ranks of different layers do not compare: order by adjacent layers only
        span = lay[self.fd] - lay[self.fs]
        wd = (span == 1) * 1.0
        wu = np.where(self.is_leaf[self.fs], (self.first[self.fs] == self.fd) * 1.0, wd)
        down, up = self._sides(loc, wd, wu)
        multi = [L for L in range(self.nl) if size[L] > 1]
        one = span == 1
        one &= (size[lay[self.fs]] > 1) & (size[lay[self.fd]] > 1)
        cs, cd, cg = self.fs[one], self.fd[one], lay[self.fs[one]]

        def crossings() -> int:
            return count_crossings(cg, pos[cs], pos[cd])

        best = self.crossings_initial = crossings()
        best_pos = pos
        for k in range(sweeps):
            last, pos = pos, pos.copy()
            for side, layers in ((down, multi), (up, multi[::-1])):
                eb, eloc, other, w, inv, has = side
                for L in layers:
                    a, b = eb[L], eb[L + 1]
                    if a == b:
                        continue
                    v = nodes[nbl[L] : nbl[L + 1]]
                    sums = np.bincount(eloc[a:b], pos[other[a:b]] * w[a:b], len(v))
                    h = has[v]  # nodes without neighbours on this side keep their slot
                    v, sums = v[h], sums[h]
                    cur = pos[v]
                    pos[v[np.lexsort((cur, sums * inv[v]))]] = np.sort(cur)
            if np.array_equal(pos, last):  # settled: more sweeps change nothing
                tick(sweeps)
                break
            c = crossings()
            if c < best:
                best, best_pos = c, pos
            tick(k + 1)
        self.crossings = best
        self.pos = best_pos

    def _coordinates(self, passes: int, tick: Callable[[int], None]) -> None:
        lay, n = self.layer, self.n
        placed = self.drawn[lay[self.drawn] >= 0]
        nodes = placed[np.lexsort((self.pos[placed], lay[placed]))]
        nb, nbl, loc = self._group(nodes)
        y = self.pos * self.sep
        span = lay[self.fd] - lay[self.fs]
        wd = np.where(span == 1, 1.0, self.lw)
        wu = np.where(self.is_leaf[self.fs], (self.first[self.fs] == self.fd) * 1.0, wd)
        sides = self._sides(loc, wd, wu)
        sep = self.sep
        for k in range(passes):
            eb, eloc, other, w, inv, has = sides[k % 2]
            layers = range(self.nl) if k % 2 == 0 else range(self.nl - 1, -1, -1)
            for L in layers:
                a, b = eb[L], eb[L + 1]
                if a == b:
                    continue
                v = nodes[nbl[L] : nbl[L + 1]]
                if len(v) == 1:
                    i = v[0]
                    if has[i]:
                        y[i] = np.dot(y[other[a:b]], w[a:b]) * inv[i]
                    continue
                sums = np.bincount(eloc[a:b], y[other[a:b]] * w[a:b], len(v))
                steps = np.arange(len(v)) * sep
                z = np.where(has[v], sums * inv[v], y[v]) - steps
                if (z[1:] < z[:-1]).any():  # some would overlap: fit within the order
                    z = _isotonic(z.tolist())
                y[v] = z + steps
            tick(k + 1)
        if len(nodes):
            y += self.h / 2 - y[nodes].min()
        col_w = np.zeros(self.nl)
        np.maximum.at(col_w, lay[nodes], self.width[nodes])
        col_x = np.cumsum(col_w + self.layer_gap) - self.layer_gap - col_w / 2
        self.x = np.full(n, np.nan)
        self.y = np.full(n, np.nan)
        self.x[nodes] = col_x[lay[nodes]]
        self.y[nodes] = y[nodes]
        self.col_x, self.col_w = col_x, col_w
        ys = y[nodes].tolist()
        self.slots = [ys[nbl[L] : nbl[L + 1]] for L in range(self.nl)]
        ops = nodes[~self.is_leaf[nodes]]
        self.last_y = float(y[ops[np.argmax(self.time[ops])]]) if len(ops) else 0.0

    def commit(self, lay: Layout) -> None:
        lay._reset_view(self.visible, dict(self.collapsed))
        lay._box_rep = dict(self.box_rep)
        lay._box_width = {r: float(self.width[r]) for r in self.box_rep.values()}
        lay._rep = self.rep.tolist()
        lay._vsrc = self.es.tolist()
        lay._vdst = self.ed.tolist()
        lay._layer = np.where(np.isnan(self.y), -1, self.layer).tolist()
        lay._x = self.x.tolist()
        lay._y = self.y.tolist()
        lay._col_x = self.col_x.tolist()
        lay._col_w = self.col_w.tolist()
        lay._slots = self.slots
        lay._last_y = self.last_y


def _isotonic(z: list[float]) -> np.ndarray:
    """Least-squares nondecreasing fit of ``z`` (pool adjacent violators)."""
    vals: list[float] = []
    counts: list[int] = []
    for v in z:
        c = 1
        while vals and vals[-1] > v:
            pc = counts.pop()
            v = (vals.pop() * pc + v * c) / (pc + c)
            c += pc
        vals.append(v)
        counts.append(c)
    return np.array(vals).repeat(counts)


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


def training_dag(
    n_nodes: int, seed: int = 0
) -> tuple[list[int], list[tuple[int, ...]], list[float], list[str]]:
    """A synthetic graph shaped like unrolled training steps, in execution order.

    Returns (ids, preds, widths, groups). A few MLP, conv and attention blocks;
    each step runs forward, loss, backward (gradient ops read saved forward
    values: the long skip edges) and an SGD update of every parameter, whose
    result the next step reads. For demos, tests and benchmarks.

    >>> ids, preds, widths, groups = training_dag(40)
    >>> len(ids), preds[0], groups[0]
    (40, (), 'model.mlp0')
    """
    rng = np.random.default_rng(seed)
    preds: list[tuple[int, ...]] = []
    groups: list[str] = []

    def node(inputs: Sequence[int], scope: str) -> int:
        preds.append(tuple(inputs))
        groups.append(scope)
        return len(preds) - 1

    kinds = ["mlp"] + rng.choice(["mlp", "conv", "attn"], int(rng.integers(3, 7))).tolist()
    n_params = {"mlp": 2, "conv": 2, "attn": 4}
    scopes = [f"model.{k}{b}" for b, k in enumerate(kinds)]
    params = [[node((), s) for _ in range(n_params[k])] for s, k in zip(scopes, kinds, strict=True)]
    ops: list[tuple[int, tuple[int, ...], str]] = []  # this step's forward ops

    def op(inputs: tuple[int, ...], scope: str) -> int:
        out = node(inputs, scope)
        ops.append((out, inputs, scope))
        return out

    while len(preds) < n_nodes:
        ops.clear()
        h = node((), "")
        for s, kind, p in zip(scopes, kinds, params, strict=True):
            if kind == "attn":
                q, k, v = (op((h, p[j]), s) for j in range(3))
                att = op((op((q, k), s),), s)
                h = op((op((op((att, v), s), h), s), p[3]), s)  # residual, then scale
            else:
                z = op((h, p[0]), s)
                h = op((op((z, p[1]), s),), s)
                if kind == "conv":
                    h = op((h,), s)  # pool
        loss = op((h, node((), "")), "loss")
        grads = {loss: node((), "")}
        needs = {q for ps in params for q in ps} | {out for out, _, _ in ops}
        for out, inputs, s in reversed(ops):
            g = grads.get(out)
            for j, x in enumerate(inputs):
                if g is None or x not in needs:
                    continue
                gx = node((g,) + inputs[:j] + inputs[j + 1 :], s)
                grads[x] = node((grads[x], gx), s) if x in grads else gx
        lr = node((), "optim")
        params = [[node((q, node((grads[q], lr), "optim")), "optim") for q in ps] for ps in params]
    del preds[n_nodes:], groups[n_nodes:]
    widths = (40.0 + 8.0 * rng.integers(2, 14, len(preds))).tolist()
    return list(range(len(preds))), preds, widths, groups
