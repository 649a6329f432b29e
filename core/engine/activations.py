"""Activation functions with PyTorch's names and defaults, each one op or a
short composition of ops (``core.functional`` exports them).

>>> import core
>>> import core.functional as F
>>> x = core.tensor([-2.0, 0.0, 3.0])
>>> F.relu6(x * 3.0).tolist()
[0.0, 0.0, 6.0]
>>> [round(v, 4) for v in F.silu(x).tolist()]
[-0.2384, 0.0, 2.8577]
"""

from __future__ import annotations

from typing import Any

from core.engine.creation import rand
from core.engine.dispatch import apply, constant, lift
from core.engine.ops import Op
from core.engine.tensor import Tensor
from core.errors import ShapeError

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * x)) / beta``, and ``x`` itself where ``beta * x``
    exceeds ``threshold``, as ``torch.nn.functional.softplus``."""
    return apply(Op.SOFTPLUS, (x,), {"beta": float(beta), "threshold": float(threshold)})


def silu(x: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (also called swish)."""
    return x * x.sigmoid()


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """``x`` above 0, ``alpha * (exp(x) - 1)`` below (exp of the clamped input,
    so a large ``x`` never overflows the branch not taken)."""
    below = x.clamp(max=0.0).expm1() * alpha
    return apply(Op.WHERE, (x > 0.0, x, below))


def selu(x: Tensor) -> Tensor:
    """``scale * elu(x, alpha)`` with the self-normalizing constants."""
    return elu(x, SELU_ALPHA) * SELU_SCALE


def celu(x: Tensor, alpha: float = 1.0) -> Tensor:
    below = (x.clamp(max=0.0) / alpha).expm1() * alpha
    return apply(Op.WHERE, (x > 0.0, x, below))


def mish(x: Tensor) -> Tensor:
    """``x * tanh(softplus(x))``."""
    return x * softplus(x).tanh()


def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """``x`` clamped to [min_val, max_val]."""
    return x.clip(min_val, max_val)


def relu6(x: Tensor) -> Tensor:
    return x.clip(0.0, 6.0)


def hardsigmoid(x: Tensor) -> Tensor:
    return (x + 3.0).clip(0.0, 6.0) / 6.0


def hardswish(x: Tensor) -> Tensor:
    return x * hardsigmoid(x)


def logsigmoid(x: Tensor) -> Tensor:
    """``log(sigmoid(x))`` without overflow: ``-softplus(-x)``."""
    return -softplus(-x)


def softsign(x: Tensor) -> Tensor:
    return x / (x.abs() + 1.0)


def glu(x: Tensor, dim: int = -1) -> Tensor:
    """The first half of ``dim`` gated by the sigmoid of the second half."""
    if x.shape[dim] % 2:
        raise ShapeError(f"glu: dim {dim} has odd size {x.shape[dim]} (shape {x.shape})")
    a, b = x.chunk(2, dim)
    return a * b.sigmoid()


def tanhshrink(x: Tensor) -> Tensor:
    return x - x.tanh()


def softmin(x: Tensor, dim: int = -1) -> Tensor:
    """``softmax(-x)`` over ``dim``."""
    return (-x).softmax(dim)


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    """``max(0, x) + weight * min(0, x)``, one weight or one per channel (dim 1)."""
    if weight.numel() > 1 and x.ndim >= 2:
        weight = weight.reshape(-1, *([1] * (x.ndim - 2)))
    return x.relu() - (-x).relu() * weight


def gumbel_softmax(logits: Tensor, tau: float = 1.0, hard: bool = False, dim: int = -1):
    """``softmax((logits + g) / tau)`` with Gumbel noise ``g`` drawn from the
    global generator (a random input, as ``core.rand``); with ``hard`` the
    forward is the one-hot of the largest and the gradient the soft one's."""
    uniform = rand(*logits.shape, dtype=logits.dtype, device=logits.device)
    gumbels = -(-(uniform.clamp(min=1e-20)).log()).log()
    soft = ((logits + gumbels) / tau).softmax(dim)
    if not hard:
        return soft
    index = soft.argmax(dim, keepdim=True)
    zeros = constant(0.0, like=soft).expand(*soft.shape)
    one_hot = apply(
        Op.SCATTER,
        (zeros, index, constant(1.0, like=soft)),
        {"axis": dim % soft.ndim, "add": False},
    )
    return one_hot - soft.detach() + soft


def lerp(start: Tensor, end: Any, weight: Any) -> Tensor:
    """``start + weight * (end - start)``, as ``torch.lerp``."""
    return apply(Op.LERP, (start, lift(end, start), lift(weight, start)))
