"""The bus: delivers events to subscribers, synchronously, in the emitting thread.

>>> from core.observe.events import StepStarted
>>> seen = []
>>> unsubscribe = BUS.subscribe(seen.append)
>>> BUS.emit(StepStarted(step=0))
>>> unsubscribe()
>>> seen
[StepStarted(step=0)]
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any


class Bus:
    """Delivers events to subscribers, synchronously, in the emitting thread.

    The engine reads ``active``, ``want_stats``, ``want_source`` and
    ``want_values`` before it builds anything, so emitting with no subscriber
    costs one attribute read.

    A subscriber that raises an ``Exception`` is the subscriber's bug, not the
    emitting program's: it is unsubscribed, ``on_error(callback, exc)`` is told
    (by default, one report on stderr), and the other subscribers and the program
    go on. A ``BaseException`` that is not an ``Exception`` (a debugger's stop
    request) goes through to the emitting code.

    >>> bus = Bus()
    >>> bus.on_error = lambda callback, exc: print("failed:", exc)
    >>> def broken(event):
    ...     raise ValueError("listener bug")
    >>> _ = bus.subscribe(broken)
    >>> bus.emit("an event"); bus.active
    failed: listener bug
    False
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[tuple[Callable[..., None], bool, bool, bool, bool, bool, bool]] = []
        self.active = False
        self.want_stats = False
        self.want_source = False
        self.want_values = False
        self.want_backward_ops = False
        self.want_sync = False
        self.want_kernel_ops = False
        self.on_error: Callable[[Callable[..., None], Exception], None] = _report

    def subscribe(
        self,
        callback: Callable[..., None],
        *,
        stats: bool = False,
        source: bool = False,
        values: bool = False,
        backward_ops: bool = False,
        sync: bool = False,
        kernel_ops: bool = False,
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns the unsubscribe function.

        ``stats`` and ``source`` ask the engine to fill ``Stats`` and ``Source``.
        With ``values=True`` the callback is called as ``callback(event, arrays)``,
        ``arrays`` mapping tensor id to the live array (NumPy or CuPy) of every
        tensor the event names; it is valid only during the call, so copy what
        you keep. ``backward_ops`` adds an ``OpForward`` (phase "backward") for
        each op a gradient rule runs, beside the ``OpBackward`` of its node.
        ``sync`` (a profiler's) waits for the GPU before and after each timed op,
        so ``duration_ns`` is the op's run, not its asynchronous launch.
        ``kernel_ops`` (a debugger's) tells a compiled step's calls op by op:
        before each ``KernelRun``, an ``OpForward`` for every op the kernel
        covers (see ``core.deferred.narrate``).
        """
        entry = (callback, stats, source, values, backward_ops, sync, kernel_ops)
        with self._lock:
            self._subs = [*self._subs, entry]
            self._refresh()

        def unsubscribe() -> None:
            with self._lock:
                self._subs = [s for s in self._subs if s is not entry]
                self._refresh()

        return unsubscribe

    def _refresh(self) -> None:
        self.active = bool(self._subs)
        self.want_stats = any(s[1] for s in self._subs)
        self.want_source = any(s[2] for s in self._subs)
        self.want_values = any(s[3] for s in self._subs)
        self.want_backward_ops = any(s[4] for s in self._subs)
        self.want_sync = any(s[5] for s in self._subs)
        self.want_kernel_ops = any(s[6] for s in self._subs)

    def emit(self, event: Any, arrays: dict[int, Any] | None = None) -> None:
        for entry in self._subs:  # inlined: the hot path of every recorded op
            try:
                if entry[3]:
                    entry[0](event, arrays or {})
                else:
                    entry[0](event)
            except Exception as exc:
                self._failed(entry, exc)

    def emit_backward_op(self, event: Any, arrays: dict[int, Any] | None = None) -> None:
        """``emit``, to the subscribers that asked for the backward's own ops."""
        self._deliver([s for s in self._subs if s[4]], event, arrays)

    def _deliver(self, subs: list[tuple], event: Any, arrays: dict[int, Any] | None) -> None:
        for entry in subs:
            callback, values = entry[0], entry[3]
            try:
                if values:
                    callback(event, arrays or {})
                else:
                    callback(event)
            except Exception as exc:
                self._failed(entry, exc)

    def _failed(self, entry: tuple, exc: Exception) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s is not entry]
            self._refresh()
        self.on_error(entry[0], exc)


def _report(callback: Callable[..., None], exc: Exception) -> None:
    """Tell the user that an event subscriber failed and was unsubscribed."""
    name = getattr(callback, "__qualname__", None) or repr(callback)
    text = "".join(traceback.format_exception(exc)).rstrip()
    print(
        f"gradstep: event subscriber {name} failed and was unsubscribed:\n{text}", file=sys.stderr
    )


BUS = Bus()
