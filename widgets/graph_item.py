"""Painting the graph: colours, batched edge paths, level of detail (GraphItem).

One item paints everything for ``GraphView``: edges as cached paths in chunks,
nodes grouped by colour, labels only when zoomed in, and only what is exposed.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import (
    QRectF,
    Qt,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QPainter,
    QPainterPath,
    QPen,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QStyleOptionGraphicsItem,
)

from core.debug.naming import scope_title
from widgets.graph_colours import (
    BOX_FILL,
    BOX_PEN,
    CURRENT,
    EDGE,
    GRAD_EDGE,
    SELECTED,
    over_background,
)
from widgets.graph_labels import (
    paint_pixel_labels,
    paint_scene_labels,
    paint_titles,
    pixel_font,
)
from widgets.graph_model import GraphModel
from widgets.graph_paths import (
    CURVE,
    CURVE_DATA,
    LINE,
    MOVE,
    bezier,
    path_from_arrays,
    unique_rows,
)
from widgets.graph_scopes import BOX_PAD, TITLE_HEIGHT
from widgets.layout import Layout

NODE_HEIGHT = 34.0
SCENE_LABELS_PX = 24.0  # node height on screen from which labels scale with the zoom
EDGE_CHUNK = 256  # edges per cached path: a zoomed-in paint strokes only the exposed chunks
MAX_CHUNK_DRAWS = 8  # more exposed chunks than this: draw the whole paths instead
CULL_MARGIN_PX = 3.0  # device pixels around the exposed area still drawn (pens spill over)
COARSE_LOD = 0.1  # below this scale edges are drawn as chords snapped to a pixel grid
CURVE_SEGMENTS = 4  # chords per curved edge there


class GraphSource(Protocol):
    """What ``GraphItem`` paints: the view's model, layout and drawing state."""

    model: GraphModel
    layout: Layout
    collapsed: dict[str, float]  # collapsed scope -> box width
    scope_kinds: dict[str, str]  # module path -> class name
    selected: int | None  # node index
    current: int | None  # node index of the event at the cursor

    def node_colours(self) -> list[int]: ...

    def scope_rects(self) -> dict[str, QRectF]: ...

    def scope_boxes(self) -> dict[str, Any]: ...

    def box_caption(self, scope: str) -> str: ...


class GraphItem(QGraphicsItem):
    """Paints the whole graph; its caches are dropped in ``invalidate`` only."""

    def __init__(self, view: GraphSource) -> None:
        super().__init__()
        self.view = view
        # paint() gets the exposed part in option.exposedRect (else the whole item)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self._rect = QRectF()
        # plain and gradient edge paths, and the same in chunks with their bounds
        self._edges: tuple[QPainterPath, QPainterPath, list] | None = None
        self._coarse: tuple[float, QPainterPath, QPainterPath] | None = None
        self._nodes: dict[str, Any] | None = None
        self._font = QFont()
        self._font.setPointSizeF(8.5)
        self._small = QFont(self._font)
        self._small.setPointSizeF(7.0)

    def invalidate(self) -> None:
        """Drop cached paths and bounds; the next paint rebuilds them."""
        self.prepareGeometryChange()
        self._edges = self._coarse = self._nodes = None
        x0, y0, x1, y1 = self.view.layout.bounds()
        # room for the module boxes around the nodes, without drawing them yet
        depth = max((s.count(".") + 1 for s in self.view.model.scope_kinds), default=0)
        side, top = 40 + depth * BOX_PAD, 40 + depth * (BOX_PAD + TITLE_HEIGHT)
        self._rect = QRectF(x0 - side, y0 - top, x1 - x0 + 2 * side, y1 - y0 + top + side)
        self.update()

    def boundingRect(self) -> QRectF:
        return self._rect

    def _edge_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(points (E, 4, 2), routed (E,), gradient reached the target (E,)) of the
        edges between nodes the model has, all points finite."""
        view = self.view
        paths = view.layout.edge_paths()
        nodes = view.model.nodes
        n = len(nodes)
        src, dst = np.asarray(paths.src), np.asarray(paths.dst)
        pts = np.asarray(paths.points, float).reshape(len(src), 4, 2)
        # a node of the previous step's layout not reached yet has no edges drawn
        keep = (src < n) & (dst < n) & np.isfinite(pts).all(axis=(1, 2))
        pts, dst = pts[keep], dst[keep]
        routed = np.asarray(paths.routed, bool)[keep]
        backward = np.fromiter((node.backward for node in nodes), bool, n)
        return pts, routed, backward[dst] if n else np.zeros(0, bool)

    def _build_edges(self) -> None:
        """Edges as paths (cubic curves, or the router's polylines), split into plain
        and gradient paths: all of them, and in chunks of EDGE_CHUNK with their bounds."""
        pts, routed, grad = self._edge_points()
        elements = pts.copy()  # per edge: move, then 3 line or curve elements
        curve = ~routed
        mid = (pts[curve, 0, 0] + pts[curve, 3, 0]) / 2
        elements[curve, 1, 0] = mid
        elements[curve, 1, 1] = pts[curve, 0, 1]
        elements[curve, 2, 0] = mid
        elements[curve, 2, 1] = pts[curve, 3, 1]
        types = np.empty((len(pts), 4), np.int32)
        types[:, 0] = MOVE
        types[routed, 1:] = LINE
        types[curve, 1] = CURVE
        types[curve, 2:] = CURVE_DATA
        whole = [
            path_from_arrays(types[sel].ravel(), elements[sel].reshape(-1, 2))
            for sel in (~grad, grad)
        ]
        order = np.argsort(elements[:, :, 0].min(axis=1), kind="stable")  # left to right
        chunks = []
        if len(order) <= EDGE_CHUNK:  # one chunk: the whole paths
            order = order[:0]
            if len(elements):
                lo, hi = elements.min(axis=(0, 1)), elements.max(axis=(0, 1))
                box = QRectF(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
                chunks.append((box, whole[0], whole[1]))
        for lo in range(0, len(order), EDGE_CHUNK):
            k = order[lo : lo + EDGE_CHUNK]
            box = elements[k]
            x0, y0 = box[:, :, 0].min(), box[:, :, 1].min()
            x1, y1 = box[:, :, 0].max(), box[:, :, 1].max()
            paths = [
                path_from_arrays(types[k[sel]].ravel(), elements[k[sel]].reshape(-1, 2))
                for sel in (~grad[k], grad[k])
            ]
            chunks.append((QRectF(x0, y0, x1 - x0, y1 - y0), paths[0], paths[1]))
        self._edges = (whole[0], whole[1], chunks)

    def _coarse_edges(self, lod: float) -> tuple[QPainterPath, QPainterPath]:
        """Edges far zoomed out: chords between points snapped to a grid of about one
        device pixel, the ones that collapse or repeat dropped (cached per grid size).
        Drawn with an opaque pen: chords meeting end to end must not darken there."""
        grid = 2.0 ** math.floor(math.log2(1.0 / max(lod, 1e-9)))
        if self._coarse is None or self._coarse[0] != grid:
            pts, routed, grad = self._edge_points()
            # a curve becomes CURVE_SEGMENTS chords; a routed edge keeps its three legs
            c = pts[~routed]
            mid = (c[:, 0, 0] + c[:, 3, 0]) / 2
            t = np.linspace(0.0, 1.0, CURVE_SEGMENTS + 1)[None, :]
            bx = bezier(t, c[:, 0, 0, None], mid[:, None], mid[:, None], c[:, 3, 0, None])
            by = bezier(t, c[:, 0, 1, None], c[:, 0, 1, None], c[:, 3, 1, None], c[:, 3, 1, None])
            lines = [np.stack([bx, by], axis=2), pts[routed]]
            kinds = [grad[~routed], grad[routed]]
            paths = []
            for want in (False, True):
                chords = []
                for line, kind in zip(lines, kinds):
                    q = np.rint(line[kind == want] / grid).astype(np.int64)
                    chords += [q[:, j : j + 2].reshape(-1, 4) for j in range(q.shape[1] - 1)]
                s = np.concatenate(chords)
                s = s[(s[:, 0] != s[:, 2]) | (s[:, 1] != s[:, 3])]
                s = unique_rows(s)
                types = np.tile(np.array([MOVE, LINE], np.int32), len(s))
                paths.append(path_from_arrays(types, s.reshape(-1, 2) * grid))
            self._coarse = (grid, paths[0], paths[1])
        return self._coarse[1], self._coarse[2]

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        view = self.view
        if not view.model.nodes:
            return
        lod = option.levelOfDetailFromTransform(painter.worldTransform())
        # what may reach the exposed area: strokes and outlines spill a few pixels
        pad = CULL_MARGIN_PX / max(lod, 1e-9)
        exposed = option.exposedRect.adjusted(-pad, -pad, pad, pad)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, lod > 0.4)
        self._paint_boxes(painter)
        coarse = lod < COARSE_LOD
        if coarse:
            plain, grad = self._coarse_edges(lod)
            chunks = [(exposed, plain, grad)]
        else:
            if self._edges is None:
                self._build_edges()
            plain, grad, every = self._edges
            chunks = [c for c in every if c[0].intersects(exposed)]
            if len(chunks) > MAX_CHUNK_DRAWS:
                # one call per pen: each draw call releases the GIL, and while a run's
                # worker thread is busy, taking it back can cost a switch interval
                chunks = [(exposed, plain, grad)]
        edge_pen = QPen(over_background(EDGE) if coarse else EDGE, 1.2)
        edge_pen.setCosmetic(True)
        painter.setPen(edge_pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for _, plain, _ in chunks:
            painter.drawPath(plain)
        grad_pen = QPen(over_background(GRAD_EDGE) if coarse else GRAD_EDGE, 1.8)
        grad_pen.setCosmetic(True)
        painter.setPen(grad_pen)
        for _, _, grad in chunks:
            painter.drawPath(grad)
        self._paint_nodes(painter, exposed, lod)
        if lod * NODE_HEIGHT >= 6:
            self._paint_titles(painter, exposed, lod)

    def _paint_boxes(self, painter: QPainter) -> None:
        pen = QPen(BOX_PEN, 1.0)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.setBrush(BOX_FILL)
        for box in self.view.scope_boxes().values():
            painter.drawPath(box.path)

    def _paint_titles(self, painter: QPainter, exposed: QRectF, lod: float) -> None:
        """Box titles, over the nodes: a node never covers one."""
        view = self.view
        titles = []
        for scope, box in view.scope_boxes().items():
            kind = view.scope_kinds.get(scope, "")
            titles.append((box.header, f"▾ {scope_title(scope)}" + (f" ({kind})" if kind else "")))
        far = lod * NODE_HEIGHT < 14
        font = pixel_font(self._small, 13.6) if far else self._small  # 9 px when far
        paint_titles(painter, titles, font, far, exposed.intersects)

    def _node_cache(self, rects: np.ndarray, colours: list[int]) -> dict[str, Any]:
        """Per-node rectangles and colours as arrays, and the far-out drawing (one
        filled path per colour), rebuilt when the layout or the colours change."""
        cache = self._nodes
        if cache is None or cache["rects"] is not rects or cache["colours"] is not colours:
            n = min(len(rects), len(self.view.model.nodes), len(colours))
            r = rects[:n]
            ok = self.view.layout.drawn()[:n] & np.isfinite(r).all(axis=1)
            cache = {
                "rects": rects,
                "colours": colours,
                "n": n,
                "r": r,
                "ok": ok,
                "count": int(ok.sum()),
                "rgb": np.array(colours[:n], np.int64),
                "all": None,  # the far-out paths of every node, made when first drawn
            }
            self._nodes = cache
        return cache

    @staticmethod
    def _grouped(index: np.ndarray, rgb: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """[(argb, node indexes), ...] of the nodes in ``index``, one entry per colour."""
        if not len(index):
            return []
        index = index[np.argsort(rgb[index], kind="stable")]
        cuts = np.flatnonzero(np.diff(rgb[index])) + 1
        return [(int(rgb[part[0]]), part) for part in np.split(index, cuts)]

    @staticmethod
    def rects_path(r: np.ndarray) -> QPainterPath:
        """Rectangles (x0, y0, x1, y1) as one path, built from arrays in one call."""
        corners = np.stack(
            [r[:, [0, 1]], r[:, [2, 1]], r[:, [2, 3]], r[:, [0, 3]], r[:, [0, 1]]], axis=1
        )
        types = np.tile(np.array([MOVE, LINE, LINE, LINE, LINE], np.int32), len(r))
        return path_from_arrays(types, corners.reshape(-1, 2))

    def _paint_nodes(self, painter: QPainter, exposed: QRectF, lod: float) -> None:
        view = self.view
        cache = self._node_cache(view.layout.rects(), view.node_colours())
        n, r = cache["n"], cache["r"]
        visible = (
            cache["ok"]
            & (r[:, 2] >= exposed.left())
            & (r[:, 0] <= exposed.right())
            & (r[:, 3] >= exposed.top())
            & (r[:, 1] <= exposed.bottom())
        )
        index = np.flatnonzero(visible)
        if lod > 0.25:  # zoomed in: outlined rounded boxes, for the few in view
            outline = QPen(QColor(90, 96, 110), 1.0)
            outline.setCosmetic(True)
            painter.setPen(outline)
            for rgb, part in self._grouped(index, cache["rgb"]):
                painter.setBrush(QColor.fromRgba(rgb))
                for x0, y0, x1, y1 in r[part].tolist():
                    painter.drawRoundedRect(QRectF(x0, y0, x1 - x0, y1 - y0), 5, 5)
        else:  # far out: one filled path per colour
            if len(index) == cache["count"]:
                if cache["all"] is None:
                    groups = self._grouped(index, cache["rgb"])
                    cache["all"] = [(rgb, self.rects_path(r[part])) for rgb, part in groups]
                paths = cache["all"]
            else:
                groups = self._grouped(index, cache["rgb"])
                paths = [(rgb, self.rects_path(r[part])) for rgb, part in groups]
            painter.setPen(Qt.PenStyle.NoPen)
            for rgb, path in paths:
                painter.setBrush(QColor.fromRgba(rgb))
                painter.drawPath(path)
        reps = view.layout.reps()
        for i, colour in ((view.current, CURRENT), (view.selected, SELECTED)):
            if i is not None and i < n and reps[i] >= 0:
                i = int(reps[i])  # a node inside a collapsed box: the box
            if i is not None and i < n and visible[i]:
                pen = QPen(colour, 3.0)
                pen.setCosmetic(True)
                painter.setPen(pen)
                painter.setBrush(Qt.BrushStyle.NoBrush)
                x0, y0, x1, y1 = r[i].tolist()
                painter.drawRoundedRect(QRectF(x0, y0, x1 - x0, y1 - y0), 5, 5)
        if len(index) < 3000:
            self._paint_labels(painter, r, index, lod)

    def _paint_labels(
        self, painter: QPainter, rects: np.ndarray, index: np.ndarray, lod: float
    ) -> None:
        view = self.view
        nodes = view.model.nodes
        collapsed = view.layout.box_nodes()
        pixels = lod * NODE_HEIGHT
        near = pixels >= SCENE_LABELS_PX  # the scene's 8.5 pt text is readable from here
        far = None if near else pixel_font(self._font, pixels)
        if not near and far is None:
            return
        labels = []
        for i in index.tolist():
            x0, y0, x1, y1 = rects[i].tolist()
            box = QRectF(x0, y0 + 2, x1 - x0, (y1 - y0) / 2)
            scope = collapsed.get(i)
            if scope is None:
                labels.append((box, nodes[i].label, nodes[i].caption()))
            else:
                kind = view.scope_kinds.get(scope, "")
                title = f"▸ {scope_title(scope)}" + (f" ({kind})" if kind else "")
                labels.append((box, title, view.box_caption(scope)))
        if near:
            paint_scene_labels(painter, labels, self._font, self._small)
        else:
            paint_pixel_labels(painter, labels, far)
