"""One relayout of a Layout, computed from a snapshot (NumPy only).

``Plan`` reads the graph arrays a ``Layout`` copied under its lock, assigns
layers, orders each layer by barycenter sweeps, straightens y, and finally
``commit``s the result into the Layout. It never touches the Layout before that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from widgets.layout_geometry import box_room, count_crossings

Progress = Callable[[float], "bool | None"]


class LayoutCancelled(Exception):
    """relayout() stopped because its progress callback returned False."""


@dataclass(frozen=True)
class RelayoutStats:
    """What one relayout() did."""

    nodes: int  # nodes laid out (the snapshot; later arrivals were placed on top)
    layers: int  # number of layers
    crossings_initial: int  # crossings between adjacent layers in arrival order
    crossings: int  # crossings of the kept order, never above crossings_initial


class Plan:
    """One relayout, computed from a snapshot without touching the Layout."""

    def __init__(self, lay, esrc, edst, group, groups, width, visible, collapsed) -> None:
        self.n = n = len(group)
        self.lw = lay.long_edge_weight
        self.sep = lay.sep
        self.h = lay.node_height
        self.layer_gap = lay.layer_gap
        self.visible = visible
        self.collapsed = collapsed
        self.box_pad, self.box_title = lay.box_pad, lay.box_title
        self.group, self.groups = group, groups
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
        offsets = self._offsets(nodes, nbl)
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
                steps = offsets[L]
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
        names = self._box_groups()
        order = nodes.tolist()
        self.slot_groups = [[names[v] for v in order[nbl[L] : nbl[L + 1]]] for L in range(self.nl)]
        ops = nodes[~self.is_leaf[nodes]]
        self.last_y = float(y[ops[np.argmax(self.time[ops])]]) if len(ops) else 0.0

    def _offsets(self, nodes: np.ndarray, nbl: list[int]) -> list[np.ndarray]:
        """Per layer, each node's least distance below the layer's first: ``sep``
        apart, more where module boxes end or begin between neighbours."""
        names = self._box_groups()
        cache: dict[tuple[str, str], float] = {}
        out = []
        for L in range(self.nl):
            v = nodes[nbl[L] : nbl[L + 1]].tolist()
            gaps = [0.0]
            for a, b in zip(v, v[1:]):
                key = (names[a], names[b])
                if key not in cache:
                    cache[key] = self.sep + box_room(*key, self.box_pad, self.box_title)
                gaps.append(cache[key])
            out.append(np.cumsum(gaps))
        return out

    def _box_groups(self) -> dict[int, str]:
        """The scope each drawn node sits in: a collapsed box's is its parent's."""
        names = {i: self.groups[g] for i, g in enumerate(self.group.tolist())}
        for scope, r in self.box_rep.items():
            names[r] = scope.rpartition(".")[0]
        return names

    def commit(self, lay) -> None:  # the Layout it was made from, under its lock
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
        lay._slot_groups = self.slot_groups
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
