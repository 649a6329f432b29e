"""The node inspector: a node's op, scope and source, and its value and gradient.

``Inspector.show_node(info)`` takes a ``NodeInfo``; each of the value and the
gradient gets a ``TensorPanel`` (widgets/tensor_panel.py): shape, dtype, device,
the statistics exactly as given, a histogram of the finite values, and a heatmap
(2-D, or a chosen 2-D slice of N-D) or a plot of the values (0-D, 1-D).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.engine import indexing
from widgets.data import MUTED_COLOR, OK_COLOR, WARNING_COLOR, NodeInfo, format_number
from widgets.histogram import ASYNC_THRESHOLD
from widgets.tensor_panel import (
    BAR_LIMIT,
    LINE_LIMIT,
    SHOW_VALUES_LIMIT,
    STAT_NAMES,
    TensorPanel,
    _muted,
    fits,
    style_plot,
)

__all__ = [
    "ASYNC_THRESHOLD",
    "BAR_LIMIT",
    "EMPTY_TEXT",
    "LINE_LIMIT",
    "SHOW_VALUES_LIMIT",
    "STAT_NAMES",
    "Inspector",
    "TensorPanel",
    "style_plot",
]

EMPTY_TEXT = "Select a node to see its value and gradient"


class Inspector(QWidget):
    """A node's op, attributes, scope and source, with its value and gradient."""

    sig_check_gradient = Signal(int)
    """Emitted with the shown node's id when the user asks for a finite-difference check."""

    def __init__(self, info: NodeInfo | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._info: NodeInfo | None = None

        self._title = QLabel()
        self._title.setStyleSheet("font-size: 12pt; font-weight: bold;")
        self._title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        names = ("kind", "op", "attributes", "scope", "source", "update")
        self._fields = {name: QLabel() for name in names}
        form = self._form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(2)
        for name, label in self._fields.items():
            label.setWordWrap(True)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(name.capitalize() + ":", label)
        self._note = fits(QLabel())
        self._note.setWordWrap(True)
        self._note.setStyleSheet(f"color: {MUTED_COLOR}; font-style: italic;")
        self._check_button = QPushButton("Check gradient")
        self._check_button.setToolTip("Compare this node's gradient with finite differences")
        self._check_button.clicked.connect(self._on_check_clicked)
        self._check_result = fits(QLabel())
        self._check_result.setWordWrap(True)
        check_row = QHBoxLayout()
        check_row.addWidget(self._check_button)
        check_row.addWidget(self._check_result, 1)

        self.value_panel = TensorPanel(diverging=False)
        self.grad_panel = TensorPanel(diverging=True)
        self._tabs = QTabWidget()
        self._tabs.addTab(self.value_panel, "Value")
        self._tabs.addTab(self.grad_panel, "Gradient")
        self.value_panel.sig_summary_ready.connect(self._update_tabs)
        self.grad_panel.sig_summary_ready.connect(self._update_tabs)

        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._title)
        layout.addLayout(form)
        layout.addWidget(self._note)
        layout.addLayout(check_row)
        layout.addWidget(self._tabs, 1)
        self._stack = QStackedWidget()
        self._stack.addWidget(_muted(EMPTY_TEXT))
        # a short dock scrolls rather than making the window taller
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        self._stack.addWidget(scroll)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        outer.addWidget(self._stack)
        self.show_node(info)

    # -- public -------------------------------------------------------------------

    def show_node(self, info: NodeInfo | None) -> None:
        """Show ``info``; None shows the empty state."""
        self._info = info
        if info is None:
            self.value_panel.show_tensor(None, None)
            self.grad_panel.show_tensor(None, None)
            self._stack.setCurrentIndex(0)
            return
        self._stack.setCurrentIndex(1)
        self._update_header(info)
        self._update_check(info)
        self._update_tensors(info)

    def show_gradcheck(self, node_id: int, worst_error: float, ok: bool, text: str) -> None:
        """Show a finite-difference check's result, if ``node_id`` is still shown."""
        if self._info is None or self._info.node_id != node_id:
            return
        mark, colour = ("✓ passed", OK_COLOR) if ok else ("✗ failed", WARNING_COLOR)
        message = f"{mark} · worst error {format_number(worst_error)}"
        self._check_result.setText(f"{message} · {text}" if text else message)
        self._check_result.setStyleSheet(f"color: {colour};")

    def node(self) -> NodeInfo | None:
        return self._info

    def field_text(self, name: str) -> str:
        """Displayed text of a header field: kind, op, attributes, scope or source."""
        return self._fields[name].text()

    def gradcheck_text(self) -> str:
        return self._check_result.text()

    def check_button(self) -> QPushButton:
        return self._check_button

    def is_empty(self) -> bool:
        return self._stack.currentIndex() == 0

    # -- updates ------------------------------------------------------------------

    def _update_header(self, info: NodeInfo) -> None:
        self._title.setText(info.title)
        attrs = ", ".join(_attr_text(name, value) for name, value in info.attrs)
        engine = f" · engine node {info.node_id}" if info.node_id is not None else ""
        self._fields["kind"].setText(info.kind + engine)
        self._fields["op"].setText(info.op or "—")
        self._fields["attributes"].setText(attrs or "—")
        self._fields["scope"].setText(info.scope or "(top level)")
        source = self._fields["source"]
        if info.source is None:
            source.setText("—")
            source.setToolTip("")
        else:
            source.setText(info.source.where(Path(info.source.file).name))
            source.setToolTip(str(info.source))
        self._fields["update"].setText(info.update or "—")
        self._fields["update"].setToolTip(
            "The size of the last update against the parameter's size: about 1e-3 is healthy,"
            " far above means steps that overshoot"
        )
        self._note.setText(info.note)
        self._note.setVisible(bool(info.note))
        # rows with nothing to say take no room from the plots
        self._form.setRowVisible(self._fields["op"], info.kind == "op")
        self._form.setRowVisible(self._fields["attributes"], bool(info.attrs))
        self._form.setRowVisible(self._fields["update"], bool(info.update))

    def _update_check(self, info: NodeInfo) -> None:
        can_check = info.node_id is not None and info.has_grad
        self._check_button.setEnabled(can_check)
        if can_check:
            why = ""
        elif info.node_id is None and info.has_grad:
            why = f"{info.title} is a leaf: its gradient comes from the ops that read it; check one"
        elif info.node_id is None:
            why = "A leaf has no gradient rule to check"
        elif info.kernel is not None:
            why = (
                f"An op of compiled kernel {info.kernel}: the backward pass is nodes of this "
                "graph, not gradients flowing into it (check gradients in Eager mode)"
            )
        else:
            why = "No gradient yet: backward has not reached this node"
        self._check_result.setText(why)
        self._check_result.setStyleSheet(f"color: {MUTED_COLOR};")

    def _update_tensors(self, info: NodeInfo) -> None:
        common = dict(shape=info.shape, dtype=info.dtype, device=info.device, note=info.note)
        self.value_panel.show_tensor(
            info.value, info.value_stats, empty_text="No value recorded for this node", **common
        )
        self.grad_panel.show_tensor(
            info.grad,
            info.grad_stats,
            empty_text="No gradient: the node does not require grad, "
            "or backward has not reached it yet",
            **common,
        )
        self._update_tabs()

    def _update_tabs(self) -> None:
        """Mark the Value or Gradient tab when its tensor holds NaN or Inf."""
        for index, panel in enumerate((self.value_panel, self.grad_panel)):
            stats = panel.stats()
            warn = stats is not None and not stats.finite
            colour = QColor(WARNING_COLOR) if warn else self.palette().windowText().color()
            self._tabs.tabBar().setTabTextColor(index, colour)
            base = ("Value", "Gradient")[index]
            self._tabs.setTabText(index, f"{base} ⚠" if warn else base)

    # -- events -------------------------------------------------------------------

    def _on_check_clicked(self) -> None:
        if self._info is None or self._info.node_id is None:
            return
        self._check_result.setText("Checking…")
        self._check_result.setStyleSheet(f"color: {MUTED_COLOR};")
        self.sig_check_gradient.emit(self._info.node_id)


def _attr_text(name: str, value: object) -> str:
    """One attribute as the inspector shows it; an index as it is written."""
    if name == "index" and indexing.is_spec(value):
        return f"index={indexing.describe(value)}"
    return f"{name}={value!r}"
