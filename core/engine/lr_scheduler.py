"""Learning-rate schedules with PyTorch's names (``optim.lr_scheduler``):
``StepLR``, ``MultiStepLR``, ``ExponentialLR``, ``ConstantLR``, ``LinearLR``,
``CosineAnnealingLR``, ``CosineAnnealingWarmRestarts``, ``OneCycleLR``,
and (from ``core.engine.lr_scheduler_more``) ``CyclicLR``, ``LambdaLR`` and
``ReduceLROnPlateau``.

State is explicit here too: a schedule turns the optimizer's rate into a
state tensor and counts steps in another; ``step()`` advances the count and
computes the rate from it with ops (in float64, then in the parameters'
dtype), so a compiled step that calls ``scheduler.step()`` follows the
schedule. The formulas are PyTorch's closed forms.

>>> import core
>>> from core import optim
>>> w = core.tensor([1.0], requires_grad=True)
>>> opt = optim.SGD([w], lr=0.1)
>>> sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
>>> rates = []
>>> for _ in range(5):
...     opt.step()
...     sched.step()
...     rates.append(round(sched.get_last_lr()[0], 6))
>>> rates
[0.1, 0.05, 0.05, 0.025, 0.025]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.device import xp_for
from core.engine.dispatch import apply, constant, leaf
from core.engine.modes import no_grad, phase
from core.engine.ops import Op
from core.engine.tensor import Tensor


class LRScheduler:
    """Base class: ``rate(step)`` builds the rate from the step count tensor."""

    def __init__(self, optimizer: Any, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        self.lr = optimizer.scheduled("lr")
        first = optimizer.params[0]
        self.base_lr = float(self.lr.item())
        start = xp_for(first.device).asarray(float(last_epoch), dtype=np.float64)
        name = f"{type(self).__name__}.last_epoch"
        self.count = leaf(start, first.device, False, "state", name)
        self.last_epoch = last_epoch  # as a number (eager runs; see ``count``)
        self.step()

    def rate(self, step: Tensor) -> Tensor:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step and write the new rate into the optimizer."""
        self.last_epoch += 1
        with no_grad(), phase("update"):
            step = self.count.add_(1.0)
            self.lr.copy_(self.rate(step))
            self.extra(step)

    def extra(self, step: Tensor) -> None:
        """Other hyperparameters a schedule moves (OneCycleLR's momentum)."""

    def get_last_lr(self) -> list[float]:
        return [float(self.lr.item())]

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "base_lr": self.base_lr}


def _number(value: float, like: Tensor) -> Tensor:
    return constant(float(value), like=like)


class StepLR(LRScheduler):
    """``base_lr * gamma ** (epoch // step_size)``."""

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def rate(self, step: Tensor) -> Tensor:
        drops = apply(Op.FLOOR, (step / float(self.step_size),))
        return apply(Op.POW, (_number(self.gamma, step), drops)) * self.base_lr


class ExponentialLR(LRScheduler):
    """``base_lr * gamma ** epoch``."""

    def __init__(self, optimizer: Any, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def rate(self, step: Tensor) -> Tensor:
        return apply(Op.POW, (_number(self.gamma, step), step)) * self.base_lr


class MultiStepLR(LRScheduler):
    """``base_lr * gamma ** (number of milestones reached)``."""

    def __init__(self, optimizer: Any, milestones: Any, gamma: float = 0.1, last_epoch=-1):
        self.milestones, self.gamma = sorted(int(m) for m in milestones), gamma
        super().__init__(optimizer, last_epoch)

    def rate(self, step: Tensor) -> Tensor:
        reached = _number(0.0, step)
        for m in self.milestones:
            reached = reached + (step >= float(m)).astype(step.dtype)
        return apply(Op.POW, (_number(self.gamma, step), reached)) * self.base_lr


class ConstantLR(LRScheduler):
    """``base_lr * factor`` until ``total_iters``, then ``base_lr``."""

    def __init__(
        self, optimizer: Any, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1
    ):
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer, last_epoch)

    def rate(self, step: Tensor) -> Tensor:
        done = (step >= float(self.total_iters)).astype(step.dtype)
        return (done * (1.0 - self.factor) + self.factor) * self.base_lr


class LinearLR(LRScheduler):
    """The factor moves linearly from ``start_factor`` to ``end_factor`` over
    ``total_iters`` steps, then stays."""

    def __init__(
        self,
        optimizer: Any,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ):
        self.start_factor, self.end_factor = start_factor, end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def rate(self, step: Tensor) -> Tensor:
        progress = step.clamp(max=float(self.total_iters)) / float(self.total_iters)
        factor = progress * (self.end_factor - self.start_factor) + self.start_factor
        return factor * self.base_lr


class CosineAnnealingLR(LRScheduler):
    """``eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``."""

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0, last_epoch=-1):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def rate(self, step: Tensor) -> Tensor:
        cosine = (step * (math.pi / self.T_max)).cos()
        return (cosine + 1.0) * ((self.base_lr - self.eta_min) / 2.0) + self.eta_min


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing that restarts: periods of ``T_0``, ``T_0 * T_mult``, ...
    (the period and the place in it are ops on the step count)."""

    def __init__(
        self, optimizer: Any, T_0: int, T_mult: int = 1, eta_min: float = 0.0, last_epoch: int = -1
    ):
        if T_0 <= 0 or T_mult < 1 or int(T_mult) != T_mult:
            raise ValueError("CosineAnnealingWarmRestarts: T_0 > 0 and an integer T_mult >= 1")
        self.T_0, self.T_mult, self.eta_min = T_0, int(T_mult), eta_min
        super().__init__(optimizer, last_epoch)

    def rate(self, step: Tensor) -> Tensor:
        if self.T_mult == 1:
            place, period = step.remainder(float(self.T_0)), float(self.T_0)
        else:  # restarts at T_0 (T_mult^k - 1) / (T_mult - 1), counted below 2^31
            m, restarts, k = self.T_mult, _number(0.0, step), 1
            while self.T_0 * (m**k - 1) // (m - 1) < 2**31:
                restarts = restarts + (step >= float(self.T_0 * (m**k - 1) // (m - 1))).double()
                k += 1
            grown = apply(Op.POW, (_number(float(m), step), restarts))
            place = step - (grown - 1.0) * (self.T_0 / (m - 1))
            period = grown * float(self.T_0)
        cosine = (place / period * math.pi).cos()
        return (cosine + 1.0) * ((self.base_lr - self.eta_min) / 2.0) + self.eta_min


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith and Topin), as PyTorch's: the rate climbs from
    ``max_lr / div_factor`` to ``max_lr`` over ``pct_start`` of the steps,
    then anneals to ``initial / final_div_factor``; with ``cycle_momentum``
    the momentum (SGD) or the first beta (Adam) moves the other way."""

    def __init__(
        self,
        optimizer: Any,
        max_lr: float,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError("OneCycleLR: anneal_strategy must be 'cos' or 'linear'")
        self.total_steps, self.anneal_strategy = total_steps, anneal_strategy
        initial = max_lr / div_factor
        low = initial / final_div_factor
        up = float(pct_start * total_steps) - 1.0
        if three_phase:
            self.phases = [
                (up, initial, max_lr, max_momentum, base_momentum),
                (2 * up, max_lr, initial, base_momentum, max_momentum),
                (total_steps - 1.0, initial, low, max_momentum, max_momentum),
            ]
        else:
            self.phases = [
                (up, initial, max_lr, max_momentum, base_momentum),
                (total_steps - 1.0, max_lr, low, base_momentum, max_momentum),
            ]
        optimizer.lr = initial
        self.momentum_name = None
        if cycle_momentum:
            if hasattr(optimizer, "betas"):
                self.momentum_name = "beta1"
            elif getattr(optimizer, "momentum", 0):
                self.momentum_name = "momentum"
            else:
                raise ValueError("OneCycleLR: cycle_momentum needs an optimizer with momentum")
            self.momentum = optimizer.scheduled(self.momentum_name)
        super().__init__(optimizer, last_epoch)

    def step(self) -> None:
        if self.last_epoch + 1 > self.total_steps:
            raise ValueError(
                f"OneCycleLR: tried to step {self.last_epoch + 1} times, more than "
                f"total_steps={self.total_steps}"
            )
        super().step()

    def _anneal(self, start: float, end: float, pct: Tensor) -> Tensor:
        if self.anneal_strategy == "cos":
            return ((pct * math.pi).cos() + 1.0) * ((start - end) / 2.0) + end
        return pct * (end - start) + start

    def _schedule(self, step: Tensor, which: int) -> Tensor:
        """Phase by phase, from the last: each applies up to its end step."""
        begins = [0.0] + [p[0] for p in self.phases[:-1]]
        value = None
        for (end, *values), begin in reversed(list(zip(self.phases, begins))):
            start, stop = values[which], values[which + 1]
            pct = (step - begin) / (end - begin)
            here = self._anneal(start, stop, pct)
            value = here if value is None else apply(Op.WHERE, (step <= end, here, value))
        return value

    def rate(self, step: Tensor) -> Tensor:
        return self._schedule(step, 0)

    def extra(self, step: Tensor) -> None:
        if self.momentum_name is not None:
            self.momentum.copy_(self._schedule(step, 2))


# LambdaLR, CyclicLR and ReduceLROnPlateau (optim.lr_scheduler has them all)
from core.engine.lr_scheduler_more import *  # noqa: E402, F403
