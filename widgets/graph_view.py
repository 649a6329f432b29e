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
    QObject,
    QPointF,
    QRectF,
    QRunnable,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QPainter,
)
from PySide6.QtWidgets import (
    QGraphicsScene,
    QGraphicsView,
    QMenu,
    QWidget,
)

from core.debug.naming import UPDATE_SCOPE, names_of_step, scope_title
from core.observe.events import StepStarted
from widgets.graph_item import (
    BACKGROUND,
    NODE_HEIGHT,
    NONFINITE,
    GraphItem,
    op_colour,
    ramp,
)
from widgets.graph_model import GraphModel, GraphNode, last_step_start
from widgets.layout import Layout, LayoutCancelled


def _inside(scope: str, outer: str) -> bool:
    return scope == outer or scope.startswith(outer + ".")


class _LayoutSignals(QObject):
    progress = Signal(float)
    done = Signal(object, int)  # stats or an exception, generation


class _RelayoutTask(QRunnable):
    """Runs ``Layout.relayout`` in the thread pool; cancellable."""

    def __init__(self, layout: Layout, generation: int, collapsed: dict[str, float]) -> None:
        super().__init__()
        self.layout, self.generation, self.collapsed = layout, generation, collapsed
        self.signals = _LayoutSignals()
        self.cancelled = False

    def run(self) -> None:
        def progress(fraction: float) -> bool:
            self.signals.progress.emit(fraction)
            return not self.cancelled

        try:
            stats = self.layout.relayout(collapsed=self.collapsed, progress=progress)
        except LayoutCancelled as exc:
            stats = exc
        except Exception as exc:  # keep the app alive; the view reports it
            stats = exc
        self.signals.done.emit(stats, self.generation)


EMPTY_TEXT = (
    "No graph yet.\nOpen a program (Ctrl+O) or pick a sample, then run (F5) or step (F11):\n"
    "the graph of each training step grows here."
)


class GraphView(QGraphicsView):
    """The graph of the current step, growing as events arrive."""

    sig_node_selected = Signal(int)
    """The user selected a node (its index in ``model.nodes``); -1 clears."""
    sig_breakpoint_requested = Signal(str, object)
    """The user asked for a breakpoint: (kind, value), e.g. ("node", 12)."""
    sig_check_gradient = Signal(int)
    """The user asked to check the gradient of a node (its index)."""
    sig_layout_progress = Signal(float)
    """Progress of a background relayout, 0..1 (1 when done or cancelled)."""

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
        self._scope_rects: dict[str, QRectF] | None = None
        self._generation = 0
        self._task: _RelayoutTask | None = None
        self._fitted = False
        self._metrics = QFontMetricsF(QFont())
        self.item = GraphItem(self)
        self.scene().addItem(self.item)

    def _new_layout(self) -> Layout:
        return Layout(node_height=NODE_HEIGHT, node_gap=14, layer_gap=56)

    # -- feeding -------------------------------------------------------------------------

    def feed(self, events: Sequence[Any], start: int) -> None:
        """Apply a batch of events (``events[k]`` is event number ``start + k``)."""
        model = self.model
        # The model keeps one step: a batch spanning several steps needs, before its
        # last StepStarted, only what outlives a step (names, leaves, resets).
        last = last_step_start(events)
        for k in range(last):
            if model.skip(events[k], start + k) == "reset":
                self._on_new_step()
        for k in range(last, len(events)):
            if model.feed(events[k], start + k) == "reset":
                self._on_new_step()
        changed = model.take_changed()
        grew = self._place_new()
        if grew or changed:
            self._update_drawing()
        if last > 0 or (events and type(events[0]) is StepStarted):
            self.tidy_once()  # a step's graph was complete when the next one began

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

    @property
    def scope_kinds(self) -> dict[str, str]:
        """Module class (or optimizer) of each scope drawn, by scope."""
        return self.model.scope_kinds

    def _on_new_step(self) -> None:
        self._placed = 0
        self._reuse = len(self.layout) > 0

    def tidy_once(self) -> None:
        """Tidy the layout in the background the first time a step's graph is
        complete (nodes are placed as they arrive; this orders them once)."""
        if not self._tidied and len(self.layout) > 1:
            self._tidied = True
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

    def _box_width(self, scope: str) -> float:
        # an update box is placed before its optimizer's name arrives: room for one
        kind = "Optimizer" if scope.startswith(UPDATE_SCOPE + ".") else self.scope_kinds.get(scope)
        title = f"▸ {scope_title(scope)} ({kind or ''})"
        return self._metrics.horizontalAdvance(title) + 40

    def _node_width(self, node: GraphNode) -> float:
        text = max(
            self._metrics.horizontalAdvance(node.label),
            self._metrics.horizontalAdvance(node.caption()) * 0.85,
        )
        return max(64.0, text + 20.0)

    # -- drawing state ----------------------------------------------------------------

    def _update_drawing(self) -> None:
        self._colours = None
        self._scope_rects = None
        self.item.invalidate()
        if not self._fitted and self.model.nodes:
            self.fit()
            self._fitted = len(self.model.nodes) > 3

    def node_colours(self) -> list[int]:
        """ARGB fill per node (cached until the next change)."""
        if self._colours is None or len(self._colours) != len(self.model.nodes):
            norms = [n.grad_norm for n in self.model.nodes if n.backward]
            finite = [math.log10(v) for v in norms if v > 0 and math.isfinite(v)]
            lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
            colours = []
            for n in self.model.nodes:
                if n.nonfinite:
                    colour = NONFINITE
                elif n.backward and n.grad_stats is not None:
                    v = n.grad_norm
                    t = 0.0 if not (v > 0 and hi > lo) else (math.log10(v) - lo) / (hi - lo)
                    colour = ramp(t)
                else:
                    colour = op_colour(n)
                colours.append(colour.rgba())
            self._colours = colours
        return self._colours

    def scope_rects(self) -> dict[str, QRectF]:
        """Rectangle of every module scope, outer scopes first."""
        if self._scope_rects is None:
            rects: dict[str, QRectF] = {}
            scopes = self.model.scopes()
            for scope in scopes:
                # each box leaves room for the title rows of the boxes inside it
                inner = max(
                    t.count(".") - scope.count(".")
                    for t in scopes
                    if t == scope or t.startswith(scope + ".")
                )
                box = self.layout.box(scope) if len(self.layout) else None
                if box is not None and all(map(math.isfinite, box)):
                    x0, y0, x1, y1 = box
                    side = 8.0 + 6.0 * inner
                    top = 18.0 + 16.0 * inner
                    rects[scope] = QRectF(
                        x0 - side, y0 - top, x1 - x0 + 2 * side, y1 - y0 + top + side
                    )
            self._scope_rects = rects
        return self._scope_rects

    def box_caption(self, scope: str) -> str:
        """Second line of a collapsed scope's box: what it holds."""
        ops = sum(1 for n in self.model.nodes if n.kind == "op" and _inside(n.scope, scope))
        return f"{ops} op" + ("s" if ops != 1 else "")

    # -- selection and cursor ------------------------------------------------------------

    def node_at(self, scene_pos: QPointF) -> int | None:
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

    def scope_header_at(self, scene_pos: QPointF) -> str | None:
        best = None
        for scope, rect in self.scope_rects().items():
            header = QRectF(rect.left(), rect.top(), rect.width(), 16)
            if header.contains(scene_pos):
                best = scope  # inner scopes come later and win
        return best

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
        """Select and centre the next node whose label contains ``text``."""
        hits = self.model.find(text)
        if not hits:
            return None
        after = [h for h in hits if self.selected is None or h > self.selected]
        index = (after or hits)[0]
        self.select(index, center=True, emit=True)
        return index

    # -- collapse and relayout -------------------------------------------------------------

    def toggle_scope(self, scope: str) -> None:
        """Collapse a module scope into one box node, or expand it again."""
        if scope in self.collapsed:
            del self.collapsed[scope]
            self.expanded.add(scope)
        else:
            self.collapsed[scope] = self._box_width(scope)
            self.expanded.discard(scope)
        self.relayout(wait=True)

    def relayout(self, *, wait: bool = False) -> None:
        """Tidy the whole graph in the thread pool (``wait``: block until done)."""
        if self._task is not None:
            self._task.cancelled = True
        self._generation += 1
        task = _RelayoutTask(self.layout, self._generation, dict(self.collapsed))
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
        self._fitted = False  # the tidy graph has a new extent: fit it once
        self._update_drawing()

    @property
    def busy(self) -> bool:
        """A relayout is running in the background."""
        return self._task is not None

    # -- view -------------------------------------------------------------------------------

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        """The empty state, in view coordinates, when there is no graph yet."""
        if self.model.nodes:
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(QColor(120, 124, 135))
        painter.drawText(
            self.viewport().rect(),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
            EMPTY_TEXT,
        )
        painter.restore()

    def fit(self) -> None:
        rect = self.item.boundingRect()
        if rect.isValid():
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
            if self.transform().m11() > 1.5:
                self.resetTransform()
                self.centerOn(rect.center())

    def zoom(self, factor: float) -> None:
        self.scale(factor, factor)

    def wheelEvent(self, event) -> None:
        self.zoom(1.0015 ** event.angleDelta().y())

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            pos = self.mapToScene(event.position().toPoint())
            index = self.node_at(pos)
            if index is not None:
                self.select(index, emit=True)
                return
        super().mousePressEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:
        scope = self.scope_header_at(self.mapToScene(event.position().toPoint()))
        if scope is not None:
            self.toggle_scope(scope)
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event) -> None:
        pos = self.mapToScene(event.pos())
        index = self.node_at(pos)
        menu = QMenu(self)
        if index is not None:
            node = self.model.nodes[index]
            self.select(index, emit=True)
            if node.node_id is not None:
                menu.addAction(f"Break at node {node.label}").triggered.connect(
                    lambda: self.sig_breakpoint_requested.emit("node", node.node_id)
                )
                menu.addAction(f"Break at every {node.op}").triggered.connect(
                    lambda: self.sig_breakpoint_requested.emit("op", node.op)
                )
            if node.scope:
                menu.addAction(f"Break on entering {node.scope}").triggered.connect(
                    lambda: self.sig_breakpoint_requested.emit("module", node.scope)
                )
                menu.addAction(f"Collapse {node.scope}").triggered.connect(
                    lambda: self.toggle_scope(node.scope)
                )
            menu.addAction("Check gradient").triggered.connect(
                lambda: self.sig_check_gradient.emit(index)
            )
            menu.addSeparator()
        scope = self.scope_header_at(pos)
        if scope is not None:
            text = "Expand" if scope in self.collapsed else "Collapse"
            menu.addAction(f"{text} {scope}").triggered.connect(lambda: self.toggle_scope(scope))
        fit = QAction("Fit to window", menu)
        fit.triggered.connect(self.fit)
        menu.addAction(fit)
        menu.addAction("Tidy layout").triggered.connect(lambda: self.relayout())
        menu.exec(event.globalPos())

    # -- export -----------------------------------------------------------------------------

    def _scene_rect(self) -> QRectF:
        return self.item.boundingRect()

    def export_png(self, path: str, scale: float = 1.0) -> None:
        rect = self._scene_rect()
        size = rect.size() * scale
        image = QImage(
            max(1, int(size.width())), max(1, int(size.height())), QImage.Format.Format_ARGB32
        )
        image.fill(BACKGROUND)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.scene().render(painter, QRectF(image.rect()), rect)
        painter.end()
        if not image.save(path):
            raise OSError(f"could not write {path}")

    def export_svg(self, path: str) -> None:
        from PySide6.QtSvg import QSvgGenerator

        rect = self._scene_rect()
        generator = QSvgGenerator()
        generator.setFileName(path)
        generator.setSize(rect.size().toSize())
        generator.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
        generator.setTitle("Gradstep graph")
        painter = QPainter(generator)
        painter.fillRect(QRectF(0, 0, rect.width(), rect.height()), BACKGROUND)
        self.scene().render(painter, QRectF(0, 0, rect.width(), rect.height()), rect)
        painter.end()

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
