"""The graph view's drawing caches: paths built from arrays, edge chunks, culling and
labels when zoomed in, the far-out edges, and feeding in batches (offscreen)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtGui import QImage, QPainterPath

from core.debug.session import Session
from core.observe.events import ModuleEnter, OpForward, TensorCreated
from widgets import graph_item
from widgets.graph_item import GraphItem, path_from_arrays
from widgets.graph_view import GraphView
from widgets.layout import training_dag

pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dag_events(n_nodes: int, seed: int = 1) -> list:
    """Engine events for a generated training graph (leaves, ops, module scopes)."""
    _, preds, _, groups = training_dag(n_nodes, seed)
    ops = ["tanh", "matmul", "add"]
    events, entered = [], set()
    for i, (p, scope) in enumerate(zip(preds, groups)):
        if scope and scope not in entered:
            entered.add(scope)
            events.append(ModuleEnter(scope, "Block"))
        if not p:
            events.append(
                TensorCreated(i + 1, "parameter", f"t{i}", (4,), "float32", "cpu", True, scope)
            )
        else:
            events.append(
                OpForward(
                    i + 1,
                    ops[min(len(p), 3) - 1],
                    tuple(q + 1 for q in p),
                    i + 1,
                    (),
                    (4, 4),
                    "float32",
                    "cpu",
                    0,
                    scope,
                    "forward",
                    True,
                )
            )
    return events


def elements(path: QPainterPath) -> list[tuple[int, float, float]]:
    out = []
    for i in range(path.elementCount()):
        e = path.elementAt(i)
        out.append((int(e.type.value), round(e.x, 6), round(e.y, 6)))
    return out


@pytest.fixture
def big_view(qtbot):
    view = GraphView()
    qtbot.addWidget(view)
    view.resize(800, 500)
    view.show()
    view.feed(dag_events(4200), 0)
    view.relayout(wait=True)
    return view


def render(view: GraphView) -> QImage:
    return view.viewport().grab().toImage()


def test_path_from_arrays_equals_the_painter_path_calls(qapp):
    expected = QPainterPath()
    expected.moveTo(1, 2)
    expected.lineTo(3, 4)
    expected.moveTo(5, 6)
    expected.cubicTo(7, 8, 9, 10, 11, 12)
    types = np.array([0, 1, 0, 2, 3, 3])
    xy = np.array([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12]], float)
    assert elements(path_from_arrays(types, xy)) == elements(expected)
    assert path_from_arrays(np.zeros(0, int), np.zeros((0, 2))).isEmpty()


def test_edge_chunks_hold_every_edge_as_the_per_edge_loop_draws_it(big_view):
    item: GraphItem = big_view.item
    item._build_edges()
    whole_plain, whole_grad, chunks = item._edges
    assert len(chunks) > graph_item.MAX_CHUNK_DRAWS
    # the reference: one moveTo and a polyline or a cubic per edge, as the view used to
    paths = big_view.layout.edge_paths()
    want = set()
    for k in range(len(paths.src)):
        p = paths.points[k]
        if paths.routed[k]:
            seq = [(0, *p[0]), (1, *p[1]), (1, *p[2]), (1, *p[3])]
        else:
            mid = (p[0, 0] + p[3, 0]) / 2
            seq = [(0, *p[0]), (2, mid, p[0, 1]), (3, mid, p[3, 1]), (3, *p[3])]
        want.add(tuple((t, round(x, 6), round(y, 6)) for t, x, y in seq))

    def edges_of(path: QPainterPath) -> list:
        e = elements(path)
        return [tuple(e[i : i + 4]) for i in range(0, len(e), 4)]

    def same(got: list) -> bool:  # equal up to float rounding in the last printed digit
        a, b = np.array(sorted(got), float), np.array(sorted(want), float)
        return a.shape == b.shape and np.allclose(a, b, rtol=0, atol=1e-5)

    assert same([edge for _, plain, grad in chunks for edge in edges_of(plain) + edges_of(grad)])
    assert same(edges_of(whole_plain) + edges_of(whole_grad))
    for box, plain, grad in chunks:  # each chunk's bounds hold its edges
        for path in (plain, grad):
            if not path.isEmpty():
                assert box.adjusted(-1e-6, -1e-6, 1e-6, 1e-6).contains(path.controlPointRect())


def test_zoomed_in_paints_only_the_exposed_nodes_with_labels(big_view, monkeypatch):
    assert len(big_view.model.nodes) > 3000
    seen = []
    original = GraphItem._paint_labels

    def paint_labels(self, painter, rects, index, lod):
        seen.append(len(index))
        original(self, painter, rects, index, lod)

    monkeypatch.setattr(GraphItem, "_paint_labels", paint_labels)
    big_view.resetTransform()
    big_view.centerOn(big_view.item.boundingRect().center())
    image = render(big_view)
    assert seen and 0 < seen[-1] < 200, "labels drawn for the few nodes in view"
    assert not image.isNull()


def test_far_out_draws_snapped_chords_and_nothing_else_changes(big_view):
    big_view.fit()
    lod = big_view.transform().m11()
    assert lod < graph_item.COARSE_LOD
    render(big_view)
    grid, plain, grad = big_view.item._coarse
    assert grid == 2.0 ** np.floor(np.log2(1 / lod))
    e = np.array([(x, y) for _, x, y in elements(plain)])
    assert len(e) and np.allclose(e / grid, np.rint(e / grid)), "points on the grid"
    assert len(e) < 4 * len(big_view.layout.edge_paths().src), "repeats and dots dropped"
    assert big_view.item._edges is None, "the full-detail paths are not built far out"


def test_repaint_matches_after_the_caches_are_dropped(big_view):
    big_view.resetTransform()
    big_view.scale(0.5, 0.5)
    big_view.centerOn(big_view.item.boundingRect().center())
    first = render(big_view)
    big_view.select(5)
    big_view.select(None)
    assert render(big_view) == first, "cached node lists and chunks give the same picture"
    big_view.item.invalidate()
    assert render(big_view) == first


@pytest.mark.parametrize("batch", [1, 17, 500, 10**6])
def test_feeding_in_batches_of_any_size_gives_the_same_graph(qtbot, batch):
    session = Session.from_file(os.path.join(ROOT, "samples", "control_flow.py"), steps=6)
    session.start()
    assert session.wait(60)
    events = session.recording.events
    one, batched = GraphView(), GraphView()
    qtbot.addWidget(one)
    qtbot.addWidget(batched)
    for k, event in enumerate(events):
        one.feed([event], k)
    for start in range(0, len(events), batch):
        batched.feed(events[start : start + batch], start)
    assert [n.label for n in batched.model.nodes] == [n.label for n in one.model.nodes]
    assert batched.model.edges == one.model.edges
    assert batched.scope_kinds == one.scope_kinds
    assert batched.node_colours() == one.node_colours()
    # A step's tidy-up runs in the thread pool and commits whenever it finishes,
    # so nodes placed meanwhile may sit elsewhere; a final tidy is deterministic.
    qtbot.waitUntil(lambda: not one.busy and not batched.busy, timeout=10_000)
    one.relayout(wait=True)
    batched.relayout(wait=True)
    assert np.array_equal(batched.layout.rects(), one.layout.rects(), equal_nan=True)


def test_export_png_far_out(big_view, tmp_path):
    path = tmp_path / "graph.png"
    big_view.export_png(str(path), 0.01)
    image = QImage(str(path))
    assert not image.isNull() and image.width() > 100


def test_export_png_is_twice_the_scene_size_by_default(qtbot, tmp_path):
    view = GraphView()
    qtbot.addWidget(view)
    view.feed(dag_events(40), 0)
    view.relayout(wait=True)
    path = tmp_path / "graph.png"
    view.export_png(str(path))
    rect = view.item.boundingRect()
    image = QImage(str(path))
    assert image.width() == int(rect.width() * 2) and image.height() == int(rect.height() * 2)


def test_going_back_then_forward_gives_the_graph_fed_straight_through(qtbot):
    from core.debug.naming import names_of_step
    from core.observe.events import StepStarted

    session = Session.from_file(os.path.join(ROOT, "samples", "mlp_moons.py"), steps=2)
    session.start()
    assert session.wait(60)
    events = session.recording.events
    start = max(i for i, e in enumerate(events) if type(e) is StepStarted)
    before = events[:start]
    straight, travelled = GraphView(), GraphView()
    qtbot.addWidget(straight)
    qtbot.addWidget(travelled)
    straight.rebuild(events[start:], start, before)
    travelled.rebuild(events[start:], start, before)
    back = start + (len(events) - start) // 3
    namer = names_of_step(events[start : back + 1], before)
    assert travelled.truncate(back, namer)
    assert len(travelled.model.nodes) < len(straight.model.nodes)
    travelled.feed(events[back + 1 :], back + 1)
    assert [n.label for n in travelled.model.nodes] == [n.label for n in straight.model.nodes]
    assert travelled.model.edges == straight.model.edges
    assert len(travelled.layout) == len(straight.layout), "the layout's nodes were reused"


def test_names_are_drawn_on_nodes_twelve_and_a_half_pixels_high(qapp):
    """The digits conv net at fit in the default window has nodes 12.5 px high: an
    8 px name fits them (the font was cut to 7 px, and no names were drawn)."""
    from PySide6.QtGui import QFont

    from widgets.graph_labels import MIN_PIXELS, pixel_font

    font = QFont()
    assert pixel_font(font, 12.5).pixelSize() == MIN_PIXELS == 8
    assert pixel_font(font, 11.0) is None  # 7 px: too small to read
    assert pixel_font(font, 40.0).pixelSize() == 11  # never bigger than the scene's
