"""The main window: panels declared by name, actions from one table, the wiring.

What the window does is split by responsibility: this module builds the window
and its docks and wires them; ``app.run_control`` starts, steps and stops runs;
``app.cursor`` shows the state at the time-travel cursor and the selected node;
``app.files`` opens, saves and exports. The window owns no computation: the
Session runs in its worker thread, the bridge drains its events on a timer,
relayouts and recording files load in the thread pool, and every panel gets
plain data.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QByteArray, QFileSystemWatcher, QSettings, Qt, QTimer
from PySide6.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app import actions as A
from app.bridge import SessionBridge
from app.compiled import CompiledMixin
from app.cursor import CursorMixin
from app.files import FilesMixin
from app.help import FIRST_STEPS, shortcut_sheet, show_page
from app.jobs import Jobs
from app.param_series import METRICS, ParamSeries
from app.retire import Retirer
from app.run_control import PARAMS_BACKLOG_MS, RunControlMixin
from core.debug import program as programs
from core.debug.recording import Recording
from widgets.breakpoints import BreakpointsPanel
from widgets.event_log import EventLog
from widgets.graph_view import GraphView
from widgets.inspector import Inspector
from widgets.kernel_code import KernelCode
from widgets.loss_plot import LossPlot
from widgets.param_plot import ParamPlot
from widgets.program_note import ProgramNote
from widgets.samples import SamplesBrowser, scan_samples
from widgets.scope_stack import ScopeStack
from widgets.source_view import SourceView

SAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples")


@dataclass(frozen=True)
class Panel:
    name: str  # object name, also the QSettings key of its dock
    title: str
    area: Qt.DockWidgetArea
    attr: str  # the MainWindow attribute holding the widget


PANELS = (
    Panel("samples", "Samples", Qt.DockWidgetArea.LeftDockWidgetArea, "samples"),
    Panel("source", "Source", Qt.DockWidgetArea.LeftDockWidgetArea, "source"),
    Panel("code", "Compiled Code", Qt.DockWidgetArea.LeftDockWidgetArea, "code_view"),
    Panel("inspector", "Inspector", Qt.DockWidgetArea.RightDockWidgetArea, "inspector"),
    Panel("scopes", "Scope Stack", Qt.DockWidgetArea.RightDockWidgetArea, "scopes"),
    Panel("breakpoints", "Breakpoints", Qt.DockWidgetArea.RightDockWidgetArea, "breakpoints"),
    Panel("events", "Event Log", Qt.DockWidgetArea.BottomDockWidgetArea, "event_log"),
    Panel("loss", "Loss", Qt.DockWidgetArea.BottomDockWidgetArea, "loss"),
    Panel("params", "Parameters", Qt.DockWidgetArea.BottomDockWidgetArea, "params"),
    Panel("problems", "Problems", Qt.DockWidgetArea.BottomDockWidgetArea, "problems"),
    Panel("profile", "Profile", Qt.DockWidgetArea.BottomDockWidgetArea, "profile_view"),
    Panel("compare", "Compare", Qt.DockWidgetArea.BottomDockWidgetArea, "compare_view"),
)

STAGE_TEXT = {  # what the worker does before the first step
    "loading": "Loading {}: running its top-level code…",
    "building": "Building {}: running its build()…",
}
ON_DEMAND = ("profile", "compare")  # panels hidden until used


class MainWindow(RunControlMixin, CursorMixin, FilesMixin, CompiledMixin, QMainWindow):
    """Gradstep's window: graph in the middle, panels around it."""

    def __init__(self, settings: QSettings | None = None, samples_dir: str = SAMPLES_DIR) -> None:
        super().__init__()
        self.settings = settings or QSettings("Gradstep", "Gradstep")
        self.samples_dir = samples_dir
        self.setWindowTitle("Gradstep")
        self.setAcceptDrops(True)
        self.resize(1400, 860)
        self.program: programs.Program | None = None
        self.recording: Recording | None = None
        self.bridge = SessionBridge(self)
        self.reason = ""
        self.jobs = Jobs()
        self.retirer = Retirer(self)  # frees a replaced run's recording bit by bit
        self._load_token = 0
        self._log_refreshed = 0.0
        self._stepping = False  # the run moves because of a step key, not F5
        self._losses_shown = 0  # losses of the recording given to the loss plot
        self._queued_steps: list[Callable[[], None]] = []  # step keys pressed meanwhile
        self._graph_fed = 0  # events the live graph was given
        self._graph_due = 0  # events that arrived for it
        self._graph_fed_at = 0.0  # perf_counter() of the last feeding
        self._graph_drawn_at = 0.0  # ... and of the last drawing
        self._params_timer = QTimer(self)  # reads the rest of a backlog of updates
        self._params_timer.setSingleShot(True)
        self._params_timer.setInterval(PARAMS_BACKLOG_MS)
        self._params_drawn = 0.0  # monotonic() of the last drawing of the curves
        self._feed_timer = QTimer(self)
        self._feed_timer.setSingleShot(True)
        self._feed_timer.timeout.connect(self._feed_graph)
        self._arranged = False
        self._build_widgets()
        self._build_actions()
        self._build_status()
        self._wire()
        self._restore_settings()
        self._update_controls()

    # -- construction ---------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.graph = GraphView()
        self.graph.leaf_lookup = self._leaf_lookup
        self.search = QLineEdit()
        self.search.setPlaceholderText("Find a node by name (Enter: next match)")
        self.search.setClearButtonEnabled(True)
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setStyleSheet(
            "QLabel { background: #fff0f0; color: #a61e1e; border: 1px solid #f0b4b4;"
            " padding: 6px; }"
        )
        self.banner.hide()
        central = QWidget()
        box = QVBoxLayout(central)
        box.setContentsMargins(4, 4, 4, 4)
        box.addWidget(self.banner)
        self.about = ProgramNote()
        box.addWidget(self.about)
        self.changed_note = QLabel()
        self.changed_note.setStyleSheet(
            "QLabel { background: #fff8e1; border: 1px solid #f0d58c; padding: 4px; }"
        )
        self.changed_note.hide()
        box.addWidget(self.changed_note)
        self.watcher = QFileSystemWatcher(self)
        box.addWidget(self.search)
        box.addWidget(self.graph, 1)
        self.setCentralWidget(central)

        self.samples = SamplesBrowser(scan_samples(self.samples_dir), folder=self.samples_dir)
        self.source = SourceView()
        self.code_view = KernelCode()
        self._build_analysis()
        self.inspector = Inspector()
        self.scopes = ScopeStack()
        self.breakpoints = BreakpointsPanel()
        self.event_log = EventLog([])
        self.loss = LossPlot()
        self.params = ParamPlot(METRICS)
        self.param_series = ParamSeries()
        self.problems = QPlainTextEdit()
        self.problems.setReadOnly(True)
        self.problems.setPlaceholderText(
            "No problems. Errors from loading or running a program show here."
        )
        self.docks: dict[str, QDockWidget] = {}
        for panel in PANELS:
            dock = QDockWidget(panel.title, self)
            dock.setObjectName(panel.name)
            dock.setWidget(getattr(self, panel.attr))
            self.addDockWidget(panel.area, dock)
            self.docks[panel.name] = dock
        for name in ON_DEMAND:  # shown by Analyze (or View); hidden, they widen nothing
            self.docks[name].hide()

    def _arrange_docks(self) -> None:
        """Default places for the panels (a saved window state replaces them)."""
        d = self.docks
        self.tabifyDockWidget(d["samples"], d["source"])
        self.tabifyDockWidget(d["samples"], d["code"])
        # the inspector has the right side's height to itself: its plots need it
        self.tabifyDockWidget(d["inspector"], d["scopes"])
        self.tabifyDockWidget(d["inspector"], d["breakpoints"])
        self.tabifyDockWidget(d["events"], d["loss"])
        self.tabifyDockWidget(d["events"], d["params"])
        self.tabifyDockWidget(d["events"], d["problems"])
        self.tabifyDockWidget(d["events"], d["profile"])
        self.tabifyDockWidget(d["events"], d["compare"])
        for name in ("events", "samples", "inspector"):  # the samples first: what to open
            d[name].raise_()
        self.resizeDocks([d["source"], d["inspector"]], [230, 410], Qt.Orientation.Horizontal)
        self.resizeDocks([d["events"]], [200], Qt.Orientation.Vertical)

    def on_screen(self, name: str) -> bool:
        """Whether panel ``name`` can be seen (a dock behind another tab says it is
        visible, but shows nothing)."""
        return not self.docks[name].visibleRegion().isEmpty()

    def reset_layout(self) -> None:
        """Every panel back in its default place and size (View > Reset Layout)."""
        for panel in PANELS:
            dock = self.docks[panel.name]
            dock.setFloating(False)
            self.addDockWidget(panel.area, dock)
            dock.show()
        self._arrange_docks()
        for name in ON_DEMAND:
            self.docks[name].hide()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._arranged:
            # Tabifying before the first show leaves stale, visible tab bars behind
            # (seen offscreen with Qt 6.11); arranging once shown does not.
            self._arranged = True
            if not self._state_restored:
                self._arrange_docks()

    def _build_actions(self) -> None:
        handlers = {
            A.RUN: self.run_or_continue,
            A.PAUSE: self.bridge.pause,
            A.STEP_OVER: self.step_over,
            A.STEP_INTO: self.step_into,
            A.STEP_OUT: self.step_out,
            A.STEP_BACK: self.step_back,
            A.STOP: self.stop,
            A.RESTART: self.restart,
            A.OPEN: self.open_dialog,
            A.SAVE: self.save_dialog,
            A.FIT: self.graph.fit,
            A.FIND: self._focus_search,
            A.TIDY: self.graph.relayout,
            A.EXPORT_PNG: lambda: self._export("png"),
            A.EXPORT_SVG: lambda: self._export("svg"),
            A.QUIT: self.close,
            A.RESET_LAYOUT: self.reset_layout,
            A.HELP_KEYS: lambda: show_page(self, "Keyboard", shortcut_sheet()),
            A.HELP_FIRST_STEPS: lambda: show_page(self, "First steps", FIRST_STEPS),
            A.PROFILE: self.profile_program,
            A.COMPARE: self.compare_program,
        }
        self.actions_by_id = A.make_actions(self, handlers)
        for action in self.actions_by_id.values():
            self.addAction(action)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for action_id in (A.OPEN, A.SAVE):
            file_menu.addAction(self.actions_by_id[action_id])
        self.recent_menu = QMenu("Open &Recent", self)
        file_menu.addMenu(self.recent_menu)
        file_menu.addSeparator()
        for action_id in (A.EXPORT_PNG, A.EXPORT_SVG):
            file_menu.addAction(self.actions_by_id[action_id])
        file_menu.addSeparator()
        file_menu.addAction(self.actions_by_id[A.QUIT])
        debug_menu = menu.addMenu("&Debug")
        for action_id in A.RUN_CONTROLS:
            debug_menu.addAction(self.actions_by_id[action_id])
        view_menu = menu.addMenu("&View")
        for action_id in (A.FIT, A.FIND, A.TIDY):
            view_menu.addAction(self.actions_by_id[action_id])
        for text, flag in (("Legend", "show_legend"), ("Overview", "show_overview")):
            toggle = view_menu.addAction(text)
            toggle.setCheckable(True)
            toggle.setChecked(True)
            toggle.toggled.connect(lambda on, f=flag: self.graph.show_overlay(f, on))
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(self.actions_by_id[A.RESET_LAYOUT])
        analyze_menu = menu.addMenu("&Analyze")
        for action_id in (A.PROFILE, A.COMPARE):
            analyze_menu.addAction(self.actions_by_id[action_id])
        help_menu = menu.addMenu("&Help")
        for action_id in (A.HELP_FIRST_STEPS, A.HELP_KEYS):
            help_menu.addAction(self.actions_by_id[action_id])

        toolbar = QToolBar("Run controls", self)
        toolbar.setObjectName("run_controls")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action_id in A.RUN_CONTROLS:
            toolbar.addAction(self.actions_by_id[action_id])
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Device "))
        self.device = A.device_choice()
        toolbar.addWidget(self.device)
        toolbar.addWidget(QLabel(" Mode "))
        self.mode = A.mode_choice()
        toolbar.addWidget(self.mode)
        toolbar.addWidget(QLabel(" Steps "))
        self.steps = A.steps_choice()
        self.steps.valueChanged.connect(self.steps_changed)
        toolbar.addWidget(self.steps)
        self.addToolBar(toolbar)

    def _build_status(self) -> None:
        self.status_phase = QLabel("idle")
        self.status_step = QLabel("step –")
        self.status_cursor = QLabel("event –")
        self.status_reason = QLabel("")
        self.layout_progress = QProgressBar()
        self.layout_progress.setMaximumWidth(140)
        self.layout_progress.setRange(0, 100)
        self.layout_cancel = QPushButton("Cancel")
        self.layout_cancel.setFlat(True)
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Layout"))
        row.addWidget(self.layout_progress)
        row.addWidget(self.layout_cancel)
        self.layout_busy = holder
        holder.hide()
        bar = self.statusBar()
        bar.addWidget(self.status_phase)
        bar.addWidget(self.status_step)
        bar.addWidget(self.status_cursor)
        bar.addWidget(self.status_reason, 1)
        bar.addPermanentWidget(holder)

    def _wire(self) -> None:
        self.watcher.fileChanged.connect(self._on_file_changed)
        self.changed_note.linkActivated.connect(lambda _link: self.restart())
        self.graph.sig_go_to_source.connect(self._on_go_to_source)
        b = self.bridge
        b.sig_events.connect(self._on_events)
        b.sig_started.connect(lambda: self._on_state("running", ""))
        b.sig_resumed.connect(lambda: self._on_state("running", ""))
        b.sig_paused.connect(lambda reason: self._on_state("paused", reason))
        b.sig_finished.connect(lambda: self._on_state("finished", "the run finished"))
        b.sig_aborted.connect(lambda: self._on_state("stopped", "stopped"))
        b.sig_errored.connect(self._on_run_error)
        b.sig_note.connect(self._on_run_note)
        b.sig_stage.connect(self._on_run_stage)
        self.graph.sig_node_selected.connect(self._on_node_selected)
        self.graph.sig_breakpoint_requested.connect(self._on_breakpoint_requested)
        self.graph.sig_check_gradient.connect(self._on_check_gradient_node)
        self.graph.sig_layout_progress.connect(self._on_layout_progress)
        self.layout_cancel.clicked.connect(self._cancel_long_work)
        self.inspector.sig_check_gradient.connect(self._on_check_gradient)
        self.event_log.sig_event_selected.connect(self.seek)
        self.source.sig_line_clicked.connect(self._on_line_clicked)
        self.scopes.sig_scope_clicked.connect(self._on_scope_clicked)
        self.breakpoints.sig_breakpoints_changed.connect(self._on_breakpoints_changed)
        self.samples.sig_open.connect(self.open_path)
        self.mode.currentIndexChanged.connect(self._on_mode_changed)
        self.loss.sig_step_clicked.connect(self._on_step_clicked)
        self.search.returnPressed.connect(lambda: self._find(self.search.text()))
        self.docks["loss"].visibilityChanged.connect(
            lambda visible: visible and self.loss.refresh()
        )
        self.docks["params"].visibilityChanged.connect(
            lambda visible: visible and self._update_params(force=True)
        )
        self._params_timer.timeout.connect(self._update_params)
        self.docks["events"].visibilityChanged.connect(
            lambda visible: visible and self._refresh_log(force=True)
        )

    # -- settings -----------------------------------------------------------------------

    def _restore_settings(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        self._state_restored = isinstance(state, QByteArray) and self.restoreState(state)
        self._update_recent_menu()

    def closeEvent(self, event) -> None:
        self.bridge.shutdown()
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        super().closeEvent(event)

    def show_problem(self, title: str, detail: str) -> None:
        """Show an error in the banner and the Problems panel; nothing else changes."""
        self.banner.setText(
            f"<b>{title}</b><br>{detail.strip().splitlines()[-1] if detail else ''}"
        )
        self.banner.show()
        self.problems.appendPlainText(f"{title}\n{detail.strip()}\n")
        self.docks["problems"].raise_()
        self.status_reason.setText(title)

    def _on_run_note(self, text: str) -> None:
        """Something to know while the run goes on (the memory cap, a program that
        does not respond to Stop): the status bar, and kept in Problems."""
        self.problems.appendPlainText(f"Note: {text}\n")
        self.reason = text
        self.status_reason.setText(text)

    def _on_run_stage(self, stage: str) -> None:
        if stage in STAGE_TEXT and self.program is not None:
            self.status_reason.setText(
                STAGE_TEXT[stage].format(os.path.basename(self.program.path))
            )

    def clear_problem(self) -> None:
        self.banner.hide()
