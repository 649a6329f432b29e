"""Profiling a program: where the time of a training step goes, eager or
compiled, on the CPU or the GPU.

A run builds the program, runs warm-up steps (the compiled step traces on the
first), times steps with nothing listening (``step_ms``), then profiles a few
more with a subscriber that asks the GPU to be waited for around each op.
Each op or kernel is charged the wall time since the event before it (its
"self" time, dispatch included), so the rows add up to the step; ``run_ms`` is
the time around its computation alone. Spreads are over steps: median, p10,
p90. Peak memory comes from one more step under ``tracemalloc`` (host) and
CuPy's memory pool (GPU).

>>> report = profile_run("samples/neuron.py", steps=4, warmup=1, profiled=2)
>>> report.mode, report.device, report.count > 0
('eager', 'cpu', True)
>>> report.coverage > 0.5  # the ops' times account for the step
True
"""

from __future__ import annotations

import statistics
import tracemalloc
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from time import perf_counter_ns
from typing import Any

import numpy as np

from core import cuda
from core.debug import program as programs
from core.deferred.api import compile as compile_step
from core.device import synchronize
from core.engine.dispatch import reset_ids
from core.errors import GradstepError
from core.observe.bus import BUS
from core.observe.events import KernelRun, OpBackward, OpForward

MODES = ("eager", "compiled")


class ProfileCancelled(GradstepError):
    """The user stopped a profile before it finished."""


@dataclass(frozen=True)
class Spread:
    """A time over steps, in ms: median and the 10th and 90th percentiles."""

    median: float
    p10: float
    p90: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:
            return cls(0.0, 0.0, 0.0)
        ordered = sorted(values)
        pick = lambda q: ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]  # noqa: E731
        return cls(statistics.median(ordered), pick(0.1), pick(0.9))


@dataclass(frozen=True)
class OpRow:
    name: str  # an op ("matmul", "tanh (backward)") or a compiled kernel ("fused_tanh")
    calls: float  # per step
    self_ms: Spread  # wall time charged to it per step (dispatch included)
    run_ms: Spread  # time around its computation per step


@dataclass
class RunProfile:
    """One cell of the matrix: a program in one mode on one device."""

    program: str
    title: str
    device: str
    mode: str
    steps: int = 0
    warmup: int = 0
    step_ms: Spread = field(default_factory=lambda: Spread(0.0, 0.0, 0.0))
    profiled_step_ms: Spread = field(default_factory=lambda: Spread(0.0, 0.0, 0.0))
    coverage: float = 0.0  # median over profiled steps of (sum of op times) / (step time)
    ops: list[OpRow] = field(default_factory=list)
    by_scope: dict[str, float] = field(default_factory=dict)  # median ms per step
    by_phase: dict[str, float] = field(default_factory=dict)
    count: int = 0  # ops (eager) or kernels (compiled) per step
    peak_host_bytes: int = 0
    peak_device_bytes: int | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)  # one step
    unavailable: str | None = None  # why the run did not happen (no GPU)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[int, int, str], None]


def profile_run(
    path: str,
    device: str = "cpu",
    mode: str = "eager",
    steps: int = 20,
    warmup: int = 3,
    profiled: int = 5,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> RunProfile:
    """Profile ``path``'s step; see the module docstring."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; one of {MODES}")
    program = programs.load(path)
    report = RunProfile(program.path, program.title, device, mode, steps, warmup)
    if device == "cuda" and not cuda.is_available():
        report.unavailable = cuda.unavailable_reason()
        return report
    reset_ids()
    run = program.build(device)
    step = compile_step(run.step) if mode == "compiled" else run.step
    counter = iter(range(10**9))

    def one() -> None:
        i = next(counter)
        step(run.batches(i)) if run.batches is not None else step()

    total = warmup + steps + profiled + 1
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if cancelled is not None and cancelled():
            raise ProfileCancelled(f"profile of {program.path} cancelled")
        if progress is not None:
            progress(done, total, label)

    with np.errstate(all="ignore"):
        for _ in range(warmup):
            one()
            tick("warming up")
        times = []
        for _ in range(steps):
            start = perf_counter_ns()
            one()
            synchronize(device)
            times.append((perf_counter_ns() - start) / 1e6)
            tick("timing")
        report.step_ms = Spread.of(times)
        _profile_steps(report, one, profiled, device, tick)
        report.peak_host_bytes, report.peak_device_bytes = _peaks(one, device)
        tick("memory")
    return report


def _profile_steps(report: RunProfile, one, count: int, device: str, tick) -> None:
    """Per-op self and run times over ``count`` steps, by op, scope and phase."""
    per_step: list[list[tuple]] = []
    walls: list[float] = []
    for _ in range(count):
        seen: list[tuple] = []

        def listen(event: Any, seen: list = seen) -> None:
            seen.append((perf_counter_ns(), event))

        unsubscribe = BUS.subscribe(listen, backward_ops=True, sync=True)
        start = perf_counter_ns()
        try:
            one()
            synchronize(device)
        finally:
            unsubscribe()
        end = perf_counter_ns()
        walls.append((end - start) / 1e6)
        per_step.append(_charges(seen, start))
        tick("profiling")
    report.profiled_step_ms = Spread.of(walls)
    report.coverage = statistics.median(
        sum(row[1] for row in charges) / wall for charges, wall in zip(per_step, walls)
    )
    report.ops = _rows(per_step)
    report.count = int(statistics.median(len(s) for s in per_step)) if per_step else 0
    for key, table in (("scope", report.by_scope), ("phase", report.by_phase)):
        totals: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(per_step))
        for i, charges in enumerate(per_step):
            for row in charges:
                totals[row[3] if key == "scope" else row[4]][i] += row[1]
        table.update({k: statistics.median(v) for k, v in totals.items()})
    if per_step:
        report.timeline = [
            {"name": n, "start_ms": s, "ms": ms, "scope": sc, "phase": ph}
            for n, ms, _run, sc, ph, s in per_step[-1]
        ]


def _charges(seen: list[tuple], start: int) -> list[tuple]:
    """(name, self ms, run ms, scope, phase, start ms) per op or kernel event."""
    out = []
    previous = start
    for arrived, e in seen:
        kind = type(e)
        if kind is OpForward and e.kernel is not None:
            continue  # a debugger's account of a kernel's ops: the kernel is the row
        if kind is OpForward:
            name = e.op if e.phase == "forward" else f"{e.op} ({e.phase})"
            row = (name, e.duration_ns, e.scope, e.phase)
        elif kind is OpBackward:
            row = (f"{e.op} (backward rule)", e.duration_ns, "", "backward")
        elif kind is KernelRun:
            row = (e.name, e.duration_ns, e.scope, e.phase)
        else:
            continue
        self_ms = (arrived - previous) / 1e6
        out.append((row[0], self_ms, row[1] / 1e6, row[2], row[3], (previous - start) / 1e6))
        previous = arrived
    return out


def _rows(per_step: list[list[tuple]]) -> list[OpRow]:
    names = {row[0] for charges in per_step for row in charges}
    rows = []
    for name in names:
        selfs, runs, calls = [], [], []
        for charges in per_step:
            mine = [r for r in charges if r[0] == name]
            selfs.append(sum(r[1] for r in mine))
            runs.append(sum(r[2] for r in mine))
            calls.append(len(mine))
        rows.append(OpRow(name, statistics.mean(calls), Spread.of(selfs), Spread.of(runs)))
    return sorted(rows, key=lambda r: -r.self_ms.median)


def _peaks(one, device: str) -> tuple[int, int | None]:
    pool = None
    if device == "cuda":
        pool = cuda_pool()
        pool.free_all_blocks()
    tracemalloc.start()
    try:
        one()
        synchronize(device)
        host = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return host, (pool.total_bytes() if pool is not None else None)


def cuda_pool() -> Any:
    from core.device import xp_for

    return xp_for("cuda").get_default_memory_pool()


def profile_matrix(
    path: str,
    devices: tuple[str, ...] = ("cpu", "cuda"),
    modes: tuple[str, ...] = MODES,
    steps: int = 20,
    warmup: int = 3,
    profiled: int = 5,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[RunProfile]:
    """One ``RunProfile`` per device and mode (a GPU run without a GPU says why)."""
    cells = [(d, m) for d in devices for m in modes]
    out = []
    for i, (device, mode) in enumerate(cells):
        label = f"{mode} on {device}"

        def each(done: int, total: int, what: str, i=i, label=label) -> None:
            if progress is not None:
                progress(i * total + done, len(cells) * total, f"{label}: {what}")

        out.append(profile_run(path, device, mode, steps, warmup, profiled, each, cancelled))
    return out


def chrome_trace(profiles: list[RunProfile]) -> dict[str, Any]:
    """Each run's profiled step as its own process in a Chrome trace."""
    events: list[dict[str, Any]] = []
    tracks = {"forward": 1, "backward": 2, "update": 3}
    for pid, p in enumerate(profiles, start=1):
        label = f"{p.title}: {p.mode} on {p.device}"
        events.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": label}})
        for name, tid in tracks.items():
            events.append(
                {"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}
            )
        for op in p.timeline:
            events.append(
                {
                    "name": op["name"],
                    "ph": "X",
                    "pid": pid,
                    "tid": tracks.get(op["phase"], 1),
                    "ts": op["start_ms"] * 1e3,
                    "dur": op["ms"] * 1e3,
                    "args": {"scope": op["scope"]},
                }
            )
    return {"traceEvents": events, "displayTimeUnit": "ms"}
