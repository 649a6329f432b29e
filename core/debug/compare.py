"""Eager against compiled: what compiling a program's step changed.

``compare`` builds the program twice from the same seed and runs its step
eagerly in one and through ``core.compile`` in the other, step by step, and
measures how far apart they are: the loss, every parameter's gradient and
every parameter after the update (max absolute and relative difference over
the steps). It also keeps what the compiler did: the passes' reports, the
retraces and the guards that failed, and where each traced eager op went
(``mapping``).

>>> result = compare("samples/neuron.py", steps=3)
>>> result.ok, result.rows[0].name
(True, 'loss')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.debug import program as programs
from core.deferred.api import Compiled
from core.deferred.api import compile as compile_step
from core.engine.creation import manual_seed
from core.engine.dispatch import reset_ids

RTOL = 1e-5  # float32 work, reordered by fusion: agreement within this is agreement
ATOL = 1e-6


@dataclass
class Agreement:
    """How far compiled is from eager on one quantity, over the steps run."""

    name: str  # "loss", "grad fc1.weight", "fc1.weight"
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst_step: int = 0
    nan_mismatch: bool = False  # NaN in one run where the other has a number

    def ok(self, rtol: float = RTOL, atol: float = ATOL) -> bool:
        return not self.nan_mismatch and self.max_abs <= atol + rtol * max(self.max_abs_ref, 0.0)

    max_abs_ref: float = 0.0  # the largest eager magnitude seen (for the tolerance)


@dataclass
class Comparison:
    program: str
    steps: int
    rows: list[Agreement] = field(default_factory=list)
    retraces: list[str] = field(default_factory=list)
    graphs: int = 0
    entry: Compiled | None = None  # the compiled graph of the last trace
    mapping: dict[int, tuple] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # traced state -> the program's name

    @property
    def ok(self) -> bool:
        return all(row.ok() for row in self.rows)


def compare(path: str, steps: int = 10, device: str = "cpu") -> Comparison:
    """Run ``path`` eagerly and compiled for ``steps`` steps; see the module docstring."""
    program = programs.load(path)
    eager_run, compiled_run = (_fresh(program, device) for _ in range(2))
    compiled = compile_step(compiled_run.step)
    result = Comparison(program.path, steps)
    rows: dict[str, Agreement] = {}
    with np.errstate(all="ignore"):
        for i in range(steps):
            want = _step(eager_run, eager_run.step, i)
            got = _step(compiled_run, compiled, i)
            for name, (a, b) in _pair(want, got).items():
                agree(rows.setdefault(name, Agreement(name)), a, b, i)
    result.rows = list(rows.values())
    result.retraces = list(compiled.retraces)
    result.graphs = len(compiled.graphs)
    if compiled.graphs:
        result.entry = compiled.latest
        result.mapping = mapping(compiled.latest)
        by_id = {p.id: name for name, p in compiled_run.named_parameters()}
        result.names = {
            state: by_id[t.id] for state, t in result.entry.trace.state.items() if t.id in by_id
        }
    return result


def _fresh(program: programs.Program, device: str) -> programs.Run:
    reset_ids()
    manual_seed(0)  # a program that seeds itself does so again inside build
    return program.build(device)


def _step(run: programs.Run, step, i: int) -> dict[str, Any]:
    loss = step(run.batches(i)) if run.batches is not None else step()
    out = {"loss": np.asarray(loss.numpy() if hasattr(loss, "numpy") else loss, np.float64)}
    for name, p in run.named_parameters():
        if p.grad is not None:
            out[f"grad {name}"] = p.grad.numpy().astype(np.float64)
        out[name] = p.numpy().astype(np.float64)
    return out


def _pair(want: dict, got: dict) -> dict[str, tuple]:
    return {name: (want[name], got.get(name)) for name in want}


def agree(row: Agreement, want: np.ndarray, got: np.ndarray | None, step: int) -> None:
    """Take step ``step``'s eager ``want`` and compiled ``got`` (float64) into ``row``."""
    if got is None or got.shape != want.shape:
        row.nan_mismatch = True
        return
    nan = np.isnan(want) != np.isnan(got)
    if nan.any():
        row.nan_mismatch = True
    both = ~(np.isnan(want) | np.isnan(got))
    if not both.any():
        return
    diff = np.abs(want[both] - got[both])
    diff = np.where(np.isinf(want[both]) & (want[both] == got[both]), 0.0, diff)
    worst = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(want[both][np.isfinite(want[both])]).max(initial=0.0))
    rel = worst / scale if scale > 0 else (0.0 if worst == 0 else math.inf)
    if worst > row.max_abs:
        row.max_abs, row.worst_step = worst, step
    row.max_rel = max(row.max_rel, rel)
    row.max_abs_ref = max(row.max_abs_ref, scale)


def mapping(entry: Compiled) -> dict[int, tuple]:
    """Each eager op of the traced call (by node id) and where it went:
    ``("kernel", index, name)`` (recomputed ones name their first kernel and
    list the others), ``("merged", node id, pass)`` into an equal op, or
    ``("removed", pass, why)``."""
    covered: dict[int, list[int]] = {}
    for kernel in entry.program.kernels:
        for origin in kernel.covers:
            covered.setdefault(origin, []).append(kernel.index)
    removed: dict[int, tuple] = {}
    merged: dict[int, tuple] = {}
    for report in entry.reports:
        for origin in report.removed:
            removed.setdefault(origin, ("removed", report.name, _why(report.name)))
        for origin, other in report.merged.items():
            merged.setdefault(origin, ("merged", other, report.name))
    out: dict[int, tuple] = {}
    for node in entry.trace.graph.ops:
        origin = node.origin
        if origin in covered:
            first, *others = covered[origin]
            out[origin] = ("kernel", first, entry.program.kernels[first].name, tuple(others))
        elif origin in merged:
            out[origin] = merged[origin]
        else:
            out[origin] = removed.get(origin, ("removed", "unknown", "not in the compiled graph"))
    return out


def _why(name: str) -> str:
    return {
        "dce": "its value was never used",
        "fold": "computed once from constants",
        "cse": "the same as an earlier op",
    }.get(name, name)
