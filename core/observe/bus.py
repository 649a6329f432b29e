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

import threading
from collections.abc import Callable
from typing import Any


class Bus:
    """Delivers events to subscribers, synchronously, in the emitting thread.

    The engine reads ``active``, ``want_stats``, ``want_source`` and
    ``want_values`` before it builds anything, so emitting with no subscriber
    costs one attribute read.
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
        for callback, _stats, _source, values, _backward, _sync, _ops in self._subs:
            if values:
                callback(event, arrays or {})
            else:
                callback(event)

    def emit_backward_op(self, event: Any, arrays: dict[int, Any] | None = None) -> None:
        """``emit``, to the subscribers that asked for the backward's own ops."""
        for callback, _stats, _source, values, backward, _sync, _ops in self._subs:
            if not backward:
                continue
            if values:
                callback(event, arrays or {})
            else:
                callback(event)


BUS = Bus()
