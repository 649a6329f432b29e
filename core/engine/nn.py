"""Modules with PyTorch's names: ``Module``, ``Parameter``, ``Linear``, ``Conv2d``...

Calling a module makes its path (``model.fc1``) the scope of the ops inside,
whether or not anyone listens, and emits ``ModuleEnter``/``ModuleExit`` when
someone does.

>>> import core
>>> from core import nn
>>> core.manual_seed(0)
>>> model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
>>> [name for name, _ in model.named_parameters()]
['0.weight', '0.bias', '2.weight', '2.bias']
>>> model(core.randn(3, 2)).shape
(3, 1)
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from core.device import to_device, xp_for
from core.engine import functional as F
from core.engine.dispatch import announce, leaf
from core.engine.modes import scope_path
from core.engine.random import generator
from core.engine.tensor import Tensor
from core.errors import GradstepError
from core.observe.bus import BUS
from core.observe.events import ModuleEnter, ModuleExit

# What NumPy raises on a missing, truncated or corrupt .npz file.
_BAD_FILE = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
)


class Parameter(Tensor):
    """A tensor a Module owns and an optimizer updates; requires grad."""

    __slots__ = ()

    def __init__(self, data: Any, *, device: str = "cpu") -> None:
        if isinstance(data, Tensor):
            device = data.device
            data = data.data
        super().__init__(data, requires_grad=True, device=device)
        if self.dtype.kind != "f":
            self.data = self.data.astype(np.float32)


class Module:
    """Base class of layers and models.

    Subclasses set Parameters and Modules as attributes in ``__init__`` and
    define ``forward``; call the module, not ``forward``.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_name", "")
        object.__setattr__(self, "_paths", {})  # scope of the caller -> this call's path
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise GradstepError(
                f"{type(self).__name__}.__init__ must call super().__init__() before "
                "setting attributes"
            )
        params, modules = self.__dict__["_parameters"], self.__dict__["_modules"]
        buffers = self.__dict__["_buffers"]
        if name in buffers and (value is None or isinstance(value, Tensor)):
            buffers[name] = value  # a buffer stays a buffer
            object.__setattr__(self, name, value)
            return
        params.pop(name, None)
        modules.pop(name, None)
        buffers.pop(name, None)
        if isinstance(value, Parameter):
            params[name] = value
            if value.name is None:
                value.name = name
        elif isinstance(value, Module):
            modules[name] = value
            object.__setattr__(value, "_name", name)
            value._paths.clear()
        object.__setattr__(self, name, value)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        outer = scope_path.get()
        path = self._paths.get(outer)
        if path is None:  # the same call site gives the same path: made once
            own = self._name or "model"
            path = self._paths[outer] = f"{outer}.{own}" if outer else own
        token = scope_path.set(path)
        try:
            if not BUS.active:
                return self.forward(*args, **kwargs)
            kind = type(self).__name__
            BUS.emit(ModuleEnter(path=path, kind=kind))
            try:
                return self.forward(*args, **kwargs)
            finally:
                if BUS.active:
                    BUS.emit(ModuleExit(path=path, kind=kind))
        finally:
            scope_path.reset(token)

    # -- structure ----------------------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _name, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs; also names each parameter so."""
        for name, p in self._parameters.items():
            full = f"{prefix}.{name}" if prefix else name
            p.name = full
            yield full, p
        for name, child in self._modules.items():
            yield from child.named_parameters(f"{prefix}.{name}" if prefix else name)

    def parameters(self, recurse: bool = True) -> list[Parameter]:
        if not recurse:
            return list(self._parameters.values())
        return [p for _name, p in self.named_parameters()]

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Keep ``tensor`` as state of the module that is not a parameter (batch
        norm's running statistics): moved by ``to``, saved by ``state_dict``,
        updated in place under ``no_grad``. A tensor the engine did not make as
        state becomes a "state" leaf here, so a tracer and a debugger see it."""
        if tensor is not None and tensor.node is None and not tensor.requires_grad:
            tensor = leaf(tensor.data, tensor.device, False, "state", tensor.name or name)
        self._buffers[name] = tensor
        object.__setattr__(self, name, tensor)

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs; also names each buffer so."""
        for name, b in self._buffers.items():
            if b is None:
                continue
            full = f"{prefix}.{name}" if prefix else name
            b.name = full
            yield full, b
        for name, child in self._modules.items():
            yield from child.named_buffers(f"{prefix}.{name}" if prefix else name)

    def buffers(self) -> list[Tensor]:
        return [b for _name, b in self.named_buffers()]

    def add_module(self, name: str, module: Module | None) -> None:
        setattr(self, name, module)

    register_module = add_module

    def apply(self, fn: Any) -> Module:
        """Call ``fn`` on every submodule, then on this module; returns self."""
        for child in self._modules.values():
            child.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, flag: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(flag)
        return self

    def announce_parameters(self) -> None:
        """Emit ``TensorCreated`` for every parameter (a Session does at run start)."""
        for name, p in self.named_parameters():
            announce(p, "parameter", name)

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, device: Any = None, dtype: Any = None) -> Module:
        """Move every parameter and buffer to ``device`` in place, or convert
        the floating ones to ``dtype`` (``model.to(core.float64)``); returns self."""
        if device is not None and not isinstance(device, str):
            device, dtype = None, device
        if dtype is not None:
            dtype = np.dtype(dtype)
            for t in self._tensors():
                if t.dtype.kind == "f":
                    t.data = t.data.astype(dtype)
                    t.grad = None
        if device is None:
            return self
        xp_for(device)
        for t in self._tensors():
            t.data = to_device(t.data, device)
            t.device = device
            t.grad = None
        return self

    def _tensors(self) -> list[Tensor]:
        return self.parameters() + self.buffers()

    def float(self) -> Module:
        """Floating parameters and buffers to float32, in place."""
        return self.to(np.float32)

    def double(self) -> Module:
        """Floating parameters and buffers to float64, in place."""
        return self.to(np.float64)

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    # -- state ----------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter and buffer name -> host NumPy copy of its value."""
        state = {name: p.numpy().copy() for name, p in self.named_parameters()}
        state.update((name, b.numpy().copy()) for name, b in self.named_buffers())
        return state

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Copy values from ``state`` into the parameters; all are checked first,
        so a bad entry leaves the model as it was."""
        params: dict[str, Tensor] = dict(self.named_parameters())
        params.update(self.named_buffers())
        if strict:
            missing = sorted(set(params) - set(state))
            unexpected = sorted(set(state) - set(params))
            if missing or unexpected:
                raise GradstepError(
                    f"load_state_dict: missing {missing or 'nothing'}, "
                    f"unexpected {unexpected or 'nothing'}"
                )
        checked = []
        for name, value in state.items():
            if name not in params:
                continue
            p = params[name]
            value = np.asarray(value)
            if value.dtype.kind not in "biuf":
                raise GradstepError(
                    f"load_state_dict: {name} has dtype {value.dtype}, not a number type"
                )
            if value.shape != p.shape:
                raise GradstepError(
                    f"load_state_dict: {name} has shape {value.shape} in the file, "
                    f"the model expects {p.shape}"
                )
            checked.append((p, value))
        for p, value in checked:
            p.data = to_device(value.astype(p.dtype), p.device)

    def save(self, path: str | os.PathLike) -> None:
        """Write the parameters to an ``.npz`` file at exactly ``path`` (no pickle)."""
        with open(path, "wb") as f:
            np.savez(f, **self.state_dict())

    def load(self, path: str | os.PathLike) -> None:
        """Read parameters written by ``save``; a bad file gives a clear error."""
        try:
            with np.load(path, allow_pickle=False) as data:
                state = {k: data[k] for k in data.files}
        except _BAD_FILE as exc:
            raise GradstepError(f"cannot load parameters from {path}: {exc}") from None
        try:
            self.load_state_dict(state)
        except GradstepError as exc:
            raise GradstepError(f"{path}: {exc}") from None

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + (")" if len(lines) == 1 else "\n)")


def _uniform(shape: tuple[int, ...], bound: float, device: str) -> Parameter:
    values = generator().uniform(-bound, bound, size=shape).astype(np.float32)
    return Parameter(to_device(values, device), device=device)


class Linear(Module):
    """``y = x @ weight.T + bias``; weight has shape (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device="cpu"):
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = _uniform((out_features, in_features), bound, device)
        self.bias = _uniform((out_features,), bound, device) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}"


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)


class ReLU(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class GELU(Module):
    """GELU, exact by default; ``approximate="tanh"`` for the tanh form."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, self.approximate)


class LayerNorm(Module):
    def __init__(
        self,
        normalized_shape: Any,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        self.normalized_shape, self.eps = shape, eps
        affine = elementwise_affine
        self.weight = Parameter(np.ones(shape, dtype=np.float32)) if affine else None
        self.bias = Parameter(np.zeros(shape, dtype=np.float32)) if affine and bias else None
        if device != "cpu":
            self.to(device)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class Embedding(Module):
    """Rows of a learned table; the ``padding_idx`` row starts at zero and
    gets no gradient, as PyTorch's."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        values = generator().standard_normal((num_embeddings, embedding_dim))
        if padding_idx is not None:
            padding_idx %= num_embeddings
            values[padding_idx] = 0.0
        self.padding_idx = padding_idx
        self.weight = Parameter(to_device(values.astype(np.float32), device), device=device)

    def forward(self, indices: Tensor) -> Tensor:
        return F.embedding(indices, self.weight, self.padding_idx)


class Dropout(Module):
    """Dropout whose masks come from the device's dropout seed (see
    ``core.engine.random``): a seeded run is repeatable."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)


class Dropout2d(Dropout):
    """Zero whole channels (``F.dropout2d``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout2d(x, self.p, self.training)


Dropout1d = Dropout2d


class Sequential(Module):
    """Modules applied in order; children are named "0", "1", ..."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x


# The rest of torch.nn, by family (each module imports Module from here).
from core.engine import nn_init as init  # noqa: E402, F401  (nn.init.xavier_uniform_)
from core.engine import nn_utils as utils  # noqa: E402, F401  (nn.utils.clip_grad_norm_)
from core.engine.nn_attention import *  # noqa: E402, F403
from core.engine.nn_conv import *  # noqa: E402, F403
from core.engine.nn_layers import *  # noqa: E402, F403
from core.engine.nn_norm import *  # noqa: E402, F403
from core.engine.rnn import *  # noqa: E402, F403
