"""What the graph view draws over the graph, in view pixels: a colour legend, an
overview of the whole graph with the visible part framed, and node tooltips.

``Overlay`` paints from ``GraphView.drawForeground`` and answers whether a click
fell on the overview (the view then centres there). The overview keeps a small
cached picture of the node rectangles, dropped by ``invalidate``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen

from widgets.data import format_number
from widgets.graph_colours import (
    GROUP_COLOURS,
    KIND_COLOURS,
    NETWORK_COLOUR,
    NONFINITE,
    RAMP,
)
from widgets.graph_item import GraphItem
from widgets.graph_model import GraphNode

OVERVIEW_SIZE = (180, 110)  # pixels, at most
REDRAW_S = 0.5  # a growing graph's overview is redrawn at most this often
MARGIN = 8
PANEL = QColor(255, 255, 255, 225)
PANEL_PEN = QColor(170, 176, 190)
FRAME = QColor(28, 126, 214)
LEGEND = (
    ("input", KIND_COLOURS["input"]),
    ("parameter", KIND_COLOURS["parameter"]),
    ("constant", KIND_COLOURS["constant"]),
    ("elementwise", GROUP_COLOURS[0][1]),
    ("reduction", GROUP_COLOURS[1][1]),
    ("shape", GROUP_COLOURS[2][1]),
    ("loss", GROUP_COLOURS[3][1]),
    ("layer", NETWORK_COLOUR),
    ("NaN / Inf", NONFINITE),
)


def tooltip(node: GraphNode, kind: str = "") -> str:
    """A node's hover text: name, op, shape, value statistics, gradient norm."""
    lines = [f"<b>{node.label}</b>"]
    what = node.op if node.kind == "op" else node.kind
    if kind:
        what = f"{what} in {kind}"
    lines.append(what + (f" · engine node {node.node_id}" if node.node_id is not None else ""))
    lines.append(f"{node.caption()}")
    stats = node.stats
    if stats is not None:
        if stats.finite or stats.size > stats.nan + stats.inf:
            lines.append(
                f"min {format_number(stats.min)} · max {format_number(stats.max)} · "
                f"mean {format_number(stats.mean)}"
            )
        if not stats.finite:
            lines.append(f"<span style='color:#d9480f'>{stats.nan} NaN, {stats.inf} Inf</span>")
    if node.grad_stats is not None:
        lines.append(f"gradient norm {format_number(node.grad_stats.norm)}")
    return "<br>".join(lines)


class Overlay:
    """The legend and the overview of one GraphView (see the module docstring)."""

    def __init__(self) -> None:
        self._font = QFont()
        self._font.setPointSizeF(7.5)
        self._picture: tuple[QImage, QRectF] | None = None  # overview, scene rect it shows
        self._stale = True
        self._drawn_at = 0.0
        self._legend: QImage | None = None
        self.show_legend = True
        self.show_overview = True

    def invalidate(self) -> None:
        """The graph changed: the overview is redrawn, at most every REDRAW_S."""
        self._stale = True

    # -- geometry ----------------------------------------------------------------------

    def overview_rect(self, viewport: QRectF, scene: QRectF) -> QRectF:
        """Where the overview sits: the bottom right corner, the graph's aspect."""
        w, h = OVERVIEW_SIZE
        if scene.width() > 0 and scene.height() > 0:
            scale = min(w / scene.width(), h / scene.height())
            w, h = max(scene.width() * scale, 24.0), max(scene.height() * scale, 16.0)
        return QRectF(viewport.right() - w - MARGIN, viewport.bottom() - h - MARGIN, w, h)

    def overview_target(self, pos: QPointF, viewport: QRectF, scene: QRectF) -> QPointF | None:
        """The scene point a click at ``pos`` on the overview stands for (None: missed)."""
        box = self.overview_rect(viewport, scene)
        if not self.show_overview or not box.contains(pos):
            return None
        fx = (pos.x() - box.left()) / box.width()
        fy = (pos.y() - box.top()) / box.height()
        return QPointF(scene.left() + fx * scene.width(), scene.top() + fy * scene.height())

    # -- painting ----------------------------------------------------------------------

    def paint(self, painter: QPainter, view: Any, visible: QRectF, whole: bool) -> None:
        """Paint in view pixels; ``whole``: the graph fits, no overview needed."""
        viewport = QRectF(view.viewport().rect())
        painter.save()
        painter.resetTransform()
        painter.setFont(self._font)
        if self.show_legend:
            self._paint_legend(painter, viewport)
        if self.show_overview and not whole:
            self._paint_overview(painter, view, viewport, visible)
        painter.restore()

    def _paint_legend(self, painter: QPainter, viewport: QRectF) -> None:
        """Two columns of colour keys and the gradient ramp, bottom left (drawn once
        into an image, then copied)."""
        if self._legend is None:
            self._legend = self._draw_legend()
        height = self._legend.height()
        painter.drawImage(
            QPointF(viewport.left() + MARGIN, viewport.bottom() - height - MARGIN), self._legend
        )

    def _draw_legend(self) -> QImage:
        metrics = QFontMetricsF(self._font)
        row = metrics.height() + 1
        entries = [*LEGEND, ("|grad| low→high", None)]
        rows = (len(entries) + 1) // 2
        col = max(metrics.horizontalAdvance(name) for name, _ in entries) + 24
        box = QRectF(0.5, 0.5, 2 * col, rows * row + 8)
        image = QImage(
            int(box.width()) + 2, int(box.height()) + 2, QImage.Format_ARGB32_Premultiplied
        )
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setFont(self._font)
        painter.setPen(QPen(PANEL_PEN, 1))
        painter.setBrush(PANEL)
        painter.drawRoundedRect(box, 4, 4)
        for k, (name, colour) in enumerate(entries):
            x = box.left() + 6 + (k // rows) * col
            y = box.top() + 4 + (k % rows) * row
            swatches = [colour] if colour is not None else RAMP
            for j, swatch in enumerate(swatches):
                painter.setPen(QPen(PANEL_PEN, 1) if colour is not None else Qt.PenStyle.NoPen)
                painter.setBrush(swatch)
                w = 12 / len(swatches)
                painter.drawRect(QRectF(x + j * w, y + 2, w, row - 4))
            painter.setPen(QColor(40, 44, 52))
            painter.drawText(QPointF(x + 16, y + metrics.ascent()), name)
        painter.end()
        return image

    def legend_height(self) -> float:
        """Pixels the legend takes at the bottom of the view (fit leaves them free)."""
        if not self.show_legend:
            return 0.0
        rows = (len(LEGEND) + 2) // 2
        return rows * (QFontMetricsF(self._font).height() + 1) + 8 + 2 * MARGIN

    def _paint_overview(
        self, painter: QPainter, view: Any, viewport: QRectF, visible: QRectF
    ) -> None:
        scene = view.item.boundingRect()
        box = self.overview_rect(viewport, scene)
        due = self._stale and time.monotonic() - self._drawn_at > REDRAW_S
        if self._picture is None or due:
            self._picture = (self._draw_nodes(view, scene, box), QRectF(scene))
            self._stale, self._drawn_at = False, time.monotonic()
        painter.setPen(QPen(PANEL_PEN, 1))
        painter.setBrush(PANEL)
        painter.drawRect(box)
        painter.drawImage(box, self._picture[0])  # stretched while a redraw is not due
        sx, sy = box.width() / scene.width(), box.height() / scene.height()
        frame = QRectF(
            box.left() + (visible.left() - scene.left()) * sx,
            box.top() + (visible.top() - scene.top()) * sy,
            visible.width() * sx,
            visible.height() * sy,
        ).intersected(box)
        painter.setPen(QPen(FRAME, 1.5))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(frame)

    @staticmethod
    def _draw_nodes(view: Any, scene: QRectF, box: QRectF) -> QImage:
        image = QImage(max(1, int(box.width())), max(1, int(box.height())), QImage.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        rects = view.layout.rects()
        n = min(len(rects), len(view.model.nodes))
        ok = view.layout.drawn()[:n] & np.isfinite(rects[:n]).all(axis=1)
        colours = view.node_colours()
        sx, sy = box.width() / scene.width(), box.height() / scene.height()
        p = QPainter(image)
        p.setPen(Qt.PenStyle.NoPen)
        index = np.flatnonzero(ok)
        r = rects[index]
        x0 = (r[:, 0] - scene.left()) * sx
        y0 = (r[:, 1] - scene.top()) * sy
        w = np.maximum((r[:, 2] - r[:, 0]) * sx, 1.5)
        h = np.maximum((r[:, 3] - r[:, 1]) * sy, 1.5)
        rgb = np.array(colours, np.int64)[index]
        boxes = np.stack([x0, y0, x0 + w, y0 + h], axis=1)
        for colour in np.unique(rgb).tolist():  # one filled path per colour
            p.setBrush(QColor.fromRgba(colour))
            p.drawPath(GraphItem.rects_path(boxes[rgb == colour]))
        p.end()
        return image
