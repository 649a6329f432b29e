"""Running a compiled graph against live tensors: check the guards, gather the
arrays, run the executable, then write state, ``.grad`` and outputs back.

Nothing is written before the whole graph ran and every guard held: a call
that fails a guard leaves every tensor as it was.
"""

from __future__ import annotations

from typing import Any

from core.deferred.graph import Graph, Guard
from core.deferred.interpret import GuardFailed, Interpreter
from core.device import to_device, xp_for
from core.engine.dispatch import wrap
from core.engine.tensor import Tensor


def flatten(value: Any, out: list) -> Any:
    """``value``'s structure with each Tensor replaced by its position in ``out``
    (the same plain form the tracer records for a call's arguments)."""
    if isinstance(value, Tensor):
        out.append(value)
        return {"input": len(out) - 1}
    if isinstance(value, tuple | list):
        return {"seq": [flatten(v, out) for v in value], "tuple": isinstance(value, tuple)}
    if isinstance(value, dict):
        return {"dict": [[str(k), flatten(v, out)] for k, v in value.items()]}
    return {"plain": value}


def unflatten(tree: Any, leaves: list[Any]) -> Any:
    """The value ``flatten`` took apart: ``tree`` with its tensors from ``leaves``."""
    if "input" in tree:
        return leaves[tree["input"]]
    if "seq" in tree:
        items = [unflatten(t, leaves) for t in tree["seq"]]
        return tuple(items) if tree["tuple"] else items
    if "dict" in tree:
        return {k: unflatten(v, leaves) for k, v in tree["dict"]}
    return tree["plain"]


def rebuild(tree: Any, outputs: list[Any], device: str) -> Any:
    """The step's return value from its recorded structure and output arrays."""
    if "output" in tree:
        return wrap(outputs[tree["output"]], device)
    if "number" in tree:
        return outputs[tree["number"]].reshape(()).item()
    if "seq" in tree:
        items = [rebuild(t, outputs, device) for t in tree["seq"]]
        return tuple(items) if tree["tuple"] else items
    if "dict" in tree:
        return {k: rebuild(v, outputs, device) for k, v in tree["dict"]}
    return tree["plain"]


class Bound:
    """A graph bound to the tensors it reads and writes, ready to run: through
    its generated ``program``, or with the reference interpreter (None)."""

    def __init__(
        self,
        graph: Graph,
        state: dict[str, Tensor],
        grad_owners: dict[str, Tensor],
        device: str,
        program: Any = None,
    ) -> None:
        self.graph = graph
        self.state = state
        self.grad_owners = grad_owners
        self.device = device
        self.program = program
        if program is not None:
            program.bind(state, grad_owners)
        self.xp = xp_for(device)
        self.constants = {k: to_device(v, device) for k, v in graph.constants.items()}
        self.static = [g for g in graph.guards if g.value is None]

    def run(self, inputs: list[Tensor]) -> Any:
        """Run once; raises ``GuardFailed`` (having written nothing) when a guard breaks."""
        if self.program is not None:
            outputs = self.program.run(inputs)
            return rebuild(self.graph.output_tree, outputs, self.device)
        return self.interpret(inputs)

    # -- the reference path ------------------------------------------------------------

    def interpret(self, inputs: list[Tensor]) -> Any:
        failed = self.static_failure(inputs)
        if failed is not None:
            raise GuardFailed(failed, "a different tensor")
        arrays = {name: t.data for name, t in self.state.items()}
        for name, owner in self.grad_owners.items():
            arrays[name] = owner.grad.data
        env = Interpreter(self.graph, self.xp, self.constants).run(arrays, [t.data for t in inputs])
        g = self.graph
        for name, vid in g.writes.items():
            self.state[name].data = env[vid]
        for name, vid in g.grads.items():
            self.state[name].grad = wrap(env[vid], self.device)
        return rebuild(g.output_tree, [env[vid] for vid in g.outputs], self.device)

    def static_failure(self, inputs: list[Tensor]) -> Guard | None:
        """The first guard on shapes, dtypes, devices or ``.grad`` that the live
        tensors break, or None."""
        for guard in self.static:
            name = guard.detail["name"]
            if guard.kind == "grad":
                owner = self.state.get(name)
                if owner is None or (owner.grad is None) != guard.expected:
                    return guard
                continue
            t = self._tensor(name, inputs)
            if t is None or [list(t.shape), str(t.dtype), t.device] != guard.expected:
                return guard
        return None

    def _tensor(self, name: str, inputs: list[Tensor]) -> Tensor | None:
        if name.startswith("in") and name[2:].isdigit() and name not in self.state:
            index = int(name[2:])
            return inputs[index] if index < len(inputs) else None
        if name in self.grad_owners:
            return self.grad_owners[name].grad
        return self.state.get(name)
