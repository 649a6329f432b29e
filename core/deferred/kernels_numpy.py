"""Fused kernels as code: a ``fused`` node's expressions printed as one
function, NumPy ufunc calls on the whole arrays when small, in row blocks of
about ``BLOCK`` elements with reused scratch when large (each block's
temporaries stay in cache), or one CuPy ``ElementwiseKernel`` in CUDA C on
the GPU. A row reduction ending the node is the forwards' own ``np.sum`` or
``np.mean``, block by block.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.deferred.graph import Graph, Node, expr_from_json
from core.engine import expr as E

# elements per block of a fused kernel (1 MiB of float32 per operand): of 2**15
# to 2**19, 2**18 ran the 4M-value GELU chain fastest (13.5-13.7 ms against
# 14.2-14.9, 2-core AMD EPYC: 1 MiB L2, 32 MiB L3) and left the GELU MLP's
# 256x1024 arrays whole (its step 21.6-21.9 ms against 22.0-27.3 in blocks)
BLOCK = 1 << 18


def _shape(g: Graph, vid: int) -> tuple:
    return g.values[vid].shape


def _dtype(g: Graph, vid: int) -> str:
    return g.values[vid].dtype


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
    "erf": "special.erf",
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
    shape = tuple(n.attrs["shape"])  # the elementwise values' (outputs may be reduced)
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


def _reduction(how: dict, value: str, out: str | None = None) -> str:
    """The SUM or MEAN forward's own call (np.sum, np.mean) on ``value``."""
    fn = "np.mean" if how["kind"] == "mean" else "np.sum"
    tail = f", out={out}" if out is not None else ""
    return f"{fn}({value}, axis={tuple(how['axis'])!r}, keepdims={how['keepdims']}{tail})"


def _straight(g, n, trees, dtype, shape, in_shapes, lit) -> list[str]:
    """One call per distinct subexpression, on whole arrays; an output whose
    value has the output's shape is computed into its destination; a reduced
    output is reduced from its values."""
    order, roots = _dag(trees)
    reduce = n.attrs.get("reduce") or [None] * len(roots)
    names: dict[Any, str] = {("in", i): f"a{i}" for i in range(len(n.inputs))}
    full = []
    for root, how in zip(roots, reduce, strict=True):
        used = _inputs_of_key(root, order)
        reach = tuple(np.broadcast_shapes(*[in_shapes[i] for i in used])) if used else ()
        full.append(root[0] == "call" and reach == tuple(shape) and how is None)
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
        if reduce[i] is not None:
            lines.append(f"    r{i} = {_reduction(reduce[i], text)}")
            text = f"r{i}"
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
    reduce = n.attrs.get("reduce") or [None] * len(roots)
    rows = max(1, BLOCK // max(1, math.prod(shape[1:])))
    last_use = {}
    for k, (_key, _fn, args) in enumerate(order):
        for a in args:
            last_use[a] = k
    for root, how in zip(roots, reduce, strict=True):
        if how is not None:
            last_use[root] = len(order)  # read by the reduction, after the block's calls
    out_of = {
        root: i
        for i, (root, how) in enumerate(zip(roots, reduce, strict=True))
        if root[0] == "call" and how is None
    }
    lines = []
    for i, vid in enumerate(n.outputs):
        empty = f"np.empty({_shape(g, vid)!r}, np.{_dtype(g, vid)})"
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
        for a in dict.fromkeys(args):  # once each: x + x must not free x's slot twice
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
    for i, (root, how) in enumerate(zip(roots, reduce, strict=True)):
        if how is not None:  # rows are whole in a block: its rows' sums are final
            value = _operand(root, names, lit, dtype)
            lines.append(f"        {_reduction(how, value, f'o{i}[r:e]')}")
        elif root[0] != "call":  # an input or literal as an output: copy it in
            lines.append(f"        o{i}[r:e] = {_operand(root, names, lit, dtype)}")
        outs.append(f"o{i}")
    return [*lines, f"    return {', '.join(outs)}"]


def cuda_operation(g: Graph, n: Node) -> tuple[str, str, str]:
    """(input params, output params, operation) of a fused node as CuPy's
    ``ElementwiseKernel`` takes them; the operation is CUDA C printed from the
    node's expressions (inputs ``a0``..., outputs ``o0``...)."""
    trees = [expr_from_json(t) for t in n.attrs["exprs"]]  # reductions come after
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
    reduce = n.attrs.get("reduce")
    if reduce:  # CuPy reduces what the elementwise kernel made (no destinations)
        values = ", ".join(f"t{i}" for i in range(len(trees))) + ("," if len(trees) == 1 else "")
        results = [
            _reduction(how, f"t{i}").replace("np.", "cupy.") if how else f"t{i}"
            for i, how in enumerate(reduce)
        ]
        tail = [f"    {values} = E{name}({args})", f"    return {', '.join(results)}", ""]
    else:
        tail = [
            f"    if {' is None or '.join(f'd{i}' for i in range(len(trees)))} is None:",
            f"        return E{name}({args})",
            f"    return E{name}({args}, {given})",
            "",
        ]
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
            *tail,
        ]
    )


_C_TYPE = {"float32": "float", "float64": "double", "bool": "bool"}
