"""Run control: starting, stepping, stopping a Session, and the window's state.

A mixin of ``MainWindow`` (app/main_window.py); it reads the window's widgets
(``graph``, ``event_log``, ``loss``, ``inspector``, ``status_*``), its
``bridge`` and ``recording``, and the cursor methods of ``CursorMixin``.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QTimer

from app import actions as A
from app.node_info import last_op
from app.param_series import METRICS, ParamSeries
from app.replay import next_stop, phase_at
from core.debug.session import Breakpoint, Session
from widgets.breakpoints import to_json

LOG_REFRESH_S = 0.1  # while running; every pause and step refreshes at once
LOG_CHUNK = 5000  # events a filtered log classifies per refresh while running (about 2 ms)
FEED_BUDGET_S = 0.008  # GUI-thread time for drawing arrived events per turn of the loop
FEED_SLICE = 250  # events given to the graph at once (about 10 ms of laying out)
FEED_PAUSE_MS = 15  # the rest of a backlog waits this long: other work gets its turn
PARAMS_BUDGET_S = 0.01  # GUI-thread time per turn for the per-parameter curves
PARAMS_REDRAW_S = 0.5  # the curves are redrawn at most this often while a run goes
PARAMS_BACKLOG_MS = 50  # the rest of a backlog of updates is read this much later
LIVE_NODES = 5000  # a running step's graph is not drawn past this many nodes
MAX_QUEUED_STEPS = 8  # step keys kept while a step is under way
FEED_INTERVAL_S = 0.1  # a running model's graph is redrawn at most this often
FEED_NODES = 2000  # ... and one interval less often per this many nodes it has
STOPPED_DRAW_EVENTS = 2000  # a run stopped in a step this small has that step drawn
STOPPED_BIG = "Stopped in a big step: Shift+F10 draws its graph"
READY = "Ready before the first op: F5 runs, F10 steps over, F11 steps into, Shift+F5 stops"


class RunControlMixin:
    """F5, F10, F11, Shift+F11, Shift+F10, Shift+F5 and what the run tells the window."""

    # -- running ------------------------------------------------------------------------

    def start_run(self, *, paused: bool = False) -> None:
        if self.program is None:
            self.status_reason.setText("Open a program first (Ctrl+O)")
            return
        device = self.device.currentData() or "cpu"
        steps = self.steps.value() or None
        old, old_session = self.recording, self._session()
        session = Session(
            self.program,
            device=device,
            steps=steps,
            breakpoints=self.breakpoints.breakpoints(),
            mode=self.run_mode(),
        )
        self.recording = session.recording
        self.graph.clear()
        self._graph_fed = self._graph_due = 0
        self.event_log.reset(session.recording.events, forward=session.recording.nodes)
        self.loss.set_losses([], [])
        self._losses_shown = 0
        self.param_series = ParamSeries()
        self.params.clear()
        self.inspector.show_node(None)
        self.code_view.clear(compiled=session.mode == "compiled")
        if session.mode == "compiled":
            self._code_beside_source()
        self.clear_problem()
        self.bridge.start(session, paused=paused)
        still_written = (
            old_session is not None and old_session.recording is old and not old_session.done
        )
        if old is not None and not still_written and not len(self.jobs):
            self.retirer.retire(old)  # no run appends to it, no save reads it
        self._update_controls()

    def steps_changed(self, value: int) -> None:
        """The Steps field applies to the run under way too (one opened paused
        included): it ends after that many steps, or the program's own number."""
        s = self._session()
        if s is not None and not s.done:
            s.steps = value or None

    def _session(self) -> Session | None:
        return self.bridge.session

    def _paused(self) -> bool:
        s = self._session()
        return s is not None and s.state == "paused"

    def run_or_continue(self) -> None:
        self._stepping = False
        rec = self.recording
        if self._replaying():
            self._replay("run")
        elif self._paused():
            if rec is not None:
                rec.go_live()
            self.bridge.resume()
        elif self.program is not None and (self._session() is None or self._session().done):
            self.start_run()

    def _replaying(self) -> bool:
        """The cursor is behind the recording's head and no run is paused there:
        stepping moves through the recording (a reopened one, or a finished run)."""
        rec = self.recording
        return rec is not None and not rec.live and not self._paused()

    def _replay(self, mode: str) -> None:
        rec = self.recording
        target = next_stop(
            rec.events, rec.position, mode, self.breakpoints.breakpoints(), self._namer_at()
        )
        self.seek(target)
        if rec.live:
            self.reason = "end of the recording"
            self._update_status()

    def _step(self, mode: str, command: Callable[[], None]) -> None:
        rec = self.recording
        if rec is not None and not rec.live:
            self._replay(mode)  # replay the recording forward first
            return
        s = self._session()
        if s is None or s.done:
            if self.program is not None:
                self.start_run(paused=True)
            return
        if s.state == "running":
            # pressed while the last step is still under way (a key held down): it
            # runs at the next pause, not lost; a run going on its own is left alone
            if self._stepping and len(self._queued_steps) < MAX_QUEUED_STEPS:
                self._queued_steps.append(command)
            return
        self._stepping = True
        command()

    def step_over(self) -> None:
        self._step("over", self.bridge.step_over)

    def step_into(self) -> None:
        self._step("into", self.bridge.step_into)

    def step_out(self) -> None:
        self._step("out", self.bridge.step_out)

    def step_back(self) -> None:
        rec = self.recording
        s = self._session()
        if rec is None or not len(rec) or (s is not None and s.state == "running"):
            return
        self.seek(rec.position - 1)

    def stop(self) -> None:
        self.bridge.stop()

    def restart(self) -> None:
        """Stop, read the program's file again (an edit takes effect), run."""
        self.bridge.shutdown()
        if self.program is not None and not self.reload_program():
            self._update_controls()
            return
        self.start_run()

    # -- events and states --------------------------------------------------------------------

    def _on_events(self, start: int, stop: int) -> None:
        rec = self.recording
        if rec is None or self._session() is None or rec is not self._session().recording:
            return
        self._graph_due = max(self._graph_due, stop)
        state = self._session().state
        if rec.live and state != "stopped":
            # a run at full speed replaces its step's graph many times a second: draw
            # the newest one at most every FEED_INTERVAL_S; stepping draws at once
            wait = self._feed_interval() - (time.perf_counter() - self._graph_fed_at)
            if wait <= 0 or state != "running":
                self._feed_graph()
            elif not self._feed_timer.isActive():
                self._feed_timer.start(int(wait * 1000) + 1)
        self._refresh_log()
        self._update_params()
        for step, loss in rec.losses[self._losses_shown :]:  # the Recording keeps them
            self.loss.append(step, loss)
        self._losses_shown = len(rec.losses)
        self._update_status()

    def _feed_graph(self, *, stopped: bool = False) -> None:
        """Bring the live graph up to the events that arrived, in slices of at most
        FEED_BUDGET_S of the GUI thread: what is left waits for the next turn of the
        event loop, so keys (Shift+F5) and repaints never wait behind a backlog. A
        backlog spanning steps jumps to the last step's start (its graph is drawn).
        ``stopped``: the small step a stopped run ended in, all at once."""
        rec = self.recording
        began = self._graph_fed_at = time.perf_counter()
        s = self._session()
        if s is not None and s.state == "stopped" and not stopped:
            return  # a stopped run's backlog is not drawn (Stop leaves an idle window)
        if self._too_big_to_draw_live():
            return
        if self.graph.model.namer_stale:
            self._resync_graph()
        self.graph.set_note("")
        while self._graph_fed < self._graph_due and rec.live:
            start = self._graph_fed
            newest = bisect.bisect_right(rec.steps, self._graph_due - 1) - 1
            if newest >= 0 and rec.steps[newest] > start:  # only the newest step is drawn
                end = rec.steps[newest] + 1
            else:
                end = min(self._graph_due, start + FEED_SLICE)
            self.graph.feed(rec.events[start:end], start, draw=False)
            self._graph_fed = end
            if not stopped and time.perf_counter() - began > FEED_BUDGET_S:
                break
        caught_up = self._graph_fed >= self._graph_due
        if caught_up or began - self._graph_drawn_at > self._feed_interval():
            self._graph_drawn_at = began
            self.graph.redraw()
        if self._graph_fed < self._graph_due and not self._feed_timer.isActive():
            self._feed_timer.start(FEED_PAUSE_MS)

    def _update_params(self, force: bool = False) -> None:
        """Per-parameter curves: read new events while their panel is shown, in
        slices of PARAMS_BUDGET_S (an update's ratio costs a pass over the
        parameter), drawn at most every PARAMS_REDRAW_S unless ``force``."""
        rec = self.recording
        if rec is None or not (force or self.on_screen("params")):
            return
        done = self.param_series.take(rec, budget_s=PARAMS_BUDGET_S)
        now = time.monotonic()
        if done or force or now - self._params_drawn >= PARAMS_REDRAW_S:
            self._params_drawn = now
            for metric in METRICS:
                self.params.set_series(metric, self.param_series.series(metric))
        if not done and not self._params_timer.isActive():
            self._params_timer.start()

    def _too_big_to_draw_live(self) -> bool:
        """A running step whose graph passed LIVE_NODES is not drawn until the run
        pauses or a new step begins (drawing it would take the GUI thread from the
        keys); the graph says so."""
        s, rec = self._session(), self.recording
        if s is None or s.state != "running" or len(self.graph.model.nodes) <= LIVE_NODES:
            return False
        newest = rec.steps[-1] if rec.steps else 0
        if newest >= self._graph_fed:
            return False  # a new step began: its graph starts small
        self.graph.set_note(
            f"This step's graph passed {LIVE_NODES:,} nodes: it is drawn again when the run"
            " pauses (F6)"
        )
        return True

    def _feed_interval(self) -> float:
        """How often a running model's graph is fed and drawn: less often as it
        grows (each drawing of a big graph costs the GUI thread)."""
        return FEED_INTERVAL_S * (1 + len(self.graph.model.nodes) / FEED_NODES)

    def _refresh_log(self, force: bool = False) -> None:
        """New rows for the event log: while a run is live, at most LOG_CHUNK a
        turn and at most every LOG_REFRESH_S, not while its panel is hidden;
        everything at a pause or on demand (``force``)."""
        now = time.monotonic()
        if force:
            self._log_refreshed = now
            self.event_log.extend()
        elif self.on_screen("events") and now - self._log_refreshed >= LOG_REFRESH_S:
            self._log_refreshed = now
            # unfiltered, taking events in only counts them: all, so Follow keeps up
            # with a run making 60k events a second (LOG_CHUNK a turn fell behind)
            filtered = self.event_log.model().is_filtered()
            self.event_log.extend(LOG_CHUNK if filtered else None)

    def _on_state(self, state: str, reason: str) -> None:
        self.reason = READY if reason == "ready" else reason
        if state == "stopped":
            # idle at once: the graph stays as last drawn (Shift+F10 or a click on the
            # loss replays any event), however long the step the run was in
            self._graph_due = self._graph_fed
            if self.graph.note:
                self.graph.set_note(STOPPED_BIG)
            QTimer.singleShot(0, self._after_stop)  # once idle
        elif state in ("paused", "finished", "errored"):
            if state != "paused" or reason not in ("step", "paused"):
                self._stepping = False  # a breakpoint or the end: what was pressed is moot
                self._queued_steps.clear()
            self.bridge.drain()
            self._refresh_log(force=True)
            self._update_params()
            rec = self.recording
            if rec is not None and len(rec):
                if state == "errored":
                    rec.seek(last_op(rec.events))  # the last computation before the error
                self._show_cursor(select=state in ("paused", "errored"))
                if state == "paused" and reason in ("step", "paused"):
                    self.reason = f"{reason}: {self.cursor_text()}"
                else:
                    self.reason = self.readable(self.reason)
                if state != "paused":
                    self.graph.tidy_once()
        self._update_controls()
        self._update_status(state)
        if state == "paused" and self._queued_steps:
            self._queued_steps.pop(0)()

    def _after_stop(self) -> None:
        """Once Stop has left the window idle: the log takes the rest of the run,
        and the step the run stopped in is drawn up to its last event when it is
        small (STOPPED_DRAW_EVENTS); a bigger one keeps the graph as last drawn
        (it could be a step of 100k ops), and says how to draw it."""
        self._refresh_log(force=True)
        rec = self.recording
        if rec is None or not rec.live or self._graph_fed >= len(rec):
            return
        start = rec.steps[-1] if rec.steps else 0
        if self.graph.note or len(rec) - start > STOPPED_DRAW_EVENTS:
            self.graph.set_note(STOPPED_BIG)
            return
        self._graph_due = len(rec)
        self._feed_graph(stopped=True)

    def _on_run_error(self, error: Any) -> None:
        where = f"{error.file}:{error.line}" if error.line else (error.file or "")
        self.show_problem(f"The run failed {('at ' + where) if where else ''}", error.traceback)
        self._on_state("errored", error.message)

    def _update_controls(self) -> None:
        s = self._session()
        state = s.state if s is not None else "idle"
        paused = state == "paused"
        running = state == "running"
        have_program = self.program is not None
        forward = (have_program or self._replaying()) and not running
        enable = {
            A.RUN: forward,
            A.PAUSE: running,
            A.STEP_OVER: forward,
            A.STEP_INTO: forward,
            A.STEP_OUT: forward,
            A.STEP_BACK: self.recording is not None and not running,
            A.STOP: running or paused,
            A.RESTART: have_program,
            A.SAVE: self.recording is not None and not running,
        }
        for action_id, on in enable.items():
            self.actions_by_id[action_id].setEnabled(bool(on))
        self.device.setEnabled(not running and not paused)
        saved_graph = have_program and self.program.compiled
        self.mode.setEnabled(not running and not saved_graph)  # a saved graph: compiled
        self.event_log.set_live(running)
        self.loss.set_live(running)
        for action_id in (A.PROFILE, A.COMPARE):
            # a run going on would share the engine's event flags with the profile
            # both run the program's source, eager and compiled: a saved graph has none
            on = have_program and not saved_graph and not running and not self.analysis.busy
            self.actions_by_id[action_id].setEnabled(on)

    def _update_status(self, state: str | None = None) -> None:
        rec = self.recording
        s = self._session()
        if state is None:
            state = s.state if s is not None else "idle"
        if rec is not None and (s is None or s.recording is not rec):
            state = "recording"  # a reopened recording: no run behind it
        phase = s.phase if s is not None else ""
        if rec is not None and len(rec) and state != "running":
            phase = phase_at(rec.events, rec.position)  # the cursor's, live or not
        ended = state in ("finished", "recording") and (rec is None or rec.live)
        self.status_phase.setText(f"{state}" + (f" · {phase}" if phase and not ended else ""))
        step = self._step_at(rec.position) if rec is not None and len(rec) else None
        self.status_step.setText(f"step {step}" if step is not None else "step –")
        if rec is not None and len(rec):
            self.status_cursor.setText(f"event {rec.position + 1} of {len(rec)}")
        else:
            self.status_cursor.setText("event –")
        self.status_reason.setText(self.reason)

    # -- breakpoints ----------------------------------------------------------------------------

    def _on_breakpoints_changed(self, breakpoints: list[Breakpoint]) -> None:
        self.bridge.set_breakpoints(breakpoints)
        key = self._breakpoints_key()
        if key is not None:
            self.settings.setValue(key, to_json(breakpoints))

    def _on_breakpoint_requested(self, kind: str, value: Any) -> None:
        self.breakpoints.add_breakpoint(Breakpoint(kind, value))
        self.docks["breakpoints"].raise_()
