"""Helpers for the engine tests: seeded data sets, line markers, the GPU mark, a training step."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

import core.functional as F
from core import cuda, nn


def make_moons(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, as scikit-learn's ``make_moons``.

    Returns ``x`` of shape (n, 2), float32, and integer labels ``y`` (0 or 1).
    The same seed gives the same points.

    >>> x, y = make_moons(10, seed=1)
    >>> x.shape, x.dtype.name, sorted(set(y.tolist()))
    ((10, 2), 'float32', [0, 1])
    """
    rng = np.random.default_rng(seed)
    n_outer = n // 2
    n_inner = n - n_outer
    t_outer = np.linspace(0.0, np.pi, n_outer)
    t_inner = np.linspace(0.0, np.pi, n_inner)
    outer = np.stack([np.cos(t_outer), np.sin(t_outer)], axis=1)
    inner = np.stack([1.0 - np.cos(t_inner), 0.5 - np.sin(t_inner)], axis=1)
    x = np.concatenate([outer, inner]) + rng.normal(0.0, noise, size=(n, 2))
    y = np.concatenate([np.zeros(n_outer, np.int64), np.ones(n_inner, np.int64)])
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order]


def next_line() -> int:
    """The caller's next line number: put it just above the line it names."""
    return sys._getframe(1).f_lineno + 1


def needs_gpu(test):
    """Mark ``test`` as a GPU test, skipped with the reason when CUDA is unusable."""
    reason = f"needs a CUDA device: {cuda.unavailable_reason()}"
    test = pytest.mark.skipif(not cuda.is_available(), reason=reason)(test)
    return pytest.mark.gpu(test)


class MLP(nn.Module):
    """fc1 (2 -> 8), tanh, fc2 (8 -> 1): the small model event tests step through."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 8)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def np_stats(array: np.ndarray) -> dict:
    """What ``core.observe.events.Stats`` should hold, computed plainly in float64."""
    a = np.asarray(array, dtype=np.float64)
    finite = a[np.isfinite(a)]
    return {
        "min": finite.min(),
        "max": finite.max(),
        "mean": finite.mean(),
        "std": finite.std(),
        "norm": np.linalg.norm(finite),
        "nan": int(np.isnan(a).sum()),
        "inf": int(np.isinf(a).sum()),
        "size": a.size,
        "zeros": int((a == 0).sum()),
    }


def assert_stats(stats: Any, array: np.ndarray, what: str) -> None:
    """``stats`` (a ``Stats``) agrees with ``np_stats(array)``."""
    assert stats is not None, f"{what}: no stats"
    expected = np_stats(array)
    got = {key: getattr(stats, key) for key in expected}
    for key in ("nan", "inf", "size", "zeros"):
        assert got[key] == expected[key], f"{what}: {key} {got[key]} != {expected[key]}"
    # The contract: min, max and the counts exact; mean, std and norm within 1e-5
    # relative, or within a small fraction of the largest magnitude: 1e-6 for
    # float32 arrays (summed in float32 lanes over short blocks; large values
    # that cancel leave an error there, and the data's own precision is 6e-8
    # of it), 1e-9 otherwise (a constant array's reference std is ~1e-16 of it).
    for key in ("min", "max"):
        assert got[key] == expected[key], f"{what}: {key} {got[key]} != {expected[key]}"
    scale = max(1.0, abs(expected["min"]), abs(expected["max"]))
    near = 1e-6 if np.asarray(array).dtype == np.float32 else 1e-9
    for key in ("mean", "std", "norm"):
        assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=near * scale), (
            f"{what}: {key} {got[key]} != {expected[key]}"
        )


def mse_step(model: nn.Module, opt: Any, x: Any, y: Any) -> Any:
    """A training step as a program writes it (zero_grad, MSE loss, backward,
    step), returning the loss: what the compile tests run eagerly and compiled."""

    def step():
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step
