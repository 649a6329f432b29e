"""More optimizers with PyTorch's names, defaults and formulas: ``Adamax``,
``Adadelta``, ``NAdam``, ``RAdam``, ``Rprop`` (``core.optim`` exports them). As in
``core.engine.optim``: every slot and step count is state made up front, and
each update writes through in-place ops, so step 1 runs the same ops as step
100 (RAdam's switch between its two rules is a ``where``, not an ``if``).

>>> import core
>>> from core import optim
>>> w = core.tensor([1.0, -2.0], requires_grad=True)
>>> opt = optim.Adamax([w], lr=0.1)
>>> (w * w).sum().backward()
>>> opt.step()
>>> [round(v, 4) for v in w.tolist()]
[0.9, -1.9]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.engine.dispatch import apply, lift
from core.engine.inplace import apply_
from core.engine.ops import Op
from core.engine.optim import Optimizer, descend
from core.engine.tensor import Tensor

__all__ = ["Adadelta", "Adamax", "NAdam", "RAdam", "Rprop"]


class _Moments(Optimizer):
    """Shared set-up: betas, eps, weight decay and a step count."""

    def __init__(self, params, lr, betas, eps, weight_decay) -> None:
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.step_count = self._counter(f"{type(self).__name__.lower()}.step")
        self._t: Any = None

    def begin_step(self) -> None:
        self._t = self.step_count.add_(1.0)

    def _decayed(self, p: Tensor, g: Tensor) -> Tensor:
        return g.add(p, alpha=self.weight_decay) if self.weight_decay else g


class Adamax(_Moments):
    """Adam with the infinity norm: ``u = max(b2 u, |g| + eps)``."""

    slots = ("exp_avg", "exp_inf")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        b1, b2 = self.betas
        g = self._decayed(p, g)
        m = state["exp_avg"].lerp_(g, 1.0 - b1)
        u = state["exp_inf"].mul_(b2)
        apply_(Op.MAXIMUM, u, (g.abs() + self.eps,))
        rate = self.lr / (1.0 - b1**self._t)
        return apply_(Op.SUB, p, (m / u * rate,))


class Adadelta(Optimizer):
    """Adadelta (Zeiler): steps scaled by the running RMS of past steps over
    the running RMS of gradients, times ``lr`` (1 by default)."""

    slots = ("square_avg", "acc_delta")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.rho, self.eps, self.weight_decay = rho, eps, weight_decay

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        rho = self.rho
        if self.weight_decay:
            g = g.add(p, alpha=self.weight_decay)
        square_avg = state["square_avg"].mul_(rho).add_(g * g, alpha=1.0 - rho)
        delta = (state["acc_delta"] + self.eps).sqrt() / (square_avg + self.eps).sqrt() * g
        state["acc_delta"].mul_(rho).add_(delta * delta, alpha=1.0 - rho)
        return descend(p, delta, self.lr)


class NAdam(_Moments):
    """Adam with Nesterov momentum (Dozat), with PyTorch's momentum decay:
    ``mu_t = b1 (1 - 0.96 ** (t psi) / 2)``; the product of the mus is state."""

    slots = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
        self.momentum_decay = momentum_decay
        self.mu_product = self._counter("nadam.mu_product")
        self.mu_product.fill_(1.0)
        self._coefficients: tuple = ()

    def begin_step(self) -> None:
        super().begin_step()
        b1, b2 = self.betas
        t, psi = self._t, self.momentum_decay
        half = 0.5
        mu = (1.0 - apply(Op.POW, (t.new_full((), 0.96), t * psi)) * half) * b1
        mu_next = (1.0 - apply(Op.POW, (t.new_full((), 0.96), (t + 1.0) * psi)) * half) * b1
        product = self.mu_product.mul_(mu)
        self._coefficients = (
            self.lr * (1.0 - mu) / (1.0 - product),
            self.lr * mu_next / (1.0 - product * mu_next),
            (1.0 - b2**t).sqrt(),
        )

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        b1, b2 = self.betas
        g = self._decayed(p, g)
        m = state["exp_avg"].lerp_(g, 1.0 - b1)
        v = state["exp_avg_sq"].mul_(b2).add_(g * g, alpha=1.0 - b2)
        grad_rate, avg_rate, bc2_sqrt = self._coefficients
        denom = v.sqrt() / bc2_sqrt + self.eps
        apply_(Op.SUB, p, (g / denom * grad_rate,))
        return apply_(Op.SUB, p, (m / denom * avg_rate,))


class RAdam(_Moments):
    """Rectified Adam (Liu et al.), as PyTorch's: the adaptive step once the
    variance's length ``rho_t`` passes 5, plain momentum before."""

    slots = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)
        self._terms: tuple = ()

    def begin_step(self) -> None:
        super().begin_step()
        b1, b2 = self.betas
        t = self._t
        bc1, bc2 = 1.0 - b1**t, 1.0 - b2**t
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        rho_t = rho_inf - t * 2.0 * b2**t / bc2
        ratio = (rho_t - 4.0) * (rho_t - 2.0) * rho_inf
        ratio = ratio / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)
        rect = ratio.clamp(min=0.0).sqrt()
        self._terms = (rho_t > 5.0, self.lr / bc1, rect, bc2.sqrt())

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        b1, b2 = self.betas
        g = self._decayed(p, g)
        m = state["exp_avg"].lerp_(g, 1.0 - b1)
        v = state["exp_avg_sq"].mul_(b2).add_(g * g, alpha=1.0 - b2)
        adaptive, rate, rect, bc2_sqrt = self._terms
        scale = bc2_sqrt / (v.sqrt() + self.eps) * rect
        step = apply(Op.WHERE, (adaptive, m * scale, m)) * rate
        return apply_(Op.SUB, p, (step,))


class Rprop(Optimizer):
    """Resilient backpropagation, as PyTorch's: a step size per element grows
    by ``etas[1]`` while the gradient keeps its sign and shrinks by
    ``etas[0]`` when it flips (that element then skips a step)."""

    slots = ("prev", "step_size")

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50.0),
    ) -> None:
        super().__init__(params, lr)
        self.etas, self.step_sizes = etas, step_sizes
        self.step_count = self._counter("rprop.step")
        self._first: Any = None

    def begin_step(self) -> None:
        self._first = self.step_count.add_(1.0).eq(1.0)

    def update(self, p: Tensor, g: Tensor, state: dict[str, Tensor]) -> int:
        minus, plus = self.etas
        # the step sizes start at the rate of the first step (as PyTorch's,
        # which makes them then): a where on the step count, every step
        size = state["step_size"]
        size.copy_(apply(Op.WHERE, (self._first, lift(self.lr, size), size)))
        turn = (g * state["prev"]).sign()
        factor = apply(Op.WHERE, (turn > 0.0, g.new_full((), plus), g.new_full((), 1.0)))
        factor = apply(Op.WHERE, (turn < 0.0, g.new_full((), minus), factor))
        step = state["step_size"].mul_(factor).clamp_(*self.step_sizes)
        g = apply(Op.WHERE, (turn < 0.0, g.new_full((), 0.0), g))
        state["prev"].copy_(g)
        return apply_(Op.SUB, p, (g.sign() * step,))
