"""The event log panel: every engine event of a run in one lazy table, filterable, cursor-synced.

``EventLog`` is the panel: the table (over an ``EventLogModel``, see
widgets/event_log_model.py), phase checkboxes, an op filter, a follow switch,
and ``set_cursor`` / ``sig_event_selected`` to stay in step with the
time-travel cursor.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QStackedLayout,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from widgets.event_log_model import (
    COL_INDEX,
    COL_KIND,
    COL_NAME,
    COL_NODE,
    COL_PHASE,
    COL_SCOPE,
    COL_SHAPE,
    COL_SOURCE,
    COL_TIME,
    COLUMNS,
    NONFINITE_COLOR,
    PHASE_COLORS,
    PHASES,
    EventLogModel,
)

__all__ = [
    "COL_INDEX",
    "COL_KIND",
    "COL_NAME",
    "COL_NODE",
    "COL_PHASE",
    "COL_SCOPE",
    "COL_SHAPE",
    "COL_SOURCE",
    "COL_TIME",
    "COLUMNS",
    "NONFINITE_COLOR",
    "PHASE_COLORS",
    "PHASES",
    "EventLog",
    "EventLogModel",
]

_WIDEST = (
    "0000000",
    "backward",
    "ParameterUpdated",
    "fc1.weight__",
    "00000",
    "64×128×3",
    "model.block.attn",
    "000,000.0",
)  # typical widest text per column


class EventLog(QWidget):
    """The event log panel: a lazy table of events with phase and op filters.

    The app appends to ``log.model().events()`` and calls ``log.model().extend(n)``
    (or ``log.extend(n)``); it calls ``set_cursor`` whenever the time-travel cursor
    moves, and listens to ``sig_event_selected`` for the user's choice.

    While a run goes on (``set_live(True)``) and the log follows it, a second table
    shows a copy of the newest rows, held by Qt itself (a ``QStandardItemModel``):
    drawing it calls no Python, so it never waits for the run's thread to hand over
    the GIL, which the lazy model's per-cell ``data`` calls do (a repaint of the
    lazy table took 35-100 ms beside a running model, 1-2 ms alone). Scrolling up,
    clicking a row or unticking Follow goes back to the whole log at that row.
    """

    sig_event_selected = Signal(int)
    """The user chose an event (click, arrow keys, Enter): its index in the event list.

    Never sent by ``set_cursor``, nor when the chosen event already is the cursor."""

    def __init__(self, events: list | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = EventLogModel(events, self)
        self._cursor: int | None = None
        self._quiet = False
        self._follow = True
        self._live = False
        self._tail_events: list[int] = []  # the event index of each row of the copy
        self._build()
        self._model.sig_total_changed.connect(self._on_total_changed)
        self._model.modelReset.connect(self._on_model_reset)
        self._update_state()

    def _build(self) -> None:
        self._phase_boxes = {}
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 4)
        for phase in PHASES:
            box = QCheckBox(phase)
            box.setChecked(True)
            box.setStyleSheet(f"QCheckBox {{ color: {PHASE_COLORS[phase].name()}; }}")
            box.toggled.connect(self._on_filter_edited)
            self._phase_boxes[phase] = box
            bar.addWidget(box)
        self._op_edit = QLineEdit()
        self._op_edit.setPlaceholderText("Filter by op or name")
        self._op_edit.setClearButtonEnabled(True)
        self._op_edit.textChanged.connect(self._on_filter_edited)
        bar.addWidget(self._op_edit, 1)
        self._follow_box = QCheckBox("Follow")
        self._follow_box.setToolTip("Keep the newest event in view while a run goes on")
        self._follow_box.setChecked(True)
        self._follow_box.toggled.connect(self.set_follow)
        bar.addWidget(self._follow_box)
        self._count_label = QLabel()
        self._count_label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self._count_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        widest = "9,999,999 of 9,999,999 events"
        self._count_label.setMinimumWidth(self.fontMetrics().horizontalAdvance(widest))
        bar.addWidget(self._count_label)

        self._view = self._make_view(self._model)
        self._view.selectionModel().currentRowChanged.connect(self._on_current_changed)
        self._view.clicked.connect(self._on_row_chosen)
        self._view.activated.connect(self._on_row_chosen)
        self._tail = QStandardItemModel(0, len(COLUMNS), self)
        self._tail.setHorizontalHeaderLabels(list(COLUMNS))
        self._tail_view = self._make_view(self._tail)
        self._tail_view.clicked.connect(self._on_tail_chosen)
        self._tail_view.activated.connect(self._on_tail_chosen)
        self._tail_view.verticalScrollBar().actionTriggered.connect(self._on_tail_scrolled)
        self._empty = QLabel()
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        self._empty.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self._empty.setMargin(24)
        self._stack = QStackedLayout()
        self._stack.addWidget(self._view)
        self._stack.addWidget(self._empty)
        self._stack.addWidget(self._tail_view)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addLayout(self._stack, 1)

    @staticmethod
    def _make_view(model: Any) -> QTableView:
        view = QTableView()
        view.setModel(model)
        view.setWordWrap(False)
        view.setShowGrid(False)
        view.setAlternatingRowColors(True)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setTextElideMode(Qt.TextElideMode.ElideRight)  # numbers keep their digits
        rows = view.verticalHeader()
        rows.hide()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(view.fontMetrics().height() + 6)
        header = view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        width = view.fontMetrics().horizontalAdvance
        for col, text in enumerate(_WIDEST):
            view.setColumnWidth(col, width(text) + 18)
        return view

    # -- public API -----------------------------------------------------------------

    def model(self) -> EventLogModel:
        return self._model

    def view(self) -> QTableView:
        return self._view

    def extend(self, n_new: int | None = None) -> int:
        """Take in new events of the list; see ``EventLogModel.extend``."""
        return self._model.extend(n_new)

    def reset(self, events: list | None = None, forward: Any = None) -> None:
        """Show a new run's (growing) event list; the cursor is cleared. ``forward``:
        the Recording's node -> OpForward index map, when there is one."""
        self._cursor = None
        self._model.reset(events, forward)

    def set_live(self, on: bool) -> None:
        """A run goes on (True) or has paused or ended: while it goes on and the log
        follows it, the newest rows are shown from a copy that draws without Python."""
        on = bool(on)
        if on != self._live:
            self._live = on
            self._update_state()

    def tail_shown(self) -> bool:
        """Whether the copy of the newest rows is what the panel shows."""
        return self._stack.currentWidget() is self._tail_view

    def tail_events(self) -> list[int]:
        """The event index of each row of the copy of the newest rows."""
        return list(self._tail_events)

    def set_cursor(self, event_index: int | None) -> None:
        """Select and scroll to ``event_index`` (or the nearest shown row); sends nothing."""
        self._cursor = event_index
        self._update_selection()

    def cursor(self) -> int | None:
        return self._cursor

    def set_follow(self, on: bool) -> None:
        """Keep the newest row in view as events arrive."""
        self._follow = bool(on)
        if self._follow_box.isChecked() != self._follow:
            self._follow_box.setChecked(self._follow)
        top = self._tail_top() if self.tail_shown() else None
        self._update_state()
        if self._follow:
            self._view.scrollToBottom()
        elif top is not None and (row := self._model.row_of(top)) is not None:
            # from the copy to the whole log: the same rows stay in view
            top_hint = QAbstractItemView.ScrollHint.PositionAtTop
            self._view.scrollTo(self._model.index(row, 0), top_hint)

    def follow(self) -> bool:
        return self._follow

    def empty_message(self) -> str:
        """The empty state's text while it shows instead of the list, else ''."""
        return self._empty.text() if self._stack.currentWidget() is self._empty else ""

    def set_filter(self, phases: set[str] | None = None, op_text: str = "") -> None:
        """Filter as the controls do; the controls show the new filter."""
        self._quiet = True
        try:
            for phase, box in self._phase_boxes.items():
                box.setChecked(phases is None or phase in phases)
            self._op_edit.setText(op_text)
        finally:
            self._quiet = False
        self._model.set_filter(phases, op_text)

    # -- reactions ------------------------------------------------------------------

    def _on_filter_edited(self, *_args: Any) -> None:
        if self._quiet:
            return
        phases = {p for p, box in self._phase_boxes.items() if box.isChecked()}
        self._model.set_filter(phases, self._op_edit.text())

    def _on_total_changed(self, _total: int) -> None:
        self._update_state()
        if self._follow and not self.tail_shown():
            self._view.scrollToBottom()

    def _on_model_reset(self) -> None:
        self._update_state()
        self._update_selection()

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._on_row_chosen(current)

    def _on_tail_chosen(self, index: QModelIndex) -> None:
        """A row of the copy was clicked: the whole log takes over, at that event."""
        if not index.isValid() or index.row() >= len(self._tail_events):
            return
        chosen = self._tail_events[index.row()]
        self.set_follow(False)
        self._view.setFocus()
        if chosen != self._cursor:
            self._cursor = chosen
            self._update_selection()
            self.sig_event_selected.emit(chosen)

    def _on_tail_scrolled(self, _action: int) -> None:
        """The user scrolled the copy: leaving the newest rows stops following."""
        bar = self._tail_view.verticalScrollBar()
        if bar.sliderPosition() < bar.maximum():
            self.set_follow(False)

    def _tail_top(self) -> int | None:
        """The event at the top of the copy's visible rows."""
        if not self._tail_events:
            return None
        row = self._tail_view.rowAt(0)
        return self._tail_events[row if 0 <= row < len(self._tail_events) else 0]

    def _on_row_chosen(self, index: QModelIndex) -> None:
        if self._quiet or not index.isValid():
            return
        chosen = self._model.event_index(index.row())
        if chosen == self._cursor:
            return
        self._cursor = chosen
        if index.row() < self._model.rowCount() - 1:
            self.set_follow(False)  # the user looks at an older event: stop jumping away
        self.sig_event_selected.emit(chosen)

    # -- drawing --------------------------------------------------------------------

    def _update_selection(self) -> None:
        selection = self._view.selectionModel()
        row = None if self._cursor is None else self._model.nearest_row(self._cursor)
        self._quiet = True
        try:
            if row is None:
                selection.clear()
                return
            index = self._model.index(row, 0)
            flags = QItemSelectionModel.SelectionFlag
            selection.setCurrentIndex(index, flags.ClearAndSelect | flags.Rows)
            self._view.scrollTo(index, QAbstractItemView.ScrollHint.EnsureVisible)
        finally:
            self._quiet = False

    def _tail_size(self) -> int:
        """Rows in the copy: the visible ones and a few more (at most 256)."""
        view = self._tail_view
        visible = max(view.viewport().height(), self._view.viewport().height())
        return min(256, max(32, visible // view.verticalHeader().defaultSectionSize() + 4))

    def _refresh_tail(self) -> None:
        """Bring the copy up to the newest rows: the rows it already has stay, older
        ones leave at the top, new ones come in at the bottom, in one pass."""
        model, tail, old = self._model, self._tail, self._tail_events
        n = model.rowCount()
        first = max(0, n - self._tail_size())
        wanted = [model.event_index(row) for row in range(first, n)]
        if wanted == old:
            return
        at = old.index(wanted[0]) if wanted and wanted[0] in old else len(old)
        keep = len(old) - at if old[at:] == wanted[: len(old) - at] else 0
        tail.removeRows(0, len(old) - keep)
        for row in range(first + keep, n):
            items = []
            for text, color, align, tip in model.cells(row):
                item = QStandardItem(text)
                item.setEditable(False)
                if color is not None:
                    item.setForeground(QBrush(color))
                if align is not None:
                    item.setTextAlignment(align)
                if tip:
                    item.setToolTip(tip)
                items.append(item)
            tail.appendRow(items)
        self._tail_events = wanted
        self._tail_view.scrollToBottom()

    def _update_state(self) -> None:
        total, shown = self._model.total(), self._model.rowCount()
        if total == 0:
            self._empty.setText(
                "<b>No events yet</b><br><br>Run the program (F5) or step (F10): "
                "every forward op, backward op and parameter update appears here, in order."
            )
        elif shown == 0:
            self._empty.setText(
                f"<b>No event matches the filter</b><br><br>All {total:,} events are "
                "hidden: tick more phases or clear the op filter."
            )
        tail = bool(shown) and self._live and self._follow
        if tail:
            self._refresh_tail()
        elif self._tail_events:
            self._tail_events = []
            self._tail.removeRows(0, self._tail.rowCount())
        shown_now = self._stack.currentWidget()
        wanted = self._tail_view if tail else (self._view if shown else self._empty)
        if wanted is not shown_now:
            tables = (self._view, self._tail_view)
            if shown_now in tables and wanted in tables:
                header = wanted.horizontalHeader()
                for col in range(len(COLUMNS)):  # the widths the user gave stay
                    header.resizeSection(col, shown_now.columnWidth(col))
            self._stack.setCurrentWidget(wanted)
            if wanted is self._view and shown_now is self._tail_view and self._follow:
                # the run paused or ended while followed: the whole log at its end
                # (it kept the place it had when the copy took over)
                self._view.scrollToBottom()
                self._update_selection()
        if shown == total:
            self._count_label.setText(f"{total:,} events")
        else:
            self._count_label.setText(f"{shown:,} of {total:,} events")
