"""The loss per training step, with a cursor at the step being inspected.

``append`` is cheap: points go into a buffer and one timer redraws the curve at
most every ``REDRAW_MS``, or every ``LIVE_REDRAW_MS`` while a run goes on
(``set_live``): each redraw of a pyqtgraph plot makes a few hundred calls from Qt
into Python (bounding rectangles, axis ticks), and beside a running model each
such call waits for the run's thread to hand over the GIL (about 30 ms a redraw).
NaN and Inf losses break the curve and show as warning markers pinned to the top
of the view, in linear and log scale alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from widgets.data import (
    CURSOR_COLOR,
    CURVE_COLOR,
    MUTED_COLOR,
    PLOT_BACKGROUND,
    WARNING_COLOR,
    format_number,
)
from widgets.empty_state import empty_stack
from widgets.tensor_panel import style_plot

REDRAW_MS = 50  # appended points reach the screen within this time
LIVE_REDRAW_MS = 400  # ... while a run goes on
EMPTY_TEXT = "No losses yet: run a program to see its loss per step"


class LossPlot(QWidget):
    """Loss against step; NaN/Inf steps marked at the top; a vertical step cursor."""

    sig_step_clicked = Signal(int)
    """Emitted with the step nearest to where the user clicked in the plot."""

    def __init__(
        self,
        steps: Sequence[int] = (),
        losses: Sequence[float] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._steps = np.zeros(0, dtype=np.int64)
        self._losses = np.zeros(0, dtype=np.float64)
        self._pending: list[tuple[int, float]] = []
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self._on_redraw)

        self._log = QCheckBox("Log scale")
        self._log.toggled.connect(self._on_log_toggled)
        self._readout = QLabel()
        self._readout.setStyleSheet(f"color: {MUTED_COLOR};")
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self._readout, 1)
        bar.addWidget(self._log)

        self._plot_widget = pg.PlotWidget(background=PLOT_BACKGROUND)
        self._plot = self._plot_widget.getPlotItem()
        style_plot(self._plot)
        self._plot.setLabel("bottom", "step")
        self._plot.setLabel("left", "loss")
        self._plot.showGrid(x=True, y=True, alpha=0.15)
        self._plot.setClipToView(True)
        self._plot.setDownsampling(auto=True, mode="peak")
        self._curve = pg.PlotDataItem(pen=pg.mkPen(CURVE_COLOR, width=2))
        self._plot.addItem(self._curve)
        self._bad = pg.ScatterPlotItem(
            symbol="t", size=11, pen=pg.mkPen(WARNING_COLOR), brush=WARNING_COLOR
        )
        self._bad.setZValue(2)
        self._plot.addItem(self._bad, ignoreBounds=True)
        self._cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(CURSOR_COLOR, width=2))
        self._cursor.setVisible(False)
        self._plot.addItem(self._cursor, ignoreBounds=True)
        self._plot.getViewBox().sigYRangeChanged.connect(self._update_markers)
        self._plot_widget.scene().sigMouseClicked.connect(self._on_clicked)

        self._stack, self._empty = empty_stack(EMPTY_TEXT, self._plot_widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self._stack, 1)
        self.set_losses(steps, losses)

    # -- public -------------------------------------------------------------------

    def set_losses(self, steps: Sequence[int], losses: Sequence[float]) -> None:
        """Replace all points (redrawn at once)."""
        if len(steps) != len(losses):
            raise ValueError(f"{len(steps)} steps but {len(losses)} losses")
        self._pending.clear()
        self._redraw.stop()
        self._steps = np.asarray(steps, dtype=np.int64).ravel()
        self._losses = np.asarray(losses, dtype=np.float64).ravel()
        self._update_curve()

    def append(self, step: int, loss: float) -> None:
        """Add one point; the curve is redrawn within ``REDRAW_MS``."""
        self._pending.append((int(step), float(loss)))
        if not self._redraw.isActive():
            self._redraw.start()

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, losses) held, appended points included."""
        self._flush()
        return self._steps.copy(), self._losses.copy()

    def curve_data(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, losses) as the curve draws them: non-finite losses are NaN (gaps)."""
        return self._curve.xData, self._curve.yData

    def bad_steps(self) -> np.ndarray:
        """Steps drawn as NaN/Inf markers."""
        return np.asarray(self._bad.data["x"], dtype=np.int64)

    def set_log_y(self, on: bool) -> None:
        """Log-scale y axis (losses <= 0 are then not drawn)."""
        self._log.setChecked(on)

    def log_y(self) -> bool:
        return self._log.isChecked()

    def set_cursor_step(self, step: int | None) -> None:
        """Draw the vertical cursor at ``step``; None hides it."""
        self._cursor.setVisible(step is not None)
        if step is not None:
            self._cursor.setValue(step)
        self._update_readout(step)

    def cursor_step(self) -> int | None:
        return int(self._cursor.value()) if self._cursor.isVisible() else None

    def set_live(self, on: bool) -> None:
        """A run goes on: redraw at most every LIVE_REDRAW_MS (else REDRAW_MS)."""
        self._redraw.setInterval(LIVE_REDRAW_MS if on else REDRAW_MS)
        if not on and self._redraw.isActive():
            self._redraw.start()  # what is pending shows within REDRAW_MS

    def is_empty(self) -> bool:
        return self._stack.currentIndex() == 0

    # -- updates ------------------------------------------------------------------

    def _flush(self) -> None:
        if not self._pending:
            return
        steps, losses = zip(*self._pending, strict=True)
        self._pending.clear()
        self._steps = np.concatenate([self._steps, np.asarray(steps, dtype=np.int64)])
        self._losses = np.concatenate([self._losses, np.asarray(losses, dtype=np.float64)])

    def _update_curve(self) -> None:
        finite = np.isfinite(self._losses)
        y = np.where(finite, self._losses, np.nan)
        if self._log.isChecked():
            y = np.where(y > 0, y, np.nan)
        self._curve.setData(self._steps, y, connect="finite")
        self._bad.setData(x=self._steps[~finite], y=np.zeros(int((~finite).sum())))
        self._stack.setCurrentIndex(1 if self._steps.size else 0)
        self._update_markers()
        self._update_readout(self.cursor_step())

    def _update_markers(self, *_args) -> None:
        if not len(self._bad.data):
            return
        bottom, top = self._plot.getViewBox().viewRange()[1]
        y = top - 0.04 * (top - bottom)  # just inside the top edge, whole marker visible
        self._bad.setData(x=self._bad.data["x"], y=np.full(len(self._bad.data), y))

    def _update_readout(self, step: int | None) -> None:
        n_bad = int((~np.isfinite(self._losses)).sum())
        text = f"{self._steps.size} steps"
        if step is not None:
            hits = np.flatnonzero(self._steps == step)
            loss = format_number(self._losses[hits[-1]]) if hits.size else "—"
            text = f"step {step}: loss {loss}  ·  {text}"
        if n_bad:
            text += f'  ·  <span style="color:{WARNING_COLOR}">▼ {n_bad} NaN/Inf</span>'
        self._readout.setText(text if self._steps.size else "")

    # -- events -------------------------------------------------------------------

    def _on_redraw(self) -> None:
        self._flush()
        if not self.visibleRegion().isEmpty():  # a hidden plot redraws when it is shown
            self._update_curve()
        else:
            self._stale = True

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.refresh()

    def refresh(self) -> None:
        """Draw what was appended while the plot was hidden (a dock behind another
        tab gets no show event when its tab is chosen: the app calls this)."""
        if getattr(self, "_stale", False):
            self._stale = False
            self._flush()
            self._update_curve()

    def _on_log_toggled(self, on: bool) -> None:
        self._plot.setLogMode(y=on)
        self._update_curve()
        self._plot.enableAutoRange()

    def _on_clicked(self, event) -> None:
        if self._steps.size == 0 or event.button() != Qt.MouseButton.LeftButton:
            return
        view = self._plot.getViewBox()
        if not view.sceneBoundingRect().contains(event.scenePos()):
            return
        x = view.mapSceneToView(event.scenePos()).x()
        nearest = int(self._steps[np.argmin(np.abs(self._steps - x))])
        self.sig_step_clicked.emit(nearest)
