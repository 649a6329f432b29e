"""Optimizers: ``SGD``, ``Adam``, ``AdamW``, ``RMSprop`` and ``Adagrad``, their
updates written as engine ops; ``optim.lr_scheduler`` holds the schedules.

State is explicit: every slot (momentum, Adam's moments and step count) is a
tensor made when the optimizer is made, and each update writes a parameter
or a slot through an in-place op, so step 1 runs the same ops as step 100 and
a tracer sees every write. Updates run under ``no_grad`` in the "update"
phase; a debugger sees each parameter's ops, then ``ParameterUpdated``.

The learning rate is a number until a schedule takes it over: then it is a
state tensor (``lr``) the schedule writes with ops, so a compiled step reads
each step's rate rather than the one it was traced with.

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
from typing import Any

from core.device import xp_for
from core.engine import dispatch
from core.engine.dispatch import grad_reset, leaf
from core.engine.inplace import apply_
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
        self.lr: float | Tensor = lr
        self._lr_is_number = True  # until a schedule makes it a state tensor
        self.state: dict[int, dict[str, Tensor]] = {
            p.id: {name: self._slot(p, name) for name in self.slots} for p in self.params
        }

    def _slot(self, p: Tensor, name: str, value: float = 0.0) -> Tensor:
        """A state tensor of ``value`` shaped as ``p``, named after it."""
        xp = xp_for(p.device)
        data = xp.zeros_like(p.data) if value == 0.0 else xp.full_like(p.data, value)
        return leaf(data, p.device, False, "state", f"{p.name or f'param_{p.id}'}.{name}")

    def _counter(self, name: str) -> Tensor:
        """A 0-d state tensor counting steps (in the parameters' dtype)."""
        first = self.params[0]
        zero = xp_for(first.device).zeros((), first.dtype)
        return leaf(zero, first.device, False, "state", name)

    def scheduled(self, name: str = "lr") -> Tensor:
        """The hyperparameter ``name`` (``lr``, ``momentum`` or the first of
        ``betas``) as a 0-d state tensor a schedule writes in place; made on
        first use, from its current value."""
        current = self.betas[0] if name == "beta1" else getattr(self, name)
        if isinstance(current, Tensor):
            return current
        self._lr_is_number = self._lr_is_number and name != "lr"
        first = self.params[0]
        value = xp_for(first.device).asarray(current, dtype=first.dtype)
        t = leaf(value, first.device, False, "state", f"{type(self).__name__.lower()}.{name}")
        if name == "beta1":
            self.betas = (t, self.betas[1])
        else:
            setattr(self, name, t)
        return t

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """PyTorch's view of the settings: one group, its values as numbers."""
        group: dict[str, Any] = {"params": self.params}
        for key in ("lr", "momentum", "betas", "weight_decay", "eps", "alpha"):
            if hasattr(self, key):
                value = getattr(self, key)
                if key == "betas":
                    value = tuple(_number(b) for b in value)
                group[key] = _number(value)
        return [group]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every gradient (``.grad = None``, PyTorch's default; gradients
        are values here, so ``set_to_none=False`` does the same)."""
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
        self._uses_momentum = bool(momentum)
        self._scaled: dict | None = None  # this step's attributes of p -= lr * g

    def begin_step(self) -> None:
        self._scaled = {"alpha": -float(self.lr)} if self._lr_is_number else None

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        if self._uses_momentum:
            buf = state["momentum_buffer"].mul_(self.momentum).add_(g)
            g = g + buf * self.momentum if self.nesterov else buf
        if self._scaled is not None:  # p -= lr * g, one op
            return apply_(Op.ADD_SCALED, p, (g,), self._scaled)
        return apply_(Op.SUB, p, (g * self.lr,))


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
        self.step_count = self._counter(f"{type(self).__name__.lower()}.step")
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


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter), as PyTorch's:
    ``p *= 1 - lr * weight_decay`` before the Adam step, decay 0.01 by default."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr, betas, eps, 0.0)
        self.decoupled_decay = weight_decay

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        groups = super().param_groups
        groups[0]["weight_decay"] = self.decoupled_decay
        return groups

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        if self.decoupled_decay:
            p.mul_(1.0 - self.lr * self.decoupled_decay)
        return super().update(p, g, state)


class RMSprop(Optimizer):
    """RMSprop (Hinton), as PyTorch's: a running mean of squared gradients
    (``alpha``) divides each step; optional momentum and centering."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        self.slots = ("square_avg",)
        self.slots += ("momentum_buffer",) if momentum else ()
        self.slots += ("grad_avg",) if centered else ()
        super().__init__(params, lr)
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay
        self.momentum, self.centered = momentum, centered

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        square_avg = state["square_avg"].mul_(self.alpha).add_(g * g, alpha=1.0 - self.alpha)
        if self.centered:
            grad_avg = state["grad_avg"].lerp_(g, 1.0 - self.alpha)
            avg = (square_avg - grad_avg * grad_avg).sqrt() + self.eps
        else:
            avg = square_avg.sqrt() + self.eps
        if "momentum_buffer" in state:
            buf = state["momentum_buffer"].mul_(self.momentum).add_(g / avg)
            return descend(p, buf, self.lr)
        return descend(p, g / avg, self.lr)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), as PyTorch's: the sum of squared gradients
    (from ``initial_accumulator_value``) divides each step; the rate decays as
    ``lr / (1 + (step - 1) * lr_decay)``."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        self.initial_accumulator_value = initial_accumulator_value
        self.slots = ("sum",)
        super().__init__(params, lr)
        self.lr_decay, self.weight_decay, self.eps = lr_decay, weight_decay, eps
        self.step_count = self._counter("adagrad.step")
        self._rate: Any = lr

    def _slot(self, p: Tensor, name: str, value: float = 0.0) -> Tensor:
        return super()._slot(p, name, self.initial_accumulator_value)

    def begin_step(self) -> None:
        t = self.step_count.add_(1.0)
        self._rate = self.lr / ((t - 1.0) * self.lr_decay + 1.0) if self.lr_decay else self.lr

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        total = state["sum"].add_(g * g)
        return descend(p, g / (total.sqrt() + self.eps), self._rate)


def descend(p: Tensor, step: Tensor, lr: float | Tensor) -> int:
    """``p -= lr * step`` in place: one op for a number, two for a scheduled rate."""
    if isinstance(lr, Tensor):
        return apply_(Op.SUB, p, (step * lr,))
    return apply_(Op.ADD_SCALED, p, (step,), {"alpha": -float(lr)})


def _number(value: Any) -> Any:
    if isinstance(value, Tensor):
        return float(value.item())
    return value


from core.engine import lr_scheduler  # noqa: E402, F401  (optim.lr_scheduler)
from core.engine.optim_more import *  # noqa: E402, F403
