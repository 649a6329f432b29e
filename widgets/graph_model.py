"""The graph of one training step, built from engine events (Qt-free).

Nodes are the step's forward ops and the leaves they consume (inputs,
parameters, constants); edges follow tensors from producer to consumer. The
backward pass is drawn on the same nodes: ``OpBackward`` and ``GradAccumulated``
mark a node as reached by the gradient and give it a gradient norm.

Update-phase ops (the optimizer's arithmetic) are not drawn: they belong to no
node of the model's graph, and the event log lists them.

>>> from core.observe.events import OpForward, TensorCreated
>>> g = GraphModel()
>>> g.feed(TensorCreated(1, "input", "x", (2,), "float32", "cpu", False, ""), 0)
>>> g.feed(OpForward(1, "tanh", (1,), 2, (), (2,), "float32", "cpu", 0, "", "forward", False), 1)
>>> [n.label for n in g.nodes], g.edges
(['x', 'tanh_1'], [(0, 1)])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from core.observe.events import (
    GradAccumulated,
    OpBackward,
    OpForward,
    Source,
    Stats,
    StepStarted,
    TensorCreated,
)


@dataclass
class GraphNode:
    index: int  # position in GraphModel.nodes (arrival order)
    kind: str  # "op", "input", "parameter" or "constant"
    label: str  # "matmul_3", "fc1.weight"
    op: str  # op label, or the leaf kind
    node_id: int | None  # engine node id (ops only)
    tensor_id: int  # the tensor this node produces (ops) or is (leaves)
    shape: tuple[int, ...]
    dtype: str
    scope: str  # module path
    source: Source | None
    event_index: int  # where in the event stream it appeared
    attrs: tuple = ()
    stats: Stats | None = None  # value statistics
    grad_stats: Stats | None = None  # gradient statistics, once backward reached it
    backward: bool = False  # reached by the backward pass

    @property
    def grad_norm(self) -> float:
        return math.nan if self.grad_stats is None else self.grad_stats.norm

    @property
    def nonfinite(self) -> bool:
        bad_value = self.stats is not None and not self.stats.finite
        bad_grad = self.grad_stats is not None and not self.grad_stats.finite
        return bad_value or bad_grad

    def caption(self) -> str:
        """Second label line: shape and dtype."""
        shape = "×".join(str(s) for s in self.shape) or "scalar"
        return f"{shape} {self.dtype}"


def last_step_start(events: Sequence[Any]) -> int:
    """Index of the last StepStarted in ``events`` (0 when there is none)."""
    for k in range(len(events) - 1, -1, -1):
        if type(events[k]) is StepStarted:
            return k
    return 0


class GraphModel:
    """Nodes and edges of the current step, fed event by event."""

    def __init__(self, leaf_lookup: Callable[[int], tuple[Any, int] | None] | None = None):
        # finds the TensorCreated (event, index) of a leaf announced before the
        # events this model was fed (time travel replays only the current step)
        self.leaf_lookup = leaf_lookup
        self.clear()
        self.step = -1

    def clear(self) -> None:
        self.nodes: list[GraphNode] = []
        self.edges: list[tuple[int, int]] = []
        self.inputs: list[tuple[int, ...]] = []  # per node, the nodes it reads
        self.by_tensor: dict[int, int] = {}  # tensor id -> node index
        self.by_node_id: dict[int, int] = {}  # engine node id -> node index
        self._leaves: dict[int, tuple[TensorCreated, int]] = {}  # announced, not yet drawn
        self.changed: list[int] = []  # node indexes whose state changed since taken

    # -- feeding ------------------------------------------------------------------

    def feed(self, event: Any, index: int) -> str | None:
        """Apply one event; returns "reset" when a new step began, else None."""
        kind = type(event)
        if kind is OpForward:
            if event.phase == "forward":
                self._add_op(event, index)
        elif kind is TensorCreated:
            self._leaves[event.tensor_id] = (event, index)
            node = self.by_tensor.get(event.tensor_id)
            if node is not None:
                self.nodes[node].stats = event.stats
        elif kind is OpBackward:
            self._reached(self.by_node_id.get(event.node_id), event.grad_output_stats)
        elif kind is GradAccumulated:
            self._reached(self.by_tensor.get(event.tensor_id), event.stats)
        elif kind is StepStarted:
            leaves = {
                tid: entry for tid, entry in self._leaves.items() if entry[0].kind != "constant"
            }
            self.clear()
            self._leaves = leaves
            self.step = event.step
            return "reset"
        return None

    def _reached(self, node: int | None, grad_stats: Stats | None) -> None:
        """The backward pass reached ``node`` with a gradient of ``grad_stats``."""
        if node is not None:
            n = self.nodes[node]
            n.backward = True
            n.grad_stats = grad_stats
            self.changed.append(node)

    def feed_all(self, events: Iterable[Any], start: int = 0) -> None:
        for i, event in enumerate(events, start):
            self.feed(event, i)

    def _leaf_node(self, tensor_id: int, at: int) -> int:
        entry = self._leaves.get(tensor_id)
        if entry is None and self.leaf_lookup is not None:
            entry = self.leaf_lookup(tensor_id)
        if entry is None:
            return self._append(
                GraphNode(
                    len(self.nodes),
                    "constant",
                    f"tensor_{tensor_id}",
                    "constant",
                    None,
                    tensor_id,
                    (),
                    "",
                    "",
                    None,
                    at,
                )
            )
        event, index = entry
        return self._append(
            GraphNode(
                len(self.nodes),
                event.kind,
                event.name,
                event.kind,
                None,
                tensor_id,
                event.shape,
                event.dtype,
                event.scope,
                event.source,
                index,
                stats=event.stats,
            )
        )

    def _append(self, node: GraphNode, inputs: tuple[int, ...] = ()) -> int:
        self.nodes.append(node)
        self.inputs.append(inputs)
        if node.node_id is not None:
            self.by_node_id[node.node_id] = node.index
        self.by_tensor[node.tensor_id] = node.index
        return node.index

    def _add_op(self, event: OpForward, index: int) -> None:
        preds = []
        for tid in event.inputs:
            src = self.by_tensor.get(tid)
            if src is None:
                src = self._leaf_node(tid, index)
            preds.append(src)
        node = self._append(
            GraphNode(
                len(self.nodes),
                "op",
                f"{event.op}_{event.node_id}",
                event.op,
                event.node_id,
                event.output,
                event.shape,
                event.dtype,
                event.scope,
                event.source,
                index,
                event.attrs,
                event.stats,
            ),
            tuple(preds),
        )
        for src in preds:
            self.edges.append((src, node))

    # -- queries -------------------------------------------------------------------

    def preds(self, index: int) -> list[int]:
        """The nodes node ``index`` reads, in argument order (repeats kept)."""
        return list(self.inputs[index])

    def find(self, text: str) -> list[int]:
        """Nodes whose label contains ``text`` (case-insensitive), in order."""
        text = text.lower().strip()
        if not text:
            return []
        return [n.index for n in self.nodes if text in n.label.lower()]

    def scopes(self) -> list[str]:
        """Every module path with at least one node, parents included, sorted."""
        found: set[str] = set()
        for n in self.nodes:
            parts = n.scope.split(".") if n.scope else []
            for i in range(1, len(parts) + 1):
                found.add(".".join(parts[:i]))
        return sorted(found)

    def take_changed(self) -> list[int]:
        changed, self.changed = self.changed, []
        return changed
