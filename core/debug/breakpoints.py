"""Breakpoints: where a run pauses (the Session checks them on every event, the
app's replay on recorded ones).

Two are conditions on the training rather than places in the graph: "loss"
pauses where a step's loss exceeds a value (or is NaN), "param_grad" where one
parameter's gradient norm exceeds a threshold, written ``name > threshold``.

>>> bp = Breakpoint("param_grad", "fc1.weight > 10")
>>> bp.value, param_grad_parts(bp.value), bp.describe()
('fc1.weight > 10', ('fc1.weight', 10.0), 'gradient of fc1.weight > 10')
>>> from core.observe.events import StepEnded
>>> loss_over(Breakpoint("loss", 2), StepEnded(step=4, loss=3.5))
'loss 3.5 > 2 at step 4'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from core.observe.events import GradAccumulated, StepEnded

BREAKPOINT_KINDS = ("op", "node", "module", "nan", "grad_norm", "step", "loss", "param_grad")
_PARAM_GRAD = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*>\s*(\S+)\s*$")


@dataclass
class Breakpoint:
    """Where a run should pause. ``kind`` is one of ``BREAKPOINT_KINDS``:

    - "op": an op ran whose label is ``value`` ("matmul");
    - "node": node ``value`` ran forward or backward: its stable name
      (``fc1.linear``, see ``core.debug.naming``; every step) or an engine id (int);
    - "module": module ``value`` is entered (a full path or its last part);
    - "nan": the first NaN/Inf a forward op, gradient or update produces;
    - "grad_norm": a gradient's L2 norm exceeds ``value``;
    - "step": training step ``value`` (0-based) begins;
    - "loss": a step ends with a loss above ``value`` (or NaN);
    - "param_grad": ``"name > threshold"``: the gradient of parameter ``name``
      has an L2 norm above ``threshold``.
    """

    kind: str
    value: Any = None
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.kind not in BREAKPOINT_KINDS:
            raise ValueError(f"unknown breakpoint kind {self.kind!r}; one of {BREAKPOINT_KINDS}")
        if self.kind in ("grad_norm", "loss"):
            self.value = float(self.value)
        elif self.kind == "step" or (self.kind == "node" and str(self.value).isdigit()):
            self.value = int(self.value)
        elif self.kind == "param_grad":
            name, threshold = param_grad_parts(str(self.value))
            self.value = f"{name} > {threshold:g}"

    def describe(self) -> str:
        if self.kind in ("grad_norm", "loss"):
            what = "gradient norm" if self.kind == "grad_norm" else "loss"
            return f"{what} > {self.value:g}"
        if self.kind == "param_grad":
            name, threshold = param_grad_parts(self.value)
            return f"gradient of {name} > {threshold:g}"
        return {
            "op": f"op {self.value}",
            "node": f"node {self.value}",
            "module": f"module {self.value}",
            "nan": "first NaN/Inf",
            "step": f"step {self.value}",
        }[self.kind]


def param_grad_parts(value: str) -> tuple[str, float]:
    """``"fc1.weight > 10"`` as ``("fc1.weight", 10.0)``; ValueError says what is wrong."""
    match = _PARAM_GRAD.match(value)
    if match is None:
        raise ValueError(
            f"{value!r}: write a parameter's name, '>' and a threshold, e.g. fc1.weight > 10"
        )
    try:
        threshold = float(match.group(2))
    except ValueError:
        raise ValueError(f"{match.group(2)!r} is not a number (e.g. 10 or 1e3)") from None
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError("the threshold must be a finite number, 0 or more")
    return match.group(1), threshold


def loss_over(bp: Breakpoint, event: Any) -> str | None:
    """Why ``event`` hits a "loss" breakpoint, or None."""
    if type(event) is not StepEnded or event.loss is None:
        return None
    if not event.loss > bp.value and not math.isnan(event.loss):
        return None
    return f"loss {event.loss:.4g} > {bp.value:g} at step {event.step}"


def param_grad_over(bp: Breakpoint, event: Any) -> str | None:
    """Why ``event`` hits a "param_grad" breakpoint, or None."""
    if type(event) is not GradAccumulated or event.stats is None:
        return None
    name, threshold = param_grad_parts(bp.value)
    norm = event.stats.norm
    if event.name != name or not (norm > threshold or math.isnan(norm)):
        return None
    return f"gradient of {name} has norm {norm:.4g} > {threshold:g}"
