"""Optimizers: ``SGD`` and ``Adam``, their updates written as engine ops.

Updates run under ``no_grad`` in the "update" phase, so a debugger sees each
one as ops followed by ``ParameterUpdated``, and a tracer can capture them.

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

from core.engine.ops import Op
from core.engine.tensor import Tensor, apply, no_grad, phase
from core.observe.bus import BUS
from core.observe.events import ParameterUpdated
from core.observe.stats import summarize


class Optimizer:
    """Holds parameters and per-parameter state; subclasses define ``update``."""

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got no parameters to optimize")
        if lr <= 0 or not math.isfinite(lr):
            raise ValueError(f"{type(self).__name__}: lr must be a positive number, got {lr}")
        self.lr = lr
        self.state: dict[int, dict[str, Tensor]] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        with no_grad(), phase("update"):
            state = self.state
            for p in self.params:
                g = p.grad
                if g is None:
                    continue
                slot = state.get(p.id)
                if slot is None:
                    slot = state[p.id] = {}
                new = self.update(p, g, slot)
                p.data = new.data
                if BUS.active:
                    self._announce(p, new)

    def _announce(self, p: Tensor, new: Tensor) -> None:
        BUS.emit(
            ParameterUpdated(
                tensor_id=p.id,
                name=p.name or f"param_{p.id}",
                optimizer=type(self).__name__,
                value_id=new.id,
                stats=summarize(new.data) if BUS.want_stats else None,
            ),
            {new.id: new.data} if BUS.want_values else None,
        )

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(params, lr)
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> Tensor:
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        if self.momentum:
            buf = state.get("momentum")
            buf = g if buf is None else g.add(buf, alpha=self.momentum)
            state["momentum"] = buf
            g = g.add(buf, alpha=self.momentum) if self.nesterov else buf
        return apply(Op.ADD_SCALED, (p, g), {"alpha": -float(self.lr)})  # p.add(g, alpha=-lr)


class Adam(Optimizer):
    """Adam (Kingma and Ba), with bias correction and optional L2 weight decay."""

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
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        super().step()

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> Tensor:
        b1, b2 = self.betas
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        m, v = state.get("m"), state.get("v")
        m = g * (1.0 - b1) if m is None else m * b1 + g * (1.0 - b1)
        v = g * g * (1.0 - b2) if v is None else v * b2 + g * g * (1.0 - b2)
        state["m"], state["v"] = m, v
        t = self.steps
        step_size = self.lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
        eps = self.eps * math.sqrt(1.0 - b2**t)
        return p - m * step_size / (v.sqrt() + eps)
