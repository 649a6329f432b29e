"""The Recording: every event in order, tensor values on the host, and a cursor.

A Recording subscribes to the bus (through a Session, or ``attach``) and keeps:

- ``events``: every event, in order; ``times``: when each arrived (ns);
- host copies of the arrays each event names; ``dropped`` holds the ids whose
  copy is not kept;
- a cursor over the events, for stepping back and forth without re-executing.

The memory cap (``cap_bytes``) bounds values and events together; events are
counted at an estimate of what one holds with its indexes (``EVENT_BYTES``).
Over the cap, the oldest steps give way first and the two newest steps (the
one running and the last complete one) are always kept:

1. their values go (statistics stay: they are in the events);
2. then their detail: each event of an old step but its ``StepStarted`` and
   ``StepEnded`` becomes ``DROPPED``, so indexes stay where they were and the
   step's loss stays in ``losses``.

``capped`` turns true the first time; ``cap_note()`` says it in a sentence. What
an old step keeps, its two summary events and the slots of its dropped events in
``events`` and ``times`` (``SLOT_BYTES`` each), is outside the cap: it cannot be
given back.

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
import ctypes
import ctypes.util
import functools
import sys
import threading
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from time import perf_counter_ns
from typing import Any

import numpy as np

from core.debug.summary import op_key
from core.device import to_host
from core.observe.bus import BUS
from core.observe.events import (
    BackwardStarted,
    GradAccumulated,
    OpBackward,
    OpForward,
    ParameterUpdated,
    StepEnded,
    StepStarted,
    TensorCreated,
)

DEFAULT_CAP = 512 * 2**20
# host memory of one event with its slots in the indexes, measured with tracemalloc
# on mlp_moons.py (484 bytes on average, statistics and source included)
EVENT_BYTES = 480
SLOT_BYTES = 16  # what a dropped event still costs (its list slot and its time), outside
# the cap: it cannot be given back, and counting it would starve the newest steps
_SUMMARY = (StepStarted, StepEnded)  # what stays of a step whose detail is dropped
KEPT_STEPS = 2  # the running step and the last complete one keep everything
TRIM_EVERY = 64 * 2**20  # after dropping this much, the freed memory goes back to the OS


def give_back_freed_memory() -> bool:
    """Return the heap's free pages to the OS (glibc ``malloc_trim``); False elsewhere.

    The app keeps freed memory in the heap for speed (``core.memory``), so what the
    cap drops would stay in the process's resident size without this.
    """
    trim = _malloc_trim()
    return bool(trim is not None and trim(0))


@functools.cache
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes = (ctypes.c_size_t,)
    return trim


class _Dropped:
    """What stands in for an event whose detail the memory cap dropped."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DROPPED"


DROPPED = _Dropped()


class Recording:
    """Events and values of one run; see the module docstring."""

    def __init__(
        self,
        cap_bytes: int = DEFAULT_CAP,
        meta: dict[str, Any] | None = None,
        *,
        bounded: bool = True,
    ):
        self.cap_bytes = cap_bytes  # may be changed while a run records
        self.meta: dict[str, Any] = dict(meta or {})
        self.events: list[Any] = []
        self.times = array("q")
        self.values: dict[int, np.ndarray] = {}
        self.dropped: set[int] = set()
        self.bytes = 0  # of kept values
        self.event_bytes = 0  # estimated, of the events whose detail is kept
        self.capped = False  # the cap made the recording drop something
        self.bounded = bounded  # False: keep everything (a loaded file)
        self.cursor: int | None = None  # None: live, at the head
        self._lock = threading.Lock()
        self._step_values: list[list[int]] = []  # ids of the values each step kept
        self._values_from = 0  # steps before this one have no values left
        self._detail_from = 0  # steps before this one have no detail left
        self._freed = 0  # bytes the cap dropped since memory was last given back
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
            self._index(index, event)
            cost = EVENT_BYTES
            if type(event) is BackwardStarted:
                cost += 8 * len(event.nodes)
            self.event_bytes += cost
            for tid, value in (arrays or {}).items():
                self._keep(tid, value)
            if self.bounded and self.bytes + self.event_bytes > self.cap_bytes:
                self._shrink(0)

    def extend(self, items: Iterable[tuple[Any, int]]) -> None:
        """Take in ``(event, arrival time in ns)`` pairs read back from a file: indexed
        as ``add`` would, with no values and no cap (a loaded recording keeps all)."""
        with self._lock:
            events, times, index_of = self.events, self.times, self._index
            for event, t in items:
                events.append(event)
                times.append(t)
                index_of(len(events) - 1, event)
            self.event_bytes = EVENT_BYTES * len(events)

    def _keep(self, tid: int, value: Any) -> None:
        if tid in self.values or value is None:
            return
        nbytes = int(value.nbytes)
        if self.bounded and self.bytes + self.event_bytes + nbytes > self.cap_bytes:
            self._shrink(nbytes)
            if self.bytes + self.event_bytes + nbytes > self.cap_bytes:
                self.capped = True
                self.dropped.add(tid)
                if self._step_values:  # forgotten with the step's detail
                    self._step_values[-1].append(tid)
                return
        host = to_host(value)
        self.values[tid] = host.copy() if host is value else host
        self.bytes += nbytes
        if self._step_values:
            self._step_values[-1].append(tid)

    # -- the cap ---------------------------------------------------------------------

    def _shrink(self, need: int) -> None:
        """Drop the oldest steps' values, then their detail, until ``need`` more fits."""
        limit = self.cap_bytes - need
        kept = len(self.steps) - KEPT_STEPS
        before = self.bytes + self.event_bytes
        while self.bytes + self.event_bytes > limit:
            if self._values_from < kept:
                self._drop_values(self._values_from)
                self._values_from += 1
            elif self._detail_from < min(kept, self._values_from):
                self._drop_detail(self._detail_from)
                self._detail_from += 1
            else:
                break
            self.capped = True
        self._freed += before - self.bytes - self.event_bytes
        if self._freed > TRIM_EVERY:
            self._freed = 0
            give_back_freed_memory()

    def _drop_values(self, step: int) -> None:
        values = self.values
        for tid in self._step_values[step]:
            value = values.pop(tid, None)
            if value is not None:
                self.bytes -= int(value.nbytes)
                self.dropped.add(tid)

    def _drop_detail(self, step: int) -> None:
        start = self.steps[step]
        stop = self.steps[step + 1]
        events = self.events
        touched = set()
        for i in range(start, stop):
            event = events[i]
            kind = type(event)
            if event is DROPPED:
                continue
            self.event_bytes -= EVENT_BYTES  # the summary that stays is outside the cap
            if kind in _SUMMARY:
                continue
            self._unindex(i, event, touched)
            events[i] = DROPPED
            if kind is BackwardStarted:
                self.event_bytes -= 8 * len(event.nodes)
        for table in (self._grads, self._updates):
            for tid in touched:
                entries = table.get(tid)
                if entries:
                    del entries[: bisect.bisect_left(entries, (stop,))]
                    if not entries:
                        del table[tid]
        self.dropped.difference_update(self._step_values[step])
        self._step_values[step] = []

    def _unindex(self, index: int, event: Any, touched: set[int]) -> None:
        kind = type(event)
        if kind is OpForward:
            if self.nodes.get(event.node_id) == index:
                del self.nodes[event.node_id]
            if self.producer.get(event.output) == index:
                del self.producer[event.output]
            touched.add(event.output)
        elif kind is TensorCreated:
            if self.producer.get(event.tensor_id) == index:
                del self.producer[event.tensor_id]
                self.leaves.pop(event.tensor_id, None)
            touched.add(event.tensor_id)
        elif kind is GradAccumulated or kind is ParameterUpdated:
            touched.add(event.tensor_id)

    @property
    def detail_start(self) -> int:
        """Index of the first event of the oldest step that keeps its detail."""
        if self._detail_from == 0 or not self.steps:
            return 0
        if self._detail_from >= len(self.steps):
            return len(self.events)
        return self.steps[self._detail_from]

    def cap_note(self) -> str:
        """The sentence that tells a user the cap was reached."""
        return (
            f"the recording reached its memory cap ({self.cap_bytes / 2**20:.0f} MiB): "
            "the oldest steps' values, then their events, are dropped as the run goes "
            f"on; the newest {KEPT_STEPS} steps, every step's loss and the statistics "
            "of the events kept stay"
        )

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
            self._step_values.append([])
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

    def containers(self) -> tuple[Any, ...]:
        """The lists and dicts that hold almost all it keeps (events, values, the
        indexes over them): for whoever empties a recording no one reads any more
        a slice at a time (``app.retire``) rather than freeing it all at once."""
        return (self.events, self.values, self.nodes, self.producer, self.leaves, self._step_values)

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
        if made is None or made > at or self._dropped_at(at):
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
        if not grads or self._dropped_at(at):
            return None
        i = bisect.bisect_right(grads, (at, float("inf"))) - 1
        return self.values.get(grads[i][1]) if i >= 0 else None

    def _dropped_at(self, at: int) -> bool:
        """Whether event ``at`` lies in a step whose detail the cap dropped."""
        return (
            self._detail_from > 0 and bool(self.steps) and self.steps[0] <= at < (self.detail_start)
        )

    def has_value(self, tensor_id: int) -> bool:
        return tensor_id in self.values

    # -- summaries ---------------------------------------------------------------------

    def program_source(self) -> tuple[str, str] | None:
        """(path, text) of the program this recording ran, as the recording stored it.

        A viewer shows this text, never a file read from the path a recording file
        names (a recording is untrusted input: its path may be any file). None for
        a recording without its source (written before sources were stored).

        >>> Recording(meta={"program": "/p.py", "source": "x = 1\\n"}).program_source()
        ('/p.py', 'x = 1\\n')
        """
        path, text = self.meta.get("program"), self.meta.get("source")
        if isinstance(path, str) and isinstance(text, str):
            return path, text
        return None

    def counts(self) -> Counter:
        """Number of events of each type (events the cap dropped are not counted)."""
        return Counter(type(e).__name__ for e in self.events if e is not DROPPED)

    def op_times(self) -> list[tuple[str, int, int]]:
        """(op, calls, total ns) of forward ops, backward rules and compiled
        kernels, slowest first."""
        total: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for e in self.events:
            key = op_key(e)
            if key is None:
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
