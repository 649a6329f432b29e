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

import threading
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from widgets.layout_geometry import EdgePaths, count_crossings, route_edges
from widgets.layout_place import PlacementMixin
from widgets.layout_plan import LayoutCancelled, Plan, Progress, RelayoutStats
from widgets.layout_samples import training_dag

__all__ = [
    "EdgePaths",
    "Layout",
    "LayoutCancelled",
    "Progress",
    "RelayoutStats",
    "count_crossings",
    "training_dag",
]


class Layout(PlacementMixin):
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
        box_pad: float = 0.0,
        box_title: float = 0.0,
    ) -> None:
        self.node_height = float(node_height)
        # room the tidy pass leaves between neighbours of different groups: per box
        # that ends between them, box_pad; per box that begins, box_pad + box_title
        self.box_pad = float(box_pad)
        self.box_title = float(box_title)
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
        self._room_cache: dict[tuple[str, str], float] = {}  # box_room, both ways

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
        self._slot_groups: list[list[str]] = []  # the group of each of them
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

    def groups(self) -> tuple[np.ndarray, tuple[str, ...]]:
        """(group index of each node in arrival order, the group names)."""
        with self._lock:
            return np.array(self._group, np.int64), tuple(self._groups)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id: object) -> bool:
        return id in self._index

    def kind(self, id: int) -> str:
        return self._kind[self._index[id]]

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
        plan = Plan(self, esrc, edst, group, groups, width, visible, collapsed)
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
                "rep": rep,
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

    def reps(self) -> np.ndarray:
        """The drawn node standing for each node (itself, or its box); -1 hidden."""
        return self._arrays()["rep"]

    def box_nodes(self) -> dict[int, str]:
        """The collapsed scope each box node stands for, by node index."""
        with self._lock:
            return {r: scope for scope, r in self._box_rep.items()}

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
        return route_edges(self._arrays(), self.node_gap, self.layer_gap)
