"""Optimizers: ``SGD`` and ``Adam``, their updates written as engine ops.

State is explicit: every slot (momentum, Adam's moments and step count) is a
tensor made when the optimizer is made, and each update writes a parameter
or a slot through an in-place op, so step 1 runs the same ops as step 100 and
a tracer sees every write. Updates run under ``no_grad`` in the "update"
phase; a debugger sees each parameter's ops, then ``ParameterUpdated``.

>>> import core
>>> from core import optim
>>> w = core.tensor([1.0], requires_grad=True)
>>> opt = optim.SGD([w], lr=0.5)
>>> (w * w).sum().backward()
>>> opt.step()
>>> w.numpy().tolist()
[0.0]
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from core.device import xp_for
from core.engine import dispatch
from core.engine.dispatch import apply_, grad_reset, leaf
from core.engine.modes import no_grad, phase
from core.engine.ops import Op
from core.engine.tensor import Tensor
from core.observe.bus import BUS
from core.observe.events import ParameterUpdated
from core.observe.stats import summarize


class Optimizer:
    """Holds parameters and their state slots; subclasses define ``update``."""

    slots: tuple[str, ...] = ()  # per-parameter state, made zero at construction

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got no parameters to optimize")
        if lr <= 0 or not math.isfinite(lr):
            raise ValueError(f"{type(self).__name__}: lr must be a positive number, got {lr}")
        self.lr = lr
        self.state: dict[int, dict[str, Tensor]] = {
            p.id: {name: self._slot(p, name) for name in self.slots} for p in self.params
        }

    @staticmethod
    def _slot(p: Tensor, name: str) -> Tensor:
        """A state tensor of zeros shaped as ``p``, named after it."""
        zeros = xp_for(p.device).zeros_like(p.data)
        return leaf(zeros, p.device, False, "state", f"{p.name or f'param_{p.id}'}.{name}")

    def zero_grad(self) -> None:
        """Forget every gradient (``.grad = None``, PyTorch's default)."""
        hooked = dispatch.tracing()
        for p in self.params:
            p._grad = None  # Tensor.grad's slot: the property's setter, inlined
            if hooked:
                grad_reset(p)

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        with no_grad(), phase("update"):
            self.begin_step()
            for p in self.params:
                g = p._grad
                if g is None:
                    continue
                value_id = self.update(p, g, self.state[p.id])
                if BUS.active:
                    self._announce(p, value_id)

    def begin_step(self) -> None:
        """Work shared by every parameter's update (once per step)."""

    def _announce(self, p: Tensor, value_id: int) -> None:
        BUS.emit(
            ParameterUpdated(
                tensor_id=p.id,
                name=p.name or f"param_{p.id}",
                optimizer=type(self).__name__,
                value_id=value_id,
                stats=summarize(p.data) if BUS.want_stats else None,
            ),
            {value_id: p.data} if BUS.want_values else None,
        )

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        """Write ``p``'s new value (an in-place op); return the value's id."""
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay.

    The momentum buffer starts at zero, so its first value is the gradient,
    as PyTorch's (without dampening).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        self.slots = ("momentum_buffer",) if momentum else ()
        super().__init__(params, lr)
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        if self.momentum:
            buf = state["momentum_buffer"].mul_(self.momentum).add_(g)
            g = g.add(buf, alpha=self.momentum) if self.nesterov else buf
        return apply_(Op.ADD_SCALED, p, (g,), {"alpha": -float(self.lr)})  # p -= lr * g


class Adam(Optimizer):
    """Adam (Kingma and Ba), with bias correction and optional L2 weight decay,
    computed as PyTorch's: ``p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)``,
    the step count ``t`` a tensor."""

    slots = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        first = self.params[0]
        zero = xp_for(first.device).zeros((), first.dtype)
        self.step_count = leaf(zero, first.device, False, "state", "adam.step")
        self._step_size: Tensor | None = None
        self._bc2_sqrt: Tensor | None = None

    def begin_step(self) -> None:
        b1, b2 = self.betas
        t = self.step_count.add_(1.0)
        self._step_size = self.lr / (1.0 - b1**t)
        self._bc2_sqrt = (1.0 - b2**t).sqrt()

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        b1, b2 = self.betas
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        m = state["exp_avg"].lerp_(g, 1.0 - b1)
        v = state["exp_avg_sq"].mul_(b2).add_(g * g, alpha=1.0 - b2)
        denom = v.sqrt() / self._bc2_sqrt + self.eps
        return apply_(Op.SUB, p, (m / denom * self._step_size,))
