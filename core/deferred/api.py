"""``core.compile``: a training step as a static graph ("define then run").

The first call runs the step eagerly under the tracer and records its graph;
the passes optimize it; the code generator turns it into Python. Later calls
run that code, guarded: a call whose inputs, state or data-dependent
decisions differ from the traced ones runs eagerly instead and is traced
again (a few graphs are kept).

>>> import core
>>> from core import nn, optim
>>> import core.functional as F
>>> core.manual_seed(0)
>>> model = nn.Linear(3, 1)
>>> opt = optim.SGD(model.parameters(), lr=0.1)
>>> x, y = core.randn(8, 3), core.randn(8, 1)
>>> def step(x, y):
...     opt.zero_grad()
...     loss = F.mse_loss(model(x), y)
...     loss.backward()
...     opt.step()
...     return loss
>>> compiled = core.compile(step)
>>> first = compiled(x, y).item()   # traced, run eagerly
>>> second = compiled(x, y).item()  # the generated code
>>> second < first, len(compiled.graphs)
(True, 1)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

from core.deferred import codegen, passes
from core.deferred.graph import Graph
from core.deferred.interpret import GuardFailed
from core.deferred.narrate import Narrator, run_told
from core.deferred.runtime import Bound, flatten
from core.deferred.tracer import Trace, trace
from core.observe.bus import BUS
from core.observe.events import PassApplied, StepRetraced


@dataclass
class Compiled:
    """One traced graph, optimized, generated and bound."""

    trace: Trace  # the graph as traced, and the tensors it binds
    graph: Graph  # after the passes
    reports: list[passes.Report]  # what each pass changed
    program: codegen.Program  # the generated code
    bound: Bound
    trace_ns: int  # time to trace (the eager call included)
    compile_ns: int  # time for the passes and code generation
    calls: int = 0
    _narrator: Any = None

    def run(self, leaves: list) -> Any:
        """One call of the generated code (or the interpreter), told op by op
        when a debugger listens (``core.deferred.narrate``)."""
        if self.bound.program is None or not BUS.want_kernel_ops:
            return self.bound.run(leaves)
        return run_told(self.bound, self.narrator(), leaves)

    @property
    def merged(self) -> dict[int, int]:
        """Traced node id -> the node common-subexpression elimination kept for it."""
        return {old: new for r in self.reports for old, new in r.merged.items()}

    def narrator(self) -> Any:
        if self._narrator is None:
            self._narrator = Narrator(
                self.trace.graph,
                self.graph,
                self.merged,
                self.program.kernels,
                self.trace.state,
                self.trace.grad_owners,
                self.bound.device,
            )
        return self._narrator


@dataclass
class CompiledStep:
    """A step function compiled on its first call; see the module docstring."""

    step: Callable[..., Any]
    passes: Sequence[str] = passes.DEFAULT
    backend: str = "codegen"  # or "interpret": the reference interpreter
    cache_size: int = 4
    kernels: str = "auto"  # "numpy": never Numba kernels
    graphs: list[Compiled] = field(default_factory=list)
    retraces: list[str] = field(default_factory=list)  # why each retrace happened
    eager_calls: int = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        leaves: list = []
        tree = flatten((args, kwargs), leaves)
        failure = None
        for entry in list(self.graphs):
            if entry.graph.input_tree != tree:
                continue
            try:
                result = entry.run(leaves)
            except GuardFailed as exc:
                failure = exc
                continue
            entry.calls += 1
            self.graphs.remove(entry)
            self.graphs.insert(0, entry)  # most recently used first
            return result
        if self.graphs:
            reason = failure.guard.describe() if failure is not None else "arguments changed"
            self.retraces.append(reason)
            if BUS.active:
                BUS.emit(StepRetraced(reason=reason, graphs=len(self.graphs) + 1))
        return self._trace(args, kwargs, leaves)

    def _trace(self, args: tuple, kwargs: dict, leaves: list) -> Any:
        self.eager_calls += 1
        start = perf_counter_ns()
        result, traced = trace(self.step, args, kwargs)
        traced_at = perf_counter_ns()
        graph, reports = passes.optimize(traced.graph, self.passes)
        if BUS.active:
            for r in reports:
                BUS.emit(PassApplied(r.name, r.nodes_before, r.nodes_after, r.changes))
        device = _device(traced, leaves)
        program = codegen.generate(graph, device, tuple(traced.grad_owners), self.kernels)
        runner = program if self.backend == "codegen" else None
        bound = Bound(graph, traced.state, traced.grad_owners, device, runner)
        entry = Compiled(
            traced, graph, reports, program, bound, traced_at - start, perf_counter_ns() - traced_at
        )
        self.graphs.insert(0, entry)
        del self.graphs[self.cache_size :]
        return result

    # -- what a user reads ------------------------------------------------------------

    @property
    def latest(self) -> Compiled:
        if not self.graphs:
            raise RuntimeError("the step has not been called yet: nothing is compiled")
        return self.graphs[0]

    @property
    def graph(self) -> Graph:
        """The optimized graph of the most recent trace."""
        return self.latest.graph

    @property
    def code(self) -> str:
        """The generated Python source of the most recent trace."""
        return self.latest.program.source

    def save(
        self,
        path: str | os.PathLike,
        *,
        initial: bool = False,
        calls: list[tuple[tuple, dict]] = (),
        **info: Any,
    ) -> None:
        """Write the latest graph, its generated code's inputs and its state to
        one file (JSON and .npy in a zip, no pickle); ``core.compile.load`` runs
        it. ``initial``: the state as it was before the traced call; ``calls``:
        arguments ``(args, kwargs)`` of calls to keep in the file (a program's
        batches), for a run of the file alone."""
        from core.deferred import saved

        saved.save(self.latest, path, initial=initial, calls=calls, **info)


def _device(traced: Trace, leaves: list) -> str:
    for t in [*leaves, *traced.state.values()]:
        return t.device
    return "cpu"


def compile(  # noqa: A001  (PyTorch's name: torch.compile)
    step: Callable[..., Any] | None = None,
    *,
    passes: Sequence[str] = passes.DEFAULT,
    backend: str = "codegen",
    cache_size: int = 4,
    kernels: str = "auto",
) -> Any:
    """Compile ``step`` (a function running one training step) into a static
    graph on its first call; usable as ``@core.compile`` too.

    ``passes``: the passes to run, in order (``core.deferred.passes.DEFAULT``;
    leave one out to switch it off). ``backend``: "codegen", or "interpret" for
    the reference interpreter. ``kernels``: "auto" times Numba against NumPy
    for arithmetic-only fused groups and keeps the faster; "numpy" never uses
    Numba."""
    if backend not in ("codegen", "interpret"):
        raise ValueError(f"backend must be 'codegen' or 'interpret', got {backend!r}")
    if step is None:
        return lambda fn: compile(
            fn, passes=passes, backend=backend, cache_size=cache_size, kernels=kernels
        )
    return CompiledStep(step, tuple(passes), backend, cache_size, kernels=kernels)


def _load(path: str | os.PathLike) -> Any:
    from core.deferred import saved

    return saved.load(path)


compile.load = _load  # type: ignore[attr-defined]
