"""More of ``torch.nn``: containers (``ModuleList``, ``ModuleDict``,
``Identity``), activation modules and loss modules. ``core.nn`` exports them.

>>> import core
>>> from core import nn
>>> core.manual_seed(0)
>>> blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
>>> len(blocks), len(list(blocks.parameters()))
(3, 6)
>>> loss = nn.CrossEntropyLoss(label_smoothing=0.1)
>>> round(loss(core.tensor([[2.0, 0.0]]), core.tensor([0])).item(), 4)
0.2269
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from core.device import to_device
from core.engine import activations as A
from core.engine import functional as F
from core.engine.nn import Module, Parameter
from core.engine.random import generator
from core.engine.tensor import Tensor

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "Bilinear",
    "CosineEmbeddingLoss",
    "CELU",
    "CosineSimilarity",
    "CrossEntropyLoss",
    "ELU",
    "GLU",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "HuberLoss",
    "Identity",
    "KLDivLoss",
    "L1Loss",
    "LogSigmoid",
    "LogSoftmax",
    "MarginRankingLoss",
    "MSELoss",
    "Mish",
    "ModuleDict",
    "ModuleList",
    "NLLLoss",
    "PReLU",
    "ParameterList",
    "ReLU6",
    "SELU",
    "SiLU",
    "SmoothL1Loss",
    "Softmax",
    "Softmin",
    "Softplus",
    "Softsign",
    "Tanhshrink",
    "TripletMarginLoss",
]

# -- containers ----------------------------------------------------------------------


class Identity(Module):
    """Returns its input (arguments to the constructor are ignored, as PyTorch's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class ModuleList(Module):
    """A list of modules whose parameters belong to the owner; children are
    named "0", "1", ..."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        for m in modules or ():
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def __getitem__(self, i: int | slice) -> Any:
        items = list(self._modules.values())
        return ModuleList(items[i]) if isinstance(i, slice) else items[i]

    def __setitem__(self, i: int, module: Module) -> None:
        setattr(self, list(self._modules)[i], module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))


class ModuleDict(Module):
    """A dict of modules whose parameters belong to the owner."""

    def __init__(self, modules: Any = None) -> None:
        super().__init__()
        for name, m in dict(modules or {}).items():
            self[name] = m

    def __getitem__(self, name: str) -> Module:
        return self._modules[name]

    def __setitem__(self, name: str, module: Module) -> None:
        setattr(self, name, module)

    def __contains__(self, name: str) -> bool:
        return name in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def keys(self) -> list[str]:
        return list(self._modules)

    def values(self) -> list[Module]:
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module]]:
        return list(self._modules.items())


# -- activations -------------------------------------------------------------------


def _activation(name: str, fn: Any, *fields: tuple[str, Any]) -> type:
    """A module calling ``fn(x, *fields)``, its fields PyTorch's constructor arguments."""
    names = [f for f, _ in fields]
    defaults = dict(fields)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Module.__init__(self)
        values = dict(defaults)
        values.update(zip(names, args))
        unknown = set(kwargs) - set(names) - {"inplace"}
        if unknown:
            raise TypeError(f"{name}() got unexpected arguments {sorted(unknown)}")
        values.update((k, v) for k, v in kwargs.items() if k in names)
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def forward(self, x: Tensor) -> Tensor:
        return fn(x, *[getattr(self, f) for f in names])

    def extra_repr(self) -> str:
        return ", ".join(f"{f}={getattr(self, f)}" for f in names)

    doc = f"``{fn.__module__.split('.')[-1]}.{fn.__name__}`` as a module."
    return type(
        name,
        (Module,),
        {"__init__": __init__, "forward": forward, "extra_repr": extra_repr, "__doc__": doc},
    )


SiLU = _activation("SiLU", A.silu)
ELU = _activation("ELU", A.elu, ("alpha", 1.0))
SELU = _activation("SELU", A.selu)
CELU = _activation("CELU", A.celu, ("alpha", 1.0))
Softplus = _activation("Softplus", A.softplus, ("beta", 1.0), ("threshold", 20.0))
Mish = _activation("Mish", A.mish)
Hardtanh = _activation("Hardtanh", A.hardtanh, ("min_val", -1.0), ("max_val", 1.0))
ReLU6 = _activation("ReLU6", A.relu6)
LogSigmoid = _activation("LogSigmoid", A.logsigmoid)
Softsign = _activation("Softsign", A.softsign)
Hardsigmoid = _activation("Hardsigmoid", A.hardsigmoid)
Hardswish = _activation("Hardswish", A.hardswish)
GLU = _activation("GLU", A.glu, ("dim", -1))
Softmax = _activation("Softmax", F.softmax, ("dim", -1))
LogSoftmax = _activation("LogSoftmax", F.log_softmax, ("dim", -1))
Softmin = _activation("Softmin", A.softmin, ("dim", -1))
Tanhshrink = _activation("Tanhshrink", A.tanhshrink)


class PReLU(Module):
    """``max(0, x) + a * min(0, x)`` with a learned ``a`` (one, or one per channel)."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: str = "cpu"):
        super().__init__()
        values = np.full(num_parameters, init, np.float32)
        self.weight = Parameter(to_device(values, device), device=device)

    def forward(self, x: Tensor) -> Tensor:
        return A.prelu(x, self.weight)


class ParameterList(Module):
    """A list of parameters owned by the module; named "0", "1", ..."""

    def __init__(self, values: Iterable[Any] | None = None) -> None:
        super().__init__()
        for v in values or ():
            self.append(v)

    def append(self, value: Any) -> ParameterList:
        p = value if isinstance(value, Parameter) else Parameter(value)
        setattr(self, str(len(self._parameters)), p)
        return self

    def __getitem__(self, i: int) -> Parameter:
        return list(self._parameters.values())[i]

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(list(self._parameters.values()))


# -- losses --------------------------------------------------------------------------


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    def __init__(self, weight: Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_WeightedLoss):
    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    def __init__(self, weight: Any = None, reduction: str = "mean", pos_weight: Any = None):
        super().__init__(weight, reduction)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.binary_cross_entropy_with_logits(
            input, target, self.weight, self.reduction, self.pos_weight
        )


class NLLLoss(_WeightedLoss):
    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class CrossEntropyLoss(_WeightedLoss):
    def __init__(
        self,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.cross_entropy(
            input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing
        )


class KLDivLoss(_Loss):
    def __init__(self, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class MarginRankingLoss(_Loss):
    def __init__(self, margin: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = margin

    def forward(self, input1: Tensor, input2: Any, target: Any) -> Tensor:
        return F.margin_ranking_loss(input1, input2, target, self.margin, self.reduction)


class CosineEmbeddingLoss(MarginRankingLoss):
    def forward(self, input1: Tensor, input2: Any, target: Any) -> Tensor:
        return F.cosine_embedding_loss(input1, input2, target, self.margin, self.reduction)


class TripletMarginLoss(_Loss):
    def __init__(self, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean") -> None:
        super().__init__(reduction)
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return F.triplet_margin_loss(
            anchor, positive, negative, self.margin, self.p, self.eps, self.swap, self.reduction
        )


class Bilinear(Module):
    """``y = x1^T A x2 + b``, weight (out, in1, in2), PyTorch's initial bounds."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, device="cpu"):
        super().__init__()
        bound = 1.0 / math.sqrt(in1_features)
        shape = (out_features, in1_features, in2_features)
        self.weight = Parameter(to_device(_draw(shape, bound), device), device=device)
        bias_values = _draw((out_features,), bound)
        self.bias = Parameter(to_device(bias_values, device), device=device) if bias else None

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.bilinear(x1, x2, self.weight, self.bias)


def _draw(shape: tuple, bound: float) -> np.ndarray:
    return generator().uniform(-bound, bound, shape).astype(np.float32)


class CosineSimilarity(Module):
    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.cosine_similarity(x1, x2, self.dim, self.eps)
