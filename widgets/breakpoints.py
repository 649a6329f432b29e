"""The breakpoints panel: a small editable table of ``core.debug.session.Breakpoint``.

Each breakpoint is a kind (``BREAKPOINT_KINDS``) and a value checked per kind by
``parse_value``; a value that does not fit gives a message under the add row, never
an exception. ``to_json`` / ``from_json`` let the app keep a program's breakpoints
in QSettings; a bad string gives an empty list.

>>> bps = from_json(to_json([Breakpoint("op", "matmul"), Breakpoint("grad_norm", 10)]))
>>> [(bp.kind, bp.value) for bp in bps]
[('op', 'matmul'), ('grad_norm', 10.0)]
>>> from_json("not json")
[]
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QCompleter,
    QGridLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedLayout,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.debug.breakpoints import BREAKPOINT_KINDS, Breakpoint, param_grad_parts
from core.engine.ops import Op

OP_NAMES = sorted(op.label for op in Op)
KIND_LABELS = {
    "op": "Op name",
    "node": "Node",
    "module": "Module",
    "nan": "First NaN/Inf",
    "grad_norm": "Gradient norm above",
    "step": "Training step",
    "loss": "Loss above",
    "param_grad": "Parameter gradient above",
}
SHORT_LABELS = {
    "op": "op",
    "node": "node",
    "module": "module",
    "nan": "NaN/Inf",
    "grad_norm": "grad norm",
    "step": "step",
    "loss": "loss",
    "param_grad": "param grad",
}
PLACEHOLDERS = {
    "op": "an op, e.g. matmul",
    "node": "a node name, e.g. fc1.linear (#12: an engine id)",
    "module": "a module path, e.g. model.fc1",
    "nan": "no value needed",
    "grad_norm": "a threshold, e.g. 100",
    "step": "a step number from 0, e.g. 50",
    "loss": "a loss, e.g. 10 (NaN stops too)",
    "param_grad": "a parameter and a threshold, e.g. fc1.weight > 10",
}
COLUMNS = ("on", "kind", "value", "description")
EMPTY_TEXT = (
    "No breakpoints. Add one: an op name, a node, a module, first NaN/Inf, a gradient "
    "norm, a step, a loss above a value or a parameter's gradient above one"
)
_NODE_ID = re.compile(r"^#?(\d+)$")
_NODE_NAME = re.compile(r"^[A-Za-z_]\w*(?:\.\w+)*$")
_MODULE = re.compile(r"^\w+(?:\.\w+)*$")


def parse_value(kind: str, text: str) -> Any:
    """The breakpoint value ``text`` gives for ``kind``; ValueError says what is wrong.

    >>> parse_value("node", "fc1.linear"), parse_value("node", "#12"), parse_value("step", "3")
    ('fc1.linear', 12, 3)
    """
    text = text.strip()
    if kind == "op":
        if text.lower() in OP_NAMES:
            return text.lower()
        if not text:
            raise ValueError("Type an op name, e.g. matmul, add or tanh.")
        raise ValueError(f"'{text}' is not an op; try matmul, add, relu (the field completes).")
    if kind == "node":
        match = _NODE_ID.match(text)
        if match is not None:
            return int(match.group(1))
        if _NODE_NAME.match(text):
            return text
        raise ValueError("A node is a name as the graph shows it, e.g. fc1.linear, or #12.")
    if kind == "module":
        if not _MODULE.match(text):
            raise ValueError("A module is a dotted path without spaces, e.g. model.fc1 or fc1.")
        return text
    if kind == "nan":
        return None
    if kind == "grad_norm":
        try:
            value = float(text)
        except ValueError:
            raise ValueError("A gradient norm threshold is a number, e.g. 100 or 1e3.") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError("The threshold must be a positive, finite number.")
        return value
    if kind == "step":
        if not text.isdigit():
            raise ValueError("A step is a whole number from 0, e.g. 50.")
        return int(text)
    if kind == "loss":
        try:
            value = float(text)
        except ValueError:
            raise ValueError("A loss is a number, e.g. 10 or 1e3.") from None
        if not math.isfinite(value):
            raise ValueError("The loss must be a finite number (a NaN loss always stops).")
        return value
    if kind == "param_grad":
        name, threshold = param_grad_parts(text)
        return f"{name} > {threshold:g}"
    raise ValueError(f"Unknown breakpoint kind '{kind}'.")


def to_json(breakpoints: list[Breakpoint]) -> str:
    """A JSON list of ``{"kind", "value", "enabled"}`` objects."""
    items = [{"kind": bp.kind, "value": bp.value, "enabled": bp.enabled} for bp in breakpoints]
    return json.dumps(items)


def from_json(text: Any) -> list[Breakpoint]:
    """Breakpoints from ``to_json``'s text; what is not valid is left out, never raised."""
    try:
        items = json.loads(text)
    except (TypeError, ValueError):
        return []
    if not isinstance(items, list):
        return []
    result = []
    for item in items:
        bp = _from_item(item)
        if bp is not None:
            result.append(bp)
    return result


def _from_item(item: Any) -> Breakpoint | None:
    if not isinstance(item, dict) or item.get("kind") not in BREAKPOINT_KINDS:
        return None
    value = item.get("value")
    if isinstance(value, (bool, dict, list)):
        return None
    try:
        value = parse_value(item["kind"], "" if value is None else str(value))
    except ValueError:
        return None
    return Breakpoint(item["kind"], value, item.get("enabled", True) is not False)


def _value_text(bp: Breakpoint) -> str:
    if bp.value is None:
        return "—"
    return f"{bp.value:g}" if isinstance(bp.value, float) else str(bp.value)


class BreakpointsPanel(QWidget):
    """A table of breakpoints with an add row, remove (button or Delete) and on/off boxes."""

    sig_breakpoints_changed = Signal(list)
    """The user added, removed, enabled or disabled a breakpoint: the whole new list.

    Also sent by ``add_breakpoint``; not by ``set_breakpoints``."""

    def __init__(
        self, breakpoints: list[Breakpoint] | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._items: list[Breakpoint] = []
        self._filling = False
        self._build()
        self.set_breakpoints(breakpoints or [])
        self._on_kind_changed()

    def _build(self) -> None:
        self._kind = QComboBox()
        for kind in BREAKPOINT_KINDS:
            self._kind.addItem(KIND_LABELS.get(kind, kind), kind)
        self._kind.currentIndexChanged.connect(self._on_kind_changed)
        self._kind.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self._kind.setMinimumContentsLength(6)  # the combo gives way, not the value field
        self._value = QLineEdit()
        self._value.setMinimumWidth(self.fontMetrics().horizontalAdvance("a node name") + 16)
        self._value.returnPressed.connect(self._on_add)
        self._value.textEdited.connect(lambda _text: self._show_message(""))
        completer = QCompleter(OP_NAMES, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._op_completer = completer
        self._add = QPushButton("Add")
        self._add.clicked.connect(self._on_add)
        self._remove = QPushButton("Remove")
        self._remove.setToolTip("Remove the selected breakpoint (Delete)")
        self._remove.clicked.connect(self._on_remove)
        add_row = QGridLayout()  # the buttons under the field: a narrow dock keeps it readable
        add_row.addWidget(self._kind, 0, 0)
        add_row.addWidget(self._value, 0, 1, 1, 3)
        add_row.addWidget(self._add, 1, 2)
        add_row.addWidget(self._remove, 1, 3)
        add_row.setColumnStretch(1, 1)

        self._message = QLabel()
        self._message.setWordWrap(True)
        self._message.hide()

        self._table = QTableWidget(0, len(COLUMNS))
        self._table.setHorizontalHeaderLabels(COLUMNS)
        self._table.verticalHeader().hide()
        self._table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self._table.setShowGrid(False)
        self._table.setWordWrap(False)
        self._table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self._table.horizontalHeader()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self._table.setColumnWidth(2, 110)
        self._table.itemChanged.connect(self._on_item_changed)
        self._table.itemSelectionChanged.connect(self._update_buttons)
        self._table.installEventFilter(self)

        self._empty = QLabel(EMPTY_TEXT)
        self._empty.setWordWrap(True)
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self._empty.setMargin(16)
        self._stack = QStackedLayout()
        self._stack.addWidget(self._table)
        self._stack.addWidget(self._empty)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(add_row)
        layout.addWidget(self._message)
        layout.addLayout(self._stack, 1)

    # -- public API -----------------------------------------------------------------

    def set_breakpoints(self, breakpoints: list[Breakpoint]) -> None:
        """Show these breakpoints (copies are kept); sends no signal."""
        self._items = [Breakpoint(bp.kind, bp.value, bp.enabled) for bp in breakpoints]
        self._update_table()

    def breakpoints(self) -> list[Breakpoint]:
        """Copies of the breakpoints, in the table's order."""
        return [Breakpoint(bp.kind, bp.value, bp.enabled) for bp in self._items]

    def add_breakpoint(self, bp: Breakpoint) -> bool:
        """Add ``bp`` (or enable an equal one already there); False when nothing changed."""
        for row, old in enumerate(self._items):
            if (old.kind, old.value) == (bp.kind, bp.value):
                self._table.selectRow(row)
                if old.enabled:
                    self._show_message(f"Already there: {old.describe()}.", error=False)
                    return False
                old.enabled = True
                self._update_table()
                self._changed()
                return True
        self._items.append(Breakpoint(bp.kind, bp.value, bp.enabled))
        self._update_table()
        self._table.selectRow(len(self._items) - 1)
        self._changed()
        return True

    def empty_message(self) -> str:
        """The empty state's text while it shows instead of the list, else ''."""
        return self._empty.text() if self._stack.currentWidget() is self._empty else ""

    def message(self) -> str:
        """The message under the add row ('' when none shows)."""
        return self._message.text() if not self._message.isHidden() else ""

    # -- reactions ------------------------------------------------------------------

    def _on_kind_changed(self, *_args: Any) -> None:
        kind = self._kind.currentData()
        self._value.setPlaceholderText(PLACEHOLDERS.get(kind, ""))
        self._value.setEnabled(kind != "nan")
        self._value.setCompleter(self._op_completer if kind == "op" else None)
        if kind == "nan":
            self._value.clear()
        self._show_message("")

    def _on_add(self) -> None:
        kind = self._kind.currentData()
        try:
            value = parse_value(kind, self._value.text())
        except ValueError as exc:
            self._show_message(str(exc))
            return
        self._show_message("")
        if self.add_breakpoint(Breakpoint(kind, value)):
            self._value.clear()

    def _on_remove(self) -> None:
        row = self._table.currentRow()
        if not 0 <= row < len(self._items) or not self._table.selectedItems():
            return
        del self._items[row]
        self._update_table()
        if self._items:
            self._table.selectRow(min(row, len(self._items) - 1))
        self._changed()

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != 0:
            return
        bp = self._items[item.row()]
        enabled = item.checkState() == Qt.CheckState.Checked
        if enabled != bp.enabled:
            bp.enabled = enabled
            self._update_row_look(item.row())
            self._changed()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self._table
            and event.type() == QEvent.Type.KeyPress
            and event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace)
        ):
            self._on_remove()
            return True
        return super().eventFilter(watched, event)

    def _changed(self) -> None:
        self.sig_breakpoints_changed.emit(self.breakpoints())

    # -- drawing --------------------------------------------------------------------

    def _update_table(self) -> None:
        self._filling = True
        try:
            self._table.setRowCount(len(self._items))
            for row, bp in enumerate(self._items):
                check = QTableWidgetItem()
                check.setFlags(
                    Qt.ItemFlag.ItemIsUserCheckable
                    | Qt.ItemFlag.ItemIsEnabled
                    | Qt.ItemFlag.ItemIsSelectable
                )
                check.setCheckState(
                    Qt.CheckState.Checked if bp.enabled else Qt.CheckState.Unchecked
                )
                check.setToolTip("Enabled: the run pauses here")
                self._table.setItem(row, 0, check)
                texts = (SHORT_LABELS.get(bp.kind, bp.kind), _value_text(bp), bp.describe())
                for col, text in enumerate(texts, start=1):
                    self._table.setItem(row, col, QTableWidgetItem(text))
                self._update_row_look(row)
        finally:
            self._filling = False
        self._stack.setCurrentIndex(0 if self._items else 1)
        self._update_buttons()

    def _update_row_look(self, row: int) -> None:
        enabled = self._items[row].enabled
        color = self.palette().text().color() if enabled else self.palette().mid().color()
        for col in range(1, len(COLUMNS)):
            item = self._table.item(row, col)
            if item is not None:
                item.setForeground(color)

    def _update_buttons(self) -> None:
        self._remove.setEnabled(bool(self._items) and bool(self._table.selectedItems()))

    def _show_message(self, text: str, error: bool = True) -> None:
        self._message.setText(text)
        self._message.setStyleSheet("color: #d64545;" if error else "")
        self._message.setVisible(bool(text))
