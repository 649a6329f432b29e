"""Elementwise expressions as data: what each elementwise op computes per element,
as a tree a compiler can fuse and print to NumPy, to Numba-compilable scalar
Python and to CUDA C.

Leaves are the op's inputs (``In(0)``, ``In(1)``...) and literals; every literal
takes the computation's float dtype when printed (``np.float32(0.5)``,
``0.5f``), so float32 work is never widened to float64. Inner nodes call one
function of ``FUNCS``; each function's three spellings sit side by side there
and agree with NumPy on NaN, Inf and signed zeros (the helpers in the preludes
spell out NumPy's rules where C's differ: ``maximum`` propagates NaN and
answers its second argument on a tie, so ``maximum(-0.0, 0.0)`` is 0.0; ``sign``
of -0.0 is 0).

>>> x, y = In(0), In(1)
>>> e = tanh(x * 0.5) * 0.5 + y
>>> print(to_numpy(e, ["a", "b"], "float32"))
((np.tanh((a * np.float32(0.5))) * np.float32(0.5)) + b)
>>> print(to_c(e, ["a", "b"], "float32"))
((tanh((a * 0.5f)) * 0.5f) + b)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Expr:
    """A node of an expression tree; the operators build bigger trees."""

    def __add__(self, other: Any) -> Expr:
        return Call("add", (self, lit(other)))

    def __radd__(self, other: Any) -> Expr:
        return Call("add", (lit(other), self))

    def __sub__(self, other: Any) -> Expr:
        return Call("sub", (self, lit(other)))

    def __rsub__(self, other: Any) -> Expr:
        return Call("sub", (lit(other), self))

    def __mul__(self, other: Any) -> Expr:
        return Call("mul", (self, lit(other)))

    def __rmul__(self, other: Any) -> Expr:
        return Call("mul", (lit(other), self))

    def __truediv__(self, other: Any) -> Expr:
        return Call("div", (self, lit(other)))

    def __rtruediv__(self, other: Any) -> Expr:
        return Call("div", (lit(other), self))

    def __neg__(self) -> Expr:
        return Call("neg", (self,))


@dataclass(frozen=True, slots=True)
class In(Expr):
    """The op's input number ``index``."""

    index: int


@dataclass(frozen=True, slots=True)
class Lit(Expr):
    """A number, typed as the computation's dtype when printed."""

    value: float


@dataclass(frozen=True, slots=True)
class Call(Expr):
    """``fn(*args)``, ``fn`` a key of ``FUNCS``."""

    fn: str
    args: tuple[Expr, ...]

    def __post_init__(self) -> None:
        spec = FUNCS.get(self.fn)
        if spec is None:
            raise ValueError(f"unknown expression function {self.fn!r}")
        if len(self.args) != spec.arity:
            raise ValueError(f"{self.fn} takes {spec.arity} arguments, got {len(self.args)}")


def lit(value: Any) -> Expr:
    """``value`` as an expression (numbers become literals)."""
    if isinstance(value, Expr):
        return value
    if isinstance(value, bool | int | float | np.number):
        return Lit(float(value))
    raise TypeError(f"not an expression or a number: {value!r}")


@dataclass(frozen=True, slots=True)
class Func:
    """One function's arity and its spelling in each target (``{0}``... are
    the arguments, ``{T}`` the computation dtype's name there)."""

    arity: int
    numpy: str
    numba: str
    c: str
    boolean: bool = False  # the result is a truth value


def _binary(symbol: str) -> Func:
    text = f"({{0}} {symbol} {{1}})"
    return Func(2, text, text, text)


def _compare(symbol: str) -> Func:
    text = f"({{0}} {symbol} {{1}})"
    return Func(2, text, text, text, boolean=True)


def _math(name: str) -> Func:
    return Func(1, f"np.{name}({{0}})", f"{{T}}(np.{name}({{0}}))", f"{name}({{0}})")


FUNCS: dict[str, Func] = {
    "add": _binary("+"),
    "sub": _binary("-"),
    "mul": _binary("*"),
    "div": _binary("/"),
    "neg": Func(1, "(-{0})", "(-{0})", "(-{0})"),
    "pow": Func(2, "np.power({0}, {1})", "{T}(np.power({0}, {1}))", "pow({0}, {1})"),
    "maximum": Func(2, "np.maximum({0}, {1})", "gs_maximum({0}, {1})", "gs_maximum({0}, {1})"),
    "minimum": Func(2, "np.minimum({0}, {1})", "gs_minimum({0}, {1})", "gs_minimum({0}, {1})"),
    "exp": _math("exp"),
    "log": _math("log"),
    "sqrt": _math("sqrt"),
    "abs": Func(1, "np.abs({0})", "{T}(np.abs({0}))", "fabs({0})"),
    "sign": Func(1, "np.sign({0})", "{T}(gs_sign({0}))", "gs_sign({0})"),
    "tanh": _math("tanh"),
    "erf": Func(1, "special.erf({0})", "{T}(math.erf({0}))", "erf({0})"),
    "log1p": _math("log1p"),
    "expm1": _math("expm1"),
    "log2": _math("log2"),
    "log10": _math("log10"),
    "exp2": _math("exp2"),
    "sin": _math("sin"),
    "cos": _math("cos"),
    "floor": _math("floor"),
    "ceil": _math("ceil"),
    "trunc": _math("trunc"),
    # round half to even, as NumPy's round and PyTorch's
    "rint": _math("rint"),
    "fmod": Func(2, "np.fmod({0}, {1})", "{T}(np.fmod({0}, {1}))", "fmod({0}, {1})"),
    # the sign of the divisor, as Python's % (NumPy's remainder, PyTorch's)
    "remainder": Func(
        2, "np.remainder({0}, {1})", "{T}(gs_remainder({0}, {1}))", "gs_remainder({0}, {1})"
    ),
    "where": Func(3, "np.where({0}, {1}, {2})", "({1} if {0} else {2})", "({0} ? {1} : {2})"),
    "gt": _compare(">"),
    "ge": _compare(">="),
    "lt": _compare("<"),
    "le": _compare("<="),
    "eq": _compare("=="),
    "ne": _compare("!="),
    # a truth value as a number of the computation dtype (1 or 0)
    "number": Func(1, "{0}", "{T}({0})", "(({T})({0}))"),
}


def _call(fn: str) -> Callable[..., Expr]:
    arity = FUNCS[fn].arity

    def make(*args: Any) -> Expr:
        if len(args) != arity:
            raise TypeError(f"{fn} takes {arity} arguments")
        return Call(fn, tuple(lit(a) for a in args))

    make.__name__ = fn
    return make


exp, log, sqrt, tanh, erf = _call("exp"), _call("log"), _call("sqrt"), _call("tanh"), _call("erf")
log1p, expm1, sign = _call("log1p"), _call("expm1"), _call("sign")
log2, log10, exp2 = _call("log2"), _call("log10"), _call("exp2")
sin, cos, fmod, remainder = _call("sin"), _call("cos"), _call("fmod"), _call("remainder")
floor, ceil, trunc, rint = _call("floor"), _call("ceil"), _call("trunc"), _call("rint")
abs_, pow_, maximum, minimum = _call("abs"), _call("pow"), _call("maximum"), _call("minimum")
where, number = _call("where"), _call("number")
gt, ge, lt, le, eq, ne = (_call(n) for n in ("gt", "ge", "lt", "le", "eq", "ne"))


def inputs_of(expr: Expr) -> set[int]:
    """The input numbers an expression reads."""
    if isinstance(expr, In):
        return {expr.index}
    if isinstance(expr, Call):
        return set().union(*(inputs_of(a) for a in expr.args))
    return set()


def substitute(expr: Expr, values: Sequence[Expr]) -> Expr:
    """``expr`` with ``In(i)`` replaced by ``values[i]`` (fusing a producer in)."""
    if isinstance(expr, In):
        return values[expr.index]
    if isinstance(expr, Call):
        return Call(expr.fn, tuple(substitute(a, values) for a in expr.args))
    return expr


def simplify(expr: Expr) -> Expr:
    """``expr`` without multiplications by 1 (exact for every value, NaN and
    signed zeros included; additions of 0 are kept: -0.0 + 0.0 is 0.0)."""
    if not isinstance(expr, Call):
        return expr
    args = tuple(simplify(a) for a in expr.args)
    if expr.fn == "mul":  # not for a truth value: 1.0 * (x > 0) is a number
        if args[0] == Lit(1.0) and not is_boolean(args[1]):
            return args[1]
        if args[1] == Lit(1.0) and not is_boolean(args[0]):
            return args[0]
    return Call(expr.fn, args)


def is_boolean(expr: Expr) -> bool:
    return isinstance(expr, Call) and FUNCS[expr.fn].boolean


# -- printers -------------------------------------------------------------------


_C_TYPES = {"float32": "float", "float64": "double"}


def _literal_numpy(value: float, dtype: str) -> str:
    text = _float_text(value)
    if text in ("inf", "-inf", "nan"):
        return f"np.{dtype}({text!r})"
    return f"np.{dtype}({text})"


def _literal_c(value: float, dtype: str) -> str:
    text = _float_text(value)
    if text in ("inf", "-inf", "nan"):
        return {"inf": "INFINITY", "-inf": "(-INFINITY)", "nan": "NAN"}[text]
    return text + ("f" if dtype == "float32" else "")


def _float_text(value: float) -> str:
    if value != value:
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    text = repr(float(value))
    return text


def _printer(target: str, literal: Callable[[float, str], str]) -> Callable[..., str]:
    def show(expr: Expr, names: Sequence[str], dtype: str) -> str:
        if isinstance(expr, In):
            return names[expr.index]
        if isinstance(expr, Lit):
            return literal(expr.value, dtype)
        spec = FUNCS[expr.fn]
        args = [show(a, names, dtype) for a in expr.args]
        type_name = {"numpy": f"np.{dtype}", "numba": f"np.{dtype}", "c": _C_TYPES.get(dtype)}
        return getattr(spec, target).format(*args, T=type_name[target])

    return show


_to_numpy = _printer("numpy", _literal_numpy)


def _literal_numba(value: float, dtype: str) -> str:
    text = _float_text(value)
    if text in ("inf", "-inf", "nan"):  # Numba converts no strings to floats
        return f"np.{dtype}({text.replace('inf', 'np.inf').replace('nan', 'np.nan')})"
    return f"np.{dtype}({text})"


_to_numba = _printer("numba", _literal_numba)
_to_c = _printer("c", _literal_c)


def to_numpy(expr: Expr, names: Sequence[str], dtype: str) -> str:
    """A NumPy expression over arrays named ``names`` (``np`` and
    ``special``, which is ``special(np)``, in scope)."""
    return _to_numpy(expr, names, dtype)


def to_numba(expr: Expr, names: Sequence[str], dtype: str) -> str:
    """A scalar expression Numba compiles (with ``error_model="numpy"``, so a
    division by zero gives Inf or NaN as NumPy's), over scalars named
    ``names``, with ``NUMBA_PRELUDE``'s helpers in scope."""
    text = _to_numba(expr, names, dtype)
    return text if is_boolean(expr) else f"np.{dtype}({text})"


def to_c(expr: Expr, names: Sequence[str], dtype: str) -> str:
    """A CUDA C (C++) expression over scalars named ``names``, with
    ``C_PRELUDE``'s helpers in scope."""
    if dtype not in _C_TYPES:
        raise ValueError(f"no C type for {dtype}")
    return _to_c(expr, names, dtype)


def evaluate(expr: Expr, arrays: Sequence[Any], xp: Any, dtype: Any) -> Any:
    """Compute ``expr`` on arrays with ``xp`` (numpy or cupy): the reference the
    printed forms are checked against."""
    dt = np.dtype(dtype)
    scope = {"np": xp, "special": special(xp)}
    names = [f"_a{i}" for i in range(len(arrays))]
    scope.update(zip(names, arrays))
    code = to_numpy(expr, names, dt.name)
    return xp.asarray(eval(code, scope))  # noqa: S307  (printed from the tree above)


def special(xp: Any) -> Any:
    """The module whose ``erf`` every erf of ``xp``'s arrays calls, eager ops
    and printed kernels alike: ``core.engine.erf32`` on the CPU (its own
    float32 erf, SciPy's for other dtypes), ``cupyx.scipy.special`` on the GPU."""
    if xp is np:
        from core.engine import erf32

        return erf32
    import cupyx.scipy.special

    return cupyx.scipy.special


NUMBA_PRELUDE = """
import math

import numba
import numpy as np


@numba.njit(inline="always")
def gs_maximum(a, b):
    return a if (a > b or a != a) else b


@numba.njit(inline="always")
def gs_minimum(a, b):
    return a if (a < b or a != a) else b


@numba.njit(inline="always")
def gs_sign(a):
    if a > 0:
        return 1.0
    if a < 0:
        return -1.0
    return a if a != a else 0.0


@numba.njit(inline="always")
def gs_remainder(a, b):
    # NumPy's npy_divmod: fmod, moved to the divisor's sign; a zero takes its sign
    mod = np.fmod(a, b)
    if b == 0:
        return mod
    if mod != 0:
        if (b < 0) != (mod < 0):
            mod += b
    else:
        mod = math.copysign(0.0, b)
    return mod
"""

C_PRELUDE = """
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define GS_FN __device__ inline
#else
#include <cmath>
using namespace std;
#define GS_FN static inline
#endif
template <typename T> GS_FN T gs_maximum(T a, T b) { return (a > b || a != a) ? a : b; }
template <typename T> GS_FN T gs_minimum(T a, T b) { return (a < b || a != a) ? a : b; }
template <typename T> GS_FN T gs_sign(T a) {
    return a > 0 ? (T)1 : (a < 0 ? (T)-1 : (a != a ? a : (T)0));
}
template <typename T> GS_FN T gs_remainder(T a, T b) {
    T mod = fmod(a, b);
    if (b == 0) return mod;
    if (mod != 0) { if ((b < 0) != (mod < 0)) mod += b; } else { mod = copysign((T)0, b); }
    return mod;
}
"""
