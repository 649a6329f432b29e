"""Stepping through a recording without running anything (Qt-free).

The same keys as a live run, on recorded events: ``next_stop(events, position,
mode)`` is where F11 ("into"), F10 ("over"), Shift+F11 ("out") or F5 ("run",
to the next breakpoint) land from ``position``, by the Session's rules
(``core.debug.session``): an op event or a module entry for "into", the next op
at this module depth or above for "over", the module's return or the end of
the phase for "out". Without a stop, the last event.

>>> from core.observe.events import ModuleEnter, ModuleExit, OpForward, StepStarted
>>> def op(i, scope):
...     return OpForward(i, "tanh", (), i, (), (), "f", "cpu", 0, scope, "forward", True)
>>> events = [StepStarted(0), ModuleEnter("model", "M"), op(1, "model"), op(2, "model"),
...           ModuleExit("model", "M"), op(3, "")]
>>> next_stop(events, 0, "into"), next_stop(events, 0, "over"), next_stop(events, 2, "out")
(1, 5, 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.debug.breakpoints import loss_over, param_grad_over
from core.debug.naming import Namer
from core.debug.recording import DROPPED
from core.debug.session import Breakpoint, is_stop
from core.observe.events import (
    BackwardEnded,
    BackwardStarted,
    GradAccumulated,
    KernelRun,
    ModuleEnter,
    ModuleExit,
    OpBackward,
    OpForward,
    ParameterUpdated,
    StepEnded,
    StepStarted,
    TensorCreated,
)

_PHASE = {
    OpBackward: "backward",
    GradAccumulated: "backward",
    BackwardStarted: "backward",
    BackwardEnded: "backward",
    ParameterUpdated: "update",
    StepEnded: "update",
    ModuleEnter: "forward",
    ModuleExit: "forward",
    StepStarted: "forward",
}
PHASE_LOOKBACK = 5000  # events scanned back for the phase at the cursor


def _depth(scope: str) -> int:
    return scope.count(".") + 1 if scope else 0


def depth_of(event: Any, default: int = 0) -> int:
    """The module depth the Session gives ``event`` (as its step-over rule uses)."""
    kind = type(event)
    if kind is OpForward or kind is KernelRun:
        return _depth(event.scope)
    if kind is ModuleEnter:
        return _depth(event.path) - 1
    if kind is OpBackward or kind is ParameterUpdated:
        return 0
    return default


def phase_at(events: Sequence[Any], index: int) -> str:
    """The phase (forward, backward, update) the run was in at event ``index``."""
    for i in range(index, max(-1, index - PHASE_LOOKBACK), -1):
        event = events[i]
        kind = type(event)
        if kind is OpForward or kind is KernelRun:
            return event.phase
        phase = _PHASE.get(kind)
        if phase is not None:
            return phase
    return ""


def next_stop(
    events: Sequence[Any],
    position: int,
    mode: str,
    breakpoints: Sequence[Breakpoint] = (),
    namer: Namer | None = None,
) -> int:
    """Where ``mode`` ("into", "over", "out", "run") lands after ``position``.

    ``namer`` (fed up to ``position``) names nodes for node breakpoints.
    """
    last = len(events) - 1
    depth = 0
    for i in range(position, -1, -1):  # the depth of the cursor's last op or entry
        kind = type(events[i])
        if is_stop(events[i]) or kind is ModuleEnter:
            depth = depth_of(events[i])
            break
        if kind is StepStarted:
            break
    phase = phase_at(events, position)
    for i in range(position + 1, last + 1):
        event = events[i]
        name = namer.feed(event) if namer is not None else None
        if _stops(event, mode, depth, phase):
            return i
        if mode == "run" and any(_hit(bp, event, name) for bp in breakpoints if bp.enabled):
            return i
    return last


def _stops(event: Any, mode: str, depth: int, phase: str) -> bool:
    kind = type(event)
    is_op = is_stop(event)
    if mode == "into":
        return is_op or kind is ModuleEnter
    if mode == "over":
        return is_op and depth_of(event) <= depth
    if mode == "out":
        if kind is ModuleExit and _depth(event.path) == depth > 0:
            return True
        return depth == 0 and is_op and phase_at([event], 0) != phase
    return False


def _hit(bp: Breakpoint, event: Any, name: str | None) -> bool:
    """Whether ``bp`` stops at ``event`` (the Session's rules, on recorded events)."""
    kind = type(event)
    if bp.kind == "op":
        return kind is OpForward and event.op == bp.value
    if bp.kind == "node":
        return kind in (OpForward, OpBackward) and bp.value in (name, event.node_id)
    if bp.kind == "module":
        path = event.path if kind is ModuleEnter else None
        return path is not None and (path == bp.value or path.endswith("." + str(bp.value)))
    if bp.kind == "step":
        return kind is StepStarted and event.step == bp.value
    if bp.kind == "loss":
        return loss_over(bp, event) is not None
    if bp.kind == "param_grad":
        return param_grad_over(bp, event) is not None
    if kind not in (OpForward, OpBackward, GradAccumulated, ParameterUpdated, TensorCreated):
        return False
    if kind is OpBackward:
        stats = [s for s in event.stats or () if s is not None]
    else:
        stats = [event.stats] if event.stats is not None else []
    if bp.kind == "nan":
        return any(not s.finite for s in stats)
    if bp.kind == "grad_norm":
        return kind in (OpBackward, GradAccumulated) and any(s.norm > bp.value for s in stats)
    return False
    if bp.kind == "nan":
        return not stats.finite
    if bp.kind == "grad_norm":
        return kind in (OpBackward, GradAccumulated) and stats.norm > bp.value
    return False


def describe(event: Any, name: str | None = None) -> str:
    """What happened at ``event``, in a few words; ``name`` is its node's name."""
    kind = type(event)
    if kind is OpForward:
        return f"{name or event.op} ran" + (" (update)" if event.phase == "update" else "")
    if kind is KernelRun:
        covers = "1 op" if len(event.nodes) == 1 else f"{len(event.nodes)} ops"
        return f"kernel {event.kernel} {event.name} ran ({covers}, {event.phase})"
    if kind is OpBackward:
        return f"gradient rule of {name or event.op}"
    if kind is GradAccumulated:
        return f"gradient added into {event.name}"
    if kind is ParameterUpdated:
        return f"{event.name} updated ({event.optimizer})"
    if kind is StepStarted:
        return f"step {event.step} begins"
    if kind is StepEnded:
        loss = "" if event.loss is None else f", loss {event.loss:.6g}"
        return f"step {event.step} ended{loss}"
    if kind is ModuleEnter:
        return f"entering {event.path} ({event.kind})"
    if kind is ModuleExit:
        return f"returned from {event.path}"
    if kind is BackwardStarted:
        return "backward begins"
    if kind is BackwardEnded:
        return "backward ended"
    if kind is TensorCreated:
        return f"{event.kind} {name or event.name} made"
    if event is DROPPED:
        return "an event the recording's memory cap dropped (its step's loss stays)"
    return type(event).__name__
