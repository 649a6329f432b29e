"""The Session: a program run in a worker thread under a debugger's controls.

Vocabulary (the GUI's buttons map one to one): ``start`` (run, or ``paused=True``
to stop before the first step's first op), ``pause``, ``resume`` (continue to a
breakpoint),
``step_into`` (the next op event, entering modules), ``step_over`` (the next op
event at the current module depth: a module call is one step), ``step_out``
(until the current module returns; at top level, until the phase ends),
``stop``. State changes go to listeners as ``(state, reason)``; every event the
run produces goes to event listeners after the Recording has it.

Listeners are called in the worker thread; a GUI queues what it gets. A listener
that raises is dropped with a note (``on_note``); the program is not blamed.

The worker runs the program file's top-level code, its ``build()`` and its steps,
so none of them ever runs on the caller's (the GUI's) thread, and Stop works in
each. Every way a run ends has a status and a message (``core.debug.lifecycle``):
``sys.exit()`` in a program is "errored", a ``KeyboardInterrupt`` "stopped", a
step that returns no usable loss is named. One run lives per process at a time.

>>> import core
>>> from core.debug.session import Session
>>> s = Session.from_file("samples/neuron.py", steps=3)
>>> s.start(); s.wait(30)
True
>>> s.state, len(s.recording.losses)
('finished', 3)
"""

from __future__ import annotations

import gc
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from core.debug import graphfile, lifecycle
from core.debug import program as programs
from core.debug.breakpoints import BREAKPOINT_KINDS, Breakpoint, loss_over, param_grad_over
from core.debug.lifecycle import RunConflict, RunError, StopRun
from core.debug.naming import Namer
from core.debug.recording import DEFAULT_CAP, Recording
from core.deferred.api import compile as compile_step
from core.engine.dispatch import announce, reset_ids
from core.observe.bus import BUS
from core.observe.events import (
    BackwardStarted,
    GradAccumulated,
    KernelRun,
    ModuleEnter,
    ModuleExit,
    OpBackward,
    OpForward,
    ParameterUpdated,
    RunFinished,
    RunStarted,
    StepEnded,
    StepStarted,
    TensorCreated,
)

__all__ = ["BREAKPOINT_KINDS", "STATES", "Breakpoint", "RunConflict", "RunError", "Session"]
__all__ += ["StepEnded", "StopRun"]

STATES = ("idle", "running", "paused", "finished", "stopped", "errored")
MODES = ("eager", "compiled")
# the events a step stops at; in a compiled step, each kernel (its ops come
# before it, told by core.deferred.narrate, and are not stops of their own)
OP_EVENTS = (OpForward, OpBackward, ParameterUpdated, KernelRun)


def is_stop(event: Any) -> bool:
    """An event stepping stops at: an op, a gradient rule, an update, a kernel;
    not a compiled step's op (its kernel, which follows, is the stop)."""
    kind = type(event)
    return kind in OP_EVENTS and not (kind is OpForward and event.kernel is not None)


FREEZE_EVERY = 20_000  # events between gc.freeze() calls while recording


def _depth(scope: str) -> int:
    return scope.count(".") + 1 if scope else 0


class Session:
    """Runs a program under a controller; see the module docstring."""

    def __init__(
        self,
        program: programs.Program,
        *,
        device: str = "cpu",
        steps: int | None = None,
        recording: Recording | None = None,
        record: bool = True,
        cap_bytes: int = DEFAULT_CAP,
        breakpoints: list[Breakpoint] | None = None,
        mode: str = "eager",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
        if program.compiled:
            mode = "compiled"  # a saved graph is a compiled step: it has no eager form
        self.program = program
        self.device = device
        self.mode = mode  # "compiled": the step runs through core.compile
        self.steps = steps  # None: the program's own; read before each step, so it may change
        meta = {
            "program": program.path,
            "title": program.title,
            "device": device,
            "mode": mode,
            "source": program.source,
        }
        if recording is None and record:
            recording = Recording(cap_bytes, meta)
        self.recording = recording
        self.breakpoints: list[Breakpoint] = list(breakpoints or [])
        self.state = "idle"
        self.reason: str | None = None
        self.error: RunError | None = None
        self.notes: list[str] = []  # what the user should know; the run went on
        self.stage = "loading"  # loading, building, running: where the worker is
        self.unresponsive: str | None = None  # where a stopped run hangs, once known
        self.other_threads: Counter[str] = Counter()  # events from other threads, by name
        self.step_index = -1
        self.phase = "forward"
        self.run: programs.Run | None = None
        self._state_listeners: list[Callable[[str, str | None], None]] = []
        self._event_listeners: list[Callable[[Any], None]] = []
        self._note_listeners: list[Callable[[str], None]] = []
        self._cond = threading.Condition()
        self._mode = "run"  # run | pause | into | over | out
        self._target_depth = 0
        self._target_phase = "forward"
        self._paused = False
        self._stop = False
        self._nan_seen = False
        self._cap_noted = False
        self._depth = 0
        self._thread: threading.Thread | None = None
        self._ended = threading.Event()  # set by the worker as its very last act
        self._ident: int | None = None
        self._interruptible = False
        self._interrupt_lock = threading.Lock()
        self._watchdog: lifecycle.Watchdog | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._namer = Namer()  # stable node names, for node breakpoints
        self._name: str | None = None  # the name of the node the current event is about

    def kernel_code(self, kernel: int, name: str) -> str | None:
        """The generated code of a compiled step's kernel (by its index and name,
        which a KernelRun carries); None in eager mode or before it is compiled."""
        step = self.run.step if self.run is not None else None
        for entry in getattr(step, "graphs", ()):
            kernels = entry.program.kernels
            if kernel < len(kernels) and kernels[kernel].name == name:
                return kernels[kernel].code
        return None

    @classmethod
    def from_file(cls, path: str, **kwargs: Any) -> Session:
        """Read a program file (or a saved ``.gsgraph``) and make a Session for it;
        a program's code runs in the worker once started. A file that cannot be a
        program raises ProgramError here."""
        return cls(graphfile.read_any(path), **kwargs)

    # -- listeners -----------------------------------------------------------------

    def on_state(self, callback: Callable[[str, str | None], None]) -> None:
        """``callback(state, reason)`` on every state change (worker thread)."""
        self._state_listeners.append(callback)

    def on_event(self, callback: Callable[[Any], None]) -> None:
        """``callback(event)`` for every event of this run (worker thread)."""
        self._event_listeners.append(callback)

    def on_note(self, callback: Callable[[str], None]) -> None:
        """``callback(text)`` for each note: the cap is reached, a listener failed,
        events came from another thread, a run does not respond to Stop (any thread)."""
        self._note_listeners.append(callback)

    def _set_state(self, state: str, reason: str | None = None) -> None:
        self.state = state
        self.reason = reason
        self._call(self._state_listeners, state, reason)

    def _note(self, text: str) -> None:
        self.notes.append(text)
        self._call(self._note_listeners, text)

    def _call(self, listeners: list[Callable[..., None]], *args: Any) -> None:
        """Call each listener; one that raises is the listener's bug, not the program's:
        it is dropped with a note, and the run goes on."""
        for callback in list(listeners):
            try:
                callback(*args)
            except Exception as exc:
                if callback in listeners:
                    listeners.remove(callback)
                self._note(f"a listener failed and is no longer called: {lifecycle.describe(exc)}")

    # -- controls --------------------------------------------------------------------

    def start(self, *, paused: bool = False) -> None:
        """Start the worker; with ``paused`` it stops as the first step starts,
        before its first op (reason "ready").

        While another run lives in this process (ids and the random state are
        process-wide), the session does not start: it ends at once as "errored",
        its error naming the other program.
        """
        if self._thread is not None or self.state != "idle":
            raise RuntimeError("this session was already started; make a new one to rerun")
        self._mode = "begin" if paused else "run"
        self._thread = threading.Thread(target=self._work, name="gradstep-session", daemon=True)
        try:
            lifecycle.claim(self, self.program.path)
        except RunConflict as exc:
            self._thread = None
            self.error = RunError(str(exc), "RunConflict", None, None, str(exc), "loading")
            self._set_state("errored", str(exc))
            self._drop_listeners()
            return
        self._set_state("running")
        self._thread.start()

    def thread_alive(self) -> bool:
        """Whether the worker thread still runs (a stuck one counts)."""
        return self._thread is not None and not self._ended.is_set()

    def _release(self, mode: str) -> None:
        with self._cond:
            self._mode = mode
            was_paused = self._paused
            self._paused = False
            self._cond.notify_all()
        if was_paused:
            self._set_state("running")

    def pause(self) -> None:
        """Pause at the next event."""
        with self._cond:
            if not self._paused:
                self._mode = "pause"

    def resume(self) -> None:
        """Continue until a breakpoint or the end."""
        self._release("run")

    def step_into(self) -> None:
        self._release("into")

    def step_over(self) -> None:
        self._target_depth = self._depth
        self._release("over")

    def step_out(self) -> None:
        self._target_depth = self._depth
        self._target_phase = self.phase
        self._release("out")

    def stop(self) -> None:
        """End the run at its next event; code that makes no events is interrupted.

        A program that does not end within ``lifecycle.GRACE_S`` (blocked in a C
        call, or swallowing the interruption) gets a note naming its line, and
        ``unresponsive`` says where; see ``core.debug.lifecycle`` for the limit.
        """
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self.thread_alive() and self._watchdog is None:
            self._watchdog = lifecycle.Watchdog(self.thread_alive, self._interrupt, self._hung)
            self._watchdog.start()

    def _interrupt(self) -> None:
        with self._interrupt_lock:
            if self._interruptible and self._ident is not None:
                lifecycle.interrupt(self._ident)

    def _hung(self) -> None:
        self.unresponsive = lifecycle.blocked_at(self._ident, self.program.path)
        self._note(
            f"the program does not respond to Stop: it is blocked in {self.unresponsive}. "
            "Gradstep cannot end it from inside this process; no other run starts until "
            "it returns (restart Gradstep to end it)"
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; True when it has.

        (An Event, not ``Thread.join``: a KeyboardInterrupt that lands in ``join``
        marks the thread as ended in Python 3.11 while it still runs.)
        """
        if self._thread is None:
            return True
        return self._ended.wait(timeout)

    @property
    def done(self) -> bool:
        return self.state in ("finished", "stopped", "errored")

    # -- the worker --------------------------------------------------------------------

    def _work(self) -> None:
        # Overflow and NaN are what the debugger shows (stats, the NaN breakpoint),
        # not warnings on the terminal.
        with self._interrupt_lock:
            self._ident = threading.get_ident()
            self._interruptible = True
        status = "errored"
        try:
            with np.errstate(all="ignore"):
                reset_ids()
                self.program.execute()  # the file's top-level code, here, never the caller's
                if self._stop:
                    raise StopRun
                self._listen()
                BUS.emit(RunStarted(program=self.program.path, device=self.device))
                self.stage = "building"
                self.run = self.program.build(self.device)
                if self.mode == "compiled" and not self.program.compiled:
                    self.run.step = compile_step(self.run.step)
                for name, t in self.run.named_parameters():
                    announce(t, "parameter", name)
                self.stage = "running"
                self._steps(self.run)
            status = "finished"
        except BaseException as exc:  # noqa: B036  (every way a run ends has a status)
            status, self.error = lifecycle.outcome(
                exc, self.program.path, self.stage, self.step_index
            )
        finally:
            while True:  # the watchdog may land one more StopRun before _finish stops it
                try:
                    self._finish(status)
                    break
                except StopRun:
                    continue

    def _listen(self) -> None:
        self._unsubscribe = BUS.subscribe(
            self._on_bus,
            stats=True,
            source=True,
            values=self.recording is not None,
            kernel_ops=self.recording is not None,  # kernels' ops: to draw and inspect
        )

    def _unlisten(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _keep_kernel_code(self) -> None:
        """A compiled run's recording keeps each kernel's generated code (by
        "<index> <name>"), so a saved recording shows it too."""
        step = self.run.step if self.run is not None else None
        if self.recording is None or not getattr(step, "graphs", None):
            return
        code = {}
        for entry in reversed(step.graphs):  # the latest graph's code wins
            code.update({f"{k.index} {k.name}": k.code for k in entry.program.kernels})
        self.recording.meta["kernel_code"] = code

    def _steps(self, run: programs.Run) -> None:
        """Runs steps until ``self.steps`` (or the program's own number) is reached;
        the number is read before each step, so the app's Steps field changes a
        run that is under way (set below the step reached, the run ends there)."""
        frozen_at = 0
        i = 0
        while i < (run.steps if self.steps is None else self.steps):
            self.step_index = i
            BUS.emit(StepStarted(step=i))
            loss = run.step(run.batches(i)) if run.batches is not None else run.step()
            BUS.emit(StepEnded(step=i, loss=self._loss(loss, run)))
            if self.recording is not None and len(self.recording) - frozen_at > FREEZE_EVERY:
                # The recording only grows: keep the garbage collector from
                # rescanning it (full collections stalled every thread for over
                # half a second in long runs). _finish unfreezes.
                gc.freeze()
                frozen_at = len(self.recording)
            i += 1

    def _loss(self, loss: Any, run: programs.Run) -> float | None:
        value, problem = lifecycle.loss_value(loss)
        if problem is None:
            return value
        code = getattr(run.step, "__code__", None)
        where = self.program.path
        if code is not None and code.co_filename == where:
            where = f"{where}:{code.co_firstlineno}"
        if loss is None:
            if not any(n.startswith("step() returned None") for n in self.notes):
                self._note(f"step() returned None ({where}): return the loss to see it plotted")
            return None
        raise programs.ProgramError(
            f"{where}: step() returned {problem}; it must return the loss, a Tensor "
            "with one element or a number",
            self.program.path,
        )

    def _finish(self, status: str) -> None:
        """End the run: no interruption may land from here on, then tell everyone."""
        while True:
            try:
                with self._interrupt_lock:
                    self._interruptible = False
                if self._ident is not None:
                    lifecycle.clear_interrupt(self._ident)
                break
            except StopRun:  # an interruption queued just before; the run is over anyway
                continue
        error = self.error.message if self.error is not None else None
        try:
            self._keep_kernel_code()
            if self._unsubscribe is not None:
                BUS.emit(RunFinished(status=status, error=error))
        except StopRun:
            pass
        finally:
            self._unlisten()
            gc.unfreeze()  # what the run froze may be collected once it is garbage
            lifecycle.release(self)
            self._set_state(status, error if status != "stopped" or error else "stopped")
            self._drop_listeners()
            self._ended.set()

    def _drop_listeners(self) -> None:
        """Listeners often hold the session (a lambda over it): drop them once it has
        ended, so a finished session is freed by reference counting alone."""
        self._state_listeners.clear()
        self._event_listeners.clear()
        self._note_listeners.clear()

    def _on_bus(self, event: Any, arrays: dict[int, Any] | None = None) -> None:
        if threading.get_ident() != self._ident:
            self._foreign(event)
            return
        rec = self.recording
        if rec is not None:
            rec.add(event, arrays)
            if rec.capped and not self._cap_noted:
                self._cap_noted = True
                self._note(rec.cap_note())
        if self._event_listeners:
            self._call(self._event_listeners, event)
        self._control(event)

    def _foreign(self, event: Any) -> None:
        name = threading.current_thread().name
        if not self.other_threads[name]:
            self._note(
                f"events from thread {name!r} are not recorded: only the thread that "
                "runs the program is (the run's summary counts them)"
            )
        self.other_threads[name] += 1

    def _control(self, event: Any) -> None:
        if self._stop:
            raise StopRun
        self._name = self._namer.feed(event)
        kind = type(event)
        if kind is StepStarted:
            self.phase = "forward"
        elif kind is BackwardStarted or kind is OpBackward:
            self.phase = "backward"
        elif kind is ParameterUpdated:
            self.phase = "update"
        elif kind is OpForward or kind is KernelRun:
            self.phase = event.phase
        if kind is OpForward or kind is KernelRun:
            self._depth = _depth(event.scope)
        elif kind is ModuleEnter:
            self._depth = _depth(event.path) - 1
        elif kind is ModuleExit:
            self._depth = _depth(event.path) - 1  # back in the caller's scope
        elif kind is OpBackward or kind is ParameterUpdated:
            self._depth = 0
        reason = self._breakpoint(event) or self._step_done(event)
        if reason is not None:
            self._pause(reason)

    def _step_done(self, event: Any) -> str | None:
        mode = self._mode
        if mode == "run":
            return None
        if mode == "pause":
            return "paused"
        if mode == "begin":
            return "ready" if type(event) is StepStarted else None
        is_op = is_stop(event)
        if mode == "into":
            return "step" if is_op or type(event) is ModuleEnter else None
        if mode == "over":
            return "step" if is_op and self._depth <= self._target_depth else None
        if mode == "out":
            if type(event) is ModuleExit and _depth(event.path) == self._target_depth > 0:
                return f"returned from {event.path}"
            if self._target_depth == 0 and is_op and self.phase != self._target_phase:
                return f"{self._target_phase} ended"
        return None

    def _pause(self, reason: str) -> None:
        with self._cond:
            self._paused = True
            self._mode = "pause"
        # While paused nothing of this run emits: the bus's flags go back to what
        # other threads asked for (a profile taken meanwhile times a quiet engine).
        self._unlisten()
        self._set_state("paused", reason)
        with self._cond:
            while self._paused and not self._stop:
                self._cond.wait(0.1)
        self._listen()
        if self._stop:
            raise StopRun

    # -- breakpoints ----------------------------------------------------------------------

    def _breakpoint(self, event: Any) -> str | None:
        for bp in self.breakpoints:
            if bp.enabled:
                hit = self._match(bp, event)
                if hit is not None:
                    return f"breakpoint: {hit}"
        return None

    def _match(self, bp: Breakpoint, event: Any) -> str | None:
        kind = type(event)
        if bp.kind == "op":
            if kind is OpForward and event.op == bp.value:
                return f"op {event.op} (node {event.op}_{event.node_id}){_at(event)}"
        elif bp.kind == "node":
            if kind in (OpForward, OpBackward) and bp.value in (self._name, event.node_id):
                pass_name = "backward" if kind is OpBackward else "forward"
                return f"node {self._name} ({pass_name})"
        elif bp.kind == "module":
            if kind is ModuleEnter and (
                event.path == bp.value or event.path.endswith("." + str(bp.value))
            ):
                return f"entering module {event.path} ({event.kind})"
        elif bp.kind == "nan":
            if not self._nan_seen:
                found = self._nonfinite(event)
                if found is not None:
                    self._nan_seen = True
                    return found
        elif bp.kind == "grad_norm":
            return self._big_gradient(event, bp.value)
        elif bp.kind == "step":
            if kind is StepStarted and event.step == bp.value:
                return f"step {event.step} begins"
        elif bp.kind == "loss":
            return loss_over(bp, event)
        elif bp.kind == "param_grad":
            return param_grad_over(bp, event)
        return None

    def _nonfinite(self, event: Any) -> str | None:
        kind = type(event)
        if kind is OpForward and event.stats is not None and not event.stats.finite:
            inputs = ", ".join(self.tensor_label(i) for i in event.inputs)
            return (
                f"first NaN/Inf: {event.op}_{event.node_id} produced "
                f"{_count(event.stats)} from ({inputs}){_at(event)}"
            )
        if kind is OpBackward and event.stats:
            for stats in event.stats:
                if stats is not None and not stats.finite:
                    return (
                        f"first NaN/Inf: the gradient from {event.op}_{event.node_id} has "
                        f"{_count(stats)}"
                    )
        if kind in (GradAccumulated, ParameterUpdated, TensorCreated):
            stats = event.stats
            if stats is not None and not stats.finite:
                return f"first NaN/Inf: {type(event).__name__} of {event.name} has {_count(stats)}"
        return None

    def _big_gradient(self, event: Any, threshold: float) -> str | None:
        if type(event) is GradAccumulated and event.stats is not None:
            if event.stats.norm > threshold:
                return f"gradient of {event.name} has norm {event.stats.norm:.4g} > {threshold:g}"
        if type(event) is OpBackward and event.stats:
            for stats in event.stats:
                if stats is not None and stats.norm > threshold:
                    return (
                        f"a gradient from {event.op}_{event.node_id} has norm "
                        f"{stats.norm:.4g} > {threshold:g}"
                    )
        return None

    def tensor_label(self, tensor_id: int) -> str:
        """A readable name for a tensor: its node (``matmul_3``) or leaf name."""
        rec = self.recording
        if rec is not None and tensor_id in rec.producer:
            event = rec.events[rec.producer[tensor_id]]
            if type(event) is OpForward:
                return f"{event.op}_{event.node_id}"
            return event.name
        return f"tensor {tensor_id}"


def _at(event: Any) -> str:
    return f" at {event.source}" if getattr(event, "source", None) is not None else ""


def _count(stats: Any) -> str:
    parts = []
    if stats.nan:
        parts.append(f"{stats.nan} NaN")
    if stats.inf:
        parts.append(f"{stats.inf} Inf")
    return " and ".join(parts) or "non-finite values"
