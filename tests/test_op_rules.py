"""Each op's rules against its own forward, over the whole op table:

- ``infer`` (shape and dtype) against what the forward made, for every op the
  gradient table exercises, side outputs included;
- each elementwise op's expression tree, printed to NumPy, to Numba and to
  C (compiled here with g++, the same text CUDA compiles), against the op's
  forward on random values and on NaN, +-Inf, signed zeros, denormals and
  overflow, in float32 and float64; on the GPU through CuPy (marker ``gpu``).
"""

from __future__ import annotations

import ctypes
import itertools
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
from helpers_data import needs_gpu
from test_op_grads import NO_GRAD, ROWS, make_inputs

import core
from core.engine import dispatch
from core.engine import expr as E
from core.engine.ops import ELEMENTWISE, REGISTRY, Op

# -- infer --------------------------------------------------------------------------


def applications(fn, inputs) -> list[tuple]:
    """(opdef, input shapes, input dtypes, attrs, output (shape, dtype)s) of every op."""
    seen = []

    def hook(kind, payload):
        if kind != "op":
            return
        _nid, opdef, ins, attrs, result, side, _vid = payload
        outs = [(tuple(result.shape), result.dtype)]
        outs += [(tuple(a.shape), a.dtype) for _id, a in side or ()]
        shapes = [tuple(t.shape) for t in ins]
        seen.append((opdef, shapes, [t.dtype for t in ins], dict(attrs), outs))

    previous = dispatch.set_hook(hook)
    try:
        out = fn(*inputs)
        if out.requires_grad:
            out.sum().backward()  # the backward's ops are checked too
    finally:
        dispatch.set_hook(previous)
    return seen


def test_infer_matches_the_forward_for_every_op() -> None:
    covered = set()
    cases = [(r.name, r.fn, make_inputs(r, "cpu")) for r in ROWS]
    rng = np.random.default_rng(0)
    for param in NO_GRAD:
        op, fn, _ref = param.values
        a = rng.integers(-2, 3, (3, 4)) * 0.5
        inputs = [core.tensor(a), core.tensor(a[0])]
        cases.append((op.label, fn, inputs))
    for name, fn, inputs in cases:
        for opdef, shapes, dtypes, attrs, outs in applications(fn, inputs):
            got = opdef.infer(shapes, dtypes, attrs)
            got = got if isinstance(got, list) else [got]
            got = [(tuple(s), np.dtype(d)) for s, d in got]
            # -1: a length that depends on values (a boolean mask's count)
            got = [
                (tuple(o if g == -1 else g for g, o in zip(s, os_)), d)
                for (s, d), (os_, _od) in zip(got, outs)
            ]
            assert got == outs, f"{opdef.label} in [{name}]: infer {got}, forward {outs}"
            covered.add(opdef.op)
    assert sorted(op.label for op in set(Op) - covered) == []


# -- expressions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    op: Op
    attrs: dict
    dtype: str  # the computation's float dtype

    @property
    def id(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in self.attrs.items())
        return f"{self.op.label}({extra})-{self.dtype}"

    @property
    def tree(self) -> E.Expr:
        return REGISTRY[self.op].expr(self.attrs)

    @property
    def arity(self) -> int:
        return {Op.WHERE: 3, Op.LERP: 3}.get(self.op, 1 + max(E.inputs_of(self.tree), default=0))


ATTRS = {
    Op.ADD_SCALED: [{"alpha": -0.3}],
    Op.POW_SCALAR: [{"exponent": e} for e in (2.0, 3.0, 1.0, 0.5, -1.0, 4.0, 1.7, 0.0, -2.5)],
    Op.LEAKY_RELU: [{"slope": 0.02}],
    Op.GELU: [{"approximate": "none"}, {"approximate": "tanh"}],
    Op.CLIP: [{"lo": -0.5, "hi": 1.0}, {"lo": None, "hi": 1.0}, {"lo": -1.0, "hi": None}],
    Op.CAST: [{"dtype": "float64"}, {"dtype": "float32"}],
    Op.SOFTPLUS: [{"beta": 1.0, "threshold": 20.0}, {"beta": 2.0, "threshold": 1.5}],
    Op.NAN_TO_NUM: [
        {"nan": 0.0, "posinf": 3.4028234663852886e38, "neginf": -3.4028234663852886e38},
        {"nan": 1.5, "posinf": 7.0, "neginf": -0.0},
    ],
}
CASES = [
    Case(op, attrs, dtype)
    for op in sorted(ELEMENTWISE)
    for attrs in ATTRS.get(op, [{}])
    for dtype in ("float32", "float64")
]
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-30, -3e38, 88.5]
SPECIAL += [-100.0, 1e-45, 7.25]


def case_inputs(case: Case) -> list[np.ndarray]:
    """Every combination of special values for each input, then random ones."""
    dt = np.dtype(case.dtype)
    n = case.arity
    specials = SPECIAL if n < 3 else [np.nan, np.inf, -0.0, 0.0, 1.0, -2.5]
    with np.errstate(all="ignore"):
        grid = np.array(list(itertools.product(specials, repeat=n)), np.float64).T
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((n, 200)) * 3
    columns = np.concatenate([grid, noise], axis=1)
    with np.errstate(over="ignore"):
        arrays = [c.astype(dt) for c in columns]
    if case.op == Op.WHERE:
        arrays[0] = columns[0] > 0.5
    if case.op == Op.CAST:
        arrays = [columns[0].astype(np.float32 if case.attrs["dtype"] == "float64" else "f8")]
    return arrays


def forward(case: Case, arrays: list[np.ndarray]) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(REGISTRY[case.op].forward(np, *arrays, **case.attrs))


def compute_dtype(case: Case) -> str:
    return case.attrs["dtype"] if case.op == Op.CAST else case.dtype


def assert_same_values(got, want, case: Case, ulps: int, where: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, f"{case.id} {where}: dtype {got.dtype} != {want.dtype}"
    if want.dtype == bool:
        bad = np.flatnonzero(got != want)
    else:
        nan = np.isnan(want)
        inf = np.isinf(want)
        bad_class = (np.isnan(got) != nan) | (np.isinf(got) != inf)
        bad_class |= inf & (got != want)
        zero = (want == 0) & ~nan
        bad_class |= zero & (np.signbit(got) != np.signbit(want))
        finite = ~(nan | inf | bad_class)
        # ulps of the result, or of 1 for results below 1: a composite like
        # tanh(x / 2) / 2 + 1/2 turns tanh's last-bit difference into a larger
        # relative one where the result is small
        scale = np.maximum(np.abs(want[finite]).astype(np.float64), 1.0)
        tol = ulps * np.finfo(want.dtype).eps * scale
        off = np.zeros_like(bad_class)
        with np.errstate(invalid="ignore"):
            off[finite] = np.abs(got[finite] - want[finite]) > tol
        bad = np.flatnonzero(bad_class | off)
    if bad.size:
        i = bad[0]
        pytest.fail(
            f"{case.id} {where}: {bad.size} elements differ from the forward, first at "
            f"{i}: got {got.reshape(-1)[i]!r}, forward {want.reshape(-1)[i]!r}"
        )


def test_every_elementwise_op_has_cases() -> None:
    assert {c.op for c in CASES} == set(ELEMENTWISE)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_expression_in_numpy_is_the_forward(case: Case) -> None:
    """The tree, printed to NumPy, computes exactly what the forward computes."""
    arrays = case_inputs(case)
    with np.errstate(all="ignore"):
        got = E.evaluate(case.tree, arrays, np, compute_dtype(case))
        if case.op == Op.CAST:
            got = got.astype(compute_dtype(case))
    assert_same_values(got, forward(case, arrays), case, ulps=0, where="NumPy")


def _numba_source(cases: list[Case]) -> str:
    lines = [E.NUMBA_PRELUDE]
    for k, case in enumerate(cases):
        names = [f"a{i}[i]" for i in range(case.arity)]
        args = ", ".join(f"a{i}" for i in range(case.arity))
        body = E.to_numba(case.tree, names, compute_dtype(case))
        lines.append(
            f'@numba.njit(error_model="numpy")\ndef kernel{k}(out, {args}):\n'
            f"    for i in range(out.size):\n        out[i] = {body}\n"
        )
    return "\n".join(lines)


@pytest.fixture(scope="module")
def numba_kernels():
    pytest.importorskip("numba")
    namespace: dict = {}
    exec(compile(_numba_source(CASES), "<generated kernels>", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_expression_in_numba_is_the_forward(case: Case, numba_kernels) -> None:
    arrays = case_inputs(case)
    want = forward(case, arrays)
    out = np.empty(want.shape, want.dtype)
    numba_kernels[f"kernel{CASES.index(case)}"](out, *arrays)
    assert_same_values(out, want, case, ulps=4, where="Numba")


_C_TYPES = {"float32": "float", "float64": "double", "bool": "bool"}


def _c_source(cases: list[Case]) -> str:
    parts = [E.C_PRELUDE]
    for k, case in enumerate(cases):
        arrays = case_inputs(case)
        out_type = _C_TYPES[forward(case, [a[:1] for a in arrays]).dtype.name]
        params = ", ".join(f"const {_C_TYPES[a.dtype.name]}* a{i}" for i, a in enumerate(arrays))
        names = [f"a{i}[i]" for i in range(len(arrays))]
        body = E.to_c(case.tree, names, compute_dtype(case))
        parts.append(
            f'extern "C" void kernel{k}(long n, {out_type}* out, {params}) {{\n'
            f"    for (long i = 0; i < n; i++) out[i] = ({out_type})({body});\n}}\n"
        )
    return "\n".join(parts)


@pytest.fixture(scope="module")
def c_kernels(tmp_path_factory):
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ is not installed: the C printer is compiled on the GPU check only")
    folder = tmp_path_factory.mktemp("c_kernels")
    source, library = folder / "kernels.cpp", folder / "kernels.so"
    source.write_text(_c_source(CASES))
    command = [compiler, "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(library)]
    subprocess.run([*command, str(source)], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(library))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_expression_in_c_is_the_forward(case: Case, c_kernels) -> None:
    arrays = [np.ascontiguousarray(a) for a in case_inputs(case)]
    want = forward(case, arrays)
    out = np.empty(want.shape, want.dtype)
    pointers = [a.ctypes.data_as(ctypes.c_void_p) for a in (out, *arrays)]
    getattr(c_kernels, f"kernel{CASES.index(case)}")(ctypes.c_long(out.size), *pointers)
    assert_same_values(out, want, case, ulps=4, where="C")


@needs_gpu
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_expression_in_cuda_is_the_forward(case: Case) -> None:
    import cupy

    arrays = case_inputs(case)
    want = forward(case, arrays)
    names = [f"a{i}" for i in range(len(arrays))]
    params = ", ".join(f"{_C_TYPES[a.dtype.name]} a{i}" for i, a in enumerate(arrays))
    body = E.to_c(case.tree, names, compute_dtype(case))
    out_type = _C_TYPES[want.dtype.name]
    kernel = cupy.ElementwiseKernel(
        params, f"{out_type} out", f"out = ({out_type})({body})", "gs_case", preamble=E.C_PRELUDE
    )
    got = kernel(*[cupy.asarray(a) for a in arrays]).get()
    assert_same_values(got, want, case, ulps=8, where="CUDA")
