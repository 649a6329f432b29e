"""More learning-rate schedules with PyTorch's names: ``LambdaLR``,
``CyclicLR`` and ``ReduceLROnPlateau`` (``optim.lr_scheduler`` exports them).

>>> import core
>>> from core import optim
>>> w = core.tensor([1.0], requires_grad=True)
>>> opt = optim.SGD([w], lr=0.1, momentum=0.9)
>>> sched = optim.lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=0.05, step_size_up=2)
>>> rates = []
>>> for _ in range(4):
...     sched.step()
...     rates.append(round(sched.get_last_lr()[0], 4))
>>> rates
[0.03, 0.05, 0.03, 0.01]
"""

from __future__ import annotations

import math
from typing import Any

from core.engine.dispatch import apply
from core.engine.lr_scheduler import LRScheduler, _number
from core.engine.modes import no_grad, phase
from core.engine.ops import Op
from core.engine.tensor import Tensor

__all__ = ["CyclicLR", "LambdaLR", "ReduceLROnPlateau"]


class LambdaLR(LRScheduler):
    """``base_lr * lr_lambda(epoch)``. The lambda gets the step count as a 0-d
    tensor, so arithmetic in it (``0.95 ** epoch``) stays ops a compiled step
    follows; a lambda that branches on the count reads its value (eager)."""

    def __init__(self, optimizer: Any, lr_lambda: Any, last_epoch: int = -1):
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def rate(self, step: Tensor) -> Tensor:
        factor = self.lr_lambda(step)
        if not isinstance(factor, Tensor):
            factor = _number(float(factor), step)
        return factor.astype(step.dtype) * self.base_lr


class CyclicLR(LRScheduler):
    """The rate cycles between ``base_lr`` and ``max_lr`` (Smith), as PyTorch's
    "triangular", "triangular2" and "exp_range"; with ``cycle_momentum`` the
    momentum (or first beta) cycles the other way."""

    def __init__(
        self,
        optimizer: Any,
        base_lr: float,
        max_lr: float,
        step_size_up: int = 2000,
        step_size_down: int | None = None,
        mode: str = "triangular",
        gamma: float = 1.0,
        cycle_momentum: bool = True,
        base_momentum: float = 0.8,
        max_momentum: float = 0.9,
        last_epoch: int = -1,
    ) -> None:
        if mode not in ("triangular", "triangular2", "exp_range"):
            raise ValueError(f"CyclicLR: unknown mode {mode!r}")
        down = step_size_up if step_size_down is None else step_size_down
        self.total, self.ratio = float(step_size_up + down), step_size_up / (step_size_up + down)
        self.low, self.high, self.mode, self.gamma = base_lr, max_lr, mode, gamma
        optimizer.lr = base_lr
        self.momentum_name = None
        if cycle_momentum:
            if hasattr(optimizer, "betas"):
                self.momentum_name = "beta1"
            elif getattr(optimizer, "momentum", 0):
                self.momentum_name = "momentum"
            else:
                raise ValueError("CyclicLR: cycle_momentum needs an optimizer with momentum")
            self.momentum = optimizer.scheduled(self.momentum_name)
            self.momentum.fill_(max_momentum)
        self.base_momentum, self.max_momentum = base_momentum, max_momentum
        super().__init__(optimizer, last_epoch)

    def _height(self, step: Tensor) -> Tensor:
        cycle = apply(Op.FLOOR, (step / self.total + 1.0,))
        x = step / self.total + 1.0 - cycle
        up = x / self.ratio
        down = (x - 1.0) / (self.ratio - 1.0)
        height = apply(Op.WHERE, (x <= self.ratio, up, down))
        if self.mode == "triangular2":
            height = height / apply(Op.POW, (_number(2.0, step), cycle - 1.0))
        elif self.mode == "exp_range":
            height = height * apply(Op.POW, (_number(self.gamma, step), step))
        return height

    def rate(self, step: Tensor) -> Tensor:
        return self._height(step) * (self.high - self.low) + self.low

    def extra(self, step: Tensor) -> None:
        if self.momentum_name is not None:
            spread = self._height(step) * (self.max_momentum - self.base_momentum)
            self.momentum.copy_(-spread + self.max_momentum)


class ReduceLROnPlateau:
    """Divide the rate by ``1 / factor`` when the metric stops improving for
    ``patience`` steps, as PyTorch's. It reads the metric (a decision made on
    a value: eager, and a guard in a compiled step); the rate is still the
    optimizer's state tensor."""

    def __init__(
        self,
        optimizer: Any,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        if factor >= 1.0 or mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError("ReduceLROnPlateau: factor < 1, mode min or max, rel or abs")
        self.optimizer, self.lr = optimizer, optimizer.scheduled("lr")
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.min_lr, self.eps = cooldown, min_lr, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0
        self.last_epoch = 0

    def _better(self, value: float) -> bool:
        if self.mode == "min":
            bar = (
                self.best * (1 - self.threshold)
                if self.threshold_mode == "rel"
                else (self.best - self.threshold)
            )
            return value < bar
        bar = (
            self.best * (1 + self.threshold)
            if self.threshold_mode == "rel"
            else (self.best + self.threshold)
        )
        return value > bar

    def step(self, metrics: Any) -> None:
        value = float(metrics)
        self.last_epoch += 1
        if self._better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            old = float(self.lr.item())
            new = max(old * self.factor, self.min_lr)
            if old - new > self.eps:
                with no_grad(), phase("update"):
                    self.lr.fill_(new)
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def get_last_lr(self) -> list[float]:
        return [float(self.lr.item())]
