"""Lowering: the NumPy code of one node, for the code generator.

The ops that make up most of a small step are written out as the NumPy calls
their registered forward makes (with the branch the forward would take
chosen now, from the static shapes), so compiled and eager compute the same
bits without the forward's Python around them; every other op calls its
forward. Fused nodes are printed by ``kernels_numpy``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from core.deferred.graph import Graph, Node
from core.engine.ops import Op

# A lowering: (graph, node, argument names, output names, literal maker,
# destination per output or None) -> the lines of code, or None to call the
# op's forward instead. Only the ops ``accepts_out`` names are given destinations.
Lowering = Callable[..., list | None]


def _shape(g: Graph, vid: int) -> tuple:
    return g.values[vid].shape


def _dtype(g: Graph, vid: int) -> str:
    return g.values[vid].dtype


_BINARY_UFUNCS = {"+": "np.add", "-": "np.subtract", "*": "np.multiply", "/": "np.divide"}


def _binary(symbol: str) -> Lowering:
    def lower(g, n, a, o, lit, dest=None):
        if dest and dest[0]:
            return [f"{o[0]} = {_BINARY_UFUNCS[symbol]}({a[0]}, {a[1]}, out={dest[0]})"]
        return [f"{o[0]} = {a[0]} {symbol} {a[1]}"]

    return lower


def _ufunc(name: str) -> Lowering:
    def lower(g, n, a, o, lit, dest=None):
        out = f", out={dest[0]}" if dest and dest[0] else ""
        return [f"{o[0]} = np.{name}({a[0]}{out})"]

    return lower


def _matmul_nt(g: Graph, a_vid: int, b_vid: int, a: str, b: str, out: str, on_np: bool) -> str:
    """``a @ b.T`` as ``core.engine.defs.nn._matmul_nt`` computes it."""
    if on_np and 2 * _shape(g, a_vid)[0] <= _shape(g, b_vid)[0]:
        return f"{out} = np.ascontiguousarray(np.matmul({b}, {a}.T).T)"
    return f"{out} = np.matmul({a}, {b}.T)"


def _linear(g, n, a, o, lit, dest=None):
    x_vid, w_vid = n.inputs[0], n.inputs[1]
    if len(_shape(g, x_vid)) != 2:
        return None
    lines = [_matmul_nt(g, x_vid, w_vid, a[0], a[1], o[0], lit.on_numpy)]
    if len(a) == 3:
        lines.append(f"{o[0]} += {a[2]}")
    return lines


def _plain_matmul(g: Graph, n: Node) -> bool:
    """2-D operands, not the ``a @ b.T`` form (which has a layout rule)."""
    ta, tb = n.attrs.get("transpose_a", False), n.attrs.get("transpose_b", False)
    sa, sb = _shape(g, n.inputs[0]), _shape(g, n.inputs[1])
    return len(sa) == 2 and len(sb) == 2 and not (tb and not ta)


def _matmul(g, n, a, o, lit, dest=None):
    ta, tb = n.attrs.get("transpose_a", False), n.attrs.get("transpose_b", False)
    sa, sb = _shape(g, n.inputs[0]), _shape(g, n.inputs[1])
    if len(sa) != 2 or len(sb) != 2:
        return None
    if tb and not ta:
        return [_matmul_nt(g, n.inputs[0], n.inputs[1], a[0], a[1], o[0], lit.on_numpy)]
    left = f"{a[0]}.T" if ta else a[0]
    right = f"{a[1]}.T" if tb else a[1]
    out = f", out={dest[0]}" if dest and dest[0] else ""
    return [f"{o[0]} = np.matmul({left}, {right}{out})"]


def _same_operands(g: Graph, n: Node) -> bool:
    a, b = n.inputs[0], n.inputs[1]
    return _shape(g, a) == _shape(g, b) and _dtype(g, a) == _dtype(g, b)


def _add_scaled(g, n, a, o, lit, dest=None):
    if not _same_operands(g, n):
        return None  # the forward's broadcasting path
    alpha = lit(n.attrs["alpha"], _dtype(g, n.inputs[1]))
    if dest and dest[0]:
        scaled = f"{o[0]}_scaled"
        return [f"{scaled} = {a[1]} * {alpha}", f"{o[0]} = np.add({a[0]}, {scaled}, out={dest[0]})"]
    return [f"{o[0]} = {a[1]} * {alpha}", f"{o[0]} += {a[0]}"]


def _tanh_backward(g, n, a, o, lit, dest=None):
    one = lit(1.0, _dtype(g, n.inputs[1]))
    return [f"{o[0]} = {a[0]} * ({one} - {a[1]} * {a[1]})"]


def _sigmoid_backward(g, n, a, o, lit, dest=None):
    one = lit(1.0, _dtype(g, n.inputs[1]))
    return [f"{o[0]} = {a[0]} * {a[1]} * ({one} - {a[1]})"]


def _relu(g, n, a, o, lit, dest=None):
    return [f"{o[0]} = np.maximum({a[0]}, {lit(0.0, _dtype(g, n.inputs[0]))})"]


def _relu_backward(g, n, a, o, lit, dest=None):
    return [f"{o[0]} = {a[0]} * ({a[1]} > 0)"]


def _sum_to(g, n, a, o, lit, dest=None):
    shape, target = _shape(g, n.inputs[0]), tuple(n.attrs["shape"])
    lead = len(shape) - len(target)
    if lead != 1 or shape[1:] != target:
        return None  # a keep-dims sum or several leading axes: the forward
    if math.prod(shape) < 4096:
        return [f"{o[0]} = np.add.reduce({a[0]}, axis=0)"]
    dtype = _dtype(g, n.inputs[0])
    if not dtype.startswith("float"):
        return None
    # the forward's BLAS path (``sum_leading``) with its ones vector made once;
    # the forward's own reduction where the rows are not contiguous, as eager
    ones = lit.ones(shape[0], dtype)
    rows = a[0] if len(shape) == 2 else f"{a[0]}.reshape({shape[0]}, -1)"
    summed = f"np.matmul({ones}, {rows})" + ("" if len(shape) == 2 else f".reshape({target})")
    return [f"{o[0]} = {summed} if {a[0]}.flags.c_contiguous else {a[0]}.sum(axis=0)"]


def _mse_loss(g, n, a, o, lit, dest=None):
    if _shape(g, n.inputs[0]) != _shape(g, n.inputs[1]):
        return None
    dtype = _dtype(g, n.inputs[0])
    size = math.prod(_shape(g, n.inputs[0]))
    return [
        f"{o[1]} = {a[0]} - {a[1]}",
        f"{o[0]} = np.asarray(np.add.reduce({o[1]} * {o[1]}, axis=None) / {lit(size, dtype)})",
    ]


def _mse_loss_backward(g, n, a, o, lit, dest=None):
    size = math.prod(_shape(g, n.inputs[0]))
    scale = lit(2.0 / size if size else math.nan, _dtype(g, n.inputs[1]))
    return [f"{o[0]} = {a[0]} * ({a[1]} * {scale})"]


def _reshape(g, n, a, o, lit, dest=None):
    return [f"{o[0]} = {a[0]}.reshape({tuple(n.attrs['shape'])!r})"]


def _expand(g, n, a, o, lit, dest=None):
    return [f"{o[0]} = np.broadcast_to({a[0]}, {tuple(n.attrs['shape'])!r})"]


def _permute(g, n, a, o, lit, dest=None):
    return [f"{o[0]} = {a[0]}.transpose({tuple(n.attrs['axes'])!r})"]


def _detach(g, n, a, o, lit, dest=None):
    return [f"{o[0]} = {a[0]}"]


LOWERINGS: dict[Op, Lowering] = {
    Op.ADD: _binary("+"),
    Op.ACCUMULATE_GRAD: _binary("+"),
    Op.SUB: _binary("-"),
    Op.MUL: _binary("*"),
    Op.DIV: _binary("/"),
    Op.NEG: _ufunc("negative"),
    Op.EXP: _ufunc("exp"),
    Op.LOG: _ufunc("log"),
    Op.SQRT: _ufunc("sqrt"),
    Op.TANH: _ufunc("tanh"),
    Op.ABS: _ufunc("abs"),
    Op.LINEAR: _linear,
    Op.MATMUL: _matmul,
    Op.ADD_SCALED: _add_scaled,
    Op.TANH_BACKWARD: _tanh_backward,
    Op.SIGMOID_BACKWARD: _sigmoid_backward,
    Op.RELU: _relu,
    Op.RELU_BACKWARD: _relu_backward,
    Op.SUM_TO: _sum_to,
    Op.MSE_LOSS: _mse_loss,
    Op.MSE_LOSS_BACKWARD: _mse_loss_backward,
    Op.RESHAPE: _reshape,
    Op.EXPAND: _expand,
    Op.PERMUTE: _permute,
    Op.DETACH: _detach,
}


_OUT_BINARY = {Op.ADD, Op.ACCUMULATE_GRAD, Op.SUB, Op.MUL, Op.DIV}
_OUT_UNARY = {Op.NEG, Op.EXP, Op.LOG, Op.SQRT, Op.TANH, Op.ABS}


def accepts_out(g: Graph, n: Node) -> bool:
    """Whether the code of ``n`` can write its outputs into given arrays."""
    if n.kind == "fused":
        return True
    if n.op in _OUT_BINARY:
        a, b = n.inputs
        out = g.values[n.outputs[0]]
        return _dtype(g, a) == _dtype(g, b) == out.dtype
    if n.op in _OUT_UNARY:
        return _dtype(g, n.inputs[0]) == g.values[n.outputs[0]].dtype
    if n.op == Op.MATMUL:
        return _plain_matmul(g, n) and _dtype(g, n.inputs[0]) == _dtype(g, n.inputs[1])
    if n.op == Op.ADD_SCALED:
        return _same_operands(g, n)
    return False
