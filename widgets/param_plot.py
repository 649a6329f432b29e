"""Per-parameter curves over steps, beside the loss: each parameter's gradient
norm, or the size of its updates against its weights, on a log scale.

``ParamPlot.set_series(metric, {name: (steps, values)})`` replaces the curves of
one metric; the chooser picks which metric is drawn. ``set_cursor_step`` draws
the time-travel cursor, as the loss plot does.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from widgets.data import CURSOR_COLOR, PLOT_BACKGROUND, PLOT_FOREGROUND
from widgets.empty_state import empty_stack
from widgets.heatmap import style_plot

EMPTY_TEXT = "No parameters yet: run a program to see each one's gradient norm and updates"
PALETTE = ["#1c7ed6", "#e8590c", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285", "#5c940d", "#d6336c"]


class ParamPlot(QWidget):
    """One curve per parameter for the chosen metric; a step cursor."""

    sig_metric_changed = Signal(str)
    """The user chose another metric (its name)."""

    def __init__(self, metrics: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._series: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._metric = QComboBox()
        self._metric.addItems(list(metrics))
        self._metric.currentTextChanged.connect(self._on_metric_changed)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(QLabel("Show"))
        bar.addWidget(self._metric)
        bar.addStretch(1)
        widget = pg.PlotWidget(background=PLOT_BACKGROUND)
        self._plot = widget.getPlotItem()
        style_plot(self._plot)
        self._plot.setLogMode(y=True)
        self._plot.setLabel("bottom", "step")
        self._plot.showGrid(x=True, y=True, alpha=0.15)
        self._legend = self._plot.addLegend(
            offset=(-10, 10), labelTextSize="7pt", labelTextColor=PLOT_FOREGROUND
        )
        self._cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(CURSOR_COLOR, width=2))
        self._cursor.setVisible(False)
        self._plot.addItem(self._cursor, ignoreBounds=True)
        self._stack, self._empty = empty_stack(EMPTY_TEXT, widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self._stack, 1)

    def metric(self) -> str:
        return self._metric.currentText()

    def set_series(self, metric: str, series: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Replace the curves of ``metric`` (drawn when it is the one chosen)."""
        self._series[metric] = series
        if metric == self.metric():
            self._update_curves()

    def curve_names(self) -> list[str]:
        return list(self._curves)

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        item = self._curves[name]
        return item.xData, item.yData

    def clear(self) -> None:
        self._series.clear()
        self._update_curves()

    def set_cursor_step(self, step: int | None) -> None:
        self._cursor.setVisible(step is not None)
        if step is not None:
            self._cursor.setValue(step)

    def _on_metric_changed(self, metric: str) -> None:
        self._update_curves()
        self.sig_metric_changed.emit(metric)

    def _update_curves(self) -> None:
        series = self._series.get(self.metric(), {})
        for name in [n for n in self._curves if n not in series]:
            self._plot.removeItem(self._curves.pop(name))
            self._legend.removeItem(name)
        for k, (name, (steps, values)) in enumerate(sorted(series.items())):
            y = np.where(values > 0, values, np.nan)  # a log scale draws no zeros
            curve = self._curves.get(name)
            if curve is None:
                pen = pg.mkPen(PALETTE[k % len(PALETTE)], width=1.5)
                curve = self._curves[name] = self._plot.plot(name=name, pen=pen)
            curve.setData(steps, y, connect="finite")
        self._stack.setCurrentIndex(1 if series else 0)
