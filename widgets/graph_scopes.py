"""Module boxes around the graph's nodes: one outline per module call.

A box is not the bounding rectangle of its nodes: a module's parameters sit one
layer left of the op that reads them, where the previous module's op is, and a
rectangle around both would swallow that op. ``scope_boxes`` draws each box as
the union of one rounded rectangle per layer its nodes occupy, so a box holds
its own nodes and passes beside the others. The title sits above the box's
first column; the view paints titles last, so no node covers one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QPainterPath

from core.debug.naming import UPDATE_SCOPE, scope_title
from widgets.graph_model import GraphModel
from widgets.layout import Layout

BIG_GRAPH = 40  # forward nodes above which inner modules open collapsed
BIG_UPDATE = 8  # parameters above which the whole update is one box
TITLE_HEIGHT = 16.0  # the title's row above a box's first column
BOX_PAD = 7.0  # between a box and what it holds
MAX_COLUMNS = 64  # a box over more layers is drawn as one rectangle
_RADIUS = 8.0


@dataclass(frozen=True)
class ScopeBox:
    """The outline of one module call's nodes."""

    rect: QRectF  # bounding rectangle, title included
    path: QPainterPath  # the outline: one rounded rectangle per layer, united
    header: QRectF  # where the title is drawn (a double-click there collapses)


def inside(scope: str, outer: str) -> bool:
    return scope == outer or scope.startswith(outer + ".")


def scope_boxes(
    model: GraphModel, layout: Layout, collapsed: Mapping[str, float]
) -> dict[str, ScopeBox]:
    """The box of every expanded scope with a drawn node, outer scopes first.

    Built inside out, one piece per run of the scope's nodes in a layer (nodes of
    other modules between them split the run, so a box never swallows them): a
    piece holds its nodes and the inner boxes' pieces among them, padded by
    ``BOX_PAD``; the top piece of the first layer is lifted by a title row.
    """
    if not len(layout) or not model.nodes:
        return {}
    n = min(len(model.nodes), len(layout))
    rects, layers = layout.rects()[:n], layout.layers()[:n]
    drawn = np.flatnonzero(layout.drawn()[:n] & np.isfinite(rects).all(axis=1))
    group, names = _effective_groups(layout, n)
    order = drawn[np.lexsort(((rects[drawn, 1] + rects[drawn, 3]), layers[drawn]))]
    in_layer = layers[order]
    scopes = [s for s in model.scopes() if s != UPDATE_SCOPE and s not in collapsed]
    scopes = [s for s in scopes if not any(inside(s, c) for c in collapsed)]
    made: dict[str, list[tuple[int, list[float]]]] = {}
    for scope in sorted(scopes, key=lambda s: -s.count(".")):
        ids = [k for k, name in enumerate(names) if inside(name, scope)]
        runs = np.flatnonzero(np.isin(group[order], ids))
        if not len(runs):
            continue
        cut = np.flatnonzero((np.diff(runs) != 1) | (np.diff(in_layer[runs]) != 0)) + 1
        starts = np.r_[0, cut]
        r = rects[order[runs]]
        lo = np.minimum.reduceat(r[:, :2], starts)
        hi = np.maximum.reduceat(r[:, 2:], starts)
        # pieces by layer; Python floats, not NumPy scalars: fewer, cheaper objects
        by_layer: dict[int, list[list[float]]] = {}
        for layer, rect in zip(in_layer[runs[starts]].tolist(), np.hstack([lo, hi]).tolist()):
            by_layer.setdefault(layer, []).append(rect)
        for child, theirs in made.items():
            if child.rpartition(".")[0] == scope:
                for layer, rect in theirs:
                    _take_in(by_layer, layer, rect)
        made[scope] = _padded([(layer, r) for layer, rs in by_layer.items() for r in rs])
    return {s: _box(made[s]) for s in sorted(made, key=lambda s: (s.count("."), s))}


def _effective_groups(layout: Layout, n: int) -> tuple[np.ndarray, list[str]]:
    """Each node's group (module call) index and the names: a collapsed box counts
    as its parent's."""
    group, names = layout.groups()
    names = list(names)
    group = group[:n].copy()
    for r, scope in layout.box_nodes().items():
        if r < n:
            parent = scope.rpartition(".")[0]
            if parent not in names:
                names.append(parent)
            group[r] = names.index(parent)
    return group, names


def _take_in(by_layer: dict[int, list[list[float]]], layer: int, rect: list[float]) -> None:
    """Grow the piece of ``layer`` that holds ``rect``'s middle to hold ``rect``
    (looking in its layer only, not at every piece, took a 10,000-node graph's
    first paint from about 225 to 60 ms: gui_responsiveness.py's repaint_10000_cold)."""
    middle = (rect[1] + rect[3]) / 2
    same = by_layer.setdefault(layer, [])
    for piece in same:
        if piece[1] <= middle <= piece[3]:
            piece[0], piece[1] = min(piece[0], rect[0]), min(piece[1], rect[1])
            piece[2], piece[3] = max(piece[2], rect[2]), max(piece[3], rect[3])
            return
    same.append(list(rect))


def _padded(pieces: list[tuple[int, list[float]]]) -> list[tuple[int, list[float]]]:
    first = min(pieces, key=lambda p: (p[0], p[1][1]))  # the title goes on top of it
    out = []
    for piece in pieces:
        x0, y0, x1, y1 = piece[1]
        lift = TITLE_HEIGHT if piece is first else 0.0
        out.append((piece[0], [x0 - BOX_PAD, y0 - BOX_PAD - lift, x1 + BOX_PAD, y1 + BOX_PAD]))
    return out


def _box(pieces: list[tuple[int, list[float]]]) -> ScopeBox:
    pieces = sorted(pieces, key=lambda p: (p[0], p[1][1]))
    if len(pieces) > MAX_COLUMNS:  # one rectangle around them all
        xs0, ys0, xs1, ys1 = zip(*(rect for _, rect in pieces))
        pieces = [(pieces[0][0], [min(xs0), min(ys0), max(xs1), max(ys1)])]
    path = QPainterPath()
    for k, (_, (x0, y0, x1, y1)) in enumerate(pieces):
        piece = QPainterPath()
        piece.addRoundedRect(QRectF(x0, y0, x1 - x0, y1 - y0), _RADIUS, _RADIUS)
        path = path.united(piece) if k else piece
    # pieces of neighbouring layers are joined where their heights overlap
    for la, (_, ay0, ax1, ay1) in pieces:
        for lb, (bx0, by0, _, by1) in pieces:
            lo, hi = max(ay0, by0), min(ay1, by1)
            if lb == la + 1 and hi - lo > 2 * _RADIUS:
                bridge = QPainterPath()
                bridge.addRect(QRectF(ax1 - 1, lo + _RADIUS, bx0 - ax1 + 2, hi - lo - 2 * _RADIUS))
                path = path.united(bridge)
    x0, y0, x1, _ = pieces[0][1]
    header = QRectF(x0, y0, max(x1 - x0, 80.0), TITLE_HEIGHT)
    return ScopeBox(path.boundingRect(), path.simplified(), header)


class ScopesMixin:
    """A part of ``GraphView``: module boxes, collapsing and expanding them."""

    def _collapse_big(self) -> None:
        """Above BIG_GRAPH forward nodes, modules below the top level are boxes;
        above BIG_UPDATE parameters, the whole update is one box."""
        # the laid-out step: the model may already hold the next step's first events
        group, names = self.layout.groups()
        update = np.array([n.startswith(UPDATE_SCOPE) for n in names] or [False], bool)
        forward = int((~update[group]).sum()) if len(group) else 0
        wanted = []
        if forward > BIG_GRAPH:
            scopes = {".".join(n.split(".")[:k]) for n in names for k in range(2, n.count(".") + 2)}
            wanted = sorted(s for s in scopes if not s.startswith(UPDATE_SCOPE))
        if len(self.model.namer.parameters) > BIG_UPDATE:
            wanted.append(UPDATE_SCOPE)
        for scope in wanted:
            if scope not in self.expanded and scope not in self.collapsed:
                self.collapsed[scope] = self._box_width(scope)

    def _box_width(self, scope: str) -> float:
        # an update box is placed before its optimizer's name arrives: room for one
        update = scope.startswith(UPDATE_SCOPE + ".") or scope == UPDATE_SCOPE
        kind = "Optimizer" if update else self.scope_kinds.get(scope)
        title = f"▸ {scope_title(scope)} ({kind or ''})"
        return self._metrics.horizontalAdvance(title) + 40

    def scope_boxes(self) -> dict[str, ScopeBox]:
        """The box of every expanded module call, outer ones first (cached)."""
        if self._scope_boxes is None:
            self._scope_boxes = scope_boxes(self.model, self.layout, self.collapsed)
        return self._scope_boxes

    def scope_rects(self) -> dict[str, QRectF]:
        """Bounding rectangle of every expanded module call's box."""
        return {scope: box.rect for scope, box in self.scope_boxes().items()}

    def box_caption(self, scope: str) -> str:
        """Second line of a collapsed scope's box: what it holds."""
        ops = sum(1 for n in self.model.nodes if n.kind == "op" and inside(n.scope, scope))
        return f"{ops} op" + ("s" if ops != 1 else "")

    def scope_header_at(self, scene_pos: QPointF) -> str | None:
        """The scope whose box title is at ``scene_pos``, or a collapsed box there."""
        best = None
        for scope, box in self.scope_boxes().items():
            if box.header.contains(scene_pos):
                best = scope  # inner scopes come later and win
        if best is None:
            index = self._node_hit(scene_pos)
            best = None if index is None else self.layout.box_nodes().get(index)
        return best

    def toggle_scope(self, scope: str) -> None:
        """Collapse a module scope into one box node, or expand it again; the zoom
        stays, and the view follows the scope."""
        if scope in self.collapsed:
            del self.collapsed[scope]
            self.expanded.add(scope)
        else:
            self.collapsed[scope] = self._box_width(scope)
            self.expanded.discard(scope)
        self._keep_view = True
        self.relayout(wait=True)
        members = [n.index for n in self.model.nodes if inside(n.scope, scope)]
        if members:
            x, y = self.layout.positions()[1][members[-1]]
            if math.isfinite(x):
                self.centerOn(float(x), float(y))
