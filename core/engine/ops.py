"""The op vocabulary and the one registry every mode shares.

Each primitive op is an ``Op`` member. Its definition (``OpDef``) holds, side by
side: the array-level forward ``forward(xp, *arrays, **attrs)`` (``xp`` is numpy
or cupy), the gradient rule written with Tensor ops ``grad(ctx, g)``, the shape
and dtype rule ``infer(shapes, dtypes, attrs)`` and, for elementwise ops, the
expression tree of one element (``core.engine.expr``) a compiler can fuse.
Attributes are plain data (numbers, strings, booleans, None and tuples of
them): they encode to JSON.

The definitions themselves live in ``core/engine/defs/``; this module only
knows their shape, so passes and widgets can ask ``op in ELEMENTWISE`` without
importing any math.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Op(enum.IntEnum):
    # elementwise, binary
    ADD = enum.auto()
    ADD_SCALED = enum.auto()
    SUB = enum.auto()
    MUL = enum.auto()
    DIV = enum.auto()
    POW = enum.auto()
    MAXIMUM = enum.auto()
    MINIMUM = enum.auto()
    ACCUMULATE_GRAD = enum.auto()
    FMOD = enum.auto()
    REMAINDER = enum.auto()
    # elementwise, unary
    NEG = enum.auto()
    POW_SCALAR = enum.auto()
    EXP = enum.auto()
    LOG = enum.auto()
    SQRT = enum.auto()
    ERF = enum.auto()
    ABS = enum.auto()
    SIGN = enum.auto()
    TANH = enum.auto()
    SIGMOID = enum.auto()
    RELU = enum.auto()
    TANH_BACKWARD = enum.auto()
    SIGMOID_BACKWARD = enum.auto()
    RELU_BACKWARD = enum.auto()
    LEAKY_RELU = enum.auto()
    GELU = enum.auto()
    CLIP = enum.auto()
    WHERE = enum.auto()
    LERP = enum.auto()
    CAST = enum.auto()
    LOG1P = enum.auto()
    EXPM1 = enum.auto()
    LOG2 = enum.auto()
    LOG10 = enum.auto()
    EXP2 = enum.auto()
    SIN = enum.auto()
    COS = enum.auto()
    SOFTPLUS = enum.auto()
    NAN_TO_NUM = enum.auto()
    CLONE = enum.auto()
    COPY = enum.auto()
    # elementwise, piecewise constant (no gradient)
    FLOOR = enum.auto()
    CEIL = enum.auto()
    ROUND = enum.auto()
    TRUNC = enum.auto()
    # comparisons (no gradient)
    GT = enum.auto()
    GE = enum.auto()
    LT = enum.auto()
    LE = enum.auto()
    EQ = enum.auto()
    NE = enum.auto()
    # reductions
    SUM = enum.auto()
    MEAN = enum.auto()
    MAX = enum.auto()
    MIN = enum.auto()
    VAR = enum.auto()
    SUM_TO = enum.auto()
    PROD = enum.auto()
    ANY = enum.auto()
    ALL = enum.auto()
    ARGMAX = enum.auto()
    ARGMIN = enum.auto()
    CUMSUM = enum.auto()
    CUMPROD = enum.auto()
    # movement
    RESHAPE = enum.auto()
    PERMUTE = enum.auto()
    EXPAND = enum.auto()
    GETITEM = enum.auto()
    SCATTER_ADD = enum.auto()
    CONCAT = enum.auto()
    STACK = enum.auto()
    PAD = enum.auto()
    DETACH = enum.auto()
    GATHER = enum.auto()
    SCATTER = enum.auto()
    ARGSORT = enum.auto()
    NONZERO = enum.auto()
    # linear algebra and networks
    MATMUL = enum.auto()
    LINEAR = enum.auto()
    SOFTMAX = enum.auto()
    LOG_SOFTMAX = enum.auto()
    CROSS_ENTROPY = enum.auto()
    CROSS_ENTROPY_BACKWARD = enum.auto()
    MSE_LOSS = enum.auto()
    MSE_LOSS_BACKWARD = enum.auto()
    BCE_WITH_LOGITS = enum.auto()
    UNFOLD = enum.auto()
    FOLD = enum.auto()
    CONV2D = enum.auto()
    MAX_POOL2D = enum.auto()
    AVG_POOL2D = enum.auto()
    LAYER_NORM = enum.auto()
    EMBEDDING = enum.auto()
    DROPOUT = enum.auto()
    ONE_HOT = enum.auto()

    @property
    def label(self) -> str:
        """Lower-case display name, as nodes are named (``add``, ``conv2d``)."""
        return self.name.lower()


BINARY = frozenset(
    {
        Op.ADD,
        Op.ADD_SCALED,
        Op.SUB,
        Op.MUL,
        Op.DIV,
        Op.POW,
        Op.MAXIMUM,
        Op.MINIMUM,
        Op.ACCUMULATE_GRAD,
        Op.TANH_BACKWARD,
        Op.SIGMOID_BACKWARD,
        Op.RELU_BACKWARD,
        Op.FMOD,
        Op.REMAINDER,
    }
)
COMPARE = frozenset({Op.GT, Op.GE, Op.LT, Op.LE, Op.EQ, Op.NE})
UNARY = frozenset(
    {
        Op.NEG,
        Op.POW_SCALAR,
        Op.EXP,
        Op.LOG,
        Op.SQRT,
        Op.ERF,
        Op.ABS,
        Op.SIGN,
        Op.TANH,
        Op.SIGMOID,
        Op.RELU,
        Op.LEAKY_RELU,
        Op.GELU,
        Op.CLIP,
        Op.CAST,
        Op.LOG1P,
        Op.EXPM1,
        Op.LOG2,
        Op.LOG10,
        Op.EXP2,
        Op.SIN,
        Op.COS,
        Op.SOFTPLUS,
        Op.NAN_TO_NUM,
        Op.CLONE,
    }
)
# rounding: elementwise, piecewise constant, so without a gradient rule
ROUNDING = frozenset({Op.FLOOR, Op.CEIL, Op.ROUND, Op.TRUNC})
ELEMENTWISE = BINARY | COMPARE | UNARY | ROUNDING | {Op.WHERE, Op.LERP, Op.COPY}
REDUCE = frozenset(
    {
        Op.SUM,
        Op.MEAN,
        Op.MAX,
        Op.MIN,
        Op.VAR,
        Op.SUM_TO,
        Op.PROD,
        Op.ANY,
        Op.ALL,
        Op.ARGMAX,
        Op.ARGMIN,
    }
)
# scans along one axis: the output has the input's shape
SCAN = frozenset({Op.CUMSUM, Op.CUMPROD})
MOVEMENT = frozenset(
    {
        Op.RESHAPE,
        Op.PERMUTE,
        Op.EXPAND,
        Op.GETITEM,
        Op.SCATTER_ADD,
        Op.CONCAT,
        Op.STACK,
        Op.PAD,
        Op.DETACH,
        Op.GATHER,
        Op.SCATTER,
        Op.ARGSORT,
        Op.NONZERO,
    }
)
LOSS = frozenset({Op.CROSS_ENTROPY, Op.MSE_LOSS, Op.BCE_WITH_LOGITS})
NETWORK = (
    frozenset(
        {
            Op.MATMUL,
            Op.LINEAR,
            Op.SOFTMAX,
            Op.LOG_SOFTMAX,
            Op.UNFOLD,
            Op.FOLD,
            Op.CONV2D,
            Op.MAX_POOL2D,
            Op.AVG_POOL2D,
            Op.LAYER_NORM,
            Op.EMBEDDING,
            Op.DROPOUT,
            Op.ONE_HOT,
            Op.CROSS_ENTROPY_BACKWARD,
            Op.MSE_LOSS_BACKWARD,
        }
    )
    | LOSS
)
# Ops whose floating inputs must share one dtype (a mix is a user error).
SAME_DTYPE = BINARY | {
    Op.WHERE,
    Op.LERP,
    Op.MATMUL,
    Op.LINEAR,
    Op.CONV2D,
    Op.LAYER_NORM,
    Op.MSE_LOSS,
    Op.BCE_WITH_LOGITS,
    Op.CROSS_ENTROPY_BACKWARD,
    Op.MSE_LOSS_BACKWARD,
    Op.SCATTER,
}
# What a gradient rule reads, for the version check of in-place writes: ops
# whose rules read only shapes (an in-place write keeps shape and dtype), and
# ops whose rules read only their index inputs (every input after the first).
READS_NO_VALUES = frozenset(
    {
        Op.ADD,
        Op.SUB,
        Op.NEG,
        Op.ADD_SCALED,
        Op.ACCUMULATE_GRAD,
        Op.SUM,
        Op.MEAN,
        Op.SUM_TO,
        Op.RESHAPE,
        Op.PERMUTE,
        Op.EXPAND,
        Op.CONCAT,
        Op.STACK,
        Op.PAD,
        Op.CUMSUM,
        Op.CLONE,
        Op.COPY,
        Op.DETACH,
        Op.CAST,
        # these read only side outputs (a mask, a difference) and shapes
        Op.MSE_LOSS,
        Op.UNFOLD,
        Op.FOLD,
        Op.MAX_POOL2D,
        Op.AVG_POOL2D,
        Op.DROPOUT,
    }
)
# ops whose gradient rules read their own output (``ctx.output``)
READS_OUTPUT = frozenset(
    {
        Op.POW,
        Op.EXP,
        Op.SQRT,
        Op.TANH,
        Op.SIGMOID,
        Op.RELU,
        Op.EXPM1,
        Op.EXP2,
        Op.SOFTMAX,
        Op.LOG_SOFTMAX,
        Op.MAX,
        Op.MIN,
    }
)
# (cross_entropy reads its targets, conv2d its weight, embedding its indices)
READS_INDICES = frozenset(
    {Op.GETITEM, Op.SCATTER_ADD, Op.GATHER, Op.SCATTER, Op.CROSS_ENTROPY, Op.CONV2D, Op.EMBEDDING}
)


@dataclass(slots=True)
class OpDef:
    """Everything the engine knows about one primitive op."""

    op: Op
    # (xp, *arrays, **attrs) -> array, or a tuple of arrays when ``outputs`` has several
    forward: Callable[..., Any]
    # (ctx, g) -> one gradient Tensor (or None) per input; with several outputs
    # (ctx, g, *side_gradients), any of which may be None
    grad: Callable[..., Any] | None
    # (shapes, dtypes, attrs) -> (shape, dtype) per output, without computing
    infer: Callable[..., Any] | None = None
    # elementwise ops: attrs -> the expression tree of one element (core.engine.expr)
    expr: Callable[[dict], Any] | None = None
    # input positions that never get a gradient (indices, targets, masks)
    nondiff: frozenset[int] = field(default_factory=frozenset)
    # names of the outputs: the first is what the op returns, the others are
    # side outputs its gradient rule reads (``ctx.out(1)``), e.g. a softmax
    outputs: tuple[str, ...] = ("out",)
    # side outputs that carry no gradient (masks, piecewise constant in the inputs)
    nondiff_outputs: frozenset[int] = field(default_factory=frozenset)
    # floating inputs must share one dtype (from SAME_DTYPE)
    same_dtype: bool = False
    # ``op.label``, computed once (events name the op on every emit); in place: "add_"
    label: str = ""
    label_: str = ""
    multi: bool = False  # more than one output (computed from ``outputs``)
    # the inputs the gradient rule reads the values of (positions saved_from up
    # to saved_to) and whether it reads the output: a backward refuses to run the rule
    # when one of them was written in place since the node was made
    saved_from: int = 0
    saved_to: int = 1 << 16
    saves_output: bool = False


REGISTRY: list[OpDef | None] = [None] * (max(Op) + 1)


def define(
    op: Op,
    forward: Callable[..., Any],
    grad: Callable[..., Any] | None,
    *,
    infer: Callable[..., Any] | None = None,
    expr: Callable[[dict], Any] | None = None,
    nondiff: tuple[int, ...] = (),
    outputs: tuple[str, ...] = ("out",),
    nondiff_outputs: tuple[int, ...] = (),
) -> OpDef:
    """Register ``op``; defining one op twice is a programming error."""
    if REGISTRY[op] is not None:
        raise RuntimeError(f"op {op.label} is defined twice")
    if (expr is not None) != (op in ELEMENTWISE):
        raise RuntimeError(f"op {op.label}: elementwise ops, and only they, have an expression")
    definition = OpDef(
        op,
        forward,
        grad,
        infer,
        expr,
        frozenset(nondiff),
        outputs,
        frozenset(nondiff_outputs),
        op in SAME_DTYPE,
        op.label,
        op.label + "_",
        len(outputs) > 1,
    )
    if op in READS_NO_VALUES:
        definition.saved_from = 1 << 16
    elif op in READS_INDICES:
        definition.saved_from = 1
    elif op is Op.WHERE:  # the condition only
        definition.saved_to = 1
    definition.saves_output = op in READS_OUTPUT
    REGISTRY[op] = definition
    return definition


def missing() -> list[Op]:
    """Ops in the enum without a definition (a test keeps this empty)."""
    return [op for op in Op if REGISTRY[op] is None]
