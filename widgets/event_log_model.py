"""The event log's table model: a growing list of engine events, lazy and filterable.

``EventLogModel`` reads a Python list of event dataclasses that grows while a run
goes on: the app appends to the list, then calls ``model.extend(n_new)`` once per
batch. Cells are formatted only when the view asks for them (visible rows).
Per event the model keeps two small integers in NumPy arrays (its phase and an
interned op/name code), so filtering a million events is a few vectorized passes;
the filtered row -> event index mapping grows with each batch, without
``QSortFilterProxyModel``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor

from core.observe import events as ev

PHASES = ("forward", "backward", "update", "other")
COLUMNS = ("#", "phase", "kind", "op / name", "node", "shape", "scope", "time (µs)", "source")
COL_INDEX, COL_PHASE, COL_KIND, COL_NAME, COL_NODE = 0, 1, 2, 3, 4
COL_SHAPE, COL_SCOPE, COL_TIME, COL_SOURCE = 5, 6, 7, 8

_PHASE_CODE = {phase: code for code, phase in enumerate(PHASES)}
PHASE_COLORS = {
    "forward": QColor("#3b7dd8"),
    "backward": QColor("#d9822b"),
    "update": QColor("#2e9e5b"),
    "other": QColor("#8a8a8a"),
}
NONFINITE_COLOR = QColor("#d64545")
_NUMERIC = (COL_INDEX, COL_TIME)
_ROOT = QModelIndex()
_DISPLAY = Qt.ItemDataRole.DisplayRole
_FOREGROUND = Qt.ItemDataRole.ForegroundRole
_ALIGNMENT = Qt.ItemDataRole.TextAlignmentRole
_TOOLTIP = Qt.ItemDataRole.ToolTipRole
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_CACHE_ROWS = 512

# Phase and op/name of each event class; the filter reads only these two.
_CLASSIFY = {
    ev.OpForward: lambda e: (e.phase, e.op),
    ev.OpBackward: lambda e: ("backward", e.op),
    ev.ModuleEnter: lambda e: ("forward", e.kind),
    ev.ModuleExit: lambda e: ("forward", e.kind),
    ev.TensorCreated: lambda e: ("other", e.name),
    ev.BackwardStarted: lambda e: ("backward", ""),
    ev.GradAccumulated: lambda e: ("backward", e.name),
    ev.BackwardEnded: lambda e: ("backward", ""),
    ev.ParameterUpdated: lambda e: ("update", e.name),
    ev.StepStarted: lambda e: ("other", f"step {e.step}"),
    ev.StepEnded: lambda e: ("other", f"step {e.step}"),
    ev.RunStarted: lambda e: ("other", os.path.basename(e.program)),
    ev.RunFinished: lambda e: ("other", e.status),
    ev.KernelRun: lambda e: (e.phase, e.name),
    ev.PassApplied: lambda e: ("other", e.name),
    ev.StepRetraced: lambda e: ("other", e.reason),
}


def _classify(event: Any) -> tuple[str, str]:
    rule = _CLASSIFY.get(type(event))
    return rule(event) if rule is not None else ("other", "")


def _shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return ""
    return "×".join(map(str, shape)) if shape else "scalar"


def _nonfinite(event: Any) -> bool:
    stats = getattr(event, "stats", None)
    if isinstance(stats, tuple):
        return any(s is not None and not s.finite for s in stats)
    return stats is not None and not stats.finite


class _Growing:
    """A 1-D NumPy array that grows by doubling; ``view`` is its filled part."""

    def __init__(self, dtype: Any) -> None:
        self._data = np.empty(1024, dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        end = self.size + len(values)
        if end > len(self._data):
            grown = np.empty(max(end, 2 * len(self._data)), self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size : end] = values
        self.size = end

    @property
    def view(self) -> np.ndarray:
        return self._data[: self.size]


class EventLogModel(QAbstractTableModel):
    """A table over ``events`` (a list the app appends to), one row per shown event."""

    sig_total_changed = Signal(int)
    """New events were taken in (``extend``, ``reset``): the new total, shown or not."""

    def __init__(
        self,
        events: list | None = None,
        parent: QObject | None = None,
        forward: Mapping[int, int] | None = None,
    ) -> None:
        super().__init__(parent)
        self._events: list = events if events is not None else []
        self._forward = forward
        self._start()
        self._phases: set[str] | None = None
        self._op_text = ""
        self.extend()

    def _start(self) -> None:
        self._count = 0
        self._phase = _Growing(np.int8)
        self._name = _Growing(np.int32)
        self._codes: dict[str, int] = {}
        self._names: list[str] = []
        self._forward_at = np.full(1024, -1, np.int64)  # node id -> its OpForward's index
        self._rows: _Growing | None = None
        self._cells: dict[int, tuple[Any, ...]] = {}

    # -- feeding ------------------------------------------------------------------

    def extend(self, n_new: int | None = None) -> int:
        """Take in ``n_new`` more events of the list (all new ones when None).

        Returns how many rows appeared (fewer than ``n_new`` under a filter).
        """
        start = self._count
        stop = len(self._events) if n_new is None else min(start + n_new, len(self._events))
        if stop <= start:
            return 0
        self._note_forward(start, stop)
        if self._rows is None:  # no filter: rows are events, nothing to classify yet
            first, added, rows = start, stop - start, None
        else:
            self._ensure_classified(stop)
            rows = np.flatnonzero(self._matches(self._phase.view[start:], self._name.view[start:]))
            rows += start
            first, added = self._rows.size, len(rows)
        if added:
            self.beginInsertRows(QModelIndex(), first, first + added - 1)
        self._count = stop
        if rows is not None:
            self._rows.extend(rows)
        if added:
            self.endInsertRows()
        self.sig_total_changed.emit(stop)
        return added

    def reset(self, events: list | None = None, forward: Mapping[int, int] | None = None) -> None:
        """Start over on ``events`` (a new run); the filter stays. ``forward``: where
        each node's OpForward is (a Recording's ``nodes``), kept up to date by the
        list's owner; without it the model finds them itself, a pass per event."""
        self.beginResetModel()
        self._events = events if events is not None else []
        self._forward = forward
        self._start()
        self._refilter()
        self.endResetModel()
        self.extend()

    def _ensure_classified(self, stop: int) -> None:
        """Phase and name codes of the events up to ``stop``, for the filter. Done
        only when a filter needs them: a few microseconds an event, which a live
        run's GUI thread cannot spend on every event it shows."""
        start = self._phase.size
        if stop <= start:
            return
        codes, names = self._codes, self._names
        phase_out = []
        name_out = []
        for event in self._events[start:stop]:
            phase, name = _classify(event)
            code = codes.get(name)
            if code is None:
                code = codes[name] = len(names)
                names.append(name)
            phase_out.append(_PHASE_CODE.get(phase, 3))
            name_out.append(code)
        self._phase.extend(np.array(phase_out, np.int8))
        self._name.extend(np.array(name_out, np.int32))

    def _phase_name(self, i: int) -> tuple[str, str]:
        """Event ``i``'s phase and op/name, classified already or now."""
        if i < self._phase.size:
            return PHASES[self._phase.view[i]], self._names[self._name.view[i]]
        return _classify(self._events[i])

    def _note_forward(self, start: int, stop: int) -> None:
        """Remember where each node's OpForward is (its backward rows show its line),
        unless the list's owner keeps that map (``forward``)."""
        if self._forward is not None:
            return
        forward = ev.OpForward
        found = [
            (e.node_id, i)
            for i, e in enumerate(self._events[start:stop], start)
            if type(e) is forward and e.kernel is None  # a compiled op has no backward rows
        ]
        if not found:
            return
        nodes, indexes = np.array(found, np.int64).T
        size = len(self._forward_at)
        if nodes.max() >= size:
            grown = np.full(max(int(nodes.max()) + 1, 2 * size), -1, np.int64)
            grown[:size] = self._forward_at
            self._forward_at = grown
        self._forward_at[nodes] = indexes

    def forward_of(self, node_id: int) -> int | None:
        """The index of node ``node_id``'s OpForward event, when the model has seen it."""
        if self._forward is not None:
            found = self._forward.get(node_id)
            return found if found is not None and found < self._count else None
        if not 0 <= node_id < len(self._forward_at):
            return None
        found = int(self._forward_at[node_id])
        return found if found >= 0 else None

    # -- filtering ----------------------------------------------------------------

    def set_filter(self, phases: set[str] | None = None, op_text: str = "") -> None:
        """Show only events of these phases (None: all) whose op/name contains ``op_text``."""
        phases = None if phases is None or set(PHASES) <= set(phases) else set(phases)
        op_text = op_text.strip().lower()
        if phases == self._phases and op_text == self._op_text:
            return
        self.beginResetModel()
        self._phases, self._op_text = phases, op_text
        self._refilter()
        self.endResetModel()

    def filter(self) -> tuple[set[str] | None, str]:
        """The current filter: (phases or None for all, op text)."""
        return (None if self._phases is None else set(self._phases)), self._op_text

    def is_filtered(self) -> bool:
        return self._phases is not None or bool(self._op_text)

    def _refilter(self) -> None:
        self._cells.clear()
        if not self.is_filtered():
            self._rows = None
            return
        self._ensure_classified(self._count)
        self._rows = _Growing(np.int64)
        self._rows.extend(np.flatnonzero(self._matches(self._phase.view, self._name.view)))

    def _matches(self, phases: np.ndarray, names: np.ndarray) -> np.ndarray:
        keep = np.ones(len(phases), bool)
        if self._phases is not None:
            wanted = [_PHASE_CODE[p] for p in self._phases if p in _PHASE_CODE]
            keep &= np.isin(phases, wanted)
        if self._op_text:
            text = self._op_text
            wanted = [code for code, name in enumerate(self._names) if text in name.lower()]
            keep &= np.isin(names, wanted)
        return keep

    # -- rows and events ------------------------------------------------------------

    def total(self) -> int:
        """How many events the model has taken in, shown or not."""
        return self._count

    def events(self) -> list:
        return self._events

    def event_index(self, row: int) -> int:
        """The index in the event list of the event shown on ``row``."""
        return row if self._rows is None else int(self._rows.view[row])

    def row_of(self, event_index: int) -> int | None:
        """The row that shows event ``event_index``, or None when it is filtered out."""
        if not 0 <= event_index < self._count:
            return None
        if self._rows is None:
            return event_index
        rows = self._rows.view
        row = int(np.searchsorted(rows, event_index))
        return row if row < len(rows) and rows[row] == event_index else None

    def nearest_row(self, event_index: int) -> int | None:
        """The row of ``event_index``, else of the last shown event before it, else the first."""
        n = self.rowCount()
        if n == 0:
            return None
        if self._rows is None:
            return min(max(event_index, 0), n - 1)
        row = int(np.searchsorted(self._rows.view, event_index, side="right")) - 1
        return max(row, 0)

    # -- Qt model -------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        if parent.isValid():
            return 0
        return self._count if self._rows is None else self._rows.size

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        row = index.row()
        if row < 0:
            return None
        if role == _DISPLAY:
            return self._row_cells(self.event_index(row))[index.column()]
        if role == _FOREGROUND:
            return self._foreground(self.event_index(row), index.column())
        if role == _ALIGNMENT:
            return _RIGHT if index.column() in _NUMERIC else None
        if role == _TOOLTIP:
            return self._tooltip(self._events[self.event_index(row)], index.column())
        return None

    def cells(self, row: int) -> list[tuple[str, QColor | None, Any, str | None]]:
        """Row ``row`` as the view draws it: per column its text, colour, alignment
        and tooltip, all that ``data`` answers (for a copy of rows kept elsewhere)."""
        i = self.event_index(row)
        texts, event = self._row_cells(i), self._events[i]
        return [
            (
                texts[col],
                self._foreground(i, col),
                _RIGHT if col in _NUMERIC else None,
                self._tooltip(event, col),
            )
            for col in range(len(COLUMNS))
        ]

    def _foreground(self, i: int, col: int) -> QColor | None:
        if self._row_cells(i)[-1]:
            return NONFINITE_COLOR
        if col == COL_PHASE:
            return PHASE_COLORS[self._phase_name(i)[0]]
        return None

    def _row_cells(self, i: int) -> tuple[Any, ...]:
        """The texts of row ``i``'s cells, then whether its event holds a NaN/Inf."""
        cells = self._cells.get(i)
        if cells is None:
            if len(self._cells) >= _CACHE_ROWS:
                self._cells.clear()
            cells = self._cells[i] = self._format(i)
        return cells

    def _format(self, i: int) -> tuple[Any, ...]:
        event = self._events[i]
        get = getattr
        node = get(event, "node_id", None)
        duration = get(event, "duration_ns", None)
        source = get(event, "source", None)
        scope = get(event, "scope", None)
        if isinstance(event, (ev.ModuleEnter, ev.ModuleExit)):
            scope = event.path
        elif isinstance(event, ev.OpBackward):
            forward = self.forward_of(event.node_id)
            if forward is not None:  # the rule ran for this forward op: same scope and line
                scope = self._events[forward].scope
                source = self._events[forward].source
        phase, name = self._phase_name(i)
        return (
            str(i),
            phase,
            type(event).__name__,
            name,
            "" if node is None else str(node),
            _shape(get(event, "shape", None)),
            scope or "",
            "" if duration is None else f"{duration / 1000:,.1f}",
            "" if source is None else f"{os.path.basename(source.file)}:{source.line}",
            _nonfinite(event),
        )

    def _tooltip(self, event: Any, col: int) -> str | None:
        stats = getattr(event, "stats", None)
        if _nonfinite(event):
            items = stats if isinstance(stats, tuple) else (stats,)
            bad = [s for s in items if s is not None and not s.finite]
            return "; ".join(f"{s.nan} NaN, {s.inf} Inf of {s.size}" for s in bad)
        source = getattr(event, "source", None)
        if col == COL_SOURCE and source is not None:
            return str(source)
        if col == COL_NAME and isinstance(event, ev.StepEnded) and event.loss is not None:
            return f"loss {event.loss:.6g}"
        return None
