"""The Recording: every event in order, tensor values on the host, and a cursor.

A Recording subscribes to the bus (through a Session, or ``attach``) and keeps:

- ``events``: every event, in order; ``times``: when each arrived (ns);
- host copies of the arrays each event names, under a memory cap (statistics
  are in the events, so they are kept for every tensor); ``dropped`` holds the
  ids whose copy did not fit;
- a cursor over the events, for stepping back and forth without re-executing.

>>> import core
>>> from core.debug.recording import Recording
>>> rec = Recording()
>>> with rec.attach():
...     x = core.tensor([1.0, -2.0], requires_grad=True)
...     (x * x).sum().backward()
>>> [type(e).__name__ for e in rec.events][:2]
['TensorCreated', 'OpForward']
>>> rec.grad_of(x.id).tolist()
[2.0, -4.0]
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from time import perf_counter_ns
from typing import Any

import numpy as np

from core.device import to_host
from core.observe.bus import BUS
from core.observe.events import (
    GradAccumulated,
    OpBackward,
    OpForward,
    ParameterUpdated,
    StepEnded,
    StepStarted,
    TensorCreated,
)

DEFAULT_CAP = 512 * 2**20


class Recording:
    """Events and values of one run; see the module docstring."""

    def __init__(self, cap_bytes: int = DEFAULT_CAP, meta: dict[str, Any] | None = None):
        self.cap_bytes = cap_bytes
        self.meta: dict[str, Any] = dict(meta or {})
        self.events: list[Any] = []
        self.times: list[int] = []
        self.values: dict[int, np.ndarray] = {}
        self.dropped: set[int] = set()
        self.bytes = 0
        self.cursor: int | None = None  # None: live, at the head
        self._lock = threading.Lock()
        # indexes, kept as events arrive
        self.nodes: dict[int, int] = {}  # node id -> index of its OpForward
        self.producer: dict[int, int] = {}  # tensor id -> index of the event that made it
        self.leaves: dict[int, int] = {}  # tensor id -> index of its TensorCreated
        self._grads: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self._updates: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self.steps: list[int] = []  # index of each StepStarted
        self.losses: list[tuple[int, float]] = []  # (step, loss)

    # -- capture -----------------------------------------------------------------

    def __call__(self, event: Any, arrays: dict[int, Any]) -> None:
        """Bus callback (subscribe with ``values=True``)."""
        self.add(event, arrays)

    def add(self, event: Any, arrays: dict[int, Any] | None = None, time_ns: int | None = None):
        with self._lock:
            index = len(self.events)
            self.events.append(event)
            self.times.append(perf_counter_ns() if time_ns is None else time_ns)
            for tid, array in (arrays or {}).items():
                self._keep(tid, array)
            self._index(index, event)

    def _keep(self, tid: int, array: Any) -> None:
        if tid in self.values or array is None:
            return
        nbytes = int(array.nbytes)
        if self.bytes + nbytes > self.cap_bytes:
            self.dropped.add(tid)
            return
        host = to_host(array)
        self.values[tid] = host.copy() if host is array else host
        self.bytes += nbytes

    def _index(self, index: int, event: Any) -> None:
        kind = type(event)
        if kind is OpForward:
            self.nodes[event.node_id] = index
            self.producer[event.output] = index
            if event.writes is not None:  # an in-place op: a new value of that tensor
                self._updates[event.writes].append((index, event.output))
        elif kind is OpBackward:
            out_index = self.nodes.get(event.node_id)
            if out_index is not None:
                out = self.events[out_index].output
                self._grads[out].append((index, event.grad_output))
        elif kind is GradAccumulated:
            self._grads[event.tensor_id].append((index, event.grad_id))
        elif kind is TensorCreated:
            self.leaves[event.tensor_id] = index
            self.producer[event.tensor_id] = index
        elif kind is ParameterUpdated:
            self._updates[event.tensor_id].append((index, event.value_id))
        elif kind is StepStarted:
            self.steps.append(index)
        elif kind is StepEnded and event.loss is not None:
            self.losses.append((event.step, event.loss))

    @contextlib.contextmanager
    def attach(self) -> Iterator[Recording]:
        """Record every event on the bus while the block runs."""
        unsubscribe = BUS.subscribe(self, stats=True, source=True, values=True, kernel_ops=True)
        try:
            yield self
        finally:
            unsubscribe()

    # -- the cursor ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.events)

    @property
    def position(self) -> int:
        """Index of the current event (the head when live); -1 when empty."""
        return len(self.events) - 1 if self.cursor is None else self.cursor

    @property
    def live(self) -> bool:
        return self.cursor is None

    def seek(self, index: int) -> int:
        """Move the cursor to ``index`` (clamped); the head means live again."""
        last = len(self.events) - 1
        index = max(0, min(index, last))
        self.cursor = None if index >= last else index
        return index

    def step_back(self, n: int = 1) -> int:
        return self.seek(self.position - n)

    def step_forward(self, n: int = 1) -> int:
        return self.seek(self.position + n)

    def go_live(self) -> None:
        self.cursor = None

    def current(self) -> Any:
        """The event at the cursor (None when empty)."""
        return self.events[self.position] if self.events else None

    # -- values at the cursor ----------------------------------------------------------

    def _at(self, at: int | None) -> int:
        return self.position if at is None else at

    def value(self, tensor_id: int, at: int | None = None) -> np.ndarray | None:
        """The tensor's value as of event ``at`` (default: the cursor).

        A parameter's value is the last update at or before ``at``; None when
        the value was dropped by the cap or did not exist yet.
        """
        at = self._at(at)
        made = self.producer.get(tensor_id)
        if made is None or made > at:
            return None
        updates = self._updates.get(tensor_id)
        if updates:
            i = bisect.bisect_right(updates, (at, float("inf"))) - 1
            if i >= 0:
                return self.values.get(updates[i][1])
        return self.values.get(tensor_id)

    def grad_of(self, tensor_id: int, at: int | None = None) -> np.ndarray | None:
        """The latest gradient of a tensor at or before event ``at``."""
        at = self._at(at)
        grads = self._grads.get(tensor_id)
        if not grads:
            return None
        i = bisect.bisect_right(grads, (at, float("inf"))) - 1
        return self.values.get(grads[i][1]) if i >= 0 else None

    def has_value(self, tensor_id: int) -> bool:
        return tensor_id in self.values

    # -- summaries ---------------------------------------------------------------------

    def counts(self) -> Counter:
        """Number of events of each type."""
        return Counter(type(e).__name__ for e in self.events)

    def op_times(self) -> list[tuple[str, int, int]]:
        """(op, calls, total ns) of forward ops and backward rules, slowest first."""
        total: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for e in self.events:
            if type(e) is OpForward:
                key = e.op if e.phase == "forward" else f"{e.op} ({e.phase})"
            elif type(e) is OpBackward:
                key = f"{e.op} (backward)"
            else:
                continue
            entry = total[key]
            entry[0] += 1
            entry[1] += e.duration_ns
        rows = [(op, calls, ns) for op, (calls, ns) in total.items()]
        return sorted(rows, key=lambda r: -r[2])

    def zero_grad_fraction(self, tensor_id: int, at: int | None = None) -> float | None:
        """Fraction of exactly-zero entries in a tensor's gradient (dead units)."""
        g = self.grad_of(tensor_id, at)
        if g is None or g.size == 0:
            return None
        return float(np.count_nonzero(g == 0) / g.size)
