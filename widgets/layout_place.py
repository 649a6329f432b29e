"""Incremental placement for ``Layout`` (widgets/layout.py), NumPy only.

An op goes one layer right of its deepest input, in the free slot of that layer
nearest the mean y of its inputs; a leaf waits until its first consumer and then
sits one layer before it, next to it. Placed nodes never move. A node of a
collapsed scope stands in its box, drawn as the scope's first member.
"""

from __future__ import annotations

import bisect

import numpy as np

from widgets.layout_geometry import box_room, free_slot


class PlacementMixin:
    """A part of ``Layout``: where each arriving node goes."""

    def collapse_new(self, scope: str, width: float | None = None) -> None:
        """Draw ``scope``, of which no node is placed yet, as one box node from now
        on (``relayout(collapsed=...)`` must then name it too)."""
        with self._lock:
            self._collapsed[scope] = width
            self._key_cache.clear()

    def has_group(self, group: str) -> bool:
        """Whether a node of ``group`` was added."""
        return group in self._group_index

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
        self._put(v, L, self._free_slot(L, target, v))
        self._last_y = ys[v]
        self._place_leaves(v, mapped)

    def _place_leaves(self, v: int, mapped: list[int]) -> None:
        L = max(self._layer[v] - 1, 0)
        waiting = [q for q in mapped if self._layer[q] < 0]
        if not waiting:
            return
        mid = (len(waiting) - 1) / 2
        for k, q in enumerate(waiting):
            self._put(q, L, self._free_slot(L, self._y[v] + (k - mid) * self.sep, q))

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
            self._slot_groups.append([])
        self._col_w[L] = max(self._col_w[L], width)
        self._layer[v] = L
        self._x[v] = self._col_x[L]
        self._y[v] = y
        at = bisect.bisect_right(self._slots[L], y)
        self._slots[L].insert(at, y)
        self._slot_groups[L].insert(at, self._group_name(v))

    def _group_name(self, v: int) -> str:
        """The box node ``v`` sits in (a collapsed box sits in its parent's)."""
        for scope, r in self._box_rep.items():
            if r == v:
                return scope.rpartition(".")[0]
        return self._groups[self._group[v]]

    def _free_slot(self, L: int, t: float, v: int) -> float:
        """The y nearest ``t`` where node ``v`` fits in layer ``L`` without overlap,
        with room for the module boxes between it and its neighbours."""
        if L >= len(self._slots):
            return t
        room = None
        if self.box_pad or self.box_title:
            mine = self._group_name(v)
            room = [self._room(g, mine) for g in self._slot_groups[L]]
        return free_slot(self._slots[L], t, self.sep, room)

    def _room(self, a: str, b: str) -> float:
        key = (a, b)
        room = self._room_cache.get(key)
        if room is None:  # either may end up above: room for both ways
            room = max(
                box_room(a, b, self.box_pad, self.box_title),
                box_room(b, a, self.box_pad, self.box_title),
            )
            self._room_cache[key] = room
        return room
