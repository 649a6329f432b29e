"""The compare view: what compiling a step changed. It shows a
``core.debug.compare.Comparison`` and runs nothing itself.

- the eager graph of the traced step beside the compiled graph (fused kernels
  as boxes around the ops they cover), and under them the eager ops beside the
  kernels: selecting an eager op, in its graph or list, selects the kernel that
  computes it (or says which pass removed it); selecting a kernel, or a node of
  the compiled graph, selects every eager op it covers;
- pass by pass, what each pass rewrote;
- agreement per output and per parameter gradient over the steps run, and the
  retraces with the guard that failed.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.debug.compare import Comparison
from core.deferred.view import graph_events
from core.observe.events import StepStarted
from widgets.data import MUTED_COLOR, OK_COLOR, WARNING_COLOR, format_number
from widgets.empty_state import empty_stack
from widgets.graph_view import GraphView

EMPTY_TEXT = "No comparison yet: Compare runs the program eager and compiled, step by step"
ORIGIN = Qt.ItemDataRole.UserRole  # an op item's eager node id, a kernel item's index


class CompareView(QWidget):
    """See the module docstring."""

    sig_kernel_selected = Signal(int)
    """Emitted with a kernel's index when the user selects it (or an op it covers)."""

    def __init__(self, comparison: Comparison | None = None, parent=None) -> None:
        super().__init__(parent)
        self._comparison: Comparison | None = None
        self._syncing = False
        self._origins: list[int] = []
        self._summary = QLabel()
        self._summary.setWordWrap(True)
        self._summary.setStyleSheet("padding: 2px 4px;")
        self._ops = QListWidget()
        self._ops.itemSelectionChanged.connect(self._on_op_selected)
        self._kernels = QListWidget()
        self._kernels.itemSelectionChanged.connect(self._on_kernel_selected)
        self._where = QLabel()
        self._where.setWordWrap(True)
        self._where.setStyleSheet(f"color: {MUTED_COLOR};")
        self.eager_graph = GraphView()
        self.eager_graph.sig_node_selected.connect(self._on_eager_node)
        self.compiled_graph = GraphView()
        self.compiled_graph.sig_node_selected.connect(self._on_compiled_node)
        graphs = QSplitter()
        graphs.addWidget(_titled("Eager graph (the traced step)", self.eager_graph))
        graphs.addWidget(_titled("Compiled graph (kernels as boxes)", self.compiled_graph))
        sides = QSplitter()
        sides.addWidget(_titled("Eager ops", self._ops))
        sides.addWidget(_titled("Compiled kernels", self._kernels))
        both = QSplitter(Qt.Orientation.Vertical)
        both.addWidget(graphs)
        both.addWidget(sides)
        both.setSizes([300, 140])
        mapping = QWidget()
        layout = QVBoxLayout(mapping)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(both, 1)
        layout.addWidget(self._where)

        self._passes = QTreeWidget()
        self._passes.setHeaderLabels(["pass", "op nodes", "rewrites"])
        self._agreement = QTableWidget(0, 5)
        self._agreement.setHorizontalHeaderLabels(
            ["quantity", "max abs diff", "max rel diff", "worst step", "agrees"]
        )
        self._agreement.verticalHeader().setVisible(False)
        self._agreement.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self._agreement.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self._retraces = QListWidget()
        agreement = QWidget()
        layout = QVBoxLayout(agreement)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._agreement, 3)
        layout.addWidget(QLabel("Guards that failed (each a retrace)"))
        layout.addWidget(self._retraces, 1)

        self._tabs = QTabWidget()
        self._tabs.addTab(mapping, "Eager ↔ compiled")
        self._tabs.addTab(self._passes, "Passes")
        self._tabs.addTab(agreement, "Agreement")
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._summary)
        layout.addWidget(self._tabs, 1)
        self._stack, self._empty = empty_stack(EMPTY_TEXT, body)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self._stack)
        self.set_comparison(comparison)

    # -- data in ---------------------------------------------------------------------------

    def set_comparison(self, comparison: Comparison | None) -> None:
        self._comparison = comparison
        self._stack.setCurrentIndex(0 if comparison is None or comparison.entry is None else 1)
        if comparison is None or comparison.entry is None:
            return
        verdict = "agree" if comparison.ok else "DISAGREE"
        graphs = comparison.graphs
        self._summary.setText(
            f"{os.path.basename(comparison.program)}: {comparison.steps} steps, eager and "
            f"compiled {verdict}; {graphs} graph{'s' * (graphs != 1)} traced"
        )
        self._summary.setToolTip(comparison.program)
        self._update_mapping()
        self._update_graphs()
        self._update_passes()
        self._update_agreement()

    # -- selection -------------------------------------------------------------------------

    def select_op(self, origin: int) -> None:
        """Select the eager op with node id ``origin`` (and its kernel)."""
        for i in range(self._ops.count()):
            item = self._ops.item(i)
            if item.data(ORIGIN) == origin:
                self._ops.setCurrentItem(item)
                return

    def selected_kernels(self) -> list[int]:
        return [item.data(ORIGIN) for item in self._kernels.selectedItems()]

    def selected_ops(self) -> list[int]:
        return [item.data(ORIGIN) for item in self._ops.selectedItems()]

    def _on_op_selected(self) -> None:
        if self._syncing or self._comparison is None:
            return
        origins = self.selected_ops()
        if not origins:
            return
        where = self._comparison.mapping.get(origins[0], ("removed", "unknown", ""))
        self._syncing = True
        try:
            self._kernels.clearSelection()
            self._select_in(self.eager_graph, [origins[0]])
            if where[0] == "kernel":
                self._select_in(self.compiled_graph, [origins[0]])
                self._kernels.item(where[1]).setSelected(True)
                self._kernels.scrollToItem(self._kernels.item(where[1]))
                again = f"; computed again in kernels {list(where[3])}" if where[3] else ""
                self._where.setText(f"computed by kernel {where[1]} ({where[2]}){again}")
                self.sig_kernel_selected.emit(where[1])
            elif where[0] == "merged":
                self._where.setText(f"the same as node {where[1]}: merged by {where[2]}")
            else:
                self._where.setText(f"removed by the {where[1]} pass: {where[2]}")
        finally:
            self._syncing = False

    def _on_kernel_selected(self) -> None:
        if self._syncing or self._comparison is None:
            return
        kernels = self.selected_kernels()
        if not kernels:
            return
        covers = set(self._comparison.entry.program.kernels[kernels[0]].covers)
        self._syncing = True
        try:
            self._ops.clearSelection()
            first = None
            for i in range(self._ops.count()):
                item = self._ops.item(i)
                if item.data(ORIGIN) in covers:
                    item.setSelected(True)
                    first = first or item
            if first is not None:
                self._ops.scrollToItem(first)
            ordered = [o for o in self._origins if o in covers]
            self._select_in(self.eager_graph, ordered)
            self._select_in(self.compiled_graph, ordered)
            self._where.setText(f"kernel {kernels[0]} computes {len(covers)} eager op(s)")
            self.sig_kernel_selected.emit(kernels[0])
        finally:
            self._syncing = False

    def _on_eager_node(self, index: int) -> None:
        origin = _origin(self.eager_graph, index)
        if origin is not None and not self._syncing:
            self.select_op(origin)

    def _on_compiled_node(self, index: int) -> None:
        origin = _origin(self.compiled_graph, index)
        where = None if origin is None else self._comparison.mapping.get(origin)
        if where is not None and where[0] == "kernel" and not self._syncing:
            self._kernels.setCurrentItem(self._kernels.item(where[1]))

    @staticmethod
    def _select_in(graph: GraphView, origins: list[int]) -> None:
        """Select the first of these ops drawn in ``graph`` (centred on it)."""
        for origin in origins:
            index = graph.model.by_node_id.get(origin)
            if index is not None:
                graph.select(index, center=True)
                return
        graph.select(None)

    # -- drawing ---------------------------------------------------------------------------

    def _update_graphs(self) -> None:
        entry = self._comparison.entry
        for graph, compiled in ((self.eager_graph, False), (self.compiled_graph, True)):
            events = graph_events(entry, compiled=compiled, names=self._comparison.names)
            graph.rebuild([StepStarted(0), *events], 0)
            graph.relayout(wait=True)
        self._fit_graphs()

    def _fit_graphs(self) -> None:
        for graph in (self.eager_graph, self.compiled_graph):
            if graph.model.nodes:
                graph.fit()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._fit_graphs()  # a view sized while hidden fits again once shown

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_graphs()

    def _update_mapping(self) -> None:
        entry = self._comparison.entry
        self._ops.clear()
        self._origins = [node.origin for node in entry.trace.graph.ops]
        for node in entry.trace.graph.ops:
            where = self._comparison.mapping.get(node.origin, ("removed", "unknown", ""))
            label = f"{node.name}  [{node.phase}]" + (f"  {node.scope}" if node.scope else "")
            item = QListWidgetItem(label)
            item.setData(ORIGIN, node.origin)
            if where[0] != "kernel":
                item.setForeground(QColor(MUTED_COLOR))
                item.setToolTip(f"{where[0]} by {where[-1] if where[0] == 'merged' else where[1]}")
            self._ops.addItem(item)
        self._kernels.clear()
        for kernel in entry.program.kernels:
            ops = len(kernel.covers)
            item = QListWidgetItem(f"{kernel.index}: {kernel.name}  ({ops} op{'s' * (ops != 1)})")
            item.setData(ORIGIN, kernel.index)
            item.setToolTip(kernel.source or "")
            self._kernels.addItem(item)

    def _update_passes(self) -> None:
        self._passes.clear()
        for report in self._comparison.entry.reports:
            item = QTreeWidgetItem(
                [report.name, f"{report.nodes_before} → {report.nodes_after}", str(report.changes)]
            )
            for line in report.details:
                item.addChild(QTreeWidgetItem([line]))
            self._passes.addTopLevelItem(item)
        self._passes.resizeColumnToContents(0)

    def _update_agreement(self) -> None:
        rows = self._comparison.rows
        self._agreement.setRowCount(len(rows))
        for r, row in enumerate(rows):
            ok = row.ok()
            cells = [
                row.name,
                format_number(row.max_abs),
                format_number(row.max_rel),
                str(row.worst_step),
                "yes" if ok else "NO",
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 4:
                    item.setForeground(QColor(OK_COLOR if ok else WARNING_COLOR))
                self._agreement.setItem(r, c, item)
        self._retraces.clear()
        for reason in self._comparison.retraces:
            self._retraces.addItem(reason)
        if not self._comparison.retraces:
            self._retraces.addItem("none: every step ran the compiled graph")


def _origin(graph: GraphView, index: int) -> int | None:
    """The traced op id (node id) of node ``index`` of ``graph``; None for a leaf."""
    if index < 0 or index >= len(graph.model.nodes):
        return None
    return graph.model.nodes[index].node_id


def _titled(title: str, widget: QWidget) -> QWidget:
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    label = QLabel(title)
    label.setStyleSheet("font-weight: 600;")
    layout.addWidget(label)
    layout.addWidget(widget, 1)
    return box
