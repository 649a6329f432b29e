"""The cursor and the selection: what the window shows at an event, and a node.

A mixin of ``MainWindow`` (app/main_window.py): moving the time-travel cursor
(``seek``), showing the graph, inspector, source line and scope there, finding
and selecting nodes, and the finite-difference check of a node.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

from app.node_info import CheckError, check_node, leaf_before, node_info, node_of, source_of
from app.replay import describe
from core.debug.naming import UPDATE_SCOPE, Namer, names_of_step, scope_title

# an engine label in the Session's messages: an op or leaf kind, then an id
_ENGINE_LABEL = re.compile(r"\b([a-z][a-z0-9_]*?)_(\d+)\b")
_LEAF_KINDS = ("input", "constant", "parameter")


class CursorMixin:
    """The state at the cursor, and the selected node."""

    # -- the cursor ---------------------------------------------------------------------------

    def _step_at(self, index: int) -> int | None:
        rec = self.recording
        if rec is None or not rec.steps:
            return None
        i = bisect.bisect_right(rec.steps, index) - 1
        return i if i >= 0 else None

    def seek(self, index: int) -> None:
        """Move the cursor to event ``index`` and show the state there."""
        rec = self.recording
        if rec is None or not len(rec):
            return
        rec.seek(index)
        self._show_cursor(select=True)
        self.reason = self.cursor_text()
        self._update_controls()
        self._update_status()

    def cursor_text(self) -> str:
        """What happened at the cursor's event, named as the graph names it."""
        rec = self.recording
        node = self.graph.current
        name = None if node is None else self.graph.model.nodes[node].label
        return describe(rec.current(), name)

    def readable(self, text: str) -> str:
        """``text`` (a Session's message) with engine labels (``tanh_5133``,
        ``input_7``) replaced by the names the graph shows (``act.tanh``)."""
        model = self.graph.model

        def name(match: re.Match) -> str:
            kind, number = match.group(1), int(match.group(2))
            if kind in _LEAF_KINDS:
                index = model.by_tensor.get(number)
                same = index is not None and model.nodes[index].kind == kind
            else:
                index = model.by_node_id.get(number)
                same = index is not None and model.nodes[index].op == kind
            return model.nodes[index].label if same else match.group(0)

        return _ENGINE_LABEL.sub(name, text)

    def _names_before(self, step: int | None) -> list:
        """The events before step ``step`` that its names depend on: build's, and
        the step before (the optimizer's state it left)."""
        rec = self.recording
        if step is None or not rec.steps:
            return []
        before = rec.events[: rec.steps[0]]
        if step >= 1:
            before += rec.events[rec.steps[step - 1] : rec.steps[step]]
        return before

    def _resync_graph(self) -> None:
        """Rebuild a graph that went back without replaying (its namer is ahead)
        before it is fed again."""
        rec = self.recording
        i = self._graph_fed - 1
        step = self._step_at(i)
        start = rec.steps[step] if step is not None else 0
        self.graph.rebuild(rec.events[start : i + 1], start, self._names_before(step))

    def _namer_at(self) -> Namer:
        """A Namer fed up to the cursor, to name what comes after it."""
        rec = self.recording
        step = self._step_at(rec.position)
        start = rec.steps[step] if step is not None else 0
        return names_of_step(rec.events[start : rec.position + 1], self._names_before(step))

    def _show_cursor(self, *, select: bool) -> None:
        rec = self.recording
        i = rec.position
        step = self._step_at(i)
        start = rec.steps[step] if step is not None else 0
        shown = self._graph_fed  # the graph shows events [its step's start, shown)
        model = self.graph.model
        same_step = step is not None and model.step == rec.events[start].step
        if same_step and start < shown <= i + 1 and not model.namer_stale:
            self.graph.feed(rec.events[shown : i + 1], shown)  # forward: only the rest
        elif not (same_step and i + 1 < shown and self.graph.truncate(i, self._namer_at())):
            self.graph.rebuild(rec.events[start : i + 1], start, self._names_before(step))
        self._graph_fed = self._graph_due = i + 1
        self.graph.set_note("")
        event = rec.events[i]
        node = node_of(self.graph.model, event)
        self.graph.set_current(node)
        if select and node is not None:
            self.graph.select(node, center=True)
            self._show_node(node)
        elif self.graph.selected is not None:
            self._show_node(self.graph.selected)
        self.event_log.set_cursor(i)
        selected = self.graph.selected
        nodes = self.graph.model.nodes
        chosen = nodes[selected] if selected is not None and selected < len(nodes) else None
        self._show_kernel_at(i, chosen.event_index if chosen and chosen.kind == "op" else None)
        self.loss.set_cursor_step(step)
        self.params.set_cursor_step(step)
        source = source_of(rec, event)
        shown = source is not None and source.file == self.source.path()  # not another file's
        self.source.highlight_line(source.line if shown else None)
        scope = getattr(event, "scope", None)
        if node is not None:
            scope = self.graph.model.nodes[node].scope  # the call's own scope
        self.scopes.set_scope(scope or "", self.graph.scope_kinds)

    def _leaf_lookup(self, tensor_id: int) -> tuple[Any, int] | None:
        return None if self.recording is None else leaf_before(self.recording, tensor_id)

    def _on_step_clicked(self, step: int) -> None:
        rec = self.recording
        if rec is not None and 0 <= step < len(rec.steps) and not self._running():
            self.seek(rec.steps[step])

    def _running(self) -> bool:
        s = self._session()
        return s is not None and s.state == "running"

    # -- selection ----------------------------------------------------------------------------

    def _on_node_selected(self, index: int) -> None:
        if index < 0:
            self.inspector.show_node(None)
            return
        self._show_node(index)

    def _show_node(self, index: int) -> None:
        rec = self.recording
        if rec is None or index >= len(self.graph.model.nodes):
            return
        node = self.graph.model.nodes[index]
        if node.source is not None and node.source.file == self.source.path():
            self.source.highlight_line(node.source.line)  # the source follows the node
        self.inspector.show_node(node_info(node, rec, parameter=self._parameter_of(node)))
        self.scopes.set_scope(node.scope, self.graph.scope_kinds)
        if node.kind == "op":
            self._show_kernel_at(node.event_index)

    def _parameter_of(self, node: Any) -> int | None:
        """The tensor id of the parameter a node is, or whose update it is part of."""
        if node.kind == "parameter":
            return node.tensor_id
        if node.scope.startswith(UPDATE_SCOPE + "."):
            name = scope_title(node.scope)
            index = self.graph.model.by_name.get(name)
            return None if index is None else self.graph.model.nodes[index].tensor_id
        return None

    def selected_node_label(self) -> str | None:
        i = self.graph.selected
        return None if i is None else self.graph.model.nodes[i].label

    def _find(self, text: str) -> None:
        if self.graph.search(text) is None and text.strip():
            self.status_reason.setText(f"No node matches '{text}'")

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _on_line_clicked(self, line: int) -> None:
        nodes = [
            n for n in self.graph.model.nodes if n.source is not None and n.source.line == line
        ]
        if nodes:
            self.graph.select(nodes[0].index, center=True, emit=True)
            self.status_reason.setText(f"line {line}: {', '.join(n.label for n in nodes[:6])}")
        else:
            self.status_reason.setText(f"line {line} made no node in this step")

    def _on_go_to_source(self, index: int) -> None:
        node = self.graph.model.nodes[index]
        if node.source is not None and node.source.file == self.source.path():
            self.docks["source"].show()
            self.docks["source"].raise_()
            self.source.highlight_line(node.source.line)

    def _on_scope_clicked(self, path: str) -> None:
        rect = self.graph.scope_rects().get(path)
        if rect is not None:
            self.graph.centerOn(rect.center())

    # -- gradient check ---------------------------------------------------------------------------

    def _on_check_gradient_node(self, index: int) -> None:
        node = self.graph.model.nodes[index]
        if node.node_id is not None:
            self._on_check_gradient(node.node_id)

    def _on_check_gradient(self, node_id: int) -> None:
        rec = self.recording
        if rec is None:
            return

        def done(result: Any) -> None:
            if isinstance(result, CheckError):
                self.inspector.show_gradcheck(node_id, float("nan"), False, str(result))
            elif isinstance(result, Exception):
                self.inspector.show_gradcheck(
                    node_id, float("nan"), False, f"check failed: {result}"
                )
            else:
                verdict = "matches" if result.ok else "DOES NOT match"
                worst = f"{result.worst_error:.2e}"
                text = f"rule {verdict} finite differences (worst relative error {worst})"
                self.inspector.show_gradcheck(node_id, result.worst_error, result.ok, text)

        self._run_job(lambda: check_node(rec, node_id), done)
