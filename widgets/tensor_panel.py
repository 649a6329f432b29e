"""One tensor on screen: shape, dtype, device, statistics, histogram, heatmap or plot.

``TensorPanel.show_tensor(array, stats)`` shows the statistics exactly as given,
a histogram of the finite values, and a heatmap (2-D, or a chosen 2-D slice of
N-D) or a plot of the values (0-D, 1-D). Histograms of large arrays are computed
in the global QThreadPool and arrive by signal; a result for a tensor that is no
longer shown is dropped. ``style_plot`` is the look shared by the panels' plots.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.observe.events import Stats
from widgets.data import (
    CURVE_COLOR,
    MUTED_COLOR,
    PLOT_BACKGROUND,
    WARNING_COLOR,
    format_number,
)
from widgets.heatmap import HeatmapMixin, style_plot
from widgets.histogram import HistogramMixin

BAR_LIMIT = 64  # 1-D values up to this length are drawn as bars, longer as a line
SHOW_VALUES_LIMIT = 16  # 1-D values up to this length are also listed as numbers
LINE_LIMIT = 1_000_000  # 1-D values longer than this are not plotted
COPY_LIMIT = 100_000  # elements copied in full; more are shortened with "..."
STAT_NAMES = ("min", "max", "mean", "std", "norm", "size", "nan", "inf", "zeros")
FINITE_STATS = ("min", "max", "mean", "std", "norm")  # over the finite values only


def _muted(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {MUTED_COLOR};")
    fits(label)
    return label


def fits(label: QLabel) -> QLabel:
    """A label that wraps to the width it gets and never widens its dock."""
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def _mono():
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


def _vbox(*items) -> QWidget:
    """A margin-less column of widgets; an item ``(widget, stretch)`` stretches."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for item in items:
        widget, stretch = item if isinstance(item, tuple) else (item, 0)
        layout.addWidget(widget, stretch)
    return box


class TensorPanel(HistogramMixin, HeatmapMixin, QWidget):
    """Statistics, histogram and heatmap (or values) of one tensor."""

    sig_summary_ready = Signal()
    """Emitted when the statistics and histogram of the shown tensor are on screen."""

    def __init__(self, diverging: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._diverging = diverging  # signed data (gradients): a colour map centred on 0
        self._array: np.ndarray | None = None
        self._stats: Stats | None = None
        self._token = 0
        self._jobs: dict[int, QObject] = {}  # histogram jobs under way, by token
        self._pending = False
        self._tiles: bool | None = None  # 4-D: tiles or one slice; None: by the shape
        self._grid: tuple | None = None  # (tile rows, tile columns, shape) while tiled

        self._empty = _muted("")
        self._header = QLabel()
        self._header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._header.setWordWrap(True)
        self._legend = ""  # explains the warning-coloured heatmap cells, when there are any
        # one above the other: a dock at its default width gives each the full width
        # the values (heatmap, filters) first and taller, the histogram under them
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self._build_values())
        splitter.addWidget(self._build_histogram())
        splitter.setChildrenCollapsible(False)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([3000, 1000])  # by the stretch factors, not preferred heights
        self._header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        content = _vbox(self._build_header(), self._build_stats(), (splitter, 1))
        self._stack = QStackedWidget()
        self._stack.addWidget(self._empty)
        self._stack.addWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._stack)
        self.show_tensor(None, None, empty_text="Nothing to show")

    def _build_header(self) -> QWidget:
        """Shape, dtype and device, with Copy and Save .npy for the values."""
        self._copy = QToolButton()
        self._copy.setText("Copy")
        self._copy.setToolTip("Copy the values as text (NumPy's repr)")
        self._copy.clicked.connect(self.copy_values)
        self._save = QToolButton()
        self._save.setText("Save .npy…")
        self._save.setToolTip("Save the values to a NumPy file")
        self._save.clicked.connect(self._on_save_clicked)
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._header, 1)
        layout.addWidget(self._copy)
        layout.addWidget(self._save)
        return row

    def copy_values(self) -> str:
        """Put the values on the clipboard as text; returns the text."""
        if self._array is None:
            return ""
        with np.printoptions(threshold=COPY_LIMIT, linewidth=120):
            text = repr(self._array)
        QGuiApplication.clipboard().setText(text)
        return text

    def save_values(self, path: str) -> None:
        """Write the values to ``path`` as a .npy file (OSError when it cannot)."""
        if self._array is None:
            raise OSError("no values to save: they were not kept")
        np.save(path, self._array, allow_pickle=False)

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save values", "values.npy", "NumPy (*.npy)")
        if not path:
            return
        try:
            self.save_values(path)
        except OSError as exc:
            QMessageBox.warning(self, "Could not save", f"{path}: {exc}")

    def _build_stats(self) -> QWidget:
        self._stat_labels = {name: QLabel() for name in STAT_NAMES}
        box = QWidget()
        grid = QGridLayout(box)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(10)
        for i, name in enumerate(STAT_NAMES):
            row, col = divmod(i, 3)
            key = QLabel({"nan": "NaN", "inf": "Inf"}.get(name, name))
            key.setStyleSheet(f"color: {MUTED_COLOR};")
            value = self._stat_labels[name]
            value.setFont(_mono())
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            # the dock keeps its width whatever the numbers
            value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            grid.addWidget(key, row, 2 * col, Qt.AlignmentFlag.AlignRight)
            grid.addWidget(value, row, 2 * col + 1)
            grid.setColumnStretch(2 * col + 1, 1)
        return box

    def _build_values(self) -> QWidget:
        self._values_text = _muted("")
        self._values_text.setFont(_mono())
        self._values_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._values_stack = QStackedWidget()
        # the plots take the height there is, no more: in the inspector's scroll area a
        # plot's own preferred height pushed the filters out of view
        self._values_stack.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        self._values_stack.setMinimumHeight(120)
        self._values_stack.addWidget(self._values_text)
        self._values_stack.addWidget(self._build_heatmap())
        self._values_stack.addWidget(self._build_line_plot())
        self._slice_row = QWidget()
        self._slice_layout = QHBoxLayout(self._slice_row)
        self._slice_layout.setContentsMargins(0, 0, 0, 0)
        self._slice_spins: list[QSpinBox] = []
        self._slice_label = QLabel()
        self._values_caption = fits(QLabel())
        self._values_caption.setFont(_mono())
        self._values_caption.setWordWrap(True)
        return _vbox(self._slice_row, (self._values_stack, 1), self._values_caption)

    def _build_line_plot(self) -> QWidget:
        view = pg.PlotWidget(background=PLOT_BACKGROUND)
        view.setMinimumHeight(120)
        self._line_plot = view.getPlotItem()
        style_plot(self._line_plot)
        self._line_plot.setLabel("bottom", "index")
        self._line_plot.setClipToView(True)
        self._line_plot.setDownsampling(auto=True, mode="peak")
        self._line_curve = pg.PlotDataItem(pen=CURVE_COLOR)
        self._bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=CURVE_COLOR)
        self._line_plot.addItem(self._line_curve)
        self._line_plot.addItem(self._bars)
        return view

    # -- public -------------------------------------------------------------------

    def show_tensor(
        self,
        array: np.ndarray | None,
        stats: Stats | None,
        *,
        shape: tuple[int, ...] = (),
        dtype: str = "",
        device: str = "",
        empty_text: str = "",
        note: str = "",
    ) -> None:
        """Show ``array`` with its ``stats``; with neither, show ``empty_text``."""
        self._token += 1
        self._array = None if array is None else np.asarray(array)
        self._stats = stats
        if self._array is None and stats is None:
            self._empty.setText(empty_text)
            self._stack.setCurrentIndex(0)
            self._pending = False
            return
        if self._array is not None:
            shape, dtype = self._array.shape, str(self._array.dtype)
        header = f"shape {tuple(shape)}  ·  {dtype}  ·  {device}"
        if stats is not None and stats.size > 0 and stats.nan + stats.inf == stats.size:
            header += f'  ·  <span style="color:{WARNING_COLOR}">no finite values</span>'
        self._header.setText(header)
        self._copy.setEnabled(self._array is not None)
        self._save.setEnabled(self._array is not None)
        self._stack.setCurrentIndex(1)
        self._hist_box.setVisible(self._array is None or self._array.size > 1)
        self._values_caption.setText("")
        self._legend = ""
        self._update_stats()
        self._tiles = None  # a new tensor: tiles or a slice by its own shape
        self._update_slice_chooser()
        self._update_values(note)
        self._update_histogram(note)

    def stats(self) -> Stats | None:
        """Statistics shown: the given ones, or those computed when none were given."""
        return self._stats

    def stat_label(self, name: str) -> QLabel:
        """The label showing statistic ``name`` (one of STAT_NAMES)."""
        return self._stat_labels[name]

    def stats_text(self) -> dict[str, str]:
        """Displayed statistics, by name."""
        return {name: label.text() for name, label in self._stat_labels.items()}

    def values_text(self) -> str:
        return self._values_text.text()

    # -- updates ------------------------------------------------------------------

    def _update_stats(self) -> None:
        stats = self._stats
        # every element NaN or Inf: min, max, mean, std and norm have nothing to say
        none_finite = stats is not None and stats.size > 0 and stats.nan + stats.inf == stats.size
        for name, label in self._stat_labels.items():
            value = None if stats is None else getattr(stats, name)
            text = "…" if value is None else format_number(value)
            if none_finite and name in FINITE_STATS:
                text = "—"  # the header says why
            if name == "zeros" and value and stats.size:
                text += f" ({100.0 * value / stats.size:.1f}%)"
            label.setText(text)
            label.setToolTip("" if value is None else repr(value))
            warn = name in ("nan", "inf") and bool(value)
            label.setProperty("warning", warn)
            label.setStyleSheet(f"color: {WARNING_COLOR}; font-weight: bold;" if warn else "")

    def _update_values(self, note: str) -> None:
        a = self._array
        if a is None:
            self._show_text(f"Values not shown: {note or 'values not kept'}")
        elif a.size == 0:
            self._show_text("Empty tensor (0 elements)")
        elif a.ndim == 0 or a.size == 1:
            self._show_text(f"value = {format_number(a.ravel()[0])}", large=True)
        elif a.ndim == 1:
            self._update_line(a)
        else:
            self._on_slice_changed()

    def _show_text(self, text: str, large: bool = False) -> None:
        self._values_text.setText(text)
        self._values_text.setStyleSheet("font-size: 16pt;" if large else f"color: {MUTED_COLOR};")
        self._values_stack.setCurrentIndex(0)

    def _update_line(self, a: np.ndarray) -> None:
        if a.size > LINE_LIMIT:
            self._show_text(f"{a.size:,} values: see the histogram")
            return
        y = np.real(a).astype(np.float64, copy=False)
        x = np.arange(a.size)
        if a.size <= SHOW_VALUES_LIMIT:
            self._values_caption.setText(
                "[" + ", ".join(format_number(v) for v in a.tolist()) + "]"
            )
        if a.size <= BAR_LIMIT:
            self._line_curve.setData([], [])
            self._bars.setOpts(x=x, height=np.where(np.isfinite(y), y, 0.0))
        else:
            self._bars.setOpts(x=[], height=[])
            self._line_curve.setData(x, y, connect="finite")
        self._line_plot.setLabel("left", "value")
        self._line_plot.enableAutoRange()
        self._values_stack.setCurrentIndex(2)

    # -- events -------------------------------------------------------------------
