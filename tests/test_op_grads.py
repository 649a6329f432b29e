"""Gradient checks for every op, as one table (JAX's ``LAX_GRAD_OPS``).

Each row is a case: a name, the op it exercises, a function built from the public
API and how to draw its inputs. Every row runs through ``core.gradcheck`` in
float64 on each device. ``test_table_covers_every_op`` keeps the table complete:
an op added to ``core.ops.Op`` without a row here fails it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import core
import core.functional as F
from core.engine.dispatch import apply
from core.engine.ops import REGISTRY, Op, missing

# -- inputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    """How to draw one input; float arrays require grad, the rest do not."""

    label: str
    draw: Callable[[np.random.Generator], np.ndarray]
    grad: bool = True


def normal(*shape: int) -> Arg:
    return Arg(f"normal{shape}", lambda rng: rng.standard_normal(shape))


def positive(*shape: int) -> Arg:
    """Values in [0.5, 2]: log, sqrt, fractional powers and divisors."""
    return Arg(f"positive{shape}", lambda rng: rng.uniform(0.5, 2.0, shape))


def away(*shape: int) -> Arg:
    """|values| in [0.3, 1.5], either sign: no element near the kink at 0."""

    def draw(rng):
        return rng.uniform(0.3, 1.5, shape) * rng.choice([-1.0, 1.0], shape)

    return Arg(f"away{shape}", draw)


def grid(*shape: int, offset: float = 0.0) -> Arg:
    """Multiples of 0.2 plus ``offset``: two grids with different offsets never tie."""

    def draw(rng):
        return rng.integers(-4, 5, shape) * 0.2 + offset

    return Arg(f"grid{shape}+{offset}", draw)


def shifted(offset: float) -> Callable[..., Arg]:
    return lambda *shape: grid(*shape, offset=offset)


def distinct(*shape: int) -> Arg:
    """All values 0.25 apart, so max/min and pooling have no ties."""

    def draw(rng):
        n = math.prod(shape)
        return ((rng.permutation(n) - n / 2) * 0.25).reshape(shape)

    return Arg(f"distinct{shape}", draw)


def ints(high: int, *shape: int) -> Arg:
    return Arg(f"ints<{high}{shape}", lambda rng: rng.integers(0, high, shape))


def fixed(values) -> Arg:
    """A constant input (index arrays with repeats, masks, targets)."""
    array = np.asarray(values)
    return Arg(f"fixed{list(array.shape)}", lambda rng: array.copy())


def const(arg: Arg | tuple) -> Arg:
    """The same values, as a float input that does not require grad."""
    arg = arg if isinstance(arg, Arg) else normal(*arg)
    return Arg(f"const {arg.label}", arg.draw, grad=False)


def mask(*shape: int) -> Arg:
    def draw(rng):
        m = rng.random(shape) < 0.5
        m.reshape(-1)[0] = True
        return m

    return Arg(f"mask{shape}", draw)


def accumulate(a: core.Tensor, b: core.Tensor) -> core.Tensor:
    """The op backward adds a leaf's new gradient into its ``.grad`` with."""
    return apply(Op.ACCUMULATE_GRAD, (a, b))


def seeded_dropout(x: core.Tensor, p: float, seed: int) -> core.Tensor:
    """Dropout with the same mask on every call (gradcheck evaluates many times)."""
    core.manual_seed(seed)
    return F.dropout(x, p)


# -- the table ------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    op: Op  # the op under test; it must appear in the graph ``fn`` builds
    fn: Callable[..., core.Tensor]
    args: tuple[Arg, ...]
    eps: float = 1e-6
    tol: float = 1e-5


def row(name: str, op: Op, fn, *args, **check) -> Row:
    """A row; a plain shape tuple among ``args`` means ``normal(*shape)``."""
    args = tuple(a if isinstance(a, Arg) else normal(*a) for a in args)
    return Row(name, op, fn, args, **check)


def make_inputs(r: Row, device: str) -> list[core.Tensor]:
    rng = np.random.default_rng(zlib.crc32(r.name.encode()))
    inputs = []
    for arg in r.args:
        array = np.asarray(arg.draw(rng))
        if array.dtype.kind == "f":
            t = core.tensor(array, dtype="float64", requires_grad=arg.grad, device=device)
        else:
            t = core.tensor(array, device=device)
        inputs.append(t)
    return inputs


BROADCASTS = [
    ((2, 3), (2, 3)),
    ((3, 1), (1, 4)),
    ((2, 3), (3,)),
    ((2, 3), ()),
    ((), (2, 3)),
    ((2, 1, 3), (4, 1)),
]
BINARY = [
    ("add", Op.ADD, lambda a, b: a + b, normal, normal),
    ("sub", Op.SUB, lambda a, b: a - b, normal, normal),
    ("mul", Op.MUL, lambda a, b: a * b, normal, normal),
    ("div", Op.DIV, lambda a, b: a / b, normal, away),
    ("pow", Op.POW, lambda a, b: a**b, positive, normal),
    ("maximum", Op.MAXIMUM, F.maximum, grid, shifted(0.1)),
    ("minimum", Op.MINIMUM, F.minimum, grid, shifted(0.1)),
]
ROWS = [
    row(f"{name} {sa}x{sb}", op, fn, ga(*sa), gb(*sb))
    for name, op, fn, ga, gb in BINARY
    for sa, sb in BROADCASTS
]
ROWS += [
    row("radd", Op.ADD, lambda a: 2.0 + a, (2, 3)),
    row("accumulate_grad", Op.ACCUMULATE_GRAD, accumulate, (2, 3), (3,)),
    row("lerp", Op.LERP, lambda a, b, w: a.lerp(b, w), (2, 3), (3,), (2, 1)),
    row("lerp number", Op.LERP, lambda a, b: a.lerp(b, 0.25), (2, 3), (2, 3)),
    row("tanh_backward", Op.TANH_BACKWARD, F.tanh_backward, (2, 3), (2, 3)),
    row("tanh_backward bcast", Op.TANH_BACKWARD, F.tanh_backward, (2, 3), (3,)),
    row("sigmoid_backward", Op.SIGMOID_BACKWARD, F.sigmoid_backward, (2, 3), (2, 3)),
    row("relu_backward", Op.RELU_BACKWARD, F.relu_backward, (2, 3), away(2, 3)),
    row("add alpha", Op.ADD_SCALED, lambda a, b: a.add(b, alpha=-0.3), (2, 3), (3,)),
    row("add alpha const", Op.ADD_SCALED, lambda a: a.add(1.5, alpha=2.0), (2, 3)),
    row("rsub", Op.SUB, lambda a: 2.0 - a, (2, 3)),
    row("rmul", Op.MUL, lambda a: 3 * a, (2, 3)),
    row("rdiv", Op.DIV, lambda a: 1.5 / a, away(2, 3)),
    row("rpow", Op.POW, lambda a: 2.0**a, (2, 3)),
    row("F.pow tensor", Op.POW, F.pow, positive(3, 1), normal(3)),
    row("pow const exponent", Op.POW, lambda a, b: a**b, positive(2, 3), const((3,))),
    row("pow const base", Op.POW, lambda a, b: a**b, const(positive(2, 1)), normal(2, 3)),
    row("where const branch", Op.WHERE, F.where, mask(2, 3), normal(2, 3), const((2, 3))),
    row("maximum number", Op.MAXIMUM, lambda a: F.maximum(a, 0.0), shifted(0.1)(2, 3)),
    row("minimum number", Op.MINIMUM, lambda a: F.minimum(0.0, a), shifted(0.1)(2, 3)),
]
ROWS += [
    row(f"pow {e}", Op.POW_SCALAR, lambda a, e=e: a**e, gen(2, 3))
    for e, gen in [
        (2, away),
        (3, away),
        (0.5, positive),
        (-1, away),
        (1.7, positive),
        (0, positive),
        (1, normal),
        (4, normal),
        (-2.5, positive),
    ]
]
ROWS += [
    row("neg", Op.NEG, lambda a: -a, (2, 3)),
    row("exp", Op.EXP, lambda a: a.exp(), (2, 3)),
    row("F.exp", Op.EXP, F.exp, (4,)),
    row("log", Op.LOG, lambda a: a.log(), positive(2, 3)),
    row("F.log", Op.LOG, F.log, positive(4)),
    row("sqrt", Op.SQRT, lambda a: a.sqrt(), positive(2, 3)),
    row("erf", Op.ERF, F.erf, (2, 3)),
    row("F.sqrt", Op.SQRT, F.sqrt, positive(4)),
    row("abs", Op.ABS, lambda a: a.abs(), away(2, 3)),
    row("tanh", Op.TANH, lambda a: a.tanh(), (2, 3)),
    row("F.tanh", Op.TANH, F.tanh, (4,)),
    row("sigmoid", Op.SIGMOID, lambda a: a.sigmoid(), (2, 3)),
    row("F.sigmoid wide", Op.SIGMOID, lambda a: F.sigmoid(a * 4.0), (5,)),
    row("relu", Op.RELU, lambda a: a.relu(), away(2, 3)),
    row("F.relu", Op.RELU, F.relu, away(5)),
    row("leaky_relu", Op.LEAKY_RELU, F.leaky_relu, away(2, 3)),
    row("leaky_relu 0.2", Op.LEAKY_RELU, lambda a: F.leaky_relu(a, 0.2), away(2, 3)),
    row("gelu", Op.GELU, F.gelu, (2, 4)),
    row("gelu tanh", Op.GELU, lambda a: F.gelu(a, approximate="tanh"), (2, 4)),
    row("clip both", Op.CLIP, lambda a: a.clip(-0.5, 0.5), shifted(0.05)(3, 4)),
    row("clip min", Op.CLIP, lambda a: a.clip(min=-0.3), shifted(0.05)(3, 4)),
    row("clip max", Op.CLIP, lambda a: F.clip(a, max=0.3), shifted(0.05)(3, 4)),
    row("clamp", Op.CLIP, lambda a: a.clamp(-0.5, 0.5), shifted(0.05)(3, 4)),
    row("where", Op.WHERE, F.where, mask(3, 4), normal(3, 4), normal(3, 4)),
    row("where broadcast", Op.WHERE, F.where, mask(3, 1), normal(1, 4), normal(4)),
    row("where number", Op.WHERE, lambda m, a: F.where(m, a, 0.5), mask(2, 3), normal(2, 3)),
    row(
        "where compare",
        Op.WHERE,
        lambda a, b: F.where(a > b, a * 2.0, b),
        grid(2, 3),
        shifted(0.1)(2, 3),
    ),
    # float32 in the middle: a wider step, a looser tolerance
    row("cast f32 round trip", Op.CAST, lambda a: a.float().double(), (2, 3), eps=1e-3, tol=1e-3),
    row("cast int64 stops grad", Op.MUL, lambda a: a.astype("int64").double() * a, away(2, 3)),
    row(
        "cast f32 square",
        Op.CAST,
        lambda a: (a.float() * a.float()).double(),
        (2, 3),
        eps=1e-3,
        tol=1e-3,
    ),
]

AXES = [None, 0, -1, (0, 2)]
REDUCTIONS = [
    ("sum", Op.SUM, lambda a, **k: a.sum(**k), normal),
    ("mean", Op.MEAN, lambda a, **k: a.mean(**k), normal),
    ("max", Op.MAX, lambda a, **k: a.max(**k), distinct),
    ("min", Op.MIN, lambda a, **k: a.min(**k), distinct),
    ("var", Op.VAR, lambda a, **k: a.var(**k), normal),
]
ROWS += [
    row(
        f"{name} axis={axis} keepdims={keep}",
        op,
        lambda a, f=f, axis=axis, keep=keep: f(a, axis=axis, keepdims=keep),
        gen(2, 3, 4),
    )
    for name, op, f, gen in REDUCTIONS
    for axis in AXES
    for keep in (False, True)
]
ROWS += [
    row("var correction=0", Op.VAR, lambda a: a.var(axis=1, correction=0), (3, 4)),
    row("sum_to (3,1)", Op.SUM_TO, lambda a: a.sum_to((3, 1)), (2, 3, 4)),
    row("sum_to (2,1,4)", Op.SUM_TO, lambda a: a.sum_to((2, 1, 4)), (2, 3, 4)),
    row("F.sum_to (4,)", Op.SUM_TO, lambda a: F.sum_to(a, (4,)), (2, 3, 4)),
    row("reshape", Op.RESHAPE, lambda a: a.reshape(6, 4), (2, 3, 4)),
    row("reshape -1", Op.RESHAPE, lambda a: a.reshape(-1), (2, 3, 4)),
    row("view tuple", Op.RESHAPE, lambda a: a.view((4, -1)), (2, 3, 4)),
    row("flatten", Op.RESHAPE, lambda a: a.flatten(1), (2, 3, 4)),
    row("unsqueeze", Op.RESHAPE, lambda a: a.unsqueeze(1), (2, 3)),
    row("squeeze", Op.RESHAPE, lambda a: a.squeeze(1), (2, 1, 3)),
    row("permute", Op.PERMUTE, lambda a: a.permute(2, 0, 1), (2, 3, 4)),
    row("permute tuple", Op.PERMUTE, lambda a: a.permute((1, 2, 0)), (2, 3, 4)),
    row("transpose", Op.PERMUTE, lambda a: a.transpose(0, 2), (2, 3, 4)),
    row("transpose last", Op.PERMUTE, lambda a: a.transpose(), (2, 3, 4)),
    row(".T", Op.PERMUTE, lambda a: a.T, (3, 4)),
    row("expand", Op.EXPAND, lambda a: a.expand(3, 4), (3, 1)),
    row("expand new dims", Op.EXPAND, lambda a: a.expand((2, 3, 4)), (1, 4)),
    row("expand both", Op.EXPAND, lambda a: a.expand(2, 3, 5), (3, 1)),
    row("getitem int", Op.GETITEM, lambda a: a[1], (4, 3)),
    row("getitem negative int", Op.GETITEM, lambda a: a[-1, 0], (4, 3)),
    row("getitem slice", Op.GETITEM, lambda a: a[1:3], (4, 3)),
    row("getitem 2-d slice", Op.GETITEM, lambda a: a[1:, :2], (4, 3)),
    row("getitem negative step", Op.GETITEM, lambda a: a[::-1], (4, 3)),
    row("getitem negative step 2", Op.GETITEM, lambda a: a[3:0:-2, ::-1], (4, 3)),
    row("getitem ellipsis newaxis", Op.GETITEM, lambda a: a[..., None, 1], (2, 4, 3)),
    row("getitem repeated ints", Op.GETITEM, lambda a, i: a[i], (4, 3), fixed([0, 2, 0, 0, 3])),
    row(
        "getitem paired repeated ints",
        Op.GETITEM,
        lambda a, i, j: a[i, j],
        (4, 3),
        fixed([0, 1, 1, 3, 1]),
        fixed([2, 2, 2, 0, 2]),
    ),
    row(
        "getitem slice + repeated ints", Op.GETITEM, lambda a, j: a[1:, j], (4, 3), fixed([0, 0, 2])
    ),
    row(
        "getitem 2-d repeated ints", Op.GETITEM, lambda a, i: a[i], (4, 3), fixed([[1, 1], [3, 1]])
    ),
    row("getitem list", Op.GETITEM, lambda a: a[[0, 0, 1]], (4, 3)),
    row("getitem bool mask", Op.GETITEM, lambda a, m: a[m], (4, 3), mask(4, 3)),
    row("getitem bool rows", Op.GETITEM, lambda a, m: a[m], (4, 3), mask(4)),
    row("getitem compare mask", Op.GETITEM, lambda a: a[a > 0.0], away(4, 3)),
    row(
        "scatter_add repeated",
        Op.SCATTER_ADD,
        lambda v, i: F.index_add_into(v, (4, 3), i),
        (5, 3),
        fixed([0, 2, 0, 3, 0]),
    ),
    row(
        "scatter_add slice",
        Op.SCATTER_ADD,
        lambda v: F.index_add_into(v, (4, 3), slice(1, 3)),
        (2, 3),
    ),
    row("cat", Op.CONCAT, lambda a, b, c: F.cat([a, b, c]), (2, 3), (1, 3), (3, 3)),
    row("concatenate -1", Op.CONCAT, lambda a, b: F.concatenate([a, b], axis=-1), (2, 1), (2, 3)),
    row("cat axis 1", Op.CONCAT, lambda a, b: F.cat((a, b), axis=1), (2, 1, 3), (2, 2, 3)),
    row("stack", Op.STACK, lambda a, b, c: F.stack([a, b, c]), (2, 3), (2, 3), (2, 3)),
    row("stack axis 1", Op.STACK, lambda a, b: F.stack([a, b], axis=1), (2, 3), (2, 3)),
    row("stack axis -1", Op.STACK, lambda a, b: F.stack([a, b], axis=-1), (2, 3), (2, 3)),
    row("pad pairs", Op.PAD, lambda a: F.pad(a, ((1, 0), (2, 1))), (2, 3)),
    row("pad flat value", Op.PAD, lambda a: F.pad(a, (1, 2), value=0.5), (2, 3, 3)),
    row("pad flat 2-d", Op.PAD, lambda a: F.pad(a, (1, 1, 0, 2)), (1, 2, 3, 3)),
]

MATMULS = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((3, 4), (2, 4, 2)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)),
]
ROWS += [row(f"matmul {sa}@{sb}", Op.MATMUL, lambda a, b: a @ b, sa, sb) for sa, sb in MATMULS]
ROWS += [
    row("matmul const (4,)@(2,4,3)", Op.MATMUL, lambda a, b: a @ b, const((4,)), (2, 4, 3)),
    row("matmul (2,3,4)@const (4,)", Op.MATMUL, lambda a, b: a @ b, (2, 3, 4), const((4,))),
    row("matmul const (2,3)@(3,2)", Op.MATMUL, lambda a, b: a @ b, const((2, 3)), (3, 2)),
    row("F.matmul", Op.MATMUL, F.matmul, (2, 3), (3, 2)),
    row("matmul a.T@b", Op.MATMUL, lambda a, b: F.matmul(a, b, transpose_a=True), (3, 2), (3, 4)),
    row("matmul a@b.T", Op.MATMUL, lambda a, b: F.matmul(a, b, transpose_b=True), (2, 3), (4, 3)),
    row(
        "matmul a.T@b.T batched",
        Op.MATMUL,
        lambda a, b: F.matmul(a, b, transpose_a=True, transpose_b=True),
        (2, 1, 3, 2),
        (5, 4, 3),
    ),
    row(
        "matmul a.T@b broadcast",
        Op.MATMUL,
        lambda a, b: F.matmul(a, b, transpose_a=True),
        (3, 2),
        (2, 3, 4),
    ),
    row("linear", Op.LINEAR, F.linear, (2, 3), (4, 3), (4,)),
    row("linear no bias", Op.LINEAR, F.linear, (2, 3), (4, 3)),
    row("linear batched", Op.LINEAR, F.linear, (2, 5, 3), (4, 3), (4,)),
    row("linear 1-d input", Op.LINEAR, F.linear, (3,), (4, 3), (4,)),
    row("softmax", Op.SOFTMAX, F.softmax, (3, 4)),
    row("softmax axis 0", Op.SOFTMAX, lambda a: a.softmax(0), (3, 4)),
    row("softmax 3-d axis 1", Op.SOFTMAX, lambda a: F.softmax(a, axis=1), (2, 3, 4)),
    row("log_softmax", Op.LOG_SOFTMAX, F.log_softmax, (3, 4)),
    row("log_softmax axis 0", Op.LOG_SOFTMAX, lambda a: a.log_softmax(0), (3, 4)),
    row("log_softmax 3-d axis 1", Op.LOG_SOFTMAX, lambda a: F.log_softmax(a, 1), (2, 3, 4)),
    row("cross_entropy", Op.CROSS_ENTROPY, F.cross_entropy, (5, 3), fixed([2, 0, 2, 1, 2])),
    row(
        "cross_entropy scaled",
        Op.CROSS_ENTROPY,
        lambda x, t: F.cross_entropy(x * 3.0, t),
        (4, 6),
        ints(6, 4),
    ),
    row(
        "cross_entropy_backward",
        Op.CROSS_ENTROPY_BACKWARD,
        lambda x, t, g: F.cross_entropy_backward(x.softmax(1), t, g),
        (5, 3),
        fixed([2, 0, 2, 1, 2]),
        (),
    ),
    row("mse_loss", Op.MSE_LOSS, F.mse_loss, (3, 4), (3, 4)),
    row("mse_loss_backward", Op.MSE_LOSS_BACKWARD, F.mse_loss_backward, (3, 4), ()),
    row("mse_loss number", Op.MSE_LOSS, lambda a: F.mse_loss(a, 0.5), (3, 4)),
    row("mse_loss broadcast target", Op.MSE_LOSS, F.mse_loss, (3, 4), (4,)),
    row("mse_loss broadcast input", Op.MSE_LOSS, F.mse_loss, (3, 1), (3, 4)),
    row(
        "bce_with_logits",
        Op.BCE_WITH_LOGITS,
        F.binary_cross_entropy_with_logits,
        (3, 4),
        positive(3, 4),
    ),
    row(
        "bce_with_logits 0/1 targets",
        Op.BCE_WITH_LOGITS,
        lambda x, t: F.binary_cross_entropy_with_logits(x * 3.0, t.double()),
        (2, 5),
        fixed([[0, 1, 1, 0, 1], [1, 1, 0, 0, 0]]),
    ),
    row(
        "bce_with_logits broadcast input",
        Op.BCE_WITH_LOGITS,
        F.binary_cross_entropy_with_logits,
        (3, 1),
        positive(3, 4),
    ),
    row("unfold 2 overlapping", Op.UNFOLD, lambda x: F.unfold(x, 2), (1, 2, 4, 4)),
    row("unfold tiles", Op.UNFOLD, lambda x: F.unfold(x, 2, stride=2), (2, 1, 4, 4)),
    row(
        "unfold (2,3) stride 2 pad 1",
        Op.UNFOLD,
        lambda x: F.unfold(x, (2, 3), stride=2, padding=1),
        (1, 2, 4, 5),
    ),
    row(
        "unfold 3 stride (2,1) pad (1,0)",
        Op.UNFOLD,
        lambda x: F.unfold(x, 3, stride=(2, 1), padding=(1, 0)),
        (1, 1, 5, 4),
    ),
    row("fold 2 overlapping", Op.FOLD, lambda c: F.fold(c, 4, 2), (1, 8, 9)),
    row("fold tiles", Op.FOLD, lambda c: F.fold(c, (4, 4), 2, stride=2), (2, 4, 4)),
    row(
        "fold (2,3) stride 2 pad 1",
        Op.FOLD,
        lambda c: F.fold(c, (4, 5), (2, 3), stride=2, padding=1),
        (1, 12, 9),
    ),
    row(
        "conv2d stride 2 pad 1 bias",
        Op.CONV2D,
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
        (1, 2, 5, 5),
        (3, 2, 3, 3),
        (3,),
    ),
    row(
        "conv2d stride 2 pad 1 no bias",
        Op.CONV2D,
        lambda x, w: F.conv2d(x, w, stride=2, padding=1),
        (2, 1, 4, 4),
        (2, 1, 3, 3),
    ),
    row("conv2d (2,3) kernel", Op.CONV2D, F.conv2d, (1, 2, 4, 5), (2, 2, 2, 3)),
    row(
        "conv2d (3,2) kernel stride (2,1) pad (1,0) bias",
        Op.CONV2D,
        lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0)),
        (1, 2, 5, 4),
        (2, 2, 3, 2),
        (2,),
    ),
    row(
        "conv2d const input",
        Op.CONV2D,
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
        const((1, 2, 5, 5)),
        (3, 2, 3, 3),
        (3,),
    ),
    row("conv2d const weight", Op.CONV2D, F.conv2d, (1, 2, 4, 4), const((2, 2, 3, 3))),
    row(
        "conv2d tiles",
        Op.CONV2D,
        lambda x, w: F.conv2d(x, w, stride=2),
        (2, 1, 4, 4),
        (2, 1, 2, 2),
    ),
]
POOLS = [
    ("2", (2,), (1, 2, 4, 4)),
    ("2 on 5x5 (remainder)", (2,), (1, 1, 5, 5)),
    ("2 stride 3 (gaps)", (2, 3), (1, 1, 5, 5)),
    ("3 stride 1 overlapping", (3, 1), (1, 2, 4, 4)),
    ("2 stride 1 overlapping", (2, 1), (2, 1, 4, 5)),
    ("(2,3) stride (1,2)", ((2, 3), (1, 2)), (1, 1, 4, 5)),
]
ROWS += [
    row(f"max_pool2d {label}", Op.MAX_POOL2D, lambda x, a=a: F.max_pool2d(x, *a), distinct(*s))
    for label, a, s in POOLS
]
ROWS += [
    row(f"avg_pool2d {label}", Op.AVG_POOL2D, lambda x, a=a: F.avg_pool2d(x, *a), s)
    for label, a, s in POOLS
]
ROWS += [
    row(
        "layer_norm affine",
        Op.LAYER_NORM,
        lambda x, w, b: F.layer_norm(x, 4, w, b),
        (2, 3, 4),
        (4,),
        (4,),
    ),
    row(
        "layer_norm 2-d shape",
        Op.LAYER_NORM,
        lambda x, w, b: F.layer_norm(x, (3, 4), w, b),
        (2, 3, 4),
        (3, 4),
        (3, 4),
    ),
    row(
        "layer_norm const input",
        Op.LAYER_NORM,
        lambda x, w, b: F.layer_norm(x, 4, w, b),
        const((2, 4)),
        (4,),
        (4,),
    ),
    row("layer_norm plain", Op.LAYER_NORM, lambda x: F.layer_norm(x, 5), (3, 5)),
    row("layer_norm eps", Op.LAYER_NORM, lambda x: F.layer_norm(x, (5,), eps=0.1), (3, 5)),
    row(
        "embedding repeated",
        Op.EMBEDDING,
        lambda i, w: F.embedding(i, w),
        fixed([[0, 2, 0], [3, 0, 2]]),
        (4, 3),
    ),
    row("embedding list", Op.EMBEDDING, lambda w: F.embedding([1, 1, 1, 0], w), (3, 2)),
    row("dropout 0.3", Op.DROPOUT, lambda x: seeded_dropout(x, 0.3, 7), (3, 4)),
    row("dropout 0.5", Op.DROPOUT, lambda x: seeded_dropout(x * x, 0.5, 1), (2, 5)),
]

# -- PyTorch coverage: the math, reductions, scans and indexing along an axis ------------

UNARY_MATH = [
    ("log1p", Op.LOG1P, lambda a: a.log1p(), positive),
    ("expm1", Op.EXPM1, lambda a: a.expm1(), normal),
    ("log2", Op.LOG2, lambda a: a.log2(), positive),
    ("log10", Op.LOG10, lambda a: a.log10(), positive),
    ("exp2", Op.EXP2, lambda a: a.exp2(), normal),
    ("sin", Op.SIN, lambda a: a.sin(), normal),
    ("cos", Op.COS, lambda a: a.cos(), normal),
    ("softplus", Op.SOFTPLUS, lambda a: F.softplus(a * 3.0), normal),
    ("nan_to_num", Op.NAN_TO_NUM, lambda a: a.nan_to_num(), normal),
    ("clone", Op.CLONE, lambda a: a.clone(), normal),
]
ROWS += [
    row(f"{name} {shape}", op, fn, gen(*shape))
    for name, op, fn, gen in UNARY_MATH
    for shape in [(2, 3), (0, 3)]
]
ROWS += [
    row(f"{name} {sa}x{sb}", op, fn, normal(*sa), away(*sb))
    for name, op, fn in [
        ("fmod", Op.FMOD, lambda a, b: a.fmod(b)),
        ("remainder", Op.REMAINDER, lambda a, b: a.remainder(b)),
    ]
    for sa, sb in [((2, 3), (2, 3)), ((3, 1), (1, 4)), ((0, 3), (3,))]
]
ROWS += [
    row("softplus beta threshold", Op.SOFTPLUS, lambda a: F.softplus(a, 2.0, 1.5), (3, 4)),
    row("fmod number", Op.FMOD, lambda a: a.fmod(0.7), (2, 3)),
    row("remainder %", Op.REMAINDER, lambda a, b: a % b, (2, 3), away(3)),
    row("rmod", Op.REMAINDER, lambda a: 1.3 % a, away(2, 3)),
    row("copy_ broadcast", Op.COPY, lambda a, b: (a * 1.0).copy_(b), const((2, 3)), (3,)),
    row("rsqrt", Op.POW_SCALAR, lambda a: a.rsqrt(), positive(2, 3)),
    row("reciprocal", Op.POW_SCALAR, lambda a: a.reciprocal(), away(2, 3)),
    row("square", Op.POW_SCALAR, lambda a: a.square(), (2, 3)),
    row("clamp_min", Op.CLIP, lambda a: a.clamp_min(0.1), shifted(0.05)(3, 4)),
    row("clamp_max", Op.CLIP, lambda a: a.clamp_max(0.1), shifted(0.05)(3, 4)),
    row("masked_fill", Op.WHERE, lambda a, m: a.masked_fill(m, 0.5), (3, 4), mask(3, 4)),
    row("lerp F", Op.LERP, lambda a, b: F.lerp(a, b, 0.3), (2, 3), (3,)),
]
ROWS += [
    row(
        f"prod dim={dim} keepdim={keep} {gen(1).label[:4]}",
        Op.PROD,
        lambda a, dim=dim, keep=keep: a.prod(dim, keepdim=keep),
        gen(2, 3, 4),
    )
    for dim in [None, 1, (0, 2)]
    for keep in (False, True)
    for gen in (normal, grid)  # grid: zeros in the slices
]
ROWS += [
    row("prod empty dim", Op.PROD, lambda a: a.prod(1), (2, 0, 3)),
    row("prod 0-d", Op.PROD, lambda a: a.prod(), ()),
    row("cumsum 0", Op.CUMSUM, lambda a: a.cumsum(0), (3, 4)),
    row("cumsum -1", Op.CUMSUM, lambda a: a.cumsum(-1), (2, 3, 4)),
    row("cumsum empty", Op.CUMSUM, lambda a: a.cumsum(1), (2, 0)),
    row("cumprod 1", Op.CUMPROD, lambda a: a.cumprod(1), (3, 4)),
    row("cumprod zeros", Op.CUMPROD, lambda a: a.cumprod(0), grid(4, 3)),
    row("cumprod empty", Op.CUMPROD, lambda a: a.cumprod(0), (0, 3)),
    row("std", Op.VAR, lambda a: a.std(1), (3, 4)),
    row("std unbiased=False keepdim", Op.VAR, lambda a: a.std(0, False, True), (3, 4)),
    row("var dim keepdim", Op.VAR, lambda a: a.var(dim=(0, 2), keepdim=True), (2, 3, 4)),
    row("logsumexp", Op.EXP, lambda a: a.logsumexp(1), (3, 4)),
    row("logsumexp keepdim", Op.EXP, lambda a: a.logsumexp((0, 1), keepdim=True), (2, 3)),
    row("amax", Op.MAX, lambda a: a.amax(1), distinct(3, 4)),
    row("amin tuple", Op.MIN, lambda a: a.amin((0, 1)), distinct(2, 3, 2)),
    row("max dim values", Op.GATHER, lambda a: a.max(1).values, distinct(3, 4)),
    row("min dim keepdim", Op.GATHER, lambda a: a.min(0, keepdim=True).values, distinct(3, 4)),
    row("sort", Op.GATHER, lambda a: a.sort(1).values, distinct(3, 4)),
    row("sort descending", Op.GATHER, lambda a: a.sort(0, descending=True)[0], distinct(3, 4)),
    row("topk", Op.GATHER, lambda a: a.topk(2).values, distinct(3, 4)),
    row("topk smallest", Op.GATHER, lambda a: a.topk(1, 0, largest=False)[0], distinct(3, 4)),
    row("sum dim keepdim", Op.SUM, lambda a: a.sum(dim=1, keepdim=True), (2, 3)),
    row("mean dim tuple", Op.MEAN, lambda a: a.mean((0, 2)), (2, 3, 4)),
    row("norm p=1 dim", Op.ABS, lambda a: a.norm(1, dim=1), away(3, 4)),
    row(
        "gather 0",
        Op.GATHER,
        lambda a, i: a.gather(0, i),
        (3, 4),
        fixed([[0, 1, 2, 0], [2, 2, 1, 0]]),
    ),
    row(
        "gather 1 repeats",
        Op.GATHER,
        lambda a, i: a.gather(1, i),
        (3, 4),
        fixed([[1, 1], [0, 3], [3, 3]]),
    ),
    row(
        "gather empty", Op.GATHER, lambda a, i: a.gather(1, i), (3, 4), fixed(np.zeros((3, 0), int))
    ),
    row(
        "scatter",
        Op.SCATTER,
        lambda a, i, b: a.scatter(1, i, b),
        (3, 4),
        fixed([[0, 2], [1, 3], [3, 0]]),
        (3, 2),
    ),
    row(
        "scatter number",
        Op.SCATTER,
        lambda a, i: a.scatter(0, i, value=0.5),
        (3, 4),
        fixed([[0, 2, 1, 1]]),
    ),
    row(
        "scatter_add repeats",
        Op.SCATTER,
        lambda a, i, b: a.scatter_add(0, i, b),
        (3, 2),
        fixed([[0, 1], [0, 1], [2, 1]]),
        (4, 3),
    ),
    row("index_select", Op.GETITEM, lambda a, i: a.index_select(1, i), (3, 4), fixed([3, 0, 3])),
    row("flip", Op.GETITEM, lambda a: a.flip(0, 2), (2, 3, 4)),
    row("roll", Op.CONCAT, lambda a: a.roll(1, 1), (2, 3)),
    row("roll flat", Op.CONCAT, lambda a: a.roll(-2), (2, 3)),
    row("roll two dims", Op.CONCAT, lambda a: a.roll((1, 2), (0, 1)), (3, 4)),
    row("repeat", Op.EXPAND, lambda a: a.repeat(2, 1, 3), (2, 3)),
    row("tile", Op.EXPAND, lambda a: a.tile((2,)), (2, 3)),
    row("narrow", Op.GETITEM, lambda a: a.narrow(1, 1, 2), (2, 4)),
    row("split", Op.GETITEM, lambda a: a.split(2, 1)[1], (2, 3)),
    row("split sizes", Op.CONCAT, lambda a: F.cat(a.split([1, 3], 1)[::-1], 1), (2, 4)),
    row("chunk", Op.GETITEM, lambda a: a.chunk(2)[0], (3, 2)),
    row("unbind", Op.STACK, lambda a: F.stack(a.unbind(1)[::-1]), (2, 3)),
    row("tril", Op.WHERE, lambda a: a.tril(), (3, 4)),
    row("triu -1 batched", Op.WHERE, lambda a: a.triu(-1), (2, 3, 3)),
    row("diagonal", Op.GETITEM, lambda a: a.diagonal(), (3, 4)),
    row("diagonal offset dims", Op.GETITEM, lambda a: a.diagonal(1, 0, 2), (3, 2, 4)),
    row("broadcast_to", Op.EXPAND, lambda a: a.broadcast_to((2, 3)), (3,)),
    row("movedim", Op.PERMUTE, lambda a: a.movedim(0, -1), (2, 3, 4)),
    row("flatten end_dim", Op.RESHAPE, lambda a: a.flatten(0, 1), (2, 3, 4)),
    row("unflatten", Op.RESHAPE, lambda a: a.unflatten(1, (2, 2)), (3, 4)),
    row("squeeze tuple", Op.RESHAPE, lambda a: a.squeeze((0, 2)), (1, 3, 1)),
]


# -- PyTorch coverage: compositions (losses, norms, attention, products, activations) -----

ROWS += [
    row(
        "cross_entropy ignore_index",
        Op.CROSS_ENTROPY,
        F.cross_entropy,
        (4, 3),
        fixed([2, -100, 0, 1]),
    ),
    row(
        "cross_entropy ignore_index 1",
        Op.CROSS_ENTROPY,
        lambda x, t: F.cross_entropy(x, t, ignore_index=1),
        (4, 3),
        fixed([2, 1, 0, 1]),
    ),
    row(
        "cross_entropy_backward ignore",
        Op.CROSS_ENTROPY_BACKWARD,
        lambda x, t, g: F.cross_entropy_backward(x.softmax(1), t, g, ignore_index=0),
        (4, 3),
        fixed([2, 0, 0, 1]),
        (),
    ),
    row(
        "cross_entropy N-d",
        Op.CROSS_ENTROPY,
        lambda x, t: F.cross_entropy(x, t),
        (2, 3, 2, 2),
        fixed([[[0, 2], [1, 1]], [[2, 2], [0, 1]]]),
    ),
    row(
        "cross_entropy weight smoothing",
        Op.LOG_SOFTMAX,
        lambda x, t, w: F.cross_entropy(x, t, w, label_smoothing=0.2),
        (4, 3),
        fixed([2, 0, -100, 1]),
        const(positive(3)),
    ),
    row(
        "cross_entropy probabilities",
        Op.LOG_SOFTMAX,
        lambda x, p: F.cross_entropy(x, p.softmax(1)),
        (4, 3),
        (4, 3),
    ),
    row(
        "nll_loss sum",
        Op.GATHER,
        lambda x, t: F.nll_loss(x, t, reduction="sum"),
        (4, 3),
        fixed([2, 0, 0, 1]),
    ),
    row("l1_loss none", Op.ABS, lambda a, b: F.l1_loss(a, b, reduction="none"), (3, 4), away(4)),
    row("smooth_l1_loss", Op.WHERE, lambda a, b: F.smooth_l1_loss(a, b, beta=0.5), (3, 4), (3, 4)),
    row("huber_loss sum", Op.WHERE, lambda a, b: F.huber_loss(a, b, "sum", 0.7), (3, 4), (4,)),
    row("mse_loss sum", Op.MUL, lambda a, b: F.mse_loss(a, b, reduction="sum"), (3, 4), (3, 4)),
    row(
        "binary_cross_entropy",
        Op.LOG,
        lambda p, t: F.binary_cross_entropy(p.sigmoid(), t),
        (3, 4),
        positive(3, 4),
    ),
    row(
        "bce_with_logits pos_weight",
        Op.LOG1P,
        lambda x, t, w: F.binary_cross_entropy_with_logits(x, t, pos_weight=w),
        (3, 4),
        positive(3, 4),
        positive(4),
    ),
    row(
        "kl_div batchmean",
        Op.WHERE,
        lambda x, t: F.kl_div(x.log_softmax(1), t.softmax(1), reduction="batchmean"),
        (3, 4),
        (3, 4),
    ),
    row("cosine_similarity", Op.SQRT, F.cosine_similarity, (3, 4), (3, 4)),
    row(
        "cosine_similarity broadcast",
        Op.SQRT,
        lambda a, b: F.cosine_similarity(a, b, dim=-1),
        (2, 3, 4),
        (4,),
    ),
    row("normalize", Op.SQRT, lambda a: F.normalize(a, dim=0), (3, 4)),
    row(
        "batch_norm training",
        Op.VAR,
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        (4, 3, 2),
        (3,),
        (3,),
    ),
    row(
        "batch_norm eval",
        Op.DIV,
        lambda x, m, v: F.batch_norm(x, m, v),
        (4, 3),
        const((3,)),
        const(positive(3)),
    ),
    row("group_norm", Op.VAR, lambda x, w, b: F.group_norm(x, 2, w, b), (2, 4, 3), (4,), (4,)),
    row("instance_norm", Op.VAR, lambda x: F.instance_norm(x), (2, 3, 4)),
    row("rms_norm", Op.POW_SCALAR, lambda x, w: F.rms_norm(x, 4, w), (3, 4), (4,)),
    row(
        "scaled_dot_product_attention causal",
        Op.SOFTMAX,
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        (2, 3, 4),
        (2, 3, 4),
        (2, 3, 2),
    ),
    row(
        "einsum bij,bjk->bik",
        Op.MATMUL,
        lambda a, b: core.einsum("bij,bjk->bik", a, b),
        (2, 3, 4),
        (2, 4, 2),
    ),
    row("einsum trace outer", Op.MATMUL, lambda a, b: core.einsum("ii,j->j", a, b), (3, 3), (2,)),
    row("bmm", Op.MATMUL, core.bmm, (2, 3, 4), (2, 4, 2)),
    row("mm empty", Op.MATMUL, core.mm, (0, 3), (3, 2)),
    row("mv", Op.MATMUL, core.mv, (3, 4), (4,)),
    row("dot", Op.MATMUL, core.dot, (4,), (4,)),
    row("outer", Op.MUL, core.outer, (3,), (2,)),
    row("silu", Op.SIGMOID, F.silu, (3, 4)),
    row("elu", Op.EXPM1, lambda x: F.elu(x, 0.7), away(3, 4)),
    row("selu", Op.EXPM1, F.selu, away(3, 4)),
    row("mish", Op.SOFTPLUS, F.mish, (3, 4)),
    row("logsigmoid", Op.SOFTPLUS, F.logsigmoid, (3, 4)),
    row("glu", Op.SIGMOID, F.glu, (3, 4)),
    row("hardtanh", Op.CLIP, lambda x: F.hardtanh(x * 2.0), shifted(0.05)(3, 4)),
    row("relu6", Op.CLIP, lambda x: F.relu6(x * 4.0 + 3.0), shifted(0.05)(3, 4)),
    row(
        "conv2d dilation groups",
        Op.CONV2D,
        lambda x, w: F.conv2d(x, w, padding=1, dilation=2, groups=2),
        (1, 2, 5, 4),
        (2, 1, 2, 2),
    ),
    row(
        "conv1d", Op.CONV2D, lambda x, w, b: F.conv1d(x, w, b, stride=2), (2, 2, 5), (3, 2, 2), (3,)
    ),
    row(
        "conv_transpose2d",
        Op.FOLD,
        lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
        (1, 2, 2, 3),
        (2, 1, 3, 3),
    ),
    row(
        "max_pool2d padding ceil",
        Op.MAX_POOL2D,
        lambda x: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True),
        distinct(1, 1, 4, 5),
    ),
    row(
        "avg_pool2d ceil exclude pad",
        Op.AVG_POOL2D,
        lambda x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False),
        (1, 1, 4, 5),
    ),
    row("adaptive_avg_pool2d", Op.MATMUL, lambda x: F.adaptive_avg_pool2d(x, (2, 3)), (1, 2, 3, 5)),
    row(
        "interpolate bilinear",
        Op.MATMUL,
        lambda x: F.interpolate(x, (4, 3), mode="bilinear"),
        (1, 1, 2, 3),
    ),
    row("pad reflect", Op.GETITEM, lambda x: F.pad(x, (2, 1), mode="reflect"), (2, 4)),
    row(
        "pad replicate negative", Op.GETITEM, lambda x: F.pad(x, (-1, 2), mode="replicate"), (2, 4)
    ),
]


def describe(r: Row, inputs, device: str) -> str:
    shapes = ", ".join(
        f"{a.label}->{t.dtype}{list(t.shape)}" for a, t in zip(r.args, inputs, strict=True)
    )
    return f"op {r.op.label} [{r.name}] on {device}, inputs {shapes}"


def check(r: Row, device: str, fn=None, tolerance: float | None = None, what: str = "") -> None:
    """gradcheck ``fn`` (the row's own by default) on the row's inputs; fail naming all."""
    inputs = make_inputs(r, device)
    tolerance = r.tol if tolerance is None else tolerance
    report = core.gradcheck(fn or r.fn, inputs, eps=r.eps, tolerance=tolerance)
    if not report.inputs:
        pytest.fail(f"{what}{describe(r, inputs, device)}: no input requires grad")
    if not report.ok:
        pytest.fail(f"{what}{describe(r, inputs, device)}:\n{report}")


@pytest.mark.parametrize("r", ROWS, ids=lambda r: r.name)
def test_grad(r: Row, device: str) -> None:
    check(r, device)


def graph_ops(t: core.Tensor) -> set[Op]:
    """Every op in the graph behind ``t``."""
    seen, ops, todo = set(), set(), [t.node]
    while todo:
        node = todo.pop()
        if node is None or node.id in seen:
            continue
        seen.add(node.id)
        ops.add(node.opdef.op)
        todo.extend(i.node for i in node.inputs)
    return ops


# Ops without a gradient rule, each with a NumPy reference
NO_GRAD = [
    pytest.param(Op.GT, lambda a, b: a > b, np.greater, id="gt"),
    pytest.param(Op.GE, lambda a, b: a >= b, np.greater_equal, id="ge"),
    pytest.param(Op.LT, lambda a, b: a < b, np.less, id="lt"),
    pytest.param(Op.LE, lambda a, b: a <= b, np.less_equal, id="le"),
    pytest.param(Op.EQ, lambda a, b: a.eq(b), np.equal, id="eq"),
    pytest.param(Op.NE, lambda a, b: a.ne(b), np.not_equal, id="ne"),
    pytest.param(Op.SIGN, lambda a, b: a.sign(), lambda a, b: np.sign(a), id="sign"),
    pytest.param(Op.DETACH, lambda a, b: a.detach(), lambda a, b: a, id="detach"),
    pytest.param(Op.FLOOR, lambda a, b: a.floor(), lambda a, b: np.floor(a), id="floor"),
    pytest.param(Op.CEIL, lambda a, b: a.ceil(), lambda a, b: np.ceil(a), id="ceil"),
    pytest.param(Op.ROUND, lambda a, b: a.round(), lambda a, b: np.round(a), id="round"),
    pytest.param(Op.TRUNC, lambda a, b: a.trunc(), lambda a, b: np.trunc(a), id="trunc"),
    pytest.param(Op.ANY, lambda a, b: (a > b).any(1), lambda a, b: (a > b).any(1), id="any"),
    pytest.param(Op.ALL, lambda a, b: a.all(), lambda a, b: a.all(), id="all"),
    pytest.param(Op.ARGMAX, lambda a, b: a.argmax(1), lambda a, b: a.argmax(1), id="argmax"),
    pytest.param(
        Op.ARGMIN,
        lambda a, b: a.argmin(0, keepdim=True),
        lambda a, b: a.argmin(0, keepdims=True),
        id="argmin",
    ),
    pytest.param(
        Op.NONZERO,
        lambda a, b: (a > b).nonzero(),
        lambda a, b: np.argwhere(a > b),
        id="nonzero",
    ),
    pytest.param(
        Op.ARGSORT,
        lambda a, b: a.argsort(1, descending=True),
        lambda a, b: np.argsort(-a, 1, kind="stable"),
        id="argsort",
    ),
    pytest.param(
        Op.ONE_HOT,
        lambda a, b: F.one_hot((a * 2 + 4).astype("int64"), 9),
        lambda a, b: np.eye(9, dtype=np.float32)[(a * 2 + 4).astype(np.int64)],
        id="one_hot",
    ),
]


def test_table_covers_every_op() -> None:
    assert missing() == []
    names = [r.name for r in ROWS]
    assert len(names) == len(set(names)), "row names must be unique"
    for r in ROWS:
        ops = graph_ops(r.fn(*make_inputs(r, "cpu")))
        assert r.op in ops, f"row {r.name!r} claims {r.op.label} but builds {sorted(ops)}"
    with_rule = {op for op in Op if REGISTRY[op].grad is not None}
    without_rule = {op for op in Op if REGISTRY[op].grad is None}
    untested = sorted(op.label for op in with_rule - {r.op for r in ROWS})
    assert untested == [], "ops with a gradient rule but no row in ROWS"
    unlisted = sorted(op.label for op in without_rule - {p.values[0] for p in NO_GRAD})
    assert unlisted == [], "ops without a gradient rule missing from NO_GRAD"


@pytest.mark.parametrize("op, fn, ref", NO_GRAD)
def test_no_grad_op(op: Op, fn, ref, device: str) -> None:
    """Comparisons and sign record no graph, even from inputs that require grad."""
    assert REGISTRY[op].grad is None
    rng = np.random.default_rng(int(op))
    a = rng.integers(-2, 3, (3, 4)) * 0.5
    b = rng.integers(-2, 3, (4,)) * 0.5
    ta = core.tensor(a, dtype="float64", requires_grad=True, device=device)
    tb = core.tensor(b, dtype="float64", requires_grad=True, device=device)
    out = fn(ta, tb)
    assert not out.requires_grad and out.node is None, op.label
    np.testing.assert_array_equal(out.numpy(), ref(a, b), err_msg=op.label)


# -- properties -----------------------------------------------------------------

PROPERTY = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    spec=st.sampled_from(BINARY),
)
def test_binary_broadcasting_property(device: str, shapes, spec) -> None:
    name, op, fn, ga, gb = spec
    sa, sb = shapes.input_shapes
    check(row(f"{name} {sa}x{sb}", op, fn, ga(*sa), gb(*sb)), device)


@PROPERTY
@given(
    index=st.lists(st.integers(-4, 3), min_size=1, max_size=6),
    axis=st.sampled_from([0, 1]),
)
def test_getitem_repeated_index_property(device: str, index, axis) -> None:
    if axis == 0:
        r = row(f"getitem rows {index}", Op.GETITEM, lambda a, i: a[i], (4, 4), fixed(index))
    else:
        r = row(f"getitem cols {index}", Op.GETITEM, lambda a, i: a[:, i], (3, 4), fixed(index))
    check(r, device)


@PROPERTY
@given(data=st.data())
def test_reduction_property(device: str, data) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3), label="shape")
    axis = data.draw(st.none() | hnp.valid_tuple_axes(len(shape), min_size=1), label="axis")
    keep = data.draw(st.booleans(), label="keepdims")
    name, op, f, gen = data.draw(st.sampled_from(REDUCTIONS), label="op")
    if op is Op.VAR:
        f = lambda a, **k: a.var(**k, correction=0)
    fn = lambda a: f(a, axis=axis, keepdims=keep)
    check(row(f"{name} {shape} axis={axis} keepdims={keep}", op, fn, gen(*shape)), device)


# -- second order -----------------------------------------------------------------


def first_derivative(fn: Callable[..., core.Tensor]) -> Callable[..., core.Tensor]:
    """x -> d fn / d x (flattened, all float inputs), as a differentiable tensor.

    gradcheck of this compares the Hessian-vector product from a second backward
    with central differences of the first derivative.
    """

    def d(*inputs):
        with core.enable_grad():
            y = fn(*inputs)
            wrt = [t for t in inputs if t.requires_grad]
            grads = core.grad(y, wrt, create_graph=True)
        assert all(g is not None for g in grads)
        if len(grads) == 1:
            return grads[0]
        return F.cat([g.reshape(-1) for g in grads])

    return d


SECOND_ORDER = [
    row("tanh(x)*x**3", Op.TANH, lambda x: (x.tanh() * x**3).sum(), (5,)),
    row("exp log sqrt", Op.LOG, lambda x: (x.exp() * x.log() + x.sqrt()).sum(), positive(4)),
    row("sigmoid gelu", Op.GELU, lambda x: (F.gelu(x) * x.sigmoid()).sum(), (5,)),
    row(
        "sigmoid gelu tanh",
        Op.GELU,
        lambda x: (F.gelu(x, approximate="tanh") * x.sigmoid()).sum(),
        (5,),
    ),
    row("div pow", Op.POW, lambda a, b: (a**b / b).sum(), positive(3), positive(3)),
    row("softmax", Op.SOFTMAX, lambda x, w: (F.softmax(x) * w).sum(), (2, 4), (2, 4)),
    row("softmax squared", Op.SOFTMAX, lambda x: (x.softmax(0) ** 2).sum(), (3, 2)),
    row("log_softmax", Op.LOG_SOFTMAX, lambda x, w: (F.log_softmax(x) * w).sum(), (2, 4), (4,)),
    row("cross_entropy", Op.CROSS_ENTROPY, F.cross_entropy, (3, 4), fixed([1, 3, 1])),
    row(
        "cross_entropy_backward",
        Op.CROSS_ENTROPY_BACKWARD,
        lambda x, t, g: (F.cross_entropy_backward(x.softmax(1), t, g) ** 2).sum(),
        (3, 4),
        fixed([1, 3, 1]),
        (),
    ),
    row(
        "conv2d stride 2 pad 1 bias",
        Op.CONV2D,
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1).tanh().sum(),
        (1, 2, 4, 4),
        (2, 2, 3, 3),
        (2,),
    ),
    row(
        "conv2d (2,3) kernel",
        Op.CONV2D,
        lambda x, w: (F.conv2d(x, w) ** 2).sum(),
        (1, 1, 3, 4),
        (2, 1, 2, 3),
    ),
    row("matmul broadcast", Op.MATMUL, lambda a, b: (a @ b).tanh().sum(), (2, 1, 2, 3), (2, 3, 2)),
    row(
        "matmul transposed",
        Op.MATMUL,
        lambda a, b: F.matmul(a, b, transpose_a=True, transpose_b=True).tanh().sum(),
        (2, 3, 2),
        (1, 4, 3),
    ),
    row(
        "linear weight grad",
        Op.LINEAR,
        lambda x, w: F.linear(x, w).tanh().sum(),
        (3, 2),
        (4, 2),
    ),
    row(
        "layer_norm",
        Op.LAYER_NORM,
        lambda x, w, b: F.layer_norm(x, 3, w, b).tanh().sum(),
        (2, 3),
        (3,),
        (3,),
    ),
    row("var", Op.VAR, lambda x, w: (x.var(axis=1) * w).sum(), (2, 4), (2,)),
    row(
        "max_pool2d",
        Op.MAX_POOL2D,
        lambda x: (F.max_pool2d(x, 2, 1) ** 2).sum(),
        distinct(1, 1, 3, 4),
    ),
    row("avg_pool2d", Op.AVG_POOL2D, lambda x: (F.avg_pool2d(x, 2, 1) ** 2).sum(), (1, 1, 3, 4)),
    row(
        "max and maximum",
        Op.MAXIMUM,
        lambda a, b: (F.maximum(a, b) ** 3).max(axis=1).sum(),
        grid(2, 3),
        shifted(0.1)(
            3,
        ),
    ),
    row("getitem repeated", Op.GETITEM, lambda x, i: (x[i] ** 3).sum(), (4,), fixed([1, 1, 3])),
    row(
        "embedding",
        Op.EMBEDDING,
        lambda i, w: F.embedding(i, w).tanh().sum(),
        fixed([2, 0, 2]),
        (3, 2),
    ),
    row("mse_loss", Op.MSE_LOSS, lambda a, b: F.mse_loss(a.tanh(), b), (2, 3), (2, 3)),
    row(
        "mse_loss_backward",
        Op.MSE_LOSS_BACKWARD,
        lambda d, g: (F.mse_loss_backward(d, g) ** 2).sum(),
        (2, 3),
        (),
    ),
    row(
        "bce_with_logits",
        Op.BCE_WITH_LOGITS,
        F.binary_cross_entropy_with_logits,
        (2, 3),
        positive(2, 3),
    ),
    row(
        "dropout leaky_relu",
        Op.DROPOUT,
        lambda x: (seeded_dropout(F.leaky_relu(x), 0.3, 2) ** 3).sum(),
        away(2, 3),
    ),
]


@pytest.mark.parametrize("r", SECOND_ORDER, ids=lambda r: r.name)
def test_second_order(r: Row, device: str) -> None:
    check(r, device, first_derivative(r.fn), tolerance=1e-4, what="second order, ")


@pytest.mark.parametrize("r", ROWS, ids=lambda r: r.name)
def test_second_order_every_row(r: Row, device: str) -> None:
    """Every gradient rule is itself differentiable: d/dx of d(sum(y**2))/dx.

    A rule whose result is a constant (d/dx x**0 = 0, as PyTorch's, with no
    graph) must then be constant: moving the inputs leaves it unchanged.
    """
    square = lambda *xs: (r.fn(*xs) ** 2).sum()
    what = "second order of sum(y**2), "
    inputs = make_inputs(r, device)
    derivative = first_derivative(square)(*inputs)
    if not derivative.requires_grad:
        moved = [
            core.tensor(t.numpy() + 0.01, dtype=t.dtype, requires_grad=True, device=device)
            if t.requires_grad
            else t
            for t in inputs
        ]
        again = first_derivative(square)(*moved)
        np.testing.assert_array_equal(again.numpy(), derivative.numpy(), err_msg=r.name)
        return
    check(r, device, first_derivative(square), tolerance=max(r.tol, 1e-4), what=what)


def test_second_derivative_closed_form(device: str) -> None:
    values = np.array([-1.3, -0.4, 0.2, 0.9, 1.7])
    x = core.tensor(values, dtype="float64", requires_grad=True, device=device)
    (g,) = core.grad((x.tanh() * x**3).sum(), [x], create_graph=True)
    (h,) = core.grad(g.sum(), [x])
    t = np.tanh(values)
    dt = 1 - t * t
    expected = -2 * t * dt * values**3 + 6 * dt * values**2 + 6 * t * values
    np.testing.assert_allclose(h.numpy(), expected, rtol=1e-10)


def test_backward_create_graph_grad_has_a_graph(device: str) -> None:
    values = np.array([0.5, -1.2, 2.0])
    x = core.tensor(values, dtype="float64", requires_grad=True, device=device)
    (x**3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad and g.node is not None
    np.testing.assert_allclose(g.numpy(), 3 * values**2)
    (h,) = core.grad(g.sum(), [x])
    np.testing.assert_allclose(h.numpy(), 6 * values)
    assert x.grad is g

    y = core.tensor(values, dtype="float64", requires_grad=True, device=device)
    (y**3).sum().backward()
    assert y.grad.node is None and not y.grad.requires_grad


def test_backward_create_graph_through_output_rule(device: str) -> None:
    x = core.tensor([0.5, -1.2], dtype="float64", requires_grad=True, device=device)
    x.tanh().sum().backward(create_graph=True, retain_graph=True)
    x.grad.sum().backward()
    t = np.tanh([0.5, -1.2])
    np.testing.assert_allclose(x.grad.numpy(), (1 - t * t) - 2 * t * (1 - t * t))


def test_backward_create_graph_retains_graph_by_default() -> None:
    x = core.tensor([0.5, -1.2], dtype="float64", requires_grad=True)
    x.tanh().sum().backward(create_graph=True)
    x.grad.sum().backward()
