"""What a run's summary needs, kept as events go by, in memory that does not grow.

``gradstep run`` without ``--record`` keeps no Recording: a ``RunSummary`` listens
to the session's events and keeps counts, the last loss and each op's total time.

>>> from core.observe.events import StepEnded, StepStarted
>>> summary = RunSummary()
>>> for step in range(3):
...     summary.add(StepStarted(step=step))
...     summary.add(StepEnded(step=step, loss=1.0 / (step + 1)))
>>> summary.steps, round(summary.last_loss, 3), summary.events
(3, 0.333, 6)
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from core.observe.events import KernelRun, OpBackward, OpForward, StepEnded


class RunSummary:
    """Event counts, the last loss and op times of a run; see the module docstring."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.events = 0
        self.steps = 0
        self.last_loss: float | None = None
        self._ops: dict[str, list[int]] = {}

    def add(self, event: Any) -> None:
        """Take in one event (an ``on_event`` listener)."""
        kind = type(event)
        self.events += 1
        self.counts[kind.__name__] += 1
        key = op_key(event)
        if key is None:
            if kind is StepEnded:
                self.steps += 1
                if event.loss is not None:
                    self.last_loss = event.loss
            return
        entry = self._ops.get(key)
        if entry is None:
            entry = self._ops[key] = [0, 0]
        entry[0] += 1
        entry[1] += event.duration_ns

    def op_times(self) -> list[tuple[str, int, int]]:
        """(op, calls, total ns), slowest first, as ``Recording.op_times``."""
        rows = [(op, calls, ns) for op, (calls, ns) in self._ops.items()]
        return sorted(rows, key=lambda r: -r[2])


def op_key(event: Any) -> str | None:
    """The row an event's time goes to in a table of op times: an op by label and
    phase, a gradient rule, a compiled kernel; None for any other event (and for
    a compiled kernel's ops as a debugger is told them: the kernel has the time)."""
    kind = type(event)
    if kind is OpForward:
        if event.kernel is not None:
            return None
        return event.op if event.phase == "forward" else f"{event.op} ({event.phase})"
    if kind is OpBackward:
        return f"{event.op} (backward)"
    if kind is KernelRun:
        return f"{event.name} (kernel)"
    return None
