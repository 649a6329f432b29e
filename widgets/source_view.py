"""The user's program, read-only, with line numbers and the current op's line.

Lines that produced graph nodes get a small dot in the gutter; the line of the
node being inspected is highlighted and scrolled into view. Clicking a line (in
the text or on its number) emits its 1-based number.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontDatabase, QMouseEvent, QPainter, QPaintEvent, QTextFormat
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QWidget

from widgets.data import CURVE_COLOR, MUTED_COLOR

EMPTY_TEXT = "No source: select a node to see the line of the program that made it"
HIGHLIGHT_COLOR = "#fff3bf"  # background of the current op's line
GUTTER_COLOR = "#f1f3f5"


class _Gutter(QWidget):
    """Line numbers and node markers, painted by the SourceView."""

    def __init__(self, view: SourceView) -> None:
        super().__init__(view)
        self._view = view

    def sizeHint(self) -> QSize:
        return QSize(self._view.gutter_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:
        self._view._paint_gutter(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._view._on_press(event)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        event.accept()


class SourceView(QPlainTextEdit):
    """A read-only, line-numbered view of one source file."""

    sig_line_clicked = Signal(int)
    """Emitted with the 1-based line number the user clicked."""

    def __init__(self, path: str = "", text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._path = ""
        self._current: int | None = None
        self._marked: frozenset[int] = frozenset()
        self.setReadOnly(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setPlaceholderText(EMPTY_TEXT)
        self._gutter = _Gutter(self)
        self.blockCountChanged.connect(self._update_gutter_width)
        self.updateRequest.connect(self._on_update_request)
        self._update_gutter_width()
        self.set_source(path, text)

    # -- public -------------------------------------------------------------------

    def set_source(self, path: str, text: str) -> None:
        """Show ``text`` (the contents of ``path``); clears highlight and markers."""
        self._path = path
        self._current = None
        self._marked = frozenset()
        self.setPlainText(text)
        self._update_gutter_width()
        self.setDocumentTitle(path)
        self.setToolTip(path)
        self._update_highlight()

    def path(self) -> str:
        return self._path

    def highlight_line(self, line: int | None) -> None:
        """Highlight the 1-based ``line`` and scroll it into view; None clears."""
        if line is not None and not 1 <= line <= self.blockCount():
            line = None
        self._current = line
        if line is not None:
            cursor = self.textCursor()
            cursor.setPosition(self.document().findBlockByNumber(line - 1).position())
            self.setTextCursor(cursor)
            self.centerCursor()
        self._update_highlight()

    def highlighted_line(self) -> int | None:
        return self._current

    def mark_lines(self, lines: Iterable[int]) -> None:
        """Put a marker in the gutter of each 1-based line (lines that made nodes)."""
        self._marked = frozenset(int(line) for line in lines)
        self._gutter.update()

    def marked_lines(self) -> frozenset[int]:
        return self._marked

    def gutter_width(self) -> int:
        digits = len(str(max(1, self.blockCount())))
        return 14 + self.fontMetrics().horizontalAdvance("9") * max(digits, 3)

    # -- updates ------------------------------------------------------------------

    def _update_gutter_width(self, *_args) -> None:
        empty = self.document().isEmpty()
        self._gutter.setVisible(not empty)
        self.setViewportMargins(0 if empty else self.gutter_width(), 0, 0, 0)

    def _update_highlight(self) -> None:
        selections = []
        if self._current is not None:
            selection = QTextEdit.ExtraSelection()
            selection.format.setBackground(QColor(HIGHLIGHT_COLOR))
            selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            selection.cursor = self.textCursor()
            selection.cursor.setPosition(
                self.document().findBlockByNumber(self._current - 1).position()
            )
            selections.append(selection)
        self.setExtraSelections(selections)
        self._gutter.update()

    def _paint_gutter(self, event: QPaintEvent) -> None:
        painter = QPainter(self._gutter)
        painter.fillRect(event.rect(), QColor(GUTTER_COLOR))
        block = self.firstVisibleBlock()
        top = self.blockBoundingGeometry(block).translated(self.contentOffset()).top()
        height = self.fontMetrics().height()
        width = self._gutter.width()
        bold = self.font()
        bold.setBold(True)
        while block.isValid() and top <= event.rect().bottom():
            bottom = top + self.blockBoundingRect(block).height()
            line = block.blockNumber() + 1
            if block.isVisible() and bottom >= event.rect().top():
                if line in self._marked:
                    painter.setPen(Qt.PenStyle.NoPen)
                    painter.setBrush(QColor(CURVE_COLOR))
                    painter.drawEllipse(4, int(top + height / 2 - 3), 6, 6)
                current = line == self._current
                painter.setFont(bold if current else self.font())
                painter.setPen(self.palette().text().color() if current else QColor(MUTED_COLOR))
                rect = QRect(0, int(top), width - 4, height)
                painter.drawText(rect, Qt.AlignmentFlag.AlignRight, str(line))
            block = block.next()
            top = bottom
        painter.end()

    # -- events -------------------------------------------------------------------

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        rect = self.contentsRect()
        self._gutter.setGeometry(QRect(rect.left(), rect.top(), self.gutter_width(), rect.height()))

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._on_press(event)
        super().mousePressEvent(event)

    def _on_press(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self.document().isEmpty():
            return
        y = event.position().y()
        block = self.cursorForPosition(event.position().toPoint()).block()
        geometry = self.blockBoundingGeometry(block).translated(self.contentOffset())
        if geometry.top() <= y < geometry.bottom():
            self.sig_line_clicked.emit(block.blockNumber() + 1)

    def _on_update_request(self, rect: QRect, dy: int) -> None:
        if dy:
            self._gutter.scroll(0, dy)
        else:
            self._gutter.update(0, rect.y(), self._gutter.width(), rect.height())
