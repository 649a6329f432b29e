"""The main window: panels declared by name, actions from one table, the wiring.

The window owns no computation: the Session runs in its worker thread, the
bridge drains its events on a timer, relayouts and recording files load in the
thread pool, and every panel gets plain data.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
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
from app.jobs import Jobs
from app.node_info import (
    CheckError,
    check_node,
    last_op,
    leaf_before,
    node_info,
    node_of,
    phase_of,
    source_of,
)
from core.debug import program as programs
from core.debug import recfile
from core.debug.recording import Recording
from core.debug.session import Breakpoint, Session
from core.observe.events import StepEnded
from widgets.breakpoints import BreakpointsPanel, from_json, to_json
from widgets.event_log import EventLog
from widgets.graph_view import GraphView
from widgets.inspector import Inspector
from widgets.loss_plot import LossPlot
from widgets.samples import SamplesBrowser, scan_samples
from widgets.scope_stack import ScopeStack
from widgets.source_view import SourceView

SAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples")
MAX_RECENT = 10
LOG_REFRESH_S = 1.0  # while running; every pause and step refreshes at once
FILE_FILTER = "Programs and recordings (*.py *.gsrec);;Programs (*.py);;Recordings (*.gsrec)"


@dataclass(frozen=True)
class Panel:
    name: str  # object name, also the QSettings key of its dock
    title: str
    area: Qt.DockWidgetArea
    attr: str  # the MainWindow attribute holding the widget


PANELS = (
    Panel("samples", "Samples", Qt.DockWidgetArea.LeftDockWidgetArea, "samples"),
    Panel("source", "Source", Qt.DockWidgetArea.LeftDockWidgetArea, "source"),
    Panel("inspector", "Inspector", Qt.DockWidgetArea.RightDockWidgetArea, "inspector"),
    Panel("scopes", "Scope Stack", Qt.DockWidgetArea.RightDockWidgetArea, "scopes"),
    Panel("breakpoints", "Breakpoints", Qt.DockWidgetArea.RightDockWidgetArea, "breakpoints"),
    Panel("events", "Event Log", Qt.DockWidgetArea.BottomDockWidgetArea, "event_log"),
    Panel("loss", "Loss", Qt.DockWidgetArea.BottomDockWidgetArea, "loss"),
    Panel("problems", "Problems", Qt.DockWidgetArea.BottomDockWidgetArea, "problems"),
)


class MainWindow(QMainWindow):
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
        self._load_token = 0
        self._log_refreshed = 0.0
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
        box.addWidget(self.search)
        box.addWidget(self.graph, 1)
        self.setCentralWidget(central)

        self.samples = SamplesBrowser(scan_samples(self.samples_dir), folder=self.samples_dir)
        self.source = SourceView()
        self.inspector = Inspector()
        self.scopes = ScopeStack()
        self.breakpoints = BreakpointsPanel()
        self.event_log = EventLog([])
        self.loss = LossPlot()
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

    def _arrange_docks(self) -> None:
        """Default places for the panels (a saved window state replaces them)."""
        d = self.docks
        self.tabifyDockWidget(d["samples"], d["source"])
        self.tabifyDockWidget(d["scopes"], d["breakpoints"])
        self.tabifyDockWidget(d["events"], d["loss"])
        self.tabifyDockWidget(d["events"], d["problems"])
        for name in ("events", "source", "scopes"):
            d[name].raise_()
        self.resizeDocks([d["source"], d["inspector"]], [340, 470], Qt.Orientation.Horizontal)
        self.resizeDocks([d["inspector"], d["scopes"]], [520, 170], Qt.Orientation.Vertical)
        self.resizeDocks([d["events"]], [210], Qt.Orientation.Vertical)

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
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())

        toolbar = QToolBar("Run controls", self)
        toolbar.setObjectName("run_controls")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action_id in A.RUN_CONTROLS:
            toolbar.addAction(self.actions_by_id[action_id])
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Device "))
        self.device = A.device_choice()
        toolbar.addWidget(self.device)
        toolbar.addWidget(QLabel(" Steps "))
        self.steps = A.steps_choice()
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
        b = self.bridge
        b.sig_events.connect(self._on_events)
        b.sig_started.connect(lambda: self._on_state("running", ""))
        b.sig_resumed.connect(lambda: self._on_state("running", ""))
        b.sig_paused.connect(lambda reason: self._on_state("paused", reason))
        b.sig_finished.connect(lambda: self._on_state("finished", "the run finished"))
        b.sig_aborted.connect(lambda: self._on_state("stopped", "stopped"))
        b.sig_errored.connect(self._on_run_error)
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
        self.loss.sig_step_clicked.connect(self._on_step_clicked)
        self.search.returnPressed.connect(lambda: self._find(self.search.text()))
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

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, path: str) -> None:
        recent = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        if path.endswith(".py"):
            self.settings.setValue("last_program", path)
        self._update_recent_menu()

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(recent))

    def _breakpoints_key(self) -> str | None:
        if self.program is None:
            return None
        return "breakpoints/" + self.program.path.replace("/", "|")

    # -- opening ------------------------------------------------------------------------

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open", self.samples_dir, FILE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str, *, run: bool = True) -> bool:
        """Open a program (and run it) or a recording; errors show, nothing is lost."""
        if path.endswith(".gsrec"):
            self.open_recording(path)
            return True
        return self.open_program(path, run=run)

    def open_program(self, path: str, *, run: bool = True) -> bool:
        try:
            program = programs.load(path)
        except programs.ProgramError as exc:
            self.show_problem(f"Could not open {path}", str(exc))
            return False
        self.bridge.shutdown()
        self.program = program
        self.setWindowTitle(f"{program.title} — Gradstep")
        self.source.set_source(program.path, program.source)
        key = self._breakpoints_key()
        self.breakpoints.set_breakpoints(from_json(self.settings.value(key, "[]")))
        self._remember(program.path)
        self.clear_problem()
        if run:
            self.start_run()
        self._update_controls()
        return True

    def open_recording(self, path: str) -> None:
        """Load a recording in the thread pool; the status bar shows progress."""
        self._load_token += 1
        token = self._load_token
        self.status_reason.setText(f"Opening {os.path.basename(path)}…")
        self.layout_busy.show()
        self.layout_progress.setRange(0, 0)  # busy

        def done(result: Any) -> None:
            if token != self._load_token:
                return  # cancelled or superseded
            self.layout_busy.hide()
            self.layout_progress.setRange(0, 100)
            if isinstance(result, Exception):
                self.show_problem(f"Could not open {path}", str(result))
                return
            self.bridge.shutdown()
            self.program = None
            self._show_recording(result, os.path.basename(path))
            self._remember(os.path.abspath(path))

        self._run_job(lambda: recfile.load(path), done)

    def _show_recording(self, rec: Recording, title: str) -> None:
        self.recording = rec
        self.setWindowTitle(f"{title} — Gradstep")
        source_path = rec.meta.get("program")
        if isinstance(source_path, str) and os.path.exists(source_path):
            with open(source_path, encoding="utf-8") as f:
                self.source.set_source(source_path, f.read())
        self.event_log.reset(rec.events)
        self.event_log.extend()
        self.loss.set_losses([s for s, _ in rec.losses], [v for _, v in rec.losses])
        self.graph.clear()
        self.seek(len(rec.events) - 1)
        self.reason = "recording"
        self._on_state("finished", f"recording {title}: {len(rec)} events")

    # -- running ------------------------------------------------------------------------

    def start_run(self, *, paused: bool = False) -> None:
        if self.program is None:
            self.status_reason.setText("Open a program first (Ctrl+O)")
            return
        device = self.device.currentData() or "cpu"
        steps = self.steps.value() or None
        session = Session(
            self.program, device=device, steps=steps, breakpoints=self.breakpoints.breakpoints()
        )
        self.recording = session.recording
        self.graph.clear()
        self.event_log.reset(session.recording.events)
        self.loss.set_losses([], [])
        self.inspector.show_node(None)
        self.clear_problem()
        self.bridge.start(session, paused=paused)
        self._update_controls()

    def _session(self) -> Session | None:
        return self.bridge.session

    def _paused(self) -> bool:
        s = self._session()
        return s is not None and s.state == "paused"

    def run_or_continue(self) -> None:
        rec = self.recording
        if self._paused():
            if rec is not None:
                rec.go_live()
            self.bridge.resume()
        elif self._session() is None or self._session().done:
            self.start_run()

    def _step(self, command: Callable[[], None]) -> None:
        rec = self.recording
        if rec is not None and not rec.live:
            self.seek(rec.position + 1)  # replay the recording forward first
            return
        s = self._session()
        if s is None or s.done:
            if self.program is not None:
                self.start_run(paused=True)
            return
        command()

    def step_over(self) -> None:
        self._step(self.bridge.step_over)

    def step_into(self) -> None:
        self._step(self.bridge.step_into)

    def step_out(self) -> None:
        self._step(self.bridge.step_out)

    def step_back(self) -> None:
        rec = self.recording
        s = self._session()
        if rec is None or not len(rec) or (s is not None and s.state == "running"):
            return
        self.seek(rec.position - 1)

    def stop(self) -> None:
        self.bridge.stop()

    def restart(self) -> None:
        self.bridge.shutdown()
        self.start_run()

    # -- events and states --------------------------------------------------------------------

    def _on_events(self, start: int, stop: int) -> None:
        rec = self.recording
        if rec is None or self._session() is None or rec is not self._session().recording:
            return
        events = rec.events[start:stop]
        if rec.live:
            self.graph.feed(events, start)
        self._refresh_log()
        for event in events:
            if type(event) is StepEnded and event.loss is not None:
                self.loss.append(event.step, event.loss)
        self._update_status()

    def _refresh_log(self, force: bool = False) -> None:
        """New rows for the event log: at most once a second while a run is live,
        and not while its panel is hidden (each repaint costs the GUI thread)."""
        now = time.monotonic()
        if force or (self.event_log.isVisible() and now - self._log_refreshed >= LOG_REFRESH_S):
            self._log_refreshed = now
            self.event_log.extend()

    def _on_state(self, state: str, reason: str) -> None:
        self.reason = reason
        if state in ("paused", "finished", "stopped", "errored"):
            self.bridge.drain()
            self._refresh_log(force=True)
            rec = self.recording
            if rec is not None and len(rec):
                if state == "errored":
                    rec.seek(last_op(rec.events))  # the last computation before the error
                self._show_cursor(select=state in ("paused", "errored"))
                if state != "paused":
                    self.graph.tidy_once()
        self._update_controls()
        self._update_status(state)

    def _on_run_error(self, error: Any) -> None:
        where = f"{error.file}:{error.line}" if error.line else (error.file or "")
        self.show_problem(f"The run failed {('at ' + where) if where else ''}", error.traceback)
        self._on_state("errored", error.message)

    def show_problem(self, title: str, detail: str) -> None:
        """Show an error in the banner and the Problems panel; nothing else changes."""
        self.banner.setText(
            f"<b>{title}</b><br>{detail.strip().splitlines()[-1] if detail else ''}"
        )
        self.banner.show()
        self.problems.appendPlainText(f"{title}\n{detail.strip()}\n")
        self.docks["problems"].raise_()
        self.status_reason.setText(title)

    def clear_problem(self) -> None:
        self.banner.hide()

    def _update_controls(self) -> None:
        s = self._session()
        state = s.state if s is not None else "idle"
        paused = state == "paused"
        running = state == "running"
        have_program = self.program is not None
        enable = {
            A.RUN: have_program and not running,
            A.PAUSE: running,
            A.STEP_OVER: have_program and not running,
            A.STEP_INTO: have_program and not running,
            A.STEP_OUT: have_program and not running,
            A.STEP_BACK: self.recording is not None and not running,
            A.STOP: running or paused,
            A.RESTART: have_program,
            A.SAVE: self.recording is not None and not running,
        }
        for action_id, on in enable.items():
            self.actions_by_id[action_id].setEnabled(bool(on))
        self.device.setEnabled(not running and not paused)

    def _update_status(self, state: str | None = None) -> None:
        rec = self.recording
        s = self._session()
        if state is None:
            state = s.state if s is not None else "idle"
        phase = s.phase if s is not None else ""
        event = rec.current() if rec is not None and len(rec) else None
        if rec is not None and not rec.live and event is not None:
            phase = phase_of(event, phase)
        self.status_phase.setText(
            f"{state}" + (f" · {phase}" if phase and state != "finished" else "")
        )
        step = self._step_at(rec.position) if rec is not None and len(rec) else None
        self.status_step.setText(f"step {step}" if step is not None else "step –")
        if rec is not None and len(rec):
            self.status_cursor.setText(f"event {rec.position + 1} of {len(rec)}")
        else:
            self.status_cursor.setText("event –")
        self.status_reason.setText(self.reason)

    # -- the cursor ---------------------------------------------------------------------------

    def _step_at(self, index: int) -> int | None:
        rec = self.recording
        if rec is None or not rec.steps:
            return None
        i = bisect.bisect_right(rec.steps, index) - 1
        return i if i >= 0 else None

    def seek(self, index: int) -> None:
        """Move the cursor to event ``index`` and show the state there."""
        rec = self.recording
        if rec is None or not len(rec):
            return
        rec.seek(index)
        self._show_cursor(select=True)
        self._update_status()

    def _show_cursor(self, *, select: bool) -> None:
        rec = self.recording
        i = rec.position
        step = self._step_at(i)
        start = rec.steps[step] if step is not None else 0
        self.graph.rebuild(rec.events[start : i + 1], start)
        event = rec.events[i]
        node = node_of(self.graph.model, event)
        self.graph.set_current(node)
        if select and node is not None:
            self.graph.select(node, center=True)
            self._show_node(node)
        elif self.graph.selected is not None:
            self._show_node(self.graph.selected)
        self.event_log.set_cursor(i)
        self.loss.set_cursor_step(step)
        source = source_of(rec, event)
        self.source.highlight_line(source.line if source is not None else None)
        scope = getattr(event, "scope", None)
        if scope is None and node is not None:
            scope = self.graph.model.nodes[node].scope
        self.scopes.set_scope(scope or "", self.graph.scope_kinds)

    def _leaf_lookup(self, tensor_id: int) -> tuple[Any, int] | None:
        return None if self.recording is None else leaf_before(self.recording, tensor_id)

    def _on_step_clicked(self, step: int) -> None:
        rec = self.recording
        if rec is not None and 0 <= step < len(rec.steps) and not self._running():
            self.seek(rec.steps[step])

    def _running(self) -> bool:
        s = self._session()
        return s is not None and s.state == "running"

    # -- selection ----------------------------------------------------------------------------

    def _on_node_selected(self, index: int) -> None:
        if index < 0:
            self.inspector.show_node(None)
            return
        self._show_node(index)

    def _show_node(self, index: int) -> None:
        rec = self.recording
        if rec is None or index >= len(self.graph.model.nodes):
            return
        node = self.graph.model.nodes[index]
        self.inspector.show_node(node_info(node, rec))
        self.scopes.set_scope(node.scope, self.graph.scope_kinds)

    def selected_node_label(self) -> str | None:
        i = self.graph.selected
        return None if i is None else self.graph.model.nodes[i].label

    def _find(self, text: str) -> None:
        if self.graph.search(text) is None and text.strip():
            self.status_reason.setText(f"No node matches '{text}'")

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _on_line_clicked(self, line: int) -> None:
        nodes = [
            n for n in self.graph.model.nodes if n.source is not None and n.source.line == line
        ]
        if nodes:
            self.graph.select(nodes[0].index, center=True, emit=True)
            self.status_reason.setText(f"line {line}: {', '.join(n.label for n in nodes[:6])}")
        else:
            self.status_reason.setText(f"line {line} made no node in this step")

    def _on_scope_clicked(self, path: str) -> None:
        rect = self.graph.scope_rects().get(path)
        if rect is not None:
            self.graph.centerOn(rect.center())

    # -- breakpoints ----------------------------------------------------------------------------

    def _on_breakpoints_changed(self, breakpoints: list[Breakpoint]) -> None:
        self.bridge.set_breakpoints(breakpoints)
        key = self._breakpoints_key()
        if key is not None:
            self.settings.setValue(key, to_json(breakpoints))

    def _on_breakpoint_requested(self, kind: str, value: Any) -> None:
        self.breakpoints.add_breakpoint(Breakpoint(kind, value))
        self.docks["breakpoints"].raise_()

    # -- gradient check ---------------------------------------------------------------------------

    def _on_check_gradient_node(self, index: int) -> None:
        node = self.graph.model.nodes[index]
        if node.node_id is not None:
            self._on_check_gradient(node.node_id)

    def _on_check_gradient(self, node_id: int) -> None:
        rec = self.recording
        if rec is None:
            return

        def done(result: Any) -> None:
            if isinstance(result, CheckError):
                self.inspector.show_gradcheck(node_id, float("nan"), False, str(result))
            elif isinstance(result, Exception):
                self.inspector.show_gradcheck(
                    node_id, float("nan"), False, f"check failed: {result}"
                )
            else:
                verdict = "matches" if result.ok else "DOES NOT match"
                worst = f"{result.worst_error:.2e}"
                text = f"rule {verdict} finite differences (worst relative error {worst})"
                self.inspector.show_gradcheck(node_id, result.worst_error, result.ok, text)

        self._run_job(lambda: check_node(rec, node_id), done)

    # -- files ---------------------------------------------------------------------------------

    def save_dialog(self) -> None:
        if self.recording is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save recording", "run.gsrec", "Recordings (*.gsrec)"
        )
        if path:
            self.save_recording(path)

    def save_recording(self, path: str, on_done: Callable[[Any], None] | None = None) -> None:
        rec = self.recording
        self.status_reason.setText(f"Saving {os.path.basename(path)}…")

        def done(result: Any) -> None:
            if isinstance(result, Exception):
                self.show_problem(f"Could not save {path}", str(result))
            else:
                self.status_reason.setText(f"Saved {path}")
                self._remember(os.path.abspath(path))
            if on_done is not None:
                on_done(result)

        self._run_job(lambda: recfile.save(rec, path), done)

    def _export(self, kind: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export graph", f"graph.{kind}", f"*.{kind}")
        if not path:
            return
        try:
            if kind == "png":
                self.graph.export_png(path)
            else:
                self.graph.export_svg(path)
            self.status_reason.setText(f"Exported {path}")
        except OSError as exc:
            self.show_problem(f"Could not export {path}", str(exc))

    def _run_job(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self.jobs.run(work, done)

    def _cancel_long_work(self) -> None:
        """Cancel the relayout or recording load in progress."""
        self.graph.cancel_relayout()
        self._load_token += 1
        self.layout_busy.hide()
        self.layout_progress.setRange(0, 100)
        self.status_reason.setText("Cancelled")

    def _on_layout_progress(self, fraction: float) -> None:
        if fraction >= 1.0:
            self.layout_busy.hide()
        else:
            self.layout_busy.show()
            self.layout_progress.setValue(int(fraction * 100))

    # -- drag and drop ---------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if any(u.toLocalFile().endswith((".py", ".gsrec")) for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            path = url.toLocalFile()
            if path.endswith((".py", ".gsrec")):
                self.open_path(path)
                break
