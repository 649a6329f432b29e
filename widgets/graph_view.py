"""The live graph: op and leaf nodes, tensors on the edges, module boxes.

``GraphView`` is fed engine events (plain dataclasses) in batches; it keeps a
``GraphModel`` of the current step and a ``Layout`` that places arriving nodes
without moving the others. One ``GraphItem`` paints everything with a handful of
batched calls (edges as cached paths, nodes grouped by colour, labels only when
zoomed in), so a 10,000-node graph stays smooth: paths are built from NumPy
arrays in one call, split into chunks so a zoomed-in paint strokes only the
exposed ones, and replaced by a pixel-snapped straight-line version when zoomed
far out; node rectangles are kept between paints.

The backward pass is drawn on the same nodes: once the gradient reaches a node,
it is coloured by the log of its gradient norm; NaN/Inf get a colour of their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QPointF,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import (
    QFont,
    QFontMetricsF,
    QPainter,
)
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

from core.debug.naming import UPDATE_SCOPE, Namer, names_of_step
from core.observe.events import StepStarted, TensorCreated
from widgets.graph_colours import BACKGROUND, NodePalette
from widgets.graph_interaction import GraphInteractionMixin
from widgets.graph_item import NODE_HEIGHT, GraphItem
from widgets.graph_menu import EXPORT_SCALE, export_png, export_svg, node_menu
from widgets.graph_model import GraphModel, GraphNode, last_step_start
from widgets.graph_overlay import Overlay
from widgets.graph_relayout import RelayoutTask
from widgets.graph_scopes import BOX_PAD, TITLE_HEIGHT, ScopeBox, ScopesMixin, inside
from widgets.layout import Layout

MAX_NODE_WIDTH = 104.0  # scene units; a graph of many layers still fits legibly
READABLE_SCALE = 0.8  # Find zooms in below this scale


class GraphView(GraphInteractionMixin, ScopesMixin, QGraphicsView):
    """The graph of the current step, growing as events arrive."""

    sig_node_selected = Signal(int)
    """The user selected a node (its index in ``model.nodes``); -1 clears."""
    sig_breakpoint_requested = Signal(str, object)
    """The user asked for a breakpoint: (kind, value), e.g. ("node", "fc1.linear")."""
    sig_check_gradient = Signal(int)
    """The user asked to check the gradient of a node (its index)."""
    sig_layout_progress = Signal(float)
    """Progress of a background relayout, 0..1 (1 when done or cancelled)."""
    sig_go_to_source = Signal(int)
    """The user asked to see the source line of a node (its index)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(BACKGROUND)
        self.setMinimumSize(240, 160)
        # names leaves announced before the events fed (see GraphModel.leaf_lookup)
        self.leaf_lookup: Callable[[int], tuple[Any, int] | None] | None = None
        self.model = GraphModel()
        self.layout = self._new_layout()
        self.collapsed: dict[str, float] = {}  # scope -> width of its box node
        self.expanded: set[str] = set()  # scopes the user opened (never collapsed again)
        self.selected: int | None = None
        self.current: int | None = None
        self._signature: list[tuple] = []  # structure of the laid-out nodes, for reuse
        self._placed = 0  # nodes of the model given to the layout
        self._reuse = False  # a new step may reuse the layout of the previous one
        self._tidied = False  # the current layout had its one automatic tidy
        self._colours: list[int] | None = None
        self._scope_boxes: dict[str, ScopeBox] | None = None
        self._generation = 0
        self._task: RelayoutTask | None = None
        self._fitted = False
        self._metrics = QFontMetricsF(QFont())
        self._advance: dict[str, float] = {}  # character -> its advance in the font
        self._palette = NodePalette()
        self._keep_view = False  # the next relayout keeps the zoom (a collapse or expand)
        self._stale = False  # nodes were fed that the drawing does not show yet
        self.note = ""  # what the drawing does not show (e.g. a step too big to draw live)
        self._hovered: int | None = None
        self.overlay = Overlay()
        self.setMouseTracking(True)
        self.item = GraphItem(self)
        self.scene().addItem(self.item)

    def _new_layout(self) -> Layout:
        return Layout(
            node_height=NODE_HEIGHT,
            node_gap=14,
            layer_gap=36,
            box_pad=BOX_PAD + 2,
            box_title=TITLE_HEIGHT,
        )

    # -- feeding -------------------------------------------------------------------------

    def feed(self, events: Sequence[Any], start: int, *, draw: bool = True) -> None:
        """Apply a batch of events (``events[k]`` is event number ``start + k``);
        ``draw=False`` leaves the drawing as it is until ``redraw`` (a caller feeding
        a backlog in slices draws once, not after every slice)."""
        model = self.model
        # The model keeps one step: a batch spanning several steps needs, before its
        # last StepStarted, only what outlives a step (names, leaves, resets).
        last = last_step_start(events)
        names_from = last_step_start(events[:last])  # the names need one step back
        for k in range(last):
            event = events[k]
            if (
                k < names_from
                and type(event) is not TensorCreated
                and type(event) is not StepStarted
            ):
                continue  # a step whose graph and names are not needed: only its leaves
            if model.skip(event, start + k) == "reset":
                self._on_new_step()
        for k in range(last, len(events)):
            if model.feed(events[k], start + k) == "reset":
                self._on_new_step()
        changed = model.take_changed()
        grew = self._place_new()
        if grew or changed:
            self._stale = True
        if draw:
            self.redraw()
        if last > 0 or (events and type(events[0]) is StepStarted):
            self.tidy_once()  # a step's graph was complete when the next one began

    def redraw(self) -> None:
        """Show what was fed since the drawing was last brought up to date."""
        if self._stale:
            self._stale = False
            self._update_drawing()

    def rebuild(self, events: Sequence[Any], start: int, before: Sequence[Any] = ()) -> None:
        """Show exactly the state after ``events`` (time travel): replay them.

        ``self.leaf_lookup(tensor_id) -> (TensorCreated, index) | None`` finds
        leaves announced before ``events`` (parameters, inputs made at build time);
        ``before`` are the earlier events the names depend on (see
        ``core.debug.naming.names_of_step``).
        """
        self.model = GraphModel(self.leaf_lookup, names_of_step(before))
        self._on_new_step()
        self.feed(events, start)

    def truncate(self, index: int, namer: Namer | None = None) -> bool:
        """Show the state right after event ``index`` of the step on screen, going
        back without replaying (see ``GraphModel.truncate``); False when it cannot
        (then ``rebuild``). ``namer``, fed up to ``index``, lets the graph be fed
        forward again. The layout keeps the later nodes for going forward."""
        if not self.model.truncate(index):
            return False
        if namer is not None:
            self.model.namer, self.model.namer_stale = namer, False
        # nodes fed again are matched against the layout's, as a repeated step is
        self._placed = len(self.model.nodes)
        self._reuse = True
        self._update_drawing()
        return True

    @property
    def scope_kinds(self) -> dict[str, str]:
        """Module class (or optimizer) of each scope drawn, by scope."""
        return self.model.scope_kinds

    def _on_new_step(self) -> None:
        self._placed = 0
        self._reuse = len(self.layout) > 0

    def tidy_once(self) -> None:
        """Tidy the layout in the background the first time a step's graph is
        complete (nodes are placed as they arrive; this orders them once); a big
        graph gets its inner modules and its update collapsed first."""
        if not self._tidied and len(self.layout) > 1:
            self._tidied = True
            self._collapse_big()
            self.relayout()

    def _signature_of(self, node: GraphNode, preds: list[int]) -> tuple:
        return (node.kind, node.op, node.scope, tuple(preds))

    def _place_new(self) -> bool:
        """Give new model nodes to the layout; reuse it while the step repeats the last."""
        nodes = self.model.nodes
        if len(nodes) == self._placed:
            return False
        model = self.model
        for node in nodes[self._placed :]:
            i = node.index
            signature = self._signature_of(node, model.preds(i))
            if self._reuse:
                if i < len(self._signature) and self._signature[i] == signature:
                    continue
                self._reuse = False  # the structure changed: lay out afresh
                self.layout = self._new_layout()
                self._tidied = False
                self._signature = []
                self._fitted = False
                for earlier in nodes[:i]:
                    self._add_to_layout(earlier, model.preds(earlier.index))
                    self._signature.append(self._signature_of(earlier, model.preds(earlier.index)))
            self._add_to_layout(node, model.preds(i))
            self._signature.append(signature)
        self._placed = len(nodes)
        return True

    def _add_to_layout(self, node: GraphNode, preds: list[int]) -> None:
        scope = node.scope
        if scope.startswith(UPDATE_SCOPE + ".") and scope not in self.collapsed:
            if scope not in self.expanded and not self.layout.has_group(scope):
                # a parameter's update is one box until the user opens it
                self.collapsed[scope] = self._box_width(scope)
                self.layout.collapse_new(scope, self.collapsed[scope])
        self.layout.add_node(node.index, preds, node.kind, self._node_width(node), scope)

    def _text_width(self, text: str) -> float:
        """About the width of ``text`` in the view's font: the sum of its characters'
        advances, each measured once (a Qt call per node stalls the GUI thread while
        a run's worker holds the GIL)."""
        width = 0.0
        advance = self._advance
        for char in text:
            w = advance.get(char)
            if w is None:
                w = advance[char] = self._metrics.horizontalAdvance(char)
            width += w
        return width

    def _node_width(self, node: GraphNode) -> float:
        text = max(self._text_width(node.label), self._text_width(node.caption()) * 0.85)
        return min(MAX_NODE_WIDTH, max(64.0, text + 20.0))  # longer names are cut

    # -- drawing state ----------------------------------------------------------------

    def _update_drawing(self) -> None:
        self._colours = None
        self._scope_boxes = None
        self.overlay.invalidate()
        self.item.invalidate()
        self.scene().setSceneRect(self.item.boundingRect())  # no room left from older graphs
        if not self._fitted and self.model.nodes:
            self.fit()
            self._fitted = len(self.model.nodes) > 3

    def node_colours(self) -> list[int]:
        """ARGB fill per node (cached until the next change)."""
        if self._colours is None or len(self._colours) != len(self.model.nodes):
            self._colours = self._palette.colours(self.model)
        return self._colours

    # -- selection and cursor ------------------------------------------------------------

    def _node_hit(self, scene_pos: QPointF) -> int | None:
        """The drawn node under ``scene_pos`` (a collapsed box's stand-in included)."""
        rects = self.layout.rects()
        drawn = self.layout.drawn()
        n = min(len(rects), len(self.model.nodes))
        x, y = scene_pos.x(), scene_pos.y()
        hit = np.flatnonzero(
            drawn[:n]
            & (rects[:n, 0] <= x)
            & (x <= rects[:n, 2])
            & (rects[:n, 1] <= y)
            & (y <= rects[:n, 3])
        )
        return int(hit[-1]) if len(hit) else None

    def node_at(self, scene_pos: QPointF) -> int | None:
        """The node under ``scene_pos``; for a collapsed box, its last op (the
        module's output, or the parameter's new value)."""
        index = self._node_hit(scene_pos)
        scope = None if index is None else self.layout.box_nodes().get(index)
        if scope is not None:
            ops = [n.index for n in self.model.nodes if n.kind == "op" and inside(n.scope, scope)]
            index = ops[-1] if ops else index
        return index

    def select(self, index: int | None, *, center: bool = False, emit: bool = False) -> None:
        self.selected = index
        if center and index is not None and index < len(self.model.nodes):
            x, y = self.layout.positions()[1][index]
            if math.isfinite(x):
                self.centerOn(float(x), float(y))
        self.item.update()
        if emit:
            self.sig_node_selected.emit(-1 if index is None else index)

    def set_current(self, index: int | None) -> None:
        """Highlight the node of the event at the cursor."""
        if index != self.current:
            self.current = index
            self.item.update()

    def search(self, text: str) -> int | None:
        """Select the next node whose name contains ``text`` and zoom to it (its
        label readable); an exact name first."""
        hits = self.model.find(text)
        if not hits:
            return None
        k = hits.index(self.selected) + 1 if self.selected in hits else 0
        index = hits[k % len(hits)]
        self.reveal(index)
        self.zoom_to(index)
        self.select(index, center=True, emit=True)
        return index

    def reveal(self, index: int) -> None:
        """Open the collapsed boxes node ``index`` is hidden in."""
        scope = self.model.nodes[index].scope
        for box in sorted(s for s in self.collapsed if inside(scope, s)):
            if box in self.collapsed:  # an outer one may have been opened already
                self.toggle_scope(box)

    def zoom_to(self, index: int) -> None:
        """Zoom in (to 100 %) when node ``index`` would be too small to read."""
        if self.transform().m11() < READABLE_SCALE:
            self.resetTransform()
        self.select(index, center=True)

    # -- collapse and relayout -------------------------------------------------------------

    def relayout(self, *, wait: bool = False) -> None:
        """Tidy the whole graph in the thread pool (``wait``: block until done)."""
        if self._task is not None:
            self._task.cancelled = True
        self._generation += 1
        task = RelayoutTask(self.layout, self._generation, dict(self.collapsed))
        task.signals.progress.connect(self.sig_layout_progress)
        task.signals.done.connect(self._on_relayout_done)
        task.setAutoDelete(False)
        self._task = task
        if wait:
            task.run()
        else:
            QThreadPool.globalInstance().start(task)

    def cancel_relayout(self) -> None:
        if self._task is not None:
            self._task.cancelled = True

    def _on_relayout_done(self, result: object, generation: int) -> None:
        if generation != self._generation:
            return
        self._task = None
        self.sig_layout_progress.emit(1.0)
        if isinstance(result, Exception):
            return
        if not self._keep_view:
            self._fitted = False  # the tidy graph has a new extent: fit it once
        self._keep_view = False
        self._update_drawing()

    @property
    def busy(self) -> bool:
        """A relayout is running in the background."""
        return self._task is not None

    def contextMenuEvent(self, event) -> None:
        node_menu(self, self.mapToScene(event.pos()), self).exec(event.globalPos())

    def export_png(self, path: str, scale: float = EXPORT_SCALE) -> None:
        """The whole graph as a PNG (twice the scene's size unless told)."""
        export_png(self, path, scale)

    def export_svg(self, path: str) -> None:
        export_svg(self, path)

    def clear(self) -> None:
        self.model = GraphModel(self.leaf_lookup)
        self.layout = self._new_layout()
        self._signature = []
        self._placed = 0
        self._reuse = False
        self._tidied = False
        self.selected = self.current = None
        self._fitted = False
        self._update_drawing()
