"""The graph of one training step, built from engine events (Qt-free).

Nodes are the step's forward ops, the optimizer's update ops and the leaves they
consume (inputs, parameters, constants); edges follow tensors from producer to
consumer. Each node is named by ``core.debug.naming`` (``fc1.linear``, stable
from step to step); the engine id stays on the node as a detail. The backward
pass is drawn on the same nodes: ``OpBackward`` and ``GradAccumulated`` mark a
node as reached by the gradient and give it a gradient norm.

Update ops sit in one scope per parameter (``update.fc1/weight``); a gradient
they read is drawn as an edge from its parameter. Leaves go into the box of
their first consumer when they belong there: a constant always, a parameter
when its name says it is that module's (``fc1.weight`` in ``model.fc1``).

>>> from core.observe.events import OpForward, TensorCreated
>>> g = GraphModel()
>>> g.feed(TensorCreated(1, "input", "x", (2,), "float32", "cpu", False, ""), 0)
>>> g.feed(OpForward(1, "tanh", (1,), 2, (), (2,), "float32", "cpu", 0, "", "forward", False), 1)
>>> [n.label for n in g.nodes], g.edges
(['x', 'tanh'], [(0, 1)])
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from core.debug.naming import UPDATE_SCOPE, Namer, display_scope, update_scope
from core.deferred.narrate import kernel_box
from core.observe.events import (
    GradAccumulated,
    KernelRun,
    ModuleEnter,
    OpBackward,
    OpForward,
    ParameterUpdated,
    Source,
    Stats,
    StepStarted,
    TensorCreated,
)


@dataclass
class GraphNode:
    index: int  # position in GraphModel.nodes (arrival order)
    kind: str  # "op", "input", "parameter" or "constant"
    label: str  # stable name: "fc1.linear", "fc1.weight" (core.debug.naming)
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
    phase: str = "forward"  # "forward" or "update" (ops); leaves: "forward"

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


_GENERATIONS = itertools.count()


def last_step_start(events: Sequence[Any]) -> int:
    """Index of the last StepStarted in ``events`` (0 when there is none)."""
    for k in range(len(events) - 1, -1, -1):
        if type(events[k]) is StepStarted:
            return k
    return 0


class GraphModel:
    """Nodes and edges of the current step, fed event by event."""

    def __init__(
        self,
        leaf_lookup: Callable[[int], tuple[Any, int] | None] | None = None,
        namer: Namer | None = None,
    ):
        # finds the TensorCreated (event, index) of a leaf announced before the
        # events this model was fed (time travel replays only the current step)
        self.leaf_lookup = leaf_lookup
        # names the nodes; a Namer fed the events before the first one given
        # (see core.debug.naming.names_of_step) names time travel's replays alike
        self.namer = namer or Namer()
        self.scope_kinds: dict[str, str] = {}  # scope -> module class, or the optimizer
        self.clear()
        self.step = -1

    def clear(self) -> None:
        self.generation = next(_GENERATIONS)  # this set of nodes, unique among all models
        self.nodes: list[GraphNode] = []
        self.edges: list[tuple[int, int]] = []
        self.inputs: list[tuple[int, ...]] = []  # per node, the nodes it reads
        self.by_tensor: dict[int, int] = {}  # tensor id -> node index
        self.by_node_id: dict[int, int] = {}  # engine node id -> node index
        self.by_name: dict[str, int] = {}  # stable name -> node index
        self._leaves: dict[int, tuple[TensorCreated, int]] = {}  # announced, not yet drawn
        self._grads: dict[int, int] = {}  # gradient tensor id -> its leaf's node
        self.changed: list[int] = []  # node indexes whose state changed since taken
        self.marked: set[int] = set()  # nodes reached by the gradient or holding NaN/Inf
        # what going back (truncate) undoes: per node the event that made it, the
        # gradient marks and gradient ids with their events, the first event fed
        self._made_at: list[int] = []
        self._marks: list[tuple[int, int, bool, Stats | None]] = []
        self._grad_log: list[tuple[int, int]] = []
        self._first: int | None = None
        self._fixed_at = -1  # the last event whose change cannot be undone
        self._at = -1  # the event being fed
        self.namer_stale = False  # truncated: the namer is ahead; feed no more

    # -- feeding ------------------------------------------------------------------

    def feed(self, event: Any, index: int) -> str | None:
        """Apply one event; returns "reset" when a new step began, else None."""
        self._at = index
        if self._first is None:
            self._first = index
        self.namer.feed(event)
        kind = type(event)
        if kind is OpForward:
            self._add_op(event, index)
        elif kind is TensorCreated:
            self._on_leaf(event, index)
        elif kind is OpBackward:
            self._reached(self.by_node_id.get(event.node_id), event.grad_output_stats)
        elif kind is GradAccumulated:
            node = self.by_tensor.get(event.tensor_id)
            self._reached(node, event.stats)
            if node is not None:
                self._grads[event.grad_id] = node
                self._grad_log.append((index, event.grad_id))
        elif kind is ModuleEnter:
            self.scope_kinds[self.namer.scope_of(event.path)] = event.kind
        elif kind is ParameterUpdated:
            self.scope_kinds[UPDATE_SCOPE] = event.optimizer
            self.scope_kinds[update_scope(event.name)] = event.optimizer
        elif kind is KernelRun and len(event.nodes) > 1:  # a fused kernel's box
            self.scope_kinds[kernel_box(event.kernel, event.name)] = "fused"
        elif kind is StepStarted:
            return self._on_step(event)
        return None

    def skip(self, event: Any, index: int) -> str | None:
        """Take in an event of a step that is not drawn (a batch spanning several
        steps): names and leaves go on, no node is made."""
        kind = type(event)
        if kind is TensorCreated or kind is StepStarted:
            return self.feed(event, index)
        self.namer.feed(event)
        return None

    def _on_leaf(self, event: TensorCreated, index: int) -> None:
        self._leaves[event.tensor_id] = (event, index)
        node = self.by_tensor.get(event.tensor_id)
        if node is not None:
            self._fixed_at = index  # the node's old statistics are not kept
            self.nodes[node].stats = event.stats
            if self.nodes[node].nonfinite:
                self.marked.add(node)

    def _on_step(self, event: StepStarted) -> str:
        leaves = {tid: entry for tid, entry in self._leaves.items() if entry[0].kind != "constant"}
        self.clear()
        self.scope_kinds.clear()  # this step's module calls
        self._leaves = leaves
        self.step = event.step
        return "reset"

    def _reached(self, node: int | None, grad_stats: Stats | None) -> None:
        """The backward pass reached ``node`` with a gradient of ``grad_stats``."""
        if node is not None:
            n = self.nodes[node]
            self._marks.append((self._at, node, n.backward, n.grad_stats))
            n.backward = True
            n.grad_stats = grad_stats
            self.changed.append(node)
            self.marked.add(node)

    def feed_all(self, events: Iterable[Any], start: int = 0) -> None:
        for i, event in enumerate(events, start):
            self.feed(event, i)

    def _leaf_node(self, tensor_id: int, at: int, consumer: str, update: bool) -> int:
        """The node of a leaf first read by an op in scope ``consumer``."""
        entry = self._leaves.get(tensor_id)
        if entry is None and self.leaf_lookup is not None:
            entry = self.leaf_lookup(tensor_id)
        if entry is None:
            event = TensorCreated(
                tensor_id, "constant", f"tensor_{tensor_id}", (), "", "", False, consumer
            )
            index = at
        else:
            event, index = entry
        name = self.namer.leaf_name(tensor_id) or event.name
        node = GraphNode(
            len(self.nodes),
            event.kind,
            name,
            event.kind,
            None,
            tensor_id,
            event.shape,
            event.dtype,
            self._leaf_scope(event, name, consumer, update),
            event.source,
            index,
            stats=event.stats,
        )
        return self._append(node)

    @staticmethod
    def _leaf_scope(event: TensorCreated, name: str, consumer: str, update: bool) -> str:
        """The box a leaf is drawn in: its consumer's for constants and optimizer
        state; for a parameter, its module's call when the consumer is that."""
        if event.kind == "parameter":
            module = name.rpartition(".")[0]
            if module and display_scope(consumer) == module:
                return consumer
            return event.scope
        if event.kind == "constant" or update:
            return consumer
        return event.scope

    def _append(self, node: GraphNode, inputs: tuple[int, ...] = ()) -> int:
        self.nodes.append(node)
        self.inputs.append(inputs)
        self._made_at.append(self._at)
        if node.node_id is not None:
            self.by_node_id[node.node_id] = node.index
        self.by_tensor[node.tensor_id] = node.index
        self.by_name.setdefault(node.label, node.index)
        if node.nonfinite:
            self.marked.add(node.index)
        return node.index

    def _add_op(self, event: OpForward, index: int) -> None:
        namer = self.namer
        name = namer.name_of(event.node_id) or f"{event.op}_{event.node_id}"
        scope = namer.scopes.get(event.node_id, event.scope)
        update = event.phase == "update"
        preds = []
        for tid in event.inputs:
            src = self.by_tensor.get(tid)
            if src is None and update:
                src = self._grads.get(tid)  # a gradient: drawn as its parameter
            if src is None:
                src = self._leaf_node(tid, index, scope, update)
            preds.append(src)
        node = self._append(
            GraphNode(
                len(self.nodes),
                "op",
                name,
                event.op,
                event.node_id,
                event.output,
                event.shape,
                event.dtype,
                scope,
                event.source,
                index,
                event.attrs,
                event.stats,
                phase=event.phase,
            ),
            tuple(preds),
        )
        for src in preds:
            self.edges.append((src, node))
        for tid in event.side_outputs:  # a softmax its backward reads: drawn as this node
            self.by_tensor.setdefault(tid, node)

    # -- going back ----------------------------------------------------------------

    def truncate(self, index: int) -> bool:
        """Go back to the state right after event ``index`` of this step without
        replaying it: nodes made later go, later gradient marks are undone. False
        (nothing changed) when it cannot: ``index`` is before this step, or a later
        event changed what cannot be undone. Afterwards the namer is ahead of the
        state: feed no more (``namer_stale``), rebuild instead."""
        if self._first is None or index < self._first or index < self._fixed_at:
            return False
        keep = bisect.bisect_right(self._made_at, index)
        while self._marks and self._marks[-1][0] > index:
            _, node, backward, grad_stats = self._marks.pop()
            if node < keep:
                self.nodes[node].backward, self.nodes[node].grad_stats = backward, grad_stats
        while self._grad_log and self._grad_log[-1][0] > index:
            self._grads.pop(self._grad_log.pop()[1], None)
        for node in self.nodes[keep:]:
            for table, key in (
                (self.by_tensor, node.tensor_id),
                (self.by_node_id, node.node_id),
                (self.by_name, node.label),
            ):
                if table.get(key) == node.index:
                    del table[key]
        del self.nodes[keep:], self.inputs[keep:], self._made_at[keep:]
        del self.edges[bisect.bisect_left([dst for _, dst in self.edges], keep) :]
        self._leaves = {t: entry for t, entry in self._leaves.items() if entry[1] <= index}
        self.marked = {n.index for n in self.nodes if n.backward or n.nonfinite}
        self.changed = []
        self.generation = next(_GENERATIONS)
        self.namer_stale = True
        return True

    # -- queries -------------------------------------------------------------------

    def preds(self, index: int) -> list[int]:
        """The nodes node ``index`` reads, in argument order (repeats kept)."""
        return list(self.inputs[index])

    def find(self, text: str) -> list[int]:
        """Nodes whose name contains ``text`` (case-insensitive), in order; an exact
        name first. ``#12`` finds the node of engine id 12."""
        text = text.lower().strip()
        if not text:
            return []
        if text.startswith("#") and text[1:].isdigit():
            hit = self.by_node_id.get(int(text[1:]))
            return [] if hit is None else [hit]
        hits = [n.index for n in self.nodes if text in n.label.lower()]
        exact = [i for i in hits if self.nodes[i].label.lower() == text]
        return exact + [i for i in hits if i not in exact]

    def scopes(self) -> list[str]:
        """Every module path with at least one node, parents included, sorted."""
        found: set[str] = set()
        for scope in {n.scope for n in self.nodes}:  # a few distinct ones among many nodes
            parts = scope.split(".") if scope else []
            for i in range(1, len(parts) + 1):
                found.add(".".join(parts[:i]))
        return sorted(found)

    def take_changed(self) -> list[int]:
        changed, self.changed = self.changed, []
        return changed
