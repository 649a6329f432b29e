"""Gradstep's engine: eager autograd on NumPy (CPU) and CuPy (CUDA), with events.

>>> import core
>>> from core import nn, optim
>>> core.manual_seed(0)
>>> w = core.tensor(0.5, requires_grad=True)
>>> b = core.tensor(0.0, requires_grad=True)
>>> x = core.tensor([1.0, 2.0])
>>> loss = (((w * x + b).tanh() - 0.5) ** 2).sum()
>>> loss.backward()
>>> w.grad is not None and b.grad is not None
True
"""

import sys

from core import cuda
from core.deferred.api import compile
from core.engine import defs, functional, nn, optim  # noqa: F401  (defs registers the ops)
from core.engine.autograd import grad
from core.engine.creation import (
    arange,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    generator,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from core.engine.dispatch import reset_ids
from core.engine.gradcheck import GradcheckReport, gradcheck
from core.engine.modes import enable_grad, inference_mode, is_grad_enabled, no_grad
from core.engine.ops import Op
from core.engine.tensor import Tensor, float32, float64, int64
from core.engine.torch_api import namespace as _torch_namespace
from core.errors import DeviceError, DtypeError, GradError, GradstepError, OpError, ShapeError

globals().update(_torch_namespace())  # core.cat, core.sum, core.einsum... (PyTorch's names)

__all__ = [
    "DeviceError",
    "DtypeError",
    "GradError",
    "GradcheckReport",
    "GradstepError",
    "Op",
    "OpError",
    "ShapeError",
    "Tensor",
    "arange",
    "empty",
    "empty_like",
    "eye",
    "full_like",
    "linspace",
    "rand_like",
    "randn_like",
    "randperm",
    "compile",
    "cuda",
    "enable_grad",
    "float32",
    "float64",
    "from_numpy",
    "full",
    "functional",
    "generator",
    "grad",
    "gradcheck",
    "int64",
    "inference_mode",
    "is_grad_enabled",
    "manual_seed",
    "nn",
    "no_grad",
    "ones",
    "ones_like",
    "optim",
    "rand",
    "randint",
    "randn",
    "reset_ids",
    "tensor",
    "zeros",
    "zeros_like",
]

# The public module names a program imports (``import core.functional as F``,
# ``from core.program import Run``), kept where the modules live now.
from core.debug import program  # noqa: E402

sys.modules.update(
    {
        "core.functional": functional,
        "core.nn": nn,
        "core.optim": optim,
        "core.program": program,
    }
)
