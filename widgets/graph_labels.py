"""Text on the graph: node names and captions, and module box titles.

Zoomed in, names and captions are drawn in scene units (they grow with the
zoom). Zoomed out until they would be unreadable, names are drawn in view
pixels instead, at a small fixed size and cut to the node's width, so a graph
at "fit" still says what each node is.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter

TEXT = QColor(30, 32, 40)
BOX_TEXT = QColor(70, 84, 112)
TITLE_FILL = QColor(236, 240, 248, 230)
MIN_PIXELS = 8  # smallest text drawn when zoomed out
MAX_PIXELS = 11

# (rect in scene units, name, caption)
Label = tuple[QRectF, str, str]


def paint_scene_labels(painter: QPainter, labels: list[Label], font: QFont, small: QFont) -> None:
    """Names (upper half of each node) and captions (lower half), in scene units."""
    painter.setPen(TEXT)
    for line, chosen in ((0, font), (1, small)):
        painter.setFont(chosen)
        metrics = QFontMetricsF(chosen)
        for box, *texts in labels:
            text = metrics.elidedText(texts[line], Qt.TextElideMode.ElideMiddle, box.width() - 6)
            where = box.translated(0, box.height() - 3) if line else box
            painter.drawText(where, Qt.AlignmentFlag.AlignCenter, text)


def pixel_font(font: QFont, node_pixels: float) -> QFont | None:
    """The font for names drawn in view pixels on nodes ``node_pixels`` high;
    None when even the smallest would not fit. Rounded, not cut: the digits
    conv net at fit in the default window has nodes 12.5 px high, and an 8 px
    name fits them (cut, 0.62 of the height gave 7 px, and no names at all)."""
    size = round(min(MAX_PIXELS, node_pixels * 0.66))
    if size < MIN_PIXELS:
        return None
    far = QFont(font)
    far.setPixelSize(size)
    return far


def paint_pixel_labels(painter: QPainter, labels: list[Label], font: QFont) -> None:
    """Names only, in view pixels, each cut to its node's width on screen."""
    transform = painter.worldTransform()
    metrics = QFontMetricsF(font)
    painter.save()
    painter.resetTransform()
    painter.setFont(font)
    painter.setPen(TEXT)
    for box, name, _ in labels:
        rect = transform.mapRect(QRectF(box.left(), box.top() - 2, box.width(), box.height() * 2))
        text = metrics.elidedText(name, Qt.TextElideMode.ElideRight, rect.width() - 4)
        if text:
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
    painter.restore()


def paint_titles(
    painter: QPainter,
    titles: list[tuple[QRectF, str]],
    font: QFont,
    to_pixels: bool,
    clip: Callable[[QRectF], bool] = lambda _: True,
) -> None:
    """Box titles on a pill, over the nodes; ``to_pixels``: at a fixed size in
    view pixels (zoomed out), else in scene units."""
    transform = painter.worldTransform()
    painter.save()
    if to_pixels:
        painter.resetTransform()
    painter.setFont(font)
    metrics = QFontMetricsF(font)
    for header, label in titles:
        if not clip(header):
            continue
        rect = transform.mapRect(header) if to_pixels else header
        if to_pixels and rect.height() < MIN_PIXELS:
            break  # no room above the boxes at this zoom: the titles would cover nodes
        if to_pixels:  # cut to the box's width on screen: neighbours' titles never overlap
            label = metrics.elidedText(label, Qt.TextElideMode.ElideRight, rect.width() - 12)
            if len(label) < 3:
                continue
        width = metrics.horizontalAdvance(label) + 8
        height = metrics.height() + 2 if to_pixels else header.height()
        pill = QRectF(rect.left() + 4, rect.top() + 1, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(TITLE_FILL)
        painter.drawRoundedRect(pill, 3, 3)
        painter.setPen(BOX_TEXT)
        painter.drawText(pill.adjusted(4, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter, label)
    painter.restore()
