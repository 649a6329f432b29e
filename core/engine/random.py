"""Random state: the host generator behind ``randn``/``rand``/``randint`` and
module initialisation, and dropout's seed, a tensor on each device.

Dropout draws no host seed of its own: each call advances the device's seed
tensor with an in-place op and makes its mask from that value, so a training
step runs the same ops at step 1 and step 100 and a tracer sees the seed as
state. ``manual_seed`` resets both.

>>> import core
>>> core.manual_seed(3)
>>> a = core.randn(2)
>>> core.manual_seed(3)
>>> bool((core.randn(2).numpy() == a.numpy()).all())
True
"""

from __future__ import annotations

import numpy as np

from core.device import xp_for

_state = {"rng": np.random.default_rng(0), "seed": 0}
_dropout_seeds: dict[str, object] = {}  # device -> its seed tensor (int64, 0-d)


def manual_seed(seed: int) -> None:
    """Reseed the host generator and every device's dropout seed."""
    seed = int(seed)
    _state["rng"] = np.random.default_rng(seed)
    _state["seed"] = seed
    for device, t in _dropout_seeds.items():
        t.data = xp_for(device).asarray(np.int64(seed))


def generator() -> np.random.Generator:
    """The current host generator (creation functions and module init draw from it)."""
    return _state["rng"]


def dropout_seed(device: str):
    """Dropout's seed tensor on ``device``, made once (state, outside any graph)."""
    t = _dropout_seeds.get(device)
    if t is None:
        from core.engine.dispatch import leaf

        data = xp_for(device).asarray(np.int64(_state["seed"]))
        t = _dropout_seeds[device] = leaf(data, device, False, "state", "dropout.seed")
    return t


def dropout_mask(shape, p: float, seed: int, dtype) -> np.ndarray:
    """The scaled keep-mask of dropout: the same on every device for a seed."""
    keep = np.random.default_rng([int(seed), 0xD409]).random(shape) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))
