"""Modes the engine reads while it runs: gradient recording, module scope, phase.

Each is a context variable behind a context manager, so runs in worker threads
(the debugger's Session) keep their own.

>>> import core
>>> w = core.tensor(1.0, requires_grad=True)
>>> with no_grad():
...     (w * 2).requires_grad
False
>>> with phase("update"):
...     current_phase()
'update'
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from core.observe.bus import BUS
from core.observe.events import ModuleEnter, ModuleExit

grad_enabled: ContextVar[bool] = ContextVar("gradstep_grad_enabled", default=True)
scope_path: ContextVar[str] = ContextVar("gradstep_scope", default="")
phase_name: ContextVar[str] = ContextVar("gradstep_phase", default="forward")
# the forward node whose gradient rule is running (events of the backward's own
# ops name it); set only while a subscriber asks for those events
rule_node: ContextVar[int | None] = ContextVar("gradstep_rule_node", default=None)


class Mode:
    """A context manager that sets one context variable and restores it."""

    __slots__ = ("_var", "_value", "_token")

    def __init__(self, var: ContextVar, value: Any) -> None:
        self._var = var
        self._value = value

    def __enter__(self) -> None:
        self._token = self._var.set(self._value)

    def __exit__(self, *exc: object) -> None:
        self._var.reset(self._token)

    def __call__(self, fn: Any) -> Any:
        """As a decorator (``@core.no_grad()``): ``fn`` runs inside the mode."""
        var, value = self._var, self._value

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with Mode(var, value):
                return fn(*args, **kwargs)

        return run


def no_grad() -> Mode:
    """Ops inside record no graph (as ``torch.no_grad``)."""
    return Mode(grad_enabled, False)


def inference_mode(mode: bool = True) -> Mode:
    """``no_grad`` under PyTorch's other name (``inference_mode(False)`` records)."""
    return Mode(grad_enabled, not mode)


def enable_grad() -> Mode:
    """Record the graph again inside a ``no_grad`` block."""
    return Mode(grad_enabled, True)


def is_grad_enabled() -> bool:
    return grad_enabled.get()


def phase(name: str) -> Mode:
    """Mark ops inside as belonging to ``name`` ("forward", "backward", "update")."""
    return Mode(phase_name, name)


def current_phase() -> str:
    return phase_name.get()


def scope(path: str) -> Mode:
    """Ops inside are attributed to module path ``path`` ("model.fc1")."""
    return Mode(scope_path, path)


def current_scope() -> str:
    return scope_path.get()


@contextmanager
def call_scope(name: str, kind: str = "function") -> Iterator[None]:
    """Ops inside run in a scope of their own below the current one, announced
    like a module's call (``kind`` says what it is): a function such as
    ``clip_grad_norm_``, or one time step of a recurrent layer."""
    outer = scope_path.get()
    path = f"{outer}.{name}" if outer else name
    token = scope_path.set(path)
    announced = BUS.active
    if announced:
        BUS.emit(ModuleEnter(path=path, kind=kind))
    try:
        yield
    finally:
        if announced and BUS.active:
            BUS.emit(ModuleExit(path=path, kind=kind))
        scope_path.reset(token)
