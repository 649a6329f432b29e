"""Lowering: the NumPy code of one node, for the code generator.

The ops that make up most of a small step are written out as the NumPy calls
their registered forward makes (with the branch the forward would take
chosen now, from the static shapes), so compiled and eager compute the same
bits without the forward's Python around them; every other op calls its
forward. A fused node becomes a kernel function printed from its
expressions, run in row blocks of about ``BLOCK`` elements when it is large.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from core.deferred.graph import Graph, Node, expr_from_json
from core.engine import expr as E
from core.engine.ops import Op

BLOCK = 1 << 15  # elements per block of a fused kernel (128 KiB of float32 per operand)

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
    if lead != 1 or shape[1:] != target or math.prod(shape) >= 4096:
        return None  # the forward's BLAS path for big sums, or a keep-dims sum
    return [f"{o[0]} = np.add.reduce({a[0]}, axis=0)"]


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


# -- fused kernels ---------------------------------------------------------------------------

# each expression function as a NumPy ufunc taking ``out=`` (None: written differently)
UFUNCS = {
    "add": "np.add",
    "sub": "np.subtract",
    "mul": "np.multiply",
    "div": "np.divide",
    "neg": "np.negative",
    "pow": "np.power",
    "maximum": "np.maximum",
    "minimum": "np.minimum",
    "exp": "np.exp",
    "log": "np.log",
    "sqrt": "np.sqrt",
    "abs": "np.absolute",
    "sign": "np.sign",
    "tanh": "np.tanh",
    "erf": "scipy_special.erf",
    "log1p": "np.log1p",
    "expm1": "np.expm1",
    "log2": "np.log2",
    "log10": "np.log10",
    "exp2": "np.exp2",
    "sin": "np.sin",
    "cos": "np.cos",
    "floor": "np.floor",
    "ceil": "np.ceil",
    "trunc": "np.trunc",
    "rint": "np.rint",
    "fmod": "np.fmod",
    "remainder": "np.remainder",
    "gt": "np.greater",
    "ge": "np.greater_equal",
    "lt": "np.less",
    "le": "np.less_equal",
    "eq": "np.equal",
    "ne": "np.not_equal",
    "where": None,
    "number": None,
}


def _dag(trees: list[E.Expr]) -> tuple[list[tuple], list[Any]]:
    """The expressions as one DAG, each distinct subexpression once, in an
    order where arguments come first: (key, fn, argument keys) per call."""
    order: list[tuple] = []
    seen: dict[Any, Any] = {}

    def visit(e: E.Expr) -> Any:
        if isinstance(e, E.In):
            return ("in", e.index)
        if isinstance(e, E.Lit):
            return ("lit", e.value)
        args = tuple(visit(a) for a in e.args)
        key = ("call", e.fn, args)
        if key not in seen:
            seen[key] = len(order)
            order.append((key, e.fn, args))
        return key

    roots = [visit(t) for t in trees]
    return order, roots


def fused_kernel(g: Graph, n: Node, name: str, lit: Any) -> str:
    """A function ``name(*inputs, *destinations)`` returning every output of a
    fused node, written into its destination array where one is given."""
    dtype = n.attrs["dtype"]
    trees = [expr_from_json(t) for t in n.attrs["exprs"]]
    shape = _shape(g, n.outputs[0])
    in_shapes = [_shape(g, v) for v in n.inputs]
    params = [f"a{i}" for i in range(len(n.inputs))] + [f"d{i}=None" for i in range(len(trees))]
    header = f"def {name}({', '.join(params)}):"
    header += f"  # {', '.join(n.attrs['ops'])}"
    if not lit.on_numpy:
        return _cuda_kernel(g, n, name, trees, dtype, header)
    if math.prod(shape) <= BLOCK or not _rows_blockable(shape, in_shapes):
        body = _straight(g, n, trees, dtype, shape, in_shapes, lit)
    else:
        body = _blocked(g, n, trees, dtype, shape, in_shapes, lit)
    return header + "\n" + "\n".join(body) + "\n"


def _operand(key: Any, names: dict, lit: Any, dtype: str) -> str:
    if key[0] == "in":
        return names[key]
    if key[0] == "lit":
        return lit(key[1], dtype)
    return names[key]


def _call_text(fn: str, args: list[str], dtype: str, out: str | None) -> str:
    ufunc = UFUNCS[fn]
    if ufunc is not None:
        tail = f", out={out})" if out is not None else ")"
        return f"{ufunc}({', '.join(args)}{tail}"
    if fn == "where":
        text = f"np.where({args[0]}, {args[1]}, {args[2]})"
    else:  # "number": a truth value as 1 or 0 of the computation dtype
        text = f"np.asarray({args[0]}, np.{dtype})"
    return text if out is None else f"np.copyto({out}, {text})"


def _straight(g, n, trees, dtype, shape, in_shapes, lit) -> list[str]:
    """One call per distinct subexpression, on whole arrays; an output whose
    value has the output's shape is computed into its destination."""
    order, roots = _dag(trees)
    names: dict[Any, str] = {("in", i): f"a{i}" for i in range(len(n.inputs))}
    full = []
    for root in roots:
        used = _inputs_of_key(root, order)
        reach = tuple(np.broadcast_shapes(*[in_shapes[i] for i in used])) if used else ()
        full.append(root[0] == "call" and reach == tuple(shape))
    into = {}
    for i, root in enumerate(roots):
        if full[i] and root not in into:
            into[root] = i
    lines = []
    for k, (key, fn, args) in enumerate(order):
        names[key] = f"t{k}"
        operands = [_operand(a, names, lit, dtype) for a in args]
        out = f"d{into[key]}" if key in into and UFUNCS[fn] is not None else None
        lines.append(f"    t{k} = {_call_text(fn, operands, dtype, out)}")
    outs = []
    for i, root in enumerate(roots):
        text = _operand(root, names, lit, dtype)
        if not full[i]:
            text = f"np.broadcast_to({text}, {tuple(shape)!r})"
        if into.get(root) != i or UFUNCS.get(root[1] if root[0] == "call" else "", None) is None:
            lines.append(f"    if d{i} is not None:")
            lines.append(f"        np.copyto(d{i}, {text})")
            text = f"(d{i} if d{i} is not None else {text})"
        outs.append(text)
    return [*lines, f"    return {', '.join(outs)}"]


def _inputs_of_key(key: Any, order: list[tuple]) -> set[int]:
    if key[0] == "in":
        return {key[1]}
    if key[0] == "lit":
        return set()
    found: set[int] = set()
    for a in key[2]:
        found |= _inputs_of_key(a, order)
    return found


def _rows_blockable(shape: tuple, in_shapes: list[tuple]) -> bool:
    """Blocks along the first axis: every input is either full along it or 1
    (or has fewer dims, broadcasting over it)."""
    if not shape:
        return False
    return all(len(s) != len(shape) or s[0] in (1, shape[0]) for s in in_shapes)


def _blocked(g, n, trees, dtype, shape, in_shapes, lit) -> list[str]:
    """Row blocks of about BLOCK elements: every subexpression writes a scratch
    block (reused once dead), every output its slice of the result, so each
    block's temporaries stay in cache and nothing is allocated per block."""
    order, roots = _dag(trees)
    rows = max(1, BLOCK // max(1, math.prod(shape[1:])))
    last_use = {}
    for k, (_key, _fn, args) in enumerate(order):
        for a in args:
            last_use[a] = k
    out_of = {root: i for i, root in enumerate(roots) if root[0] == "call"}
    lines = []
    for i, vid in enumerate(n.outputs):
        empty = f"np.empty({tuple(shape)!r}, np.{_dtype(g, vid)})"
        lines.append(f"    o{i} = {empty} if d{i} is None else d{i}")
    free: dict[str, list[int]] = {}
    slot_of: dict[Any, int] = {}
    kinds: list[str] = []
    for k, (key, fn, args) in enumerate(order):
        if key not in out_of:
            kind = "bool" if E.FUNCS[fn].boolean else dtype
            pool = free.setdefault(kind, [])
            slot = pool.pop() if pool else len(kinds)
            if slot == len(kinds):
                kinds.append(kind)
            slot_of[key] = slot
        for a in args:
            if last_use.get(a) == k and a in slot_of:
                free.setdefault(kinds[slot_of[a]], []).append(slot_of[a])
    for s, kind in enumerate(kinds):
        lines.append(f"    s{s} = np.empty({(rows, *shape[1:])!r}, np.{kind})")
    lines.append(f"    for r in range(0, {shape[0]}, {rows}):")
    lines.append(f"        e = min(r + {rows}, {shape[0]})")
    names: dict[Any, str] = {}
    for i, s in enumerate(in_shapes):
        full = len(s) == len(shape) and s[0] == shape[0] and shape[0] != 1
        names[("in", i)] = f"x{i}"
        lines.append(f"        x{i} = a{i}[r:e]" if full else f"        x{i} = a{i}")
    for s in range(len(kinds)):
        lines.append(f"        b{s} = s{s}[:e - r]")
    for key, fn, args in order:
        out = f"o{out_of[key]}[r:e]" if key in out_of else f"b{slot_of[key]}"
        names[key] = out
        operands = [_operand(a, names, lit, dtype) for a in args]
        lines.append(f"        {_call_text(fn, operands, dtype, out)}")
    outs = []
    for i, root in enumerate(roots):
        if root[0] != "call":  # an input or literal as an output: copy it in
            lines.append(f"        o{i}[r:e] = {_operand(root, names, lit, dtype)}")
        outs.append(f"o{i}")
    return [*lines, f"    return {', '.join(outs)}"]


def cuda_operation(g: Graph, n: Node) -> tuple[str, str, str]:
    """(input params, output params, operation) of a fused node as CuPy's
    ``ElementwiseKernel`` takes them; the operation is CUDA C printed from the
    node's expressions (inputs ``a0``..., outputs ``o0``...)."""
    trees = [expr_from_json(t) for t in n.attrs["exprs"]]
    ins = ", ".join(f"{_dtype(g, v)} a{i}" for i, v in enumerate(n.inputs))
    outs = ", ".join(f"{_dtype(g, v)} o{i}" for i, v in enumerate(n.outputs))
    names = [f"a{i}" for i in range(len(n.inputs))]
    body = "; ".join(
        f"o{i} = ({_C_TYPE[_dtype(g, v)]})({E.to_c(t, names, n.attrs['dtype'])})"
        for i, (v, t) in enumerate(zip(n.outputs, trees, strict=True))
    )
    return ins, outs, body


def _cuda_kernel(g: Graph, n: Node, name: str, trees: list, dtype: str, header: str) -> str:
    """One CuPy ``ElementwiseKernel`` for the whole group (broadcasting and the
    launch are CuPy's); its CUDA C is printed from the expressions."""
    ins, outs, body = cuda_operation(g, n)
    names = [f"a{i}" for i in range(len(n.inputs))]
    given = ", ".join(f"d{i}" for i in range(len(trees)))
    args = ", ".join(names)
    return "\n".join(
        [
            f"E{name} = cupy.ElementwiseKernel(",
            f"    {ins!r},",
            f"    {outs!r},",
            f"    {body!r},",
            f"    'gradstep_{name}',",
            "    preamble=C_PRELUDE,",
            ")",
            "",
            "",
            header,
            f"    if {' is None or '.join(f'd{i}' for i in range(len(trees)))} is None:",
            f"        return E{name}({args})",
            f"    return E{name}({args}, {given})",
            "",
        ]
    )


_C_TYPE = {"float32": "float", "float64": "double", "bool": "bool"}
