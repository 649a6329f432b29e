"""The module scope of the current op, drawn like a call stack (innermost on top).

>>> scope_levels("model.block.fc1")
['model.block.fc1', 'model.block', 'model']
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from widgets.data import MUTED_COLOR

EMPTY_TEXT = "(top level)"
PATH_ROLE = Qt.ItemDataRole.UserRole


def scope_levels(path: str) -> list[str]:
    """Every enclosing module path of ``path``, innermost first."""
    if not path:
        return []
    parts = path.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]


class ScopeStack(QListWidget):
    """One row per enclosing module: "model.fc1 (Linear)" above "model (Net)"."""

    sig_scope_clicked = Signal(str)
    """Emitted with the dotted module path of the level the user clicked."""

    def __init__(
        self,
        path: str = "",
        kinds: dict[str, str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._path = ""
        self.setSelectionMode(QListWidget.SelectionMode.SingleSelection)
        self.setStyleSheet("QListWidget::item { padding: 3px 6px; }")
        self.itemClicked.connect(self._on_item_clicked)
        self.set_scope(path, kinds)

    def set_scope(self, path: str, kinds: dict[str, str] | None = None) -> None:
        """Show the levels of ``path``; ``kinds`` maps a path to its module class."""
        self._path = path
        self.clear()
        kinds = kinds or {}
        for level in scope_levels(path):
            kind = kinds.get(level)
            item = QListWidgetItem(f"{level} ({kind})" if kind else level)
            item.setData(PATH_ROLE, level)
            item.setToolTip(level)
            self.addItem(item)
        if not path:
            self._add_empty_item()

    def scope(self) -> str:
        return self._path

    def levels(self) -> list[str]:
        """Displayed rows, top to bottom."""
        return [self.item(i).text() for i in range(self.count())]

    def _add_empty_item(self) -> None:
        item = QListWidgetItem(EMPTY_TEXT)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        item.setForeground(QBrush(QColor(MUTED_COLOR)))
        font = QFont(self.font())
        font.setItalic(True)
        item.setFont(font)
        self.addItem(item)

    def _on_item_clicked(self, item: QListWidgetItem) -> None:
        path = item.data(PATH_ROLE)
        if path:
            self.sig_scope_clicked.emit(path)
