"""The histogram of a tensor panel: the finite values in bins, computed off the
GUI thread for large arrays (a result for a tensor no longer shown is dropped),
with the NaN/Inf count that was left out.

``HistogramMixin`` is a part of ``TensorPanel`` (widgets/tensor_panel.py).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from core.observe.events import Stats
from core.observe.stats import summarize
from widgets.data import CURVE_COLOR, PLOT_BACKGROUND, WARNING_COLOR, histogram
from widgets.heatmap import style_plot

ASYNC_THRESHOLD = 200_000  # elements; larger arrays are summarized off the GUI thread


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


class HistogramMixin:
    """The histogram plot, its caption, and the background summary jobs."""

    def _build_histogram(self) -> QWidget:
        self._hist_plot = pg.PlotWidget(background=PLOT_BACKGROUND)
        self._hist_plot.setMinimumHeight(50)
        self._hist_plot.setMaximumHeight(110)
        style_plot(self._hist_plot.getPlotItem())
        self._hist_plot.getPlotItem().setLabel("left", "count")
        brush = QColor(CURVE_COLOR).lighter(170)
        self._hist_curve = pg.PlotDataItem(
            stepMode="center", fillLevel=0, pen=CURVE_COLOR, brush=brush
        )
        self._hist_plot.addItem(self._hist_curve)
        self._hist_caption = QLabel()
        self._hist_caption.setWordWrap(True)
        self._hist_caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._hist_box = QWidget()
        box = QVBoxLayout(self._hist_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self._hist_plot, 1)
        box.addWidget(self._hist_caption)
        return self._hist_box

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
        self._hist_plot.setVisible(counts.size > 0)  # no empty axes for nothing to show
        if counts.size == 0:
            self._hist_caption.setText("No finite values" + suffix)
            return
        self._hist_curve.setData(edges, counts)
        self._hist_plot.getPlotItem().enableAutoRange()
        n = int(counts.sum())
        bins = f"{counts.size} bin" + ("s" if counts.size > 1 else "")
        self._hist_caption.setText(f"{n:,} finite values in {bins}" + suffix)

    def histogram_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(counts, edges) as plotted, or None while none is shown."""
        if self._hist_curve.yData is None or len(self._hist_curve.yData) == 0:
            return None
        return self._hist_curve.yData, self._hist_curve.xData

    def is_pending(self) -> bool:
        """True while the histogram is being computed off the GUI thread."""
        return self._pending
