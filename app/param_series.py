"""Per-parameter series over steps, read from a Recording (Qt-free): the norm of
each parameter's gradient, and the size of each update against the parameter
(``|Δw| / |w|``, what ``exploding.py`` asks to compare).

``ParamSeries.take(rec, stop, budget_s)`` reads new events up to ``stop`` in
slices of at most ``budget_s`` (the ratio needs the parameter's values before
and after, so it costs a pass over the parameter) and says whether it caught up.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np

from core.debug.recording import Recording
from core.observe.events import GradAccumulated, ParameterUpdated, StepStarted

METRICS = ("gradient norm", "update / weight")


class ParamSeries:
    """(steps, values) per parameter, for each metric in METRICS."""

    def __init__(self) -> None:
        self.read = 0  # events taken in
        self.step = -1
        # metric -> parameter -> {step: value} (the last value of a step wins)
        self.data: dict[str, dict[str, dict[int, float]]] = {m: defaultdict(dict) for m in METRICS}

    def take(self, rec: Recording, stop: int | None = None, budget_s: float = 0.01) -> bool:
        """Read events [read, stop); True when all were read within the budget."""
        stop = len(rec.events) if stop is None else stop
        began = time.perf_counter()
        events = rec.events
        while self.read < stop:
            i = self.read
            event = events[i]
            kind = type(event)
            if kind is StepStarted:
                self.step = event.step
            elif kind is GradAccumulated and event.stats is not None:
                self.data["gradient norm"][event.name][self.step] = event.stats.norm
            elif kind is ParameterUpdated:
                # the value changed at the in-place op that wrote it, before this event
                ratio = update_ratio_at(rec, event, i)
                if ratio is not None:
                    self.data["update / weight"][event.name][self.step] = ratio
            self.read = i + 1
            if kind is ParameterUpdated and time.perf_counter() - began > budget_s:
                break
        return self.read >= stop

    def series(self, metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """parameter -> (steps, values), steps ascending."""
        out = {}
        for name, points in self.data[metric].items():
            steps = np.fromiter(points.keys(), np.int64, len(points))
            values = np.fromiter(points.values(), np.float64, len(points))
            order = np.argsort(steps)
            out[name] = (steps[order], values[order])
        return out


def update_ratio_at(rec: Recording, event: ParameterUpdated, index: int) -> float | None:
    """``|new - old| / |old|`` of the update ``event`` (at ``index``): the value
    changed at the in-place op that wrote it, before the event (compared at the
    event itself, old and new are the same value); None when a value was not kept."""
    written = rec.producer.get(event.value_id, index)
    old, new = rec.value(event.tensor_id, written - 1), rec.value(event.tensor_id, written)
    if old is None or new is None:
        return None
    with np.errstate(all="ignore"):
        size = float(np.linalg.norm(old.astype(np.float64, copy=False)))
        step = float(np.linalg.norm(new.astype(np.float64) - old))
    return step / size if size > 0 else float("inf")
