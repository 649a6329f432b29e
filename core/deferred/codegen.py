"""Code generation: an optimized Graph becomes one readable Python function.

The function reads its inputs and state, checks the guards on their shapes,
dtypes, devices and ``.grad``, runs one kernel per node (see ``lower``),
checks each data-dependent guard where its value is made, and only then
writes state and ``.grad`` back and returns the outputs: a call whose guard
fails has written nothing. On the GPU the same code runs with CuPy as ``np``.

With an event subscriber, a second version of the function, timed per
kernel, emits ``KernelRun`` events; without one the plain version runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

import numpy as np

from core.deferred import kernels_numba
from core.deferred.graph import Graph, Guard, Node
from core.deferred.interpret import GuardFailed, check_guard, value_guards
from core.deferred.kernels_numpy import fused_kernel
from core.deferred.lower import LOWERINGS
from core.device import synchronize, xp_for
from core.engine.dispatch import wrap
from core.engine.expr import C_PRELUDE, special
from core.engine.ops import REGISTRY
from core.observe.bus import BUS
from core.observe.events import KernelRun


@dataclass
class Kernel:
    """One call of the generated function: an op or a fused group."""

    index: int
    name: str  # e.g. "linear" or "fused_tanh_backward"
    covers: list[int]  # eager node ids (traced origins) it computes
    outputs: list[int]  # graph value ids it writes
    source: str | None  # the user's line
    scope: str = ""  # module path of the node
    phase: str = "forward"
    code: str = ""  # the generated code of this kernel (its lines, its function)


class Narration:
    """The narrator of the call in progress (``core.deferred.narrate``), set
    while a debugger listens; the timed code hands it every kernel's outputs."""

    __slots__ = ("narrator",)

    def __init__(self) -> None:
        self.narrator: Any = None


@dataclass
class Program:
    """The generated code of one graph and the functions it defines."""

    source: str
    namespace: dict[str, Any]
    state_names: list[str]  # S0, S1... in the code
    grad_names: list[str]  # R0, R1...: the tensors whose .grad is read
    kernels: list[Kernel] = field(default_factory=list)
    narration: Narration = field(default_factory=Narration)

    def bind(self, state: dict[str, Any], grad_owners: dict[str, Any]) -> None:
        """Point the code at the live tensors (by state name)."""
        for i, name in enumerate(self.state_names):
            self.namespace[f"S{i}"] = state[name]
        for i, name in enumerate(self.grad_names):
            self.namespace[f"R{i}"] = grad_owners[name]

    def run(self, inputs: list[Any]) -> tuple:
        """One call: the output arrays (state and .grad are written by the code)."""
        if BUS.active:
            return self.namespace["step_timed"](inputs)
        return self.namespace["step"](inputs)


class Literals:
    """Typed number literals, bound once as names (``L0 = np.float32(0.5)``)."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        self.on_numpy = xp is np
        self.names: dict[tuple[float, str], str] = {}
        self.values: dict[str, Any] = {}

    def __call__(self, value: float, dtype: str) -> str:
        key = (float(value), dtype)
        name = self.names.get(key)
        if name is None:
            name = self.names[key] = f"L{len(self.names)}"
            self.values[name] = getattr(np, dtype)(value)
        return name

    def ones(self, length: int, dtype: str) -> str:
        """A vector of ones on the step's device, made once (``ONES64_float32``):
        the left operand of the matmul that sums a big array's rows."""
        name = f"ONES{length}_{dtype}"
        if name not in self.values:
            self.values[name] = self.xp.ones(length, dtype=dtype)
        return name


KERNEL_CHOICES = ("numpy", "auto")


def generate(
    graph: Graph, device: str = "cpu", grad_names: tuple[str, ...] = (), kernels: str = "auto"
) -> Program:
    """Generate and compile the code of ``graph`` for ``device``; ``grad_names``
    are the state names that stand for another tensor's ``.grad``. With
    ``kernels="auto"`` an arithmetic-only fused group on the CPU is also
    compiled with Numba and timed, and the faster kernel kept. Bind the
    program to live tensors before running it."""
    if kernels not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {KERNEL_CHOICES}, got {kernels!r}")
    xp = xp_for(device)
    writer = _Writer(graph, xp, device, grad_names)
    writer.try_numba = kernels == "auto" and xp is np
    source = writer.module()
    namespace = writer.namespace()
    exec(compile(source, "<gradstep generated step>", "exec"), namespace)  # noqa: S102
    namespace.update(writer.numba_kernels)  # replace the NumPy kernels Numba beat
    state = [n.name for n in graph.state if n.name not in writer.grad_reads]
    return Program(
        source, namespace, state, list(writer.grad_reads), writer.kernels, writer.narration
    )


class _Writer:
    def __init__(self, graph: Graph, xp: Any, device: str, grad_names: tuple[str, ...]) -> None:
        self.g = graph
        self.xp = xp
        self.device = device
        self.kernels: list[Kernel] = []
        self.guards = value_guards(graph)
        self.guard_list: list[Guard] = list(graph.guards)
        self.attrs: list[dict] = []
        self.ops: dict[str, Callable] = {}
        self.fused: list[str] = []
        self.lit = Literals(xp)
        self.buffers: dict[str, int] = {}  # B<slot> names the code uses
        self.try_numba = False
        self.numba_kernels: dict[str, Callable] = {}  # K<k> -> the Numba kernel kept
        self.choices: dict[int, str] = {}  # id(node) -> "numba" or "numpy"
        self.narration = Narration()
        self.grad_reads = [n.name for n in graph.state if n.name in grad_names]
        names = [n.name for n in graph.state if n.name not in self.grad_reads]
        self.state_index = {name: i for i, name in enumerate(names)}

    def module(self) -> str:
        plain = self.function("step", timed=False)
        timed = self.function("step_timed", timed=True)
        header = (
            f"# generated by gradstep: {len(self.kernels)} kernels for a graph of "
            f"{len(self.g.nodes)} nodes\n# np is NumPy on the CPU, CuPy on the GPU; S*: state "
            "tensors, R*: tensors whose .grad is read, L*: typed literals, OP_*: the "
            "registry's forwards\n"
        )
        return header + "\n\n".join([*self.fused, plain, timed])

    def namespace(self) -> dict[str, Any]:
        ns: dict[str, Any] = {"np": self.xp, "A": self.attrs, "G": self.guard_list}
        ns["C"] = {k: self.xp.asarray(v) for k, v in self.g.constants.items()}
        ns.update(self.lit.values)
        ns.update(self.ops)
        ns["check_guard"] = check_guard
        ns["fail"] = _fail
        ns["wrap"] = wrap
        ns["DEVICE"] = self.device
        ns["perf_counter_ns"] = perf_counter_ns
        ns["emit_kernel"] = _emitter(self.kernels, self.device, self.narration)
        ns["start_kernel"] = _starter(self.device)
        if any("special.erf" in text for text in self.fused):  # cupyx.scipy costs 0.25 s
            ns["special"] = special(self.xp)
        if self.xp is not np:  # the fused kernels are CuPy ElementwiseKernels
            ns["cupy"] = self.xp
            ns["C_PRELUDE"] = C_PRELUDE
        for dtype in {v.dtype for v in self.g.values.values()}:
            ns[f"D_{dtype}"] = np.dtype(dtype)
        for name, slot in self.buffers.items():  # allocated once, reused by every call
            shape, dtype = self.g.slots[slot]
            ns[name] = self.xp.empty(shape, dtype)
        return ns

    # -- one function ----------------------------------------------------------------------

    def function(self, name: str, timed: bool) -> str:
        self.kernels.clear()
        self.attrs.clear()
        self.fused.clear()
        lines = [f"def {name}(I):"]
        position = 0
        dead_after = self.dead_after()
        for i, n in enumerate(self.g.nodes):
            if n.kind == "input":
                lines += self.read_input(n, position)
                position += 1
            elif n.kind == "state":
                lines += self.read_state(n)
            elif n.kind == "constant":
                lines.append(f"    v{n.outputs[0]} = C[{n.outputs[0]}]")
            else:
                lines += self.kernel(n, timed)
            if dead_after.get(i):  # let go of arrays nobody reads again (peak memory)
                lines.append(f"    del {', '.join(f'v{v}' for v in dead_after[i])}")
        lines += self.write_back()
        outs = "".join(f"v{v}, " for v in self.g.outputs)
        lines.append(f"    return ({outs})")
        return "\n".join(lines) + "\n"

    def dead_after(self) -> dict[int, list[int]]:
        """Node position -> the values last read there (outputs, writes and
        .grad writes live to the end)."""
        last: dict[int, int] = {}
        for i, n in enumerate(self.g.nodes):
            for v in n.inputs:
                last[v] = i
        keep = self.g.live_ends()
        out: dict[int, list[int]] = {}
        for v, i in last.items():
            if v not in keep:
                out.setdefault(i, []).append(v)
        return {i: sorted(vs) for i, vs in out.items()}

    def _guard_index(self, kind: str, name: str) -> int | None:
        for i, guard in enumerate(self.guard_list):
            if guard.kind == kind and guard.detail.get("name") == name:
                return i
        return None

    def _facts(self, ref: str, holder: str, name: str) -> list[str]:
        k = self._guard_index("shape", name)
        if k is None:
            return []
        shape, dtype, device = self.guard_list[k].expected
        test = f"{ref}.shape != {tuple(shape)!r} or {ref}.dtype is not D_{dtype}"
        return [f"    if {test} or {holder}.device != {device!r}:", f"        fail(G[{k}], {ref})"]

    def read_input(self, n: Node, position: int) -> list[str]:
        v = f"v{n.outputs[0]}"
        return [f"    {v} = I[{position}].data", *self._facts(v, f"I[{position}]", n.name)]

    def read_state(self, n: Node) -> list[str]:
        v = f"v{n.outputs[0]}"
        if n.name in self.grad_reads:
            owner = f"R{self.grad_reads.index(n.name)}"
            lines = [f"    if {owner}.grad is None:", f"        fail(None, {n.name!r})"]
            facts = self._facts(v, f"{owner}.grad", n.name)
            return [*lines, f"    {v} = {owner}.grad.data", *facts]
        holder = f"S{self.state_index[n.name]}"
        lines = [f"    {v} = {holder}.data  # {n.name}", *self._facts(v, holder, n.name)]
        k = self._guard_index("grad", n.name)
        if k is not None:
            expected = self.guard_list[k].expected
            test = f"({holder}.grad is None) != {expected}"
            lines += [f"    if {test}:", f"        fail(G[{k}], None)"]
        return lines

    def kernel(self, n: Node, timed: bool) -> list[str]:
        k = len(self.kernels)
        name = n.name or n.kind
        self.kernels.append(Kernel(k, name, _covers(n), n.outputs, n.source, n.scope, n.phase))
        outs = [f"v{v}" for v in n.outputs]
        args = [f"v{v}" for v in n.inputs]
        dest = [self.destination(n, v) for v in n.outputs]
        if n.kind == "fused":
            body = self.fused_call(n, k, args, outs, dest)
        else:
            body = self.op(n, args, outs, dest)
        where = f"  # {n.name}" + (f"  {n.scope}" if n.scope else "")
        lines = ["    t0 = start_kernel()"] if timed else []
        lines += [f"    {line}" for line in body]
        self.kernels[k].code = "\n".join(
            ([self.fused[-1]] if n.kind == "fused" else []) + [line.strip() for line in body]
        )
        lines[-1] += where
        if timed:
            lines.append(f"    emit_kernel({k}, t0, {', '.join(outs)})")
        for vid in n.outputs:
            for guard in self.guards.get(vid, ()):
                lines.append(f"    check_guard(G[{self.guard_list.index(guard)}], v{vid})")
        return lines

    def destination(self, n: Node, vid: int) -> str | None:
        """Where the plan says ``vid`` is written: a kept buffer, the state's
        own array (the old value's variable), or None (a new array)."""
        where = self.g.plan.get(vid)
        if where is None:
            return None
        if isinstance(where, str):
            return f"v{n.inputs[0]}"
        self.buffers[f"B{where}"] = where
        return f"B{where}"

    def op(self, n: Node, args: list[str], outs: list[str], dest: list) -> list[str]:
        lowering = LOWERINGS.get(n.op)
        if lowering is not None:
            lines = lowering(self.g, n, args, outs, self.lit, dest)
            if lines is not None:
                return lines
        name = f"OP_{n.op.name}"
        self.ops[name] = REGISTRY[n.op].forward
        call = f"{name}(np, {', '.join(args)}"
        if n.attrs:
            self.attrs.append(n.attrs)
            call += f", **A[{len(self.attrs) - 1}]"
        targets = ", ".join(outs) if len(outs) > 1 else outs[0]
        return [f"{targets} = {call})"]

    def fused_call(self, n: Node, k: int, args: list[str], outs: list[str], dest) -> list[str]:
        text = fused_kernel(self.g, n, f"K{k}", self.lit)
        if self.choose(n, text, k) == "numba":
            text = f"# K{k}: a Numba kernel (faster here than this NumPy one)\n" + text
            self.kernels[k].name += " [numba]"
        self.fused.append(text)
        targets = ", ".join(outs) if len(outs) > 1 else outs[0]
        given = [d if d is not None else "None" for d in dest]
        if all(d is None for d in dest):
            given = []
        return [f"{targets} = K{k}({', '.join([*args, *given])})"]

    def choose(self, n: Node, numpy_text: str, k: int) -> str:
        """ "numba" when Numba compiles the group and runs it faster on the
        graph's shapes than the NumPy kernel (decided once per node)."""
        if not self.try_numba or not kernels_numba.candidate(self.g, n) or not _numba_usable():
            return "numpy"  # (Numba is imported only for a candidate: it takes 0.5 s)
        choice = self.choices.get(id(n))
        if choice is None:
            namespace = {"np": np, **self.lit.values}
            exec(numpy_text, namespace)  # noqa: S102  (printed above)
            compiled = kernels_numba.load(kernels_numba.source(self.g, n))
            numba_kernel = kernels_numba.wrapper(compiled, self.g, n)
            arrays = kernels_numba.sample_inputs(self.g, n)
            choice = kernels_numba.faster(namespace[f"K{k}"], numba_kernel, arrays)
            self.choices[id(n)] = choice
            if choice == "numba":
                self.numba_kernels[f"K{k}"] = numba_kernel
        return choice

    def write_back(self) -> list[str]:
        """State and .grad, after every guard held."""
        lines = []
        for name, vid in self.g.writes.items():
            lines.append(f"    S{self.state_index[name]}.data = v{vid}  # {name}")
        for name, vid in self.g.grads.items():
            holder = f"S{self.state_index[name]}"
            lines.append(f"    {holder}.grad = wrap(v{vid}, DEVICE)  # {name}.grad")
        return lines


@functools.cache
def _numba_usable() -> bool:
    try:
        import numba  # noqa: F401
    except Exception:  # not installed, or no build for this Python/NumPy
        return False
    return os.environ.get("GRADSTEP_KERNELS", "").lower() != "numpy"


def _fail(guard: Guard | None, seen: Any) -> None:
    if guard is None:
        raise GuardFailed(Guard("grad", None, False, {"name": str(seen)}), "no .grad")
    raise GuardFailed(guard, getattr(seen, "shape", seen))


def _covers(n: Node) -> list[int]:
    if n.kind == "fused":
        return list(n.attrs["covers"])
    return [n.origin] if n.origin is not None else []


def _starter(device: str) -> Callable[[], int]:
    def start_kernel() -> int:
        if BUS.want_sync:  # a profiler: time the kernel's run, not the work queued before
            synchronize(device)
        return perf_counter_ns()

    return start_kernel


# A compiled value's id in events and recordings: graph value ids are their own
# numbering, kept apart from the engine's tensor ids.
VALUE_ID_BASE = 1 << 40


def value_id(vid: int) -> int:
    return VALUE_ID_BASE + vid


def _emitter(kernels: list[Kernel], device: str, narration: Narration) -> Callable[..., None]:
    def emit_kernel(k: int, start: int, *arrays: Any) -> None:
        if BUS.want_sync:  # on the GPU, the kernel's own time, not its launch
            synchronize(device)
        duration = perf_counter_ns() - start
        kernel = kernels[k]
        narrator = narration.narrator
        if narrator is not None:  # a debugger: the kernel's ops first, ids of this call
            ids = narrator.kernel(k, arrays)
        else:
            ids = tuple(value_id(v) for v in kernel.outputs)
        BUS.emit(
            KernelRun(
                kernel=k,
                name=kernel.name,
                nodes=tuple(kernel.covers),
                outputs=ids,
                duration_ns=duration,
                device=device,
                scope=kernel.scope,
                phase=kernel.phase,
            ),
            dict(zip(ids, arrays, strict=True)) if BUS.want_values else None,
        )

    return emit_kernel
