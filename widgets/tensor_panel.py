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
from PySide6.QtCore import QObject, QRectF, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from core.observe.events import Stats
from core.observe.stats import summarize
from widgets.data import (
    CURVE_COLOR,
    MUTED_COLOR,
    PLOT_BACKGROUND,
    PLOT_FOREGROUND,
    WARNING_COLOR,
    format_number,
    histogram,
    tile_filters,
)

ASYNC_THRESHOLD = 200_000  # elements; larger arrays are summarized off the GUI thread
BAR_LIMIT = 64  # 1-D values up to this length are drawn as bars, longer as a line
SHOW_VALUES_LIMIT = 16  # 1-D values up to this length are also listed as numbers
LINE_LIMIT = 1_000_000  # 1-D values longer than this are not plotted
STAT_NAMES = ("min", "max", "mean", "std", "norm", "size", "nan", "inf", "zeros")
FINITE_STATS = ("min", "max", "mean", "std", "norm")  # over the finite values only


def style_plot(plot: pg.PlotItem) -> None:
    """Light background look shared by the panels' plots."""
    plot.getViewBox().setBackgroundColor(PLOT_BACKGROUND)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(PLOT_FOREGROUND)
        axis.setTextPen(PLOT_FOREGROUND)
        # the numbers as they are: no "(x1e+27)" scale in the label, no cut label
        axis.enableAutoSIPrefix(False)
    plot.setMenuEnabled(False)


def _muted(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {MUTED_COLOR};")
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


def _summarize(array: np.ndarray, stats: Stats | None):
    if stats is None:
        stats = summarize(array)
    counts, edges = histogram(array)
    return stats, counts, edges


class _JobSignals(QObject):
    done = Signal(int, object, object, object)  # token, stats, counts, edges


class _SummaryJob(QRunnable):
    """Histogram (and statistics, when none were given) of one array, in a pool thread."""

    def __init__(self, token: int, array: np.ndarray, stats: Stats | None) -> None:
        super().__init__()
        self.signals = _JobSignals()
        self._token = token
        self._array = array
        self._stats = stats

    def run(self) -> None:
        result = _summarize(self._array, self._stats)
        self._array = None
        try:
            self.signals.done.emit(self._token, *result)
        except RuntimeError:  # the signals object went with the app at shutdown
            pass


class TensorPanel(QWidget):
    """Statistics, histogram and heatmap (or values) of one tensor."""

    sig_summary_ready = Signal()
    """Emitted when the statistics and histogram of the shown tensor are on screen."""

    def __init__(self, diverging: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._diverging = diverging  # signed data (gradients): a colour map centred on 0
        self._array: np.ndarray | None = None
        self._stats: Stats | None = None
        self._token = 0
        self._jobs: dict[int, _JobSignals] = {}
        self._pending = False
        self._tiles = True  # 4-D weights: all filters as tiles (else one 2-D slice)
        self._grid: tuple | None = None  # (tile rows, tile columns, shape) while tiled

        self._empty = _muted("")
        self._header = QLabel()
        self._header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._legend = ""  # explains the warning-coloured heatmap cells, when there are any
        # one above the other: a dock at its default width gives each the full width
        # the values (heatmap, filters) first and taller, the histogram under them
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self._build_values())
        splitter.addWidget(self._build_histogram())
        splitter.setChildrenCollapsible(False)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        self._header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        content = _vbox(self._header, self._build_stats(), (splitter, 1))
        self._stack = QStackedWidget()
        self._stack.addWidget(self._empty)
        self._stack.addWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._stack)
        self.show_tensor(None, None, empty_text="Nothing to show")

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

    def _build_histogram(self) -> QWidget:
        self._hist_plot = pg.PlotWidget(background=PLOT_BACKGROUND)
        self._hist_plot.setMinimumHeight(50)
        self._hist_plot.setMaximumHeight(150)
        style_plot(self._hist_plot.getPlotItem())
        self._hist_plot.getPlotItem().setLabel("left", "count")
        brush = QColor(CURVE_COLOR).lighter(170)
        self._hist_curve = pg.PlotDataItem(
            stepMode="center", fillLevel=0, pen=CURVE_COLOR, brush=brush
        )
        self._hist_plot.addItem(self._hist_curve)
        self._hist_caption = QLabel()
        self._hist_box = _vbox((self._hist_plot, 1), self._hist_caption)
        return self._hist_box

    def _build_values(self) -> QWidget:
        self._values_text = _muted("")
        self._values_text.setFont(_mono())
        self._values_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._values_stack = QStackedWidget()
        self._values_stack.addWidget(self._values_text)
        self._values_stack.addWidget(self._build_heatmap())
        self._values_stack.addWidget(self._build_line_plot())
        self._slice_row = QWidget()
        self._slice_layout = QHBoxLayout(self._slice_row)
        self._slice_layout.setContentsMargins(0, 0, 0, 0)
        self._slice_spins: list[QSpinBox] = []
        self._slice_label = QLabel()
        self._values_caption = QLabel()
        self._values_caption.setFont(_mono())
        self._values_caption.setWordWrap(True)
        return _vbox(self._slice_row, (self._values_stack, 1), self._values_caption)

    def _build_heatmap(self) -> QWidget:
        view = pg.GraphicsLayoutWidget()
        view.setBackground(PLOT_BACKGROUND)
        view.setMinimumHeight(150)
        self._heat_plot = view.addPlot()
        style_plot(self._heat_plot)
        self._heat_plot.invertY(True)
        self._heat_plot.setLabel("left", "row")
        self._heat_plot.setLabel("bottom", "column")
        self._image = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self._heat_plot.addItem(self._image)
        self._bad_overlay = pg.ImageItem(axisOrder="row-major")  # NaN/Inf cells
        self._bad_overlay.setZValue(1)
        self._heat_plot.addItem(self._bad_overlay)
        self._hover = pg.SignalProxy(view.scene().sigMouseMoved, rateLimit=30, slot=self._on_hover)
        cmap = pg.colormap.get("CET-D1" if self._diverging else "viridis")
        self._colorbar = pg.ColorBarItem(colorMap=cmap, interactive=False, width=12)
        self._colorbar.setImageItem(self._image, insert_in=self._heat_plot)
        self._colorbar.getAxis("right").setPen(PLOT_FOREGROUND)
        self._colorbar.getAxis("right").setTextPen(PLOT_FOREGROUND)
        return view

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
        self._header.setText(f"shape {tuple(shape)}  ·  {dtype}  ·  {device}")
        self._stack.setCurrentIndex(1)
        self._hist_box.setVisible(self._array is None or self._array.size > 1)
        self._values_caption.setText("")
        self._legend = ""
        self._update_stats()
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

    def histogram_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(counts, edges) as plotted, or None while none is shown."""
        if self._hist_curve.yData is None or len(self._hist_curve.yData) == 0:
            return None
        return self._hist_curve.yData, self._hist_curve.xData

    def heatmap_image(self) -> np.ndarray | None:
        """The 2-D array the heatmap draws, or None when no heatmap is shown."""
        if self._values_stack.currentIndex() != 1:
            return None
        return self._image.image

    def set_slice(self, index: tuple[int, ...]) -> None:
        """Pick the 2-D slice ``array[index]`` of an N-D tensor (N > 2)."""
        for spin, i in zip(self._slice_spins, index, strict=True):
            spin.blockSignals(True)
            spin.setValue(i)
            spin.blockSignals(False)
        self._on_slice_changed()

    def slice_index(self) -> tuple[int, ...]:
        return tuple(spin.value() for spin in self._slice_spins)

    def is_pending(self) -> bool:
        """True while the histogram is being computed off the GUI thread."""
        return self._pending

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
                text = "no finite values" if name == "min" else "—"
            if name == "zeros" and value and stats.size:
                text += f" ({100.0 * value / stats.size:.1f}%)"
            label.setText(text)
            label.setToolTip("" if value is None else repr(value))
            warn = name in ("nan", "inf") and bool(value)
            label.setProperty("warning", warn)
            label.setStyleSheet(f"color: {WARNING_COLOR}; font-weight: bold;" if warn else "")

    def _update_histogram(self, note: str) -> None:
        self._hist_curve.setData([], [])
        array, token = self._array, self._token
        if array is None:
            self._hist_caption.setText(f"No histogram: {note or 'values not kept'}")
            self._pending = False
            self.sig_summary_ready.emit()
            return
        if array.size <= ASYNC_THRESHOLD:
            self._pending = False
            self._on_summary_done(token, *_summarize(array, self._stats))
            return
        self._pending = True
        self._hist_caption.setText(f"Computing histogram of {array.size:,} values…")
        job = _SummaryJob(token, array, self._stats)
        job.signals.done.connect(self._on_summary_done)
        self._jobs[token] = job.signals
        QThreadPool.globalInstance().start(job)

    def _update_slice_chooser(self) -> None:
        ndim = 0 if self._array is None else self._array.ndim
        self._slice_spins = []
        while self._slice_layout.count():
            widget = self._slice_layout.takeAt(0).widget()
            if widget is not None and widget is not self._slice_label:
                widget.deleteLater()
        self._slice_row.setVisible(ndim > 2)
        if ndim <= 2:
            return
        if ndim == 4:
            tiles = QCheckBox("all filters")
            tiles.setToolTip("Every (out, in) filter as a tile; off: one 2-D slice")
            tiles.setChecked(self._tiles)
            tiles.toggled.connect(self._on_tiles_toggled)
            self._slice_layout.addWidget(tiles)
        self._slice_layout.addWidget(QLabel("slice"))
        for size in self._array.shape[:-2]:
            spin = QSpinBox()
            spin.setRange(0, max(size - 1, 0))
            spin.valueChanged.connect(self._on_slice_changed)
            self._slice_spins.append(spin)
            self._slice_layout.addWidget(spin)
        self._slice_layout.addWidget(self._slice_label)
        self._slice_layout.addStretch(1)

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

    def _update_heatmap(self, image: np.ndarray) -> None:
        if image.dtype.kind == "c":
            image = image.real
        elif image.dtype.kind == "b":
            image = image.astype(np.uint8)
        lo, hi = self._levels(image)
        self._image.setImage(image, autoLevels=False, levels=(lo, hi))
        h, w = image.shape
        self._image.setRect(QRectF(-0.5, -0.5, w, h))  # cell (r, c) centred on (c, r)
        self._colorbar.setLevels(low=lo, high=hi)
        self._update_bad_overlay(image)
        self._update_heat_axes(h, w)
        self._heat_plot.setRange(xRange=(-0.5, w - 0.5), yRange=(-0.5, h - 0.5), padding=0)
        self._values_stack.setCurrentIndex(1)

    def _update_heat_axes(self, h: int, w: int) -> None:
        """Whole-number ticks on cells; a tile grid is labelled by channel."""
        plot = self._heat_plot
        if self._grid is not None:
            rows, cols, (out, inp, kh, kw) = self._grid
            across = [(c * (kw + 1) + (kw - 1) / 2, str(c)) for c in range(cols)]
            down = [(r * (kh + 1) + (kh - 1) / 2, str(r)) for r in range(rows)]
            plot.getAxis("bottom").setTicks([across])
            plot.getAxis("left").setTicks([down])
            plot.setLabel("bottom", "input channel" if inp > 1 else "filter (column)")
            plot.setLabel("left", "output channel" if inp > 1 else "filter (row)")
            return
        for name, n in (("bottom", w), ("left", h)):
            step = max(1, int(np.ceil(n / 6)))
            plot.getAxis(name).setTicks([[(k, str(k)) for k in range(0, n, step)]])
        plot.setLabel("left", "row")
        plot.setLabel("bottom", "column")

    def _update_bad_overlay(self, image: np.ndarray) -> None:
        stats = self._stats
        bad = None
        if image.dtype.kind == "f" and not (stats is not None and stats.finite):
            bad = ~np.isfinite(image)
        if bad is None or not bad.any():
            self._bad_overlay.clear()
            self._legend = ""
            self._values_caption.setText("")
            return
        self._legend = f'<span style="color:{WARNING_COLOR}">■ NaN/Inf</span>&nbsp;&nbsp;'
        self._values_caption.setText(self._legend)
        pixel = np.frombuffer(bytes(QColor(WARNING_COLOR).getRgb()), dtype=np.uint32)[0]
        packed = np.where(bad, pixel, np.uint32(0))  # RGBA bytes; transparent where finite
        rgba = packed.view(np.uint8).reshape(*image.shape, 4)
        self._bad_overlay.setImage(rgba, autoLevels=False)
        self._bad_overlay.setRect(QRectF(-0.5, -0.5, image.shape[1], image.shape[0]))

    def _levels(self, image: np.ndarray) -> tuple[float, float]:
        stats = self._stats
        if stats is not None and np.isfinite([stats.min, stats.max]).all():
            lo, hi = stats.min, stats.max
        else:
            sample = image.ravel()[:: max(1, image.size // ASYNC_THRESHOLD)]
            sample = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
            lo, hi = (float(sample.min()), float(sample.max())) if sample.size else (0.0, 1.0)
        if self._diverging:
            hi = max(abs(lo), abs(hi))
            lo = -hi
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        return float(lo), float(hi)

    # -- events -------------------------------------------------------------------

    def _on_slice_changed(self) -> None:
        a = self._array
        if a is None or a.ndim < 2 or a.size == 0:
            return
        self._grid = None
        for spin in self._slice_spins:
            spin.setEnabled(not self.tiled())
        if self.tiled():
            image, rows, cols = tile_filters(a)
            self._grid = (rows, cols, a.shape)
            self._slice_label.setText(
                f"{a.shape[0]}×{a.shape[1]} filters of {a.shape[2]}×{a.shape[3]}, tiled"
            )
            self._update_heatmap(image)
            return
        index = self.slice_index()
        if index:
            self._slice_label.setText("[" + ", ".join(map(str, index)) + ", :, :]")
        self._update_heatmap(a[index] if index else a)

    def tiled(self) -> bool:
        """The heatmap shows every filter of a 4-D weight as a tile."""
        return self._tiles and self._array is not None and self._array.ndim == 4

    def set_tiled(self, on: bool) -> None:
        """4-D weights: every filter as a tile (on), or one 2-D slice (off)."""
        self._on_tiles_toggled(on)

    def _on_tiles_toggled(self, on: bool) -> None:
        self._tiles = on
        self._on_slice_changed()

    def _on_hover(self, event) -> None:
        image = self._image.image
        if image is None or self._values_stack.currentIndex() != 1:
            return
        point = self._heat_plot.getViewBox().mapSceneToView(event[0])
        row, col = int(np.floor(point.y() + 0.5)), int(np.floor(point.x() + 0.5))
        if 0 <= row < image.shape[0] and 0 <= col < image.shape[1]:
            index = (*self.slice_index(), row, col)
            if self._grid is not None:
                index = self._tile_index(row, col)
                if index is None:
                    return
            value = format_number(image[row, col])
            where = ", ".join(map(str, index))
            self._values_caption.setText(f"{self._legend}[{where}] = {value}")

    def _tile_index(self, row: int, col: int) -> tuple[int, ...] | None:
        rows, cols, (out, inp, h, w) = self._grid
        (tr, r), (tc, c) = divmod(row, h + 1), divmod(col, w + 1)
        if r == h or c == w:
            return None  # between tiles
        if inp == 1:
            k = tr * cols + tc
            return (k, 0, r, c) if k < out else None
        return (tr, tc, r, c)

    def _on_summary_done(self, token: int, stats: Stats, counts, edges) -> None:
        self._jobs.pop(token, None)
        if token != self._token:
            return
        self._pending = False
        if self._stats is None:
            self._stats = stats
            self._update_stats()
            if self._array is not None and self._array.ndim >= 2:
                self._on_slice_changed()
        self._update_histogram_plot(counts, edges)
        self.sig_summary_ready.emit()

    def _update_histogram_plot(self, counts: np.ndarray, edges: np.ndarray) -> None:
        stats = self._stats
        bad = []
        if stats is not None and stats.nan:
            bad.append(f"{stats.nan:,} NaN")
        if stats is not None and stats.inf:
            bad.append(f"{stats.inf:,} Inf")
        warn = f'<br><span style="color:{WARNING_COLOR}"><b>{", ".join(bad)}</b> not shown</span>'
        suffix = warn if bad else ""
        if counts.size == 0:
            self._hist_caption.setText("No finite values" + suffix)
            return
        self._hist_curve.setData(edges, counts)
        self._hist_plot.getPlotItem().enableAutoRange()
        n = int(counts.sum())
        bins = f"{counts.size} bin" + ("s" if counts.size > 1 else "")
        self._hist_caption.setText(f"{n:,} finite values in {bins}" + suffix)
