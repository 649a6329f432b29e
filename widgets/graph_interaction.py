"""How the graph view is used: fitting, zooming, clicks, hover tooltips, arrow
keys, and the overlay drawn over it.

``GraphInteractionMixin`` is a part of ``GraphView`` (widgets/graph_view.py); it
reads the view's model, layout and overlay and calls its ``select`` and
``toggle_scope``.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QToolTip

from widgets.graph_overlay import tooltip

EMPTY_TEXT = (
    "No graph yet.\nOpen a program (Ctrl+O) or pick a sample, then run (F5) or step (F11):\n"
    "the graph of each training step grows here."
)


class GraphInteractionMixin:
    """Fit and zoom, mouse and keys, the overlay and the empty state."""

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        """The legend and the overview; the empty state when there is no graph yet."""
        if self.model.nodes:
            visible = self.mapToScene(self.viewport().rect()).boundingRect()
            self.overlay.paint(painter, self, visible, self._whole_visible())
            if self.note:
                self._paint_note(painter)
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(QColor(120, 124, 135))
        painter.drawText(
            self.viewport().rect(),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
            EMPTY_TEXT,
        )
        painter.restore()

    def _paint_note(self, painter: QPainter) -> None:
        """The view's note, on a pill at the top of the view."""
        painter.save()
        painter.resetTransform()
        metrics = painter.fontMetrics()
        width = min(metrics.horizontalAdvance(self.note) + 20, self.viewport().width() - 16)
        pill = QRectF((self.viewport().width() - width) / 2, 8, width, metrics.height() + 8)
        painter.setPen(QColor(240, 200, 120))
        painter.setBrush(QColor(255, 248, 225, 235))
        painter.drawRoundedRect(pill, 4, 4)
        painter.setPen(QColor(90, 70, 20))
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, self.note)
        painter.restore()

    def show_overlay(self, part: str, on: bool) -> None:
        """Show or hide part of the overlay: "show_legend" or "show_overview"."""
        setattr(self.overlay, part, on)
        self.viewport().update()

    def set_note(self, text: str) -> None:
        """A line over the graph saying what it does not show ('' clears it)."""
        if text != self.note:
            self.note = text
            self.viewport().update()

    def fit(self) -> None:
        """The whole graph in view, above the legend; never above 150 %."""
        rect = self.item.boundingRect()
        if rect.isValid():
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
            if self.transform().m11() > 1.5:
                self.resetTransform()
            free = self.viewport().height() - self.overlay.legend_height()
            scale = self.transform().m11()
            if rect.height() * scale > free > 0:  # it reaches down to the legend
                factor = free / (rect.height() * scale)
                self.scale(factor, factor)
            self.centerOn(rect.center())
            self.ensureVisible(rect, 0, 0)

    def zoom(self, factor: float) -> None:
        self.scale(factor, factor)

    def wheelEvent(self, event) -> None:
        self.zoom(1.0015 ** event.angleDelta().y())

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            target = self.overlay.overview_target(
                event.position(), QRectF(self.viewport().rect()), self.item.boundingRect()
            )
            if target is not None and not self._whole_visible():
                self.centerOn(target)
                return
            pos = self.mapToScene(event.position().toPoint())
            index = self.node_at(pos)
            if index is not None:
                self.select(index, emit=True)
                return
        super().mousePressEvent(event)

    def _whole_visible(self) -> bool:
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        return visible.adjusted(-4, -4, 4, 4).contains(self.item.boundingRect())

    def mouseMoveEvent(self, event) -> None:
        super().mouseMoveEvent(event)
        if event.buttons() != Qt.MouseButton.NoButton:
            return
        index = self.node_at(self.mapToScene(event.position().toPoint()))
        if index != self._hovered:
            self._hovered = index
            if index is None:
                QToolTip.hideText()
            else:
                node = self.model.nodes[index]
                text = tooltip(node, self.scope_kinds.get(node.scope, ""))
                QToolTip.showText(event.globalPosition().toPoint(), text, self)

    def keyPressEvent(self, event) -> None:
        """Arrow keys move the selection along edges (left: an input, right: a
        consumer) and within a layer (up, down)."""
        index = self._neighbour(event.key())
        if index is None:
            super().keyPressEvent(event)
            return
        self.select(index, center=True, emit=True)

    def _neighbour(self, key: int) -> int | None:
        i = self.selected
        if i is None or i >= len(self.model.nodes):
            return None
        if key == Qt.Key.Key_Left:
            preds = self.model.preds(i)
            return preds[0] if preds else None
        if key == Qt.Key.Key_Right:
            users = [dst for src, dst in self.model.edges if src == i]
            return users[0] if users else None
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            layers, xy = self.layout.layers(), self.layout.positions()[1]
            same = [j for j in range(len(self.model.nodes)) if layers[j] == layers[i] and j != i]
            if key == Qt.Key.Key_Up:
                above = [j for j in same if xy[j, 1] < xy[i, 1]]
                return max(above, key=lambda j: xy[j, 1]) if above else None
            below = [j for j in same if xy[j, 1] > xy[i, 1]]
            return min(below, key=lambda j: xy[j, 1]) if below else None
        return None

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        """Scrolling shifts the drawn pixels; the overlay stays put, so all is redrawn."""
        super().scrollContentsBy(dx, dy)
        self.viewport().update()

    def mouseDoubleClickEvent(self, event) -> None:
        scope = self.scope_header_at(self.mapToScene(event.position().toPoint()))
        if scope is not None:
            self.toggle_scope(scope)
            return
        super().mouseDoubleClickEvent(event)
