"""Numba kernels for fused groups that are arithmetic only (no exp, tanh, erf...:
NumPy's SIMD transcendental functions beat a scalar libm call per element),
used where they win: each candidate is timed against its NumPy kernel on the
graph's own shapes and the faster one is kept.

A kernel's source is written to the cache folder under the hash of its text
and imported from there with ``cache=True``, so Numba keeps the machine code
beside it and a second process loads it instead of compiling.
``GRADSTEP_CACHE`` names the folder (default ``~/.cache/gradstep``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from core.deferred.graph import Graph, Node, expr_from_json
from core.engine import expr as E

TRANSCENDENTAL = {
    "exp",
    "log",
    "tanh",
    "erf",
    "log1p",
    "expm1",
    "pow",
    "log2",
    "log10",
    "exp2",
    "sin",
    "cos",
}
MIN_SIZE = 4096  # elements: below this a kernel is all call overhead either way


def cache_folder() -> str:
    root = os.environ.get("GRADSTEP_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "gradstep"
    )
    return os.path.join(root, "kernels")


def candidate(g: Graph, n: Node) -> bool:
    """Arithmetic only, big enough, every input the output's shape or one value."""
    shape = tuple(n.attrs["shape"])
    if math.prod(shape) < MIN_SIZE or n.attrs["dtype"] not in ("float32", "float64"):
        return False
    if n.attrs.get("reduce"):
        return False  # a row reduction stays NumPy's (its summation order is eager's)
    for v in n.inputs:
        s = g.values[v].shape
        if s != shape and math.prod(s) != 1:
            return False
    return not any(_uses(expr_from_json(t), TRANSCENDENTAL) for t in n.attrs["exprs"])


def _uses(e: E.Expr, fns: set[str]) -> bool:
    if isinstance(e, E.Call):
        return e.fn in fns or any(_uses(a, fns) for a in e.args)
    return False


def source(g: Graph, n: Node) -> str:
    """The kernel module: one loop over the flat elements, each distinct
    subexpression a local variable."""
    from core.deferred.kernels_numpy import _dag

    dtype = n.attrs["dtype"]
    trees = [expr_from_json(t) for t in n.attrs["exprs"]]
    order, roots = _dag(trees)
    shape = tuple(n.attrs["shape"])
    reads = {}
    for i, v in enumerate(n.inputs):
        reads[("in", i)] = f"a{i}[i]" if g.values[v].shape == shape else f"a{i}[0]"
    names = dict(reads)
    body = []
    for k, (key, fn, args) in enumerate(order):
        names[key] = f"t{k}"
        operands = [names[a] for a in args if a[0] != "lit"]
        slots = iter(range(len(operands)))
        call = E.Call(fn, tuple(E.Lit(a[1]) if a[0] == "lit" else E.In(next(slots)) for a in args))
        body.append(f"        t{k} = {E.to_numba(call, operands, dtype)}")
    for i, root in enumerate(roots):
        value = names[root] if root[0] != "lit" else E.to_numba(E.Lit(root[1]), [], dtype)
        body.append(f"        o{i}[i] = {value}")
    params = [f"o{i}" for i in range(len(roots))] + [f"a{i}" for i in range(len(n.inputs))]
    return (
        E.NUMBA_PRELUDE
        + '\n\n@numba.njit(cache=True, error_model="numpy", nogil=True)\n'
        + f"def kernel({', '.join(params)}):\n"
        + "    for i in range(o0.size):\n"
        + "\n".join(body)
        + "\n"
    )


def load(text: str) -> Callable[..., None]:
    """The compiled ``kernel`` of a module text, from the cache folder."""
    folder = cache_folder()
    os.makedirs(folder, exist_ok=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    path = os.path.join(folder, f"gs_{digest}.py")
    if not os.path.exists(path):
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temporary, path)
    name = f"gradstep_kernel_{digest}"
    module = sys.modules.get(name)
    if module is None:  # importable by name: Numba's on-disk cache refers to it so
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module.kernel


def wrapper(kernel: Callable[..., None], g: Graph, n: Node) -> Callable[..., Any]:
    """``K(*inputs, *destinations)`` as the generated code calls a fused kernel."""
    shapes = [(g.values[v].shape, g.values[v].dtype) for v in n.outputs]
    count = len(n.inputs)

    def run(*arrays: Any) -> Any:
        inputs, given = arrays[:count], arrays[count:]
        outs = [
            given[i] if i < len(given) and given[i] is not None else np.empty(s, d)
            for i, (s, d) in enumerate(shapes)
        ]
        flat_in = [np.ascontiguousarray(a).reshape(-1) for a in inputs]
        kernel(*[o.reshape(-1) for o in outs], *flat_in)
        return outs[0] if len(outs) == 1 else tuple(outs)

    return run


def faster(numpy_kernel: Callable[..., Any], numba_kernel: Callable[..., Any], arrays: list) -> str:
    """ "numba" or "numpy": which of two kernels runs ``arrays`` faster (best of 5)."""
    timings = {}
    with np.errstate(all="ignore"):
        for name, fn in (("numpy", numpy_kernel), ("numba", numba_kernel)):
            timings[name] = _best(fn, arrays)
    return "numba" if timings["numba"] < timings["numpy"] else "numpy"


def _best(fn: Callable[..., Any], arrays: list) -> float:
    fn(*arrays)
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        fn(*arrays)
        best = min(best, time.perf_counter() - start)
    return best


def sample_inputs(g: Graph, n: Node) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.standard_normal(g.values[v].shape).astype(g.values[v].dtype) + 2.0 for v in n.inputs
    ]
