"""The profile view: runs of a program side by side, eager and compiled, on the
CPU and the GPU. It shows what ``core.debug.profile`` measured and never runs
anything itself: the app profiles in a worker and hands the runs over.

- the matrix: one row per run (time per step with its spread, ops or kernels
  per step, peak memory); a run that could not happen (no GPU) says why;
- the top ops of two chosen runs as bars, side by side (time per step);
- the timeline of one profiled step of the first chosen run;
- progress and Cancel while a profile runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.debug.profile import RunProfile
from widgets.data import CURVE_COLOR, MUTED_COLOR, PLOT_BACKGROUND, WARNING_COLOR
from widgets.empty_state import empty_stack
from widgets.tensor_panel import style_plot

EMPTY_TEXT = "No profile yet: Profile runs the program eager and compiled, on CPU and GPU"
COLUMNS = ("run", "ms / step", "p10 – p90", "ops / kernels", "peak host", "peak GPU")
PHASE_COLORS = {"forward": "#1c7ed6", "backward": "#e8590c", "update": "#2b8a3e"}
SECOND_COLOR = "#f08c00"
TOP = 8  # bars per run in the top-ops chart (the second run adds up to half as many)


def run_label(run: RunProfile) -> str:
    return f"{run.mode} on {run.device}"


def _kib(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:,.0f} KiB" if n < 2**20 else f"{n / 2**20:,.1f} MiB"


class ProfileView(QWidget):
    """See the module docstring."""

    sig_cancel = Signal()
    """Emitted when the user asks to cancel the profile that is running."""

    def __init__(self, runs: Sequence[RunProfile] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runs: list[RunProfile] = []
        self._title = QLabel()
        self._title.setStyleSheet("font-weight: 600;")
        self._progress = QProgressBar()
        self._progress.setTextVisible(True)
        self._cancel = QPushButton("Cancel")
        self._cancel.clicked.connect(self.sig_cancel.emit)
        busy = QHBoxLayout()
        busy.addWidget(self._progress, 1)
        busy.addWidget(self._cancel)
        self._busy = QWidget()
        self._busy.setLayout(busy)
        self._busy.setVisible(False)

        self._matrix = QTableWidget(0, len(COLUMNS))
        self._matrix.setHorizontalHeaderLabels(COLUMNS)
        self._matrix.verticalHeader().setVisible(False)
        self._matrix.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self._matrix.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        header = self._matrix.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        rows = 4  # eager and compiled, on the CPU and the GPU
        self._matrix.setMinimumHeight(
            self._matrix.horizontalHeader().sizeHint().height()
            + rows * self._matrix.verticalHeader().defaultSectionSize()
            + 4
        )

        self._first, self._second = QComboBox(), QComboBox()
        for box in (self._first, self._second):
            box.currentIndexChanged.connect(self._update_charts)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("Top ops of"))
        pick.addWidget(self._first, 1)
        pick.addWidget(QLabel("against"))
        pick.addWidget(self._second, 1)

        self._bars = pg.PlotWidget(background=PLOT_BACKGROUND)
        self._bars.setLabel("bottom", "ms per step")
        self._bars.getPlotItem().invertY(True)
        self._legend = self._bars.getPlotItem().addLegend(offset=(-10, -10))
        self._timeline = pg.PlotWidget(background=PLOT_BACKGROUND)
        self._timeline.setLabel("bottom", "ms into the step")
        lanes = self._timeline.getPlotItem().getAxis("left")
        lanes.setTicks([[(0, "forward"), (1, "backward"), (2, "update")]])
        lanes.setWidth(70)
        for plot in (self._bars.getPlotItem(), self._timeline.getPlotItem()):
            style_plot(plot)
            for name in ("left", "bottom"):
                plot.getAxis(name).enableAutoSIPrefix(False)  # times stay in ms
        charts = QSplitter(Qt.Orientation.Vertical)
        charts.addWidget(self._bars)
        charts.addWidget(self._timeline)
        charts.setSizes([300, 120])
        self._bars.setMinimumHeight(170)
        self._timeline.setMinimumHeight(90)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._matrix, 2)
        layout.addLayout(pick)
        layout.addWidget(charts, 5)
        self._stack, self._empty = empty_stack(EMPTY_TEXT, body)
        outer = QVBoxLayout(self)
        outer.addWidget(self._title)
        outer.addWidget(self._busy)
        outer.addWidget(self._stack, 1)
        self.set_runs(runs)

    # -- data in ---------------------------------------------------------------------------

    def set_runs(self, runs: Sequence[RunProfile]) -> None:
        """Show these runs (the matrix, the charts); an empty list shows the empty state."""
        self._runs = list(runs)
        self._stack.setCurrentIndex(1 if self._runs else 0)
        self._title.setText(self._runs[0].title if self._runs else "Profile")
        self._update_matrix()
        usable = [i for i, r in enumerate(self._runs) if not r.unavailable]
        for box, pick in ((self._first, 0), (self._second, 1)):
            box.blockSignals(True)
            box.clear()
            for i in usable:
                box.addItem(run_label(self._runs[i]), i)
            box.setCurrentIndex(min(pick, box.count() - 1))
            box.blockSignals(False)
        self._update_charts()

    def set_progress(self, done: int, total: int, label: str) -> None:
        """A profile is running: show how far it got (``done == total`` hides it)."""
        running = done < total
        self._busy.setVisible(running)
        self._progress.setRange(0, max(total, 1))
        self._progress.setValue(done)
        self._progress.setFormat(f"{label}  %p%")

    # -- drawing ---------------------------------------------------------------------------

    def _update_matrix(self) -> None:
        self._matrix.clearSpans()
        self._matrix.setRowCount(len(self._runs))
        for row, run in enumerate(self._runs):
            if run.unavailable:
                cells = [run_label(run), "unavailable", run.unavailable, "", "", ""]
            else:
                spread = f"{run.step_ms.p10:.3g} – {run.step_ms.p90:.3g}"
                cells = [
                    run_label(run),
                    f"{run.step_ms.median:.3g}",
                    spread,
                    str(run.count),
                    _kib(run.peak_host_bytes),
                    _kib(run.peak_device_bytes),
                ]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if run.unavailable:
                    item.setForeground(QColor(WARNING_COLOR if col == 1 else MUTED_COLOR))
                    item.setToolTip(run.unavailable)
                self._matrix.setItem(row, col, item)
            if run.unavailable:  # the reason across the columns it leaves empty
                self._matrix.setSpan(row, 2, 1, len(COLUMNS) - 2)

    def _chosen(self, box: QComboBox) -> RunProfile | None:
        index = box.currentData()
        return self._runs[index] if index is not None else None

    def _update_charts(self) -> None:
        self._bars.clear()
        self._legend.clear()
        self._timeline.clear()
        first, second = self._chosen(self._first), self._chosen(self._second)
        if first is None:
            return
        names = [r.name for r in first.ops[:TOP]]
        if second is not None and second is not first:
            names += [r.name for r in second.ops[:TOP] if r.name not in names][: TOP // 2]
        runs = [first] if second is None or second is first else [first, second]
        for k, (run, color) in enumerate(zip(runs, (CURVE_COLOR, SECOND_COLOR), strict=False)):
            times = {r.name: r.self_ms.median for r in run.ops}
            ys = [i + (0.2 if k else -0.2) * (len(runs) > 1) for i in range(len(names))]
            bars = pg.BarGraphItem(
                x0=0,
                y=ys,
                height=0.38 if len(runs) > 1 else 0.7,
                width=[times.get(n, 0.0) for n in names],
                brush=color,
                name=run_label(run),
            )
            self._bars.addItem(bars)
        axis = self._bars.getPlotItem().getAxis("left")
        axis.setTicks([list(enumerate(names))])
        axis.setWidth(min(260, 8 + 7 * max((len(n) for n in names), default=4)))
        self._bars.getPlotItem().setYRange(-0.7, len(names) - 0.3, padding=0)
        self._draw_timeline(first)

    def _draw_timeline(self, run: RunProfile) -> None:
        lanes = {"forward": 0, "backward": 1, "update": 2}
        for phase, lane in lanes.items():
            ops = [op for op in run.timeline if op["phase"] == phase]
            if not ops:
                continue
            bars = pg.BarGraphItem(
                x0=[op["start_ms"] for op in ops],
                y=[lane] * len(ops),
                width=[max(op["ms"], 1e-4) for op in ops],
                height=0.8,
                brush=PHASE_COLORS[phase],
            )
            self._timeline.addItem(bars)
        self._timeline.getPlotItem().setYRange(-0.6, 2.6)
