"""Between the Session's worker thread and the GUI thread.

The worker appends events to the Recording and posts state changes and notes on
a thread-safe queue. A QTimer on the GUI thread (about 30 Hz) drains them in
batches and re-emits them as Qt signals, so widgets never see the worker.

The GUI thread never waits long for a worker: ``shutdown`` asks the run to stop
and waits at most ``STOP_WAIT_S``. A program that does not stop (blocked in a C
call) is left to the session's watchdog, which sends a note naming the line it
hangs in (``sig_note``); while it lives, a new run is refused with a message
(``sig_errored``), never started beside it.
"""

from __future__ import annotations

import queue
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from core.debug.session import Breakpoint, Session

DRAIN_MS = 33
MAX_EVENTS_PER_TICK = 20000
STOP_WAIT_S = 0.25  # the longest the GUI thread waits for a run to end


class SessionBridge(QObject):
    """Owns one Session at a time and forwards what it does as signals."""

    sig_started = Signal()
    """A run started."""
    sig_paused = Signal(str)
    """The run paused; the argument says why (a breakpoint, a step)."""
    sig_resumed = Signal()
    """The run continues after a pause."""
    sig_aborted = Signal()
    """The run was stopped by the user."""
    sig_errored = Signal(object)
    """The run ended with an error (a ``core.debug.session.RunError``)."""
    sig_finished = Signal()
    """The run reached its last step."""
    sig_events = Signal(int, int)
    """Events ``[start, stop)`` were appended to the recording."""
    sig_stage = Signal(str)
    """The run moved on to "loading" (the program's top-level code), "building" (its
    ``build()``) or "running" (its steps); all of it runs in the worker."""
    sig_note = Signal(str)
    """Something the user should know while the run goes on: the memory cap was
    reached, a listener failed, the program does not respond to Stop..."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session: Session | None = None
        self._states: queue.SimpleQueue[tuple[Session, str, str | None]] = queue.SimpleQueue()
        self._notes: queue.SimpleQueue[tuple[Session, str]] = queue.SimpleQueue()
        self._lingering: list[Session] = []  # stopped runs whose thread has not ended
        self._stage: str | None = None
        self._seen = 0
        self._started = False
        self._timer = QTimer(self)
        self._timer.setInterval(DRAIN_MS)
        self._timer.timeout.connect(self.drain)

    # -- lifecycle ------------------------------------------------------------------

    def start(self, session: Session, *, paused: bool = False) -> None:
        """Run ``session`` (stopping the previous one)."""
        self.shutdown()
        self.session = session
        self._seen = 0
        self._started = False
        self._stage = None
        states, notes = self._states, self._notes  # no reference to the bridge itself
        session.on_state(lambda state, reason: states.put((session, state, reason)))
        session.on_note(lambda text: notes.put((session, text)))
        self._timer.start()
        session.start(paused=paused)

    def shutdown(self, timeout: float = STOP_WAIT_S) -> None:
        """Stop the current run, if any, and wait for it at most ``timeout`` seconds.

        A run that has not ended by then keeps being stopped by its session's
        watchdog; its notes still arrive through ``sig_note``.
        """
        old = self.session
        if old is not None and not old.done:
            old.stop()
            if not old.wait(timeout):
                self._lingering.append(old)
        self.drain()

    # -- controls (all safe to call in any state) ----------------------------------------

    def _paused_session(self) -> Session | None:
        s = self.session
        return s if s is not None and s.state == "paused" else None

    def pause(self) -> None:
        if self.session is not None and self.session.state == "running":
            self.session.pause()

    def resume(self) -> None:
        if (s := self._paused_session()) is not None:
            s.resume()

    def step_into(self) -> None:
        if (s := self._paused_session()) is not None:
            s.step_into()

    def step_over(self) -> None:
        if (s := self._paused_session()) is not None:
            s.step_over()

    def step_out(self) -> None:
        if (s := self._paused_session()) is not None:
            s.step_out()

    def stop(self) -> None:
        if self.session is not None and not self.session.done:
            self.session.stop()

    def set_breakpoints(self, breakpoints: list[Breakpoint]) -> None:
        if self.session is not None:
            self.session.breakpoints = list(breakpoints)

    # -- draining ---------------------------------------------------------------------

    def drain(self) -> None:
        """Forward new events and state changes (called by the timer)."""
        session = self.session
        if session is None:
            return
        if session.stage != self._stage:
            self._stage = session.stage
            self.sig_stage.emit(session.stage)
        rec = session.recording
        if rec is not None:
            total = len(rec.events)
            if total > self._seen:
                stop = min(total, self._seen + MAX_EVENTS_PER_TICK)
                start, self._seen = self._seen, stop
                self.sig_events.emit(start, stop)
        while True:
            try:
                owner, state, reason = self._states.get_nowait()
            except queue.Empty:
                break
            if owner is session:
                self._emit_state(state, reason)
        while True:
            try:
                _owner, text = self._notes.get_nowait()
            except queue.Empty:
                break
            self.sig_note.emit(text)  # a stuck old run's note matters too
        self._lingering = [s for s in self._lingering if s.thread_alive()]
        caught_up = rec is None or self._seen >= len(rec.events)
        alive = session.thread_alive() or self._lingering
        if session.done and caught_up and self._states.empty() and not alive:
            self._timer.stop()

    def _emit_state(self, state: str, reason: Any) -> None:
        if state == "running":
            if self._started:
                self.sig_resumed.emit()
            else:
                self._started = True
                self.sig_started.emit()
        elif state == "paused":
            self.sig_paused.emit(reason or "paused")
        elif state == "stopped":
            self.sig_aborted.emit()
        elif state == "errored":
            self.sig_errored.emit(self.session.error)
        elif state == "finished":
            self.sig_finished.emit()
