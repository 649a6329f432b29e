"""Stable, readable node names, derived from the events of a run (Qt-free).

Engine ids (``linear_5133``) change every step. A ``Namer`` fed a run's events
names each node from what a reader sees instead, in the spirit of torch.fx:

- an op: the path of the module call it ran in, without the root module, then
  the op, then an ordinal when that name already occurred in this step:
  ``fc1.linear``, ``act.tanh``, ``cross_entropy``, ``attn.matmul_1``;
- a module called again in the same step is a call of its own, named like a
  repeated op: the second call of ``model.relu`` is the scope ``model.relu_1``
  and its op ``relu_1.relu``;
- an update op (the optimizer's arithmetic): ``update.fc1.weight.mul_2``, under
  the parameter it updates, in the scope ``update.fc1/weight``; an update-phase
  op in a function's scope (``clip_grad_norm_``) is named after that scope;
- an op of a fused kernel of a compiled step (``core.deferred.narrate``): the
  kernel and the op, ``k3.tanh``, in the kernel's box ``kernel 3: fused_tanh``
  (an update op keeps its update name);
- a leaf: a parameter keeps its name (``fc1.weight``); an input or constant with
  a generated name gets its kind and an ordinal (``input``, ``constant_3``).

The same program gives the same names in every step, so a node breakpoint set by
name fires at that node in every step. The counters restart at each
``StepStarted``; names given before the first step (inputs made by ``build``)
stay taken.

>>> from core.observe.events import ModuleEnter, ModuleExit, OpForward, StepStarted
>>> def op(i, name, scope):
...     return OpForward(i, name, (), i, (), (), "float32", "cpu", 0, scope, "forward", True)
>>> def step(namer, first):
...     names = []
...     for e in [StepStarted(0), ModuleEnter("model", "MLP"),
...               ModuleEnter("model.fc1", "Linear"), op(first, "linear", "model.fc1"),
...               ModuleExit("model.fc1", "Linear"), op(first + 1, "tanh", "model"),
...               op(first + 2, "tanh", "model"), ModuleExit("model", "MLP"),
...               op(first + 3, "mean", "")]:
...         names.append(namer.feed(e))
...     return [n for n in names if n]
>>> namer = Namer()
>>> step(namer, 1), step(namer, 5)
(['fc1.linear', 'tanh', 'tanh_1', 'mean'], ['fc1.linear', 'tanh', 'tanh_1', 'mean'])
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from core.deferred.narrate import KERNEL_SCOPE
from core.observe.events import (
    BackwardEnded,
    GradAccumulated,
    ModuleEnter,
    ModuleExit,
    OpBackward,
    OpForward,
    ParameterUpdated,
    StepStarted,
    TensorCreated,
)

UPDATE_SCOPE = "update"  # the scope above every parameter's update box
_LEAF_KINDS = ("input", "constant", "parameter")
_GENERATED = re.compile(r"^(input|constant|parameter)_\d+$")


@functools.lru_cache(maxsize=4096)
def display_scope(scope: str) -> str:
    """A scope as names show it: without the root module (``model.fc1`` -> ``fc1``)."""
    if scope.startswith(UPDATE_SCOPE + "."):
        return scope
    _, _, rest = scope.partition(".")
    return rest


def update_scope(parameter: str) -> str:
    """The scope of a parameter's update ops: ``update.fc1/weight`` (one box each)."""
    return f"{UPDATE_SCOPE}.{parameter.replace('.', '/')}"


def scope_title(scope: str) -> str:
    """The title of a scope's box: its last part (a parameter's name for an update box)."""
    return scope.rsplit(".", 1)[-1].replace("/", ".")


class Namer:
    """Names nodes as events arrive; see the module docstring.

    ``feed(event)`` returns the name of the node an ``OpForward`` or
    ``OpBackward`` is about (None for other events); ``scope_of(path)`` gives
    the call's own scope for a module path (``model.relu_1`` for its second
    call); ``leaf_name(tensor_id)`` the name of a leaf announced so far.
    """

    def __init__(self) -> None:
        self._kept: dict[str, int] = {}  # names taken before the first step
        self._first_step = False
        self._order: list[str] = []  # parameters in the optimizer's order, as seen so far
        self._kept_leaves: dict[int, str] = {}  # leaves that outlive a step
        self._parameters: set[str] = set()
        self.reset()

    def reset(self) -> None:
        """Forget the step (``StepStarted`` calls this)."""
        self._counts: dict[str, int] = dict(self._kept)
        self._calls: dict[str, int] = {}  # module path -> calls this step
        self._stack: list[tuple[str, str]] = []  # (path, call scope) of the open calls
        self._call_scope: dict[str, str] = {}  # open module path -> call scope
        self._paths: dict[str, str] = {}  # call scope -> module path, this step
        self.names: dict[int, str] = {}  # node id -> name, this step
        self.scopes: dict[int, str] = {}  # node id -> call scope, this step
        self.leaves: dict[int, str] = {}  # tensor id -> leaf name
        self._owner: dict[int, str] = {}  # tensor id -> the parameter it belongs to
        self._updates: list[str] = []  # parameters updated so far this step
        self._group_owner = ""  # parameter of the update group under way
        self._groups_done = 0  # update groups ended by their parameter's write
        self._graded: set[str] = set()  # parameters that got a gradient this step
        self._state: dict[int, str] = {}  # update op output -> its parameter, this step
        self._state_ops: list[OpForward] = []  # this step's update ops

    # -- feeding --------------------------------------------------------------------

    def feed(self, event: Any) -> str | None:
        kind = type(event)
        if kind is OpForward:
            return self._on_op(event)
        if kind is OpBackward:
            return self.names.get(event.node_id)
        if kind is ModuleEnter:
            self._on_enter(event.path)
        elif kind is ModuleExit:
            self._on_exit(event.path)
        elif kind is TensorCreated:
            self._on_leaf(event)
        elif kind is GradAccumulated:
            name = self.leaves.get(event.tensor_id, event.name)
            self._owner[event.grad_id] = name
            self._graded.add(name)
        elif kind is ParameterUpdated:
            self._on_update(event)
        elif kind is BackwardEnded:
            self._group_owner = ""
        elif kind is StepStarted:
            self._on_step()
        return None

    def feed_all(self, events: Iterable[Any]) -> None:
        for event in events:
            self.feed(event)

    def _on_step(self) -> None:
        if not self._first_step:
            self._first_step = True
            self._kept = {b: n for b, n in self._counts.items() if b in _LEAF_KINDS}
        kept, state = self._kept_leaves, self._state
        made = {e.output: self.names[e.node_id] for e in self._state_ops}
        self.reset()
        self.leaves = dict(kept)  # build's tensors and the parameters outlive a step
        # the optimizer's state the last step left, read by this step's update
        self.leaves.update({t: f"{n} (step before)" for t, n in made.items()})
        # parameters, and the optimizer's state the last step's update made
        self._owner = {t: n for t, n in kept.items() if n in self._parameters}
        self._owner.update(state)

    def _unique(self, base: str) -> str:
        n = self._counts.get(base, 0)
        self._counts[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def _on_enter(self, path: str) -> None:
        parent_path, _, own = path.rpartition(".")
        parent = self._call_scope.get(parent_path, parent_path)
        base = f"{parent}.{own}" if parent else own
        n = self._calls.get(base, 0)
        self._calls[base] = n + 1
        scope = base if n == 0 else f"{base}_{n}"
        self._stack.append((path, scope))
        self._call_scope[path] = scope
        self._paths[scope] = path

    def _on_exit(self, path: str) -> None:
        while self._stack:
            top, _ = self._stack.pop()
            self._call_scope.pop(top, None)
            if top == path:
                break
        for open_path, scope in self._stack:  # a recursive call reopened an outer path
            self._call_scope[open_path] = scope

    def _on_leaf(self, event: TensorCreated) -> None:
        name = event.name
        if _GENERATED.match(name):
            name = self._unique(event.kind)
        self.leaves[event.tensor_id] = name
        if event.kind == "parameter" or not self._first_step:
            self._kept_leaves[event.tensor_id] = name
        if event.kind == "parameter":
            self._owner[event.tensor_id] = name
            self._parameters.add(name)
            if name not in self._order:  # announced in the order an optimizer takes them
                self._order.append(name)

    def _on_op(self, event: OpForward) -> str:
        # the optimizer's update ops (not clipping's, which has a scope of its own),
        # in a box per parameter; those of a compiled step's fused kernels too, which
        # are drawn in their kernel's box
        fused = event.kernel is not None and event.scope.startswith(KERNEL_SCOPE)
        if event.phase == "update" and (not event.scope or fused):
            owner = self._update_owner(event)
            scope = update_scope(owner) if owner else UPDATE_SCOPE
            base = f"{UPDATE_SCOPE}.{owner}.{event.op}" if owner else f"{UPDATE_SCOPE}.{event.op}"
            if owner:
                self._owner[event.output] = self._state[event.output] = owner
            if not self._graded and self.leaves.get(event.writes) in self._parameters:
                # a compiled step tells its gradients and updates after all its
                # update ops: a group ends where its parameter is written
                self._groups_done += 1
                self._group_owner = ""
            self._state_ops.append(event)
        else:
            scope = self._call_scope.get(event.scope, event.scope)
            prefix = display_scope(scope)
            base = f"{prefix}.{event.op}" if prefix else event.op
        if fused:  # an op of a fused compiled kernel: drawn in the kernel's box
            scope = event.scope
            if event.phase != "update":
                base = f"k{event.kernel}.{event.op}"
        name = self._unique(base)
        self.names[event.node_id] = name
        self.scopes[event.node_id] = scope
        if not self._first_step:  # data made by build: a leaf of every step
            self._kept_leaves[event.output] = name
        return name

    def _update_owner(self, event: OpForward) -> str:
        """The parameter an update op works for: the one its inputs belong to (its
        gradient, itself, optimizer state), else that of its group so far, else the
        one the optimizer's order puts here among the parameters with a gradient (an
        optimizer skips those without one, and which those are can change by step)."""
        for tid in event.inputs:
            owner = self._owner.get(tid)
            if owner:
                self._group_owner = owner
                return owner
        if not self._group_owner:
            if self._graded:
                k, expected = len(self._updates), [p for p in self._order if p in self._graded]
            else:  # a compiled step: gradients and updates are told after the update ops
                k, expected = self._groups_done, self._order
            if k < len(expected):
                self._group_owner = expected[k]
        return self._group_owner

    def _on_update(self, event: ParameterUpdated) -> None:
        name = event.name
        # the optimizer's own order: this one comes right after the one updated before it
        at = self._order.index(self._updates[-1]) + 1 if self._updates else 0
        if name not in self._order[at:]:
            if name in self._order:
                self._order.remove(name)
                at = self._order.index(self._updates[-1]) + 1 if self._updates else 0
            self._order.insert(at, name)
        self._updates.append(name)
        self._group_owner = ""

    # -- queries --------------------------------------------------------------------

    def scope_of(self, path: str) -> str:
        """The scope of the open call of module ``path`` (``path`` when none is open)."""
        return self._call_scope.get(path, path)

    def path_of(self, scope: str) -> str:
        """The module path of a call scope (``model.relu`` for ``model.relu_1``)."""
        return self._paths.get(scope, scope)

    @property
    def parameters(self) -> frozenset[str]:
        """The names of the parameters announced so far."""
        return frozenset(self._parameters)

    def name_of(self, node_id: int) -> str | None:
        return self.names.get(node_id)

    def leaf_name(self, tensor_id: int) -> str | None:
        return self.leaves.get(tensor_id)


def names_of_step(events: Iterable[Any], before: Iterable[Any] = ()) -> Namer:
    """A Namer fed ``before`` (the events of earlier steps it needs: the previous
    step's updates, ``build``'s leaves) and then ``events``."""
    namer = Namer()
    namer.feed_all(before)
    namer.feed_all(events)
    return namer
