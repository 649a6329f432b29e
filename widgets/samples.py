"""The samples browser: the sample programs of a folder, by title, to open one.

``scan_samples`` reads each ``*.py`` file's docstring without running it (first line:
the title; the rest: the description). A file that cannot be parsed is still
listed, under its file name.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QStackedLayout,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from core.debug.program import read_docstring

Sample = tuple[str, str, str]  # (path, title, description)
PATH_ROLE = Qt.ItemDataRole.UserRole
DESCRIPTION_ROLE = Qt.ItemDataRole.UserRole + 1
_PAD = 6


def scan_samples(folder: str | os.PathLike) -> list[Sample]:
    """(path, title, description) of each ``*.py`` file in ``folder``, by file name.

    Nothing is imported or run; files starting with ``_`` are skipped, and a missing
    folder gives an empty list.
    """
    folder = os.fspath(folder)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    samples = []
    for name in names:
        path = os.path.join(folder, name)
        if not name.endswith(".py") or name.startswith("_") or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            samples.append((path, name, f"Cannot read this file: {exc}"))
            continue
        title, description = read_docstring(source, name)
        samples.append((path, title, description))
    return samples


class _SampleDelegate(QStyledItemDelegate):
    """Paints a sample as its title in bold over one muted, elided line of description."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget else QStyle()
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        rect = opt.rect.adjusted(_PAD, _PAD, -_PAD, -_PAD)
        title_font = self._title_font(opt.font)
        line = QFontMetrics(title_font).height()
        palette = opt.palette
        painter.save()
        painter.setFont(title_font)
        painter.setPen(palette.highlightedText().color() if selected else palette.text().color())
        title = QFontMetrics(title_font).elidedText(
            index.data(Qt.ItemDataRole.DisplayRole) or "", Qt.TextElideMode.ElideRight, rect.width()
        )
        painter.drawText(QRect(rect.left(), rect.top(), rect.width(), line), 0, title)
        description = index.data(DESCRIPTION_ROLE) or ""
        if description:
            painter.setFont(opt.font)
            muted = palette.highlightedText() if selected else palette.placeholderText()
            painter.setPen(muted.color())
            text = opt.fontMetrics.elidedText(
                description, Qt.TextElideMode.ElideRight, rect.width()
            )
            second = QRect(rect.left(), rect.top() + line, rect.width(), opt.fontMetrics.height())
            painter.drawText(second, 0, text)
        painter.restore()

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        title = QFontMetrics(self._title_font(option.font)).height()
        return QSize(200, title + option.fontMetrics.height() + 2 * _PAD)

    @staticmethod
    def _title_font(font: QFont) -> QFont:
        bold = QFont(font)
        bold.setBold(True)
        return bold


class SamplesBrowser(QWidget):
    """A list of sample programs; double-click or Enter opens one."""

    sig_open = Signal(str)
    """The user asked to open this sample file (double-click or Enter): its path."""

    def __init__(
        self,
        samples: list[Sample] | None = None,
        folder: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._samples: list[Sample] = []
        self._folder = folder
        self._list = QListWidget()
        self._list.setItemDelegate(_SampleDelegate(self._list))
        self._list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self._list.setUniformItemSizes(True)
        self._list.activated.connect(self._on_activated)
        self._empty = QLabel()
        self._empty.setWordWrap(True)
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self._empty.setMargin(16)
        self._hint = QLabel("Double-click a sample or press Enter to open it.")
        self._hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self._stack = QStackedLayout()
        self._stack.addWidget(self._list)
        self._stack.addWidget(self._empty)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(self._stack, 1)
        layout.addWidget(self._hint)
        self.set_samples(samples or [], folder)

    def set_samples(self, samples: list[Sample], folder: str | None = None) -> None:
        """Show these (path, title, description) samples; ``folder`` names the source."""
        self._samples = list(samples)
        if folder is not None:
            self._folder = folder
        self._update_list()

    def load_folder(self, folder: str) -> None:
        """Scan ``folder`` (without running anything) and show its samples."""
        self.set_samples(scan_samples(folder), folder)

    def samples(self) -> list[Sample]:
        return list(self._samples)

    def empty_message(self) -> str:
        """The empty state's text while it shows instead of the list, else ''."""
        return self._empty.text() if self._stack.currentWidget() is self._empty else ""

    def set_current_path(self, path: str) -> None:
        """Select the sample at ``path`` (the program now open); none when not listed."""
        for row in range(self._list.count()):
            if self._list.item(row).data(PATH_ROLE) == path:
                self._list.setCurrentRow(row)
                return
        self._list.clearSelection()

    def list_widget(self) -> QListWidget:
        return self._list

    def _on_activated(self, index: QModelIndex) -> None:
        path = index.data(PATH_ROLE)
        if path:
            self.sig_open.emit(path)

    def _update_list(self) -> None:
        self._list.clear()
        for path, title, description in self._samples:
            item = QListWidgetItem(title)
            item.setData(PATH_ROLE, path)
            item.setData(DESCRIPTION_ROLE, description)
            tip = f"<b>{_html(title)}</b><br>{_html(description)}" if description else ""
            item.setToolTip(f"{tip}<br><br><code>{_html(path)}</code>" if tip else path)
            self._list.addItem(item)
        if self._samples:
            self._list.setCurrentRow(0)
        where = f" in {self._folder}" if self._folder else ""
        self._empty.setText(f"No samples found{where}")
        self._stack.setCurrentIndex(0 if self._samples else 1)
        self._hint.setVisible(bool(self._samples))


def _html(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
