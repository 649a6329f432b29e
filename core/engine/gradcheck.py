"""Finite-difference gradient checks in float64.

>>> import core
>>> x = core.tensor([0.3, -1.2], dtype="float64", requires_grad=True)
>>> report = core.gradcheck(lambda t: (t * t).tanh(), [x])
>>> report.ok
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.device import to_device, to_host, xp_for
from core.engine.autograd import grad
from core.engine.modes import no_grad
from core.engine.tensor import Tensor


@dataclass(frozen=True)
class InputReport:
    """How well one input's analytic gradient matches central differences."""

    index: int  # position of the input
    shape: tuple[int, ...]  # its shape
    worst_error: float  # |analytic - numeric| / max(|analytic|, |numeric|, 1e-3)
    worst_element: tuple[int, ...]  # where the worst error is
    analytic: float  # analytic gradient there
    numeric: float  # numeric gradient there


@dataclass(frozen=True)
class GradcheckReport:
    inputs: tuple[InputReport, ...]
    tolerance: float

    @property
    def worst_error(self) -> float:
        return max((r.worst_error for r in self.inputs), default=0.0)

    @property
    def ok(self) -> bool:
        return self.worst_error <= self.tolerance

    def __str__(self) -> str:
        lines = []
        for r in self.inputs:
            lines.append(
                f"input {r.index} {r.shape}: worst relative error {r.worst_error:.2e} at "
                f"{r.worst_element} (analytic {r.analytic:.6g}, numeric {r.numeric:.6g})"
            )
        return "\n".join(lines) or "no input requires grad"


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor],
    *,
    eps: float = 1e-6,
    tolerance: float = 1e-5,
    seed: int = 0,
) -> GradcheckReport:
    """Compare backward() with central differences for every input that requires grad.

    A non-scalar output is reduced with a fixed random cotangent ``v``: the check
    is on d(sum(fn(*inputs) * v))/d(input). Inputs should be float64.
    """
    inputs = list(inputs)
    out = fn(*inputs)
    xp = xp_for(out.device)
    rng = np.random.default_rng(seed)
    v_host = rng.standard_normal(out.shape).astype(out.dtype)
    v = Tensor(to_device(v_host, out.device), dtype=out.dtype, device=out.device)
    wanted = [t for t in inputs if t.requires_grad]
    analytic = grad(out, wanted, v, allow_unused=True)

    def objective() -> float:
        with no_grad():
            y = fn(*inputs)
        return float((y.data * v.data).sum())

    reports = []
    for t, g in zip(wanted, analytic):
        numeric = np.zeros(t.shape, dtype=np.float64)
        original = t.data.copy()
        flat = t.data.reshape(-1)
        for i in range(flat.size):
            base = float(original.reshape(-1)[i])
            flat[i] = base + eps
            up = objective()
            flat[i] = base - eps
            down = objective()
            flat[i] = base
            numeric.reshape(-1)[i] = (up - down) / (2 * eps)
        t.data[...] = original
        a = np.zeros(t.shape) if g is None else to_host(g.data).astype(np.float64)
        err = np.abs(a - numeric) / np.maximum(np.maximum(np.abs(a), np.abs(numeric)), 1e-3)
        worst = np.unravel_index(int(np.argmax(err)), err.shape) if err.size else ()
        reports.append(
            InputReport(
                index=next(i for i, u in enumerate(inputs) if u is t),
                shape=tuple(t.shape),
                worst_error=float(err.max()) if err.size else 0.0,
                worst_element=tuple(int(i) for i in worst),
                analytic=float(a[worst]) if err.size else 0.0,
                numeric=float(numeric[worst]) if err.size else 0.0,
            )
        )
    del xp
    return GradcheckReport(tuple(reports), tolerance)
