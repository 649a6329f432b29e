"""NumPy/CuPy switching, in one place.

Everything else asks this module for the array module of a device or an array
and for host copies; nothing outside it imports cupy.

>>> from core.device import unavailable_reason, xp_for
>>> xp_for("cpu").__name__
'numpy'
>>> isinstance(unavailable_reason(), (str, type(None)))
True
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

DEVICES = ("cpu", "cuda")


@functools.cache
def _probe() -> tuple[Any, str | None]:
    """Import CuPy and touch a device once; returns (cupy or None, reason)."""
    try:
        import cupy
    except ImportError as exc:
        return None, f"CuPy is not installed ({exc}); install the 'gpu' extra"
    except Exception as exc:  # a broken CUDA install fails at import
        return None, f"CuPy failed to import: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CUDA driver error: {exc}"
    if count == 0:
        return None, "CuPy is installed but no CUDA device was found"
    try:
        cupy.zeros(1).sum().item()
    except Exception as exc:
        return None, f"the CUDA device does not work: {exc}"
    return cupy, None


def is_available() -> bool:
    """True when CuPy imports and a CUDA device runs a kernel."""
    return _probe()[0] is not None


def unavailable_reason() -> str | None:
    """Why ``"cuda"`` cannot be used, in words; None when it can."""
    return _probe()[1]


def xp_for(device: str) -> Any:
    """The array module of ``device`` (numpy for "cpu", cupy for "cuda")."""
    if device == "cpu":
        return np
    if device == "cuda":
        cupy, reason = _probe()
        if cupy is None:
            from core.errors import DeviceError

            raise DeviceError(f"device 'cuda' is not available: {reason}")
        return cupy
    raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")


def device_of(array: Any) -> str:
    """ "cpu" for a NumPy array, "cuda" for a CuPy array."""
    return "cpu" if isinstance(array, np.ndarray | np.generic) else "cuda"


def array_module(array: Any) -> Any:
    """numpy or cupy, whichever ``array`` belongs to."""
    return np if isinstance(array, np.ndarray | np.generic) else _probe()[0]


def to_host(array: Any) -> np.ndarray:
    """A host NumPy array (a copy only when the data is on the GPU)."""
    if isinstance(array, np.ndarray):
        return array
    if isinstance(array, np.generic):
        return np.asarray(array)
    return array.get()


def to_device(array: Any, device: str) -> Any:
    """Move ``array`` to ``device`` (no copy when it is already there)."""
    xp = xp_for(device)
    if xp is np:
        return to_host(array)
    return xp.asarray(array)


def scatter_add(xp: Any, target: Any, index: Any, values: Any) -> None:
    """``target[index] += values`` with repeated indices summed, in place."""
    if xp is np:
        np.add.at(target, index, values)
    else:
        xp.add.at(target, index, values)


def synchronize(device: str) -> None:
    """Wait for queued GPU work (timing needs it); a no-op on the CPU."""
    if device == "cuda":
        _probe()[0].cuda.Device().synchronize()
