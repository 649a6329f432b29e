"""The op vocabulary and the one registry every mode shares.

Each primitive op is an ``Op`` member. Its definition (``OpDef``) holds, side by
side: the array-level forward ``forward(xp, *arrays, **attrs)`` (``xp`` is numpy
or cupy), the gradient rule written with Tensor ops ``grad(ctx, g)`` and, for
elementwise ops, an expression template a compiler can fuse (``{0}``, ``{1}``
stand for the inputs, ``{a[name]}`` for an attribute).

The definitions themselves live in ``core/defs_*.py``; this module only knows
their shape, so passes and widgets can ask ``op in ELEMENTWISE`` without
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
    # elementwise, unary
    NEG = enum.auto()
    POW_SCALAR = enum.auto()
    EXP = enum.auto()
    LOG = enum.auto()
    SQRT = enum.auto()
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
    CAST = enum.auto()
    # comparisons (no gradient)
    GT = enum.auto()
    GE = enum.auto()
    LT = enum.auto()
    LE = enum.auto()
    EQ = enum.auto()
    # reductions
    SUM = enum.auto()
    MEAN = enum.auto()
    MAX = enum.auto()
    MIN = enum.auto()
    VAR = enum.auto()
    SUM_TO = enum.auto()
    # movement
    RESHAPE = enum.auto()
    PERMUTE = enum.auto()
    EXPAND = enum.auto()
    GETITEM = enum.auto()
    SCATTER_ADD = enum.auto()
    CONCAT = enum.auto()
    STACK = enum.auto()
    PAD = enum.auto()
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
        Op.TANH_BACKWARD,
        Op.SIGMOID_BACKWARD,
        Op.RELU_BACKWARD,
    }
)
COMPARE = frozenset({Op.GT, Op.GE, Op.LT, Op.LE, Op.EQ})
UNARY = frozenset(
    {
        Op.NEG,
        Op.POW_SCALAR,
        Op.EXP,
        Op.LOG,
        Op.SQRT,
        Op.ABS,
        Op.SIGN,
        Op.TANH,
        Op.SIGMOID,
        Op.RELU,
        Op.LEAKY_RELU,
        Op.GELU,
        Op.CLIP,
        Op.CAST,
    }
)
ELEMENTWISE = BINARY | COMPARE | UNARY | {Op.WHERE}
REDUCE = frozenset({Op.SUM, Op.MEAN, Op.MAX, Op.MIN, Op.VAR, Op.SUM_TO})
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
            Op.CROSS_ENTROPY_BACKWARD,
            Op.MSE_LOSS_BACKWARD,
        }
    )
    | LOSS
)
# Ops whose floating inputs must share one dtype (a mix is a user error).
SAME_DTYPE = BINARY | {
    Op.WHERE,
    Op.MATMUL,
    Op.LINEAR,
    Op.CONV2D,
    Op.LAYER_NORM,
    Op.MSE_LOSS,
    Op.BCE_WITH_LOGITS,
    Op.CROSS_ENTROPY_BACKWARD,
    Op.MSE_LOSS_BACKWARD,
}


@dataclass(slots=True)
class OpDef:
    """Everything the engine knows about one primitive op."""

    op: Op
    # (xp, *arrays, **attrs) -> array, or (array, saved dict) when ``saves``
    forward: Callable[..., Any]
    # (ctx, g) -> one gradient Tensor (or None) per input
    grad: Callable[..., Any] | None
    # fusion template for elementwise ops, e.g. "({0} + {1})"
    template: str | None = None
    # input positions that never get a gradient (indices, targets, masks)
    nondiff: frozenset[int] = field(default_factory=frozenset)
    # forward returns (out, saved) so the rule can reuse work (im2col columns)
    saves: bool = False
    # floating inputs must share one dtype (from SAME_DTYPE)
    same_dtype: bool = False
    # ``op.label``, computed once (events name the op on every emit)
    label: str = ""


REGISTRY: list[OpDef | None] = [None] * (max(Op) + 1)


def define(
    op: Op,
    forward: Callable[..., Any],
    grad: Callable[..., Any] | None,
    *,
    template: str | None = None,
    nondiff: tuple[int, ...] = (),
    saves: bool = False,
) -> OpDef:
    """Register ``op``; defining one op twice is a programming error."""
    if REGISTRY[op] is not None:
        raise RuntimeError(f"op {op.label} is defined twice")
    definition = OpDef(
        op, forward, grad, template, frozenset(nondiff), saves, op in SAME_DTYPE, op.label
    )
    REGISTRY[op] = definition
    return definition


def missing() -> list[Op]:
    """Ops in the enum without a definition (a test keeps this empty)."""
    return [op for op in Op if REGISTRY[op] is None]
