"""``torch.nn.utils`` names: gradient clipping (``core.nn.utils``).

Clipping writes each ``.grad`` in place under ``no_grad``, in the "update"
phase, with the factor computed by ops (no value is read out), so a compiled
step clips as the eager one does. Its ops sit in a scope of their own
(``clip_grad_norm_``, announced like a module's call), so the debugger draws
them in one box and names them after it, not after the parameter the
optimizer updates next.

>>> import core
>>> from core import nn
>>> w = core.tensor([3.0, 4.0], requires_grad=True)
>>> (w * w).sum().backward()
>>> round(nn.utils.clip_grad_norm_([w], max_norm=1.0).item(), 3)
10.0
>>> [round(v, 4) for v in w.grad.tolist()]
[0.6, 0.8]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from core.engine import functional as F
from core.engine.dispatch import constant
from core.engine.modes import call_scope, no_grad, phase
from core.engine.tensor import Tensor
from core.errors import GradError
from core.observe.source import where


def _grads(parameters: Any) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(
    parameters: Iterable[Tensor] | Tensor,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: Any = None,
) -> Tensor:
    """Scale every gradient by ``max_norm / (total_norm + 1e-6)`` where that is
    below 1; returns the total norm (of all gradients as one vector)."""
    parameters = list(parameters) if not isinstance(parameters, Tensor) else [parameters]
    grads = _grads(parameters)
    with no_grad(), phase("update"), call_scope("clip_grad_norm_"):
        if not grads:
            return constant(0.0, device=parameters[0].device if parameters else "cpu")
        norms = [g.norm(norm_type) for g in grads]
        if norm_type == math.inf:
            total = F.stack(norms).amax()
        else:
            total = F.stack(norms).norm(norm_type)
        if error_if_nonfinite and not math.isfinite(total.item()):
            raise GradError(
                f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                f"non-finite ({total.item()}){where()}"
            )
        factor = (constant(float(max_norm), like=total) / (total + 1e-6)).clip(max=1.0)
        for p in parameters:
            if p.grad is not None:
                p.grad.mul_(factor.astype(p.grad.dtype))
    return total


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float) -> None:
    """Clamp every gradient to [-clip_value, clip_value], in place."""
    with no_grad(), phase("update"), call_scope("clip_grad_value_"):
        for g in _grads(parameters):
            g.clamp_(-clip_value, clip_value)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """Every parameter flattened, one after another, in one vector."""
    return F.cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Write consecutive pieces of ``vec`` into the parameters, in place."""
    start = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p.copy_(vec[start : start + n].reshape(*p.shape))
            start += n
    if start != vec.numel():
        raise ValueError(
            f"vector_to_parameters: the vector has {vec.numel()} values, the parameters {start}"
        )
