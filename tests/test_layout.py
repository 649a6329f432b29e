"""The layered graph layout (widgets/layout.py): Qt-free, so no qtbot here."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # widgets/ is not installed

from widgets.layout import (  # noqa: E402
    Layout,
    LayoutCancelled,
    count_crossings,
    training_dag,
)

ID0 = 1000  # ids are not indices: node k of a generated graph gets id ID0 + 3k


def build(n: int, seed: int = 0, relayout: bool = False, **kw) -> tuple[Layout, list]:
    ids, preds, widths, groups = training_dag(n, seed)
    lay = Layout(**kw)
    lay.add_nodes(
        [ID0 + 3 * i for i in ids],
        [[ID0 + 3 * p for p in ps] for ps in preds],
        widths=widths,
        groups=groups,
    )
    if relayout:
        lay.relayout()
    return lay, preds


def graph_edges(preds: list) -> tuple[np.ndarray, np.ndarray]:
    src = np.array([p for ps in preds for p in ps], np.int64)
    dst = np.array([i for i, ps in enumerate(preds) for _ in ps], np.int64)
    return src, dst


def assert_no_overlap(lay: Layout) -> None:
    r, layer = lay.rects(), lay.layers()
    drawn = lay.drawn() & (layer >= 0)
    order = np.lexsort((r[drawn, 1], layer[drawn]))
    rr, ll = r[drawn][order], layer[drawn][order]
    same = ll[1:] == ll[:-1]
    assert np.all(rr[1:, 1][same] >= rr[:-1, 3][same] + lay.node_gap - 1e-6)


def assert_leaves_before_first_consumer(lay: Layout, preds: list) -> None:
    layer = lay.layers()
    first: dict[int, int] = {}
    for i, ps in enumerate(preds):
        for p in ps:
            first.setdefault(p, i)
    leaves = [i for i, ps in enumerate(preds) if not ps and i in first]
    assert leaves
    assert all(layer[i] == layer[first[i]] - 1 for i in leaves)


@pytest.fixture(scope="module")
def big() -> tuple[Layout, list, float]:
    ids, preds, widths, groups = training_dag(10_000, seed=3)
    lay = Layout()
    lay.add_nodes(ids, preds, widths=widths, groups=groups)
    start = time.perf_counter()
    lay.relayout()
    lay.edge_paths()
    return lay, preds, time.perf_counter() - start


# -- rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("relayout", [False, True], ids=["incremental", "relayout"])
def test_edges_run_left_to_right(relayout: bool) -> None:
    lay, preds = build(1500, seed=1, relayout=relayout)
    src, dst = graph_edges(preds)
    layer, xy = lay.layers(), lay.positions()[1]
    assert (layer >= 0).all()
    assert np.all(layer[dst] > layer[src])
    assert np.all(xy[dst, 0] > xy[src, 0])
    ops = np.array([bool(ps) for ps in preds])
    op_edges = ops[src]
    assert np.all(layer[dst][op_edges] >= layer[src][op_edges] + 1)
    r = lay.rects()
    assert np.all(r[dst, 0] > r[src, 2]) if relayout else True


@pytest.mark.parametrize("relayout", [False, True], ids=["incremental", "relayout"])
def test_leaves_sit_one_layer_before_their_first_consumer(relayout: bool) -> None:
    lay, preds = build(1500, seed=2, relayout=relayout)
    assert_leaves_before_first_consumer(lay, preds)
    layer = lay.layers()
    assert np.sum(layer == 0) <= 4  # no huge first layer of parameters and constants


@pytest.mark.parametrize("relayout", [False, True], ids=["incremental", "relayout"])
def test_nodes_do_not_overlap(relayout: bool) -> None:
    lay, _ = build(2000, seed=4, relayout=relayout)
    assert_no_overlap(lay)
    if relayout:  # columns are as wide as their widest node
        r, layer = lay.rects(), lay.layers()
        right = np.full(layer.max() + 1, -np.inf)
        left = np.full(layer.max() + 1, np.inf)
        np.maximum.at(right, layer, r[:, 2])
        np.minimum.at(left, layer, r[:, 0])
        assert np.all(left[1:] >= right[:-1] + lay.layer_gap - 1e-6)


def test_incremental_and_relayout_agree_on_layers() -> None:
    lay, _ = build(1200, seed=5)
    before = lay.layers().copy()
    lay.relayout()
    assert np.array_equal(lay.layers(), before)


def test_leaf_waits_in_staging_until_consumed() -> None:
    lay = Layout()
    lay.add_node(7, (), "parameter", 50)
    lay.add_node(8, (), "input", 50)
    assert lay.pending().tolist() == [7, 8]
    assert lay.layers().tolist() == [-1, -1]
    assert lay.node_xy(7)[0] < 0  # left of layer 0
    lay.add_node(9, (8, 7), "op", 50)
    assert lay.pending().tolist() == []
    assert lay.layers().tolist() == [0, 0, 1]
    (x7, y7), (x9, y9) = lay.node_xy(7), lay.node_xy(9)
    assert abs(y7 - y9) <= lay.sep and x7 < x9


def test_bad_input_names_the_node() -> None:
    lay = Layout()
    lay.add_node(1)
    with pytest.raises(ValueError, match="node 1 was added twice"):
        lay.add_node(1)
    with pytest.raises(ValueError, match="node 2: input 5 is unknown"):
        lay.add_node(2, (5,))
    assert len(lay) == 1
    with pytest.raises(ValueError, match="shape"):
        lay.relayout(visible=[True, False])


# -- incremental and deterministic -------------------------------------------------------


def test_incremental_adds_do_not_move_placed_nodes() -> None:
    ids, preds, widths, groups = training_dag(1500, seed=6)
    lay = Layout()
    seen_xy = np.zeros((0, 2))
    seen_placed = np.zeros(0, bool)
    for i in ids:
        lay.add_node(i, preds[i], width=widths[i], group=groups[i])
        if i % 50 == 49 or i == ids[-1]:
            xy = lay.positions()[1]
            placed = lay.layers() >= 0
            k = len(seen_xy)
            assert np.array_equal(xy[:k][seen_placed], seen_xy[seen_placed])
            assert not np.any(seen_placed & ~placed[:k])
            seen_xy, seen_placed = xy.copy(), placed.copy()
        if i == 700:  # and again after a tidy pass
            lay.relayout()
            seen_xy, seen_placed = lay.positions()[1].copy(), lay.layers() >= 0
    assert_no_overlap(lay)


def test_same_input_same_layout() -> None:
    a, _ = build(1500, seed=7, relayout=True)
    b, _ = build(1500, seed=7)
    b.relayout()
    b.relayout()  # a second pass starts from scratch, not from the first one
    assert np.array_equal(a.positions()[0], b.positions()[0])
    assert np.array_equal(a.positions()[1], b.positions()[1])
    pa, pb = a.edge_paths(), b.edge_paths()
    assert np.array_equal(pa.src, pb.src) and np.array_equal(pa.dst, pb.dst)
    assert np.array_equal(pa.points, pb.points)
    assert a.bounds() == b.bounds()


def test_nodes_arriving_during_relayout_are_placed_on_top() -> None:
    ids, preds, widths, groups = training_dag(900, seed=8)
    lay = Layout()
    lay.add_nodes(ids[:800], preds[:800], widths=widths[:800])
    arrived = []

    def progress(f: float) -> bool:
        if f >= 0.5 and not arrived:  # runs outside the lock, as in a worker thread
            lay.add_nodes(ids[800:], preds[800:], widths=widths[800:])
            arrived.append(f)
        return True

    stats = lay.relayout(progress=progress)
    assert stats.nodes == 800 and len(lay) == 900
    assert (lay.layers() >= 0).sum() >= 895
    assert_no_overlap(lay)
    ref = Layout()
    ref.add_nodes(ids[:800], preds[:800], widths=widths[:800])
    ref.relayout()
    assert np.array_equal(lay.positions()[1][:800], ref.positions()[1])


def test_relayout_in_a_worker_thread_while_nodes_arrive() -> None:
    ids, preds, widths, _ = training_dag(4000, seed=14)
    lay = Layout()
    lay.add_nodes(ids[:2000], preds[:2000], widths=widths[:2000])
    done = []
    worker = threading.Thread(target=lambda: done.append(lay.relayout()))
    worker.start()
    lay.add_nodes(ids[2000:], preds[2000:], widths=widths[2000:])
    worker.join()
    assert done[0].nodes == 2000 and len(lay) == 4000
    assert np.isfinite(lay.positions()[1]).all() and len(lay.pending()) == 0
    assert_no_overlap(lay)


def test_empty_and_tiny_layouts() -> None:
    lay = Layout()
    assert lay.relayout().nodes == 0 and lay.bounds() == (0.0, 0.0, 0.0, 0.0)
    assert lay.edge_paths().points.shape == (0, 4, 2) and lay.box("") is None
    lay.add_node(5)
    lay.relayout()
    assert lay.pending().tolist() == [5] and np.isfinite(lay.positions()[1]).all()


# -- crossings -------------------------------------------------------------------------


def test_count_crossings_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 60, 333):
        g = rng.integers(0, 4, n)
        a = rng.integers(0, 6, n).astype(float)
        b = rng.integers(0, 6, n).astype(float)
        same = g[:, None] == g[None, :]
        cross = (a[:, None] < a[None, :]) & (b[:, None] > b[None, :])
        assert count_crossings(g, a, b) == int((same & cross).sum())


def test_barycenter_sweeps_reduce_crossings() -> None:
    better = 0
    for seed in range(6):
        lay, _ = build(1000, seed=seed)
        arrival = lay.relayout(sweeps=0)
        assert arrival.crossings == arrival.crossings_initial == lay.crossings()
        stats = lay.relayout(sweeps=4)
        assert stats.crossings_initial == arrival.crossings
        assert stats.crossings <= stats.crossings_initial
        assert lay.crossings() == stats.crossings  # the straightened y keep the order
        better += stats.crossings < stats.crossings_initial
    assert better >= 4


# -- views: scopes, collapsing, hiding ----------------------------------------------------


def test_box_of_a_scope_encloses_its_nodes() -> None:
    lay, _ = build(1200, seed=9, relayout=True)
    _, _, _, groups = training_dag(1200, seed=9)
    r = lay.rects()
    for scope in sorted(set(groups)) + ["model"]:
        x0, y0, x1, y1 = lay.box(scope, pad=4)
        inside = np.array([g == scope or g.startswith(scope + ".") for g in groups])
        assert np.all(r[inside, 0] >= x0 + 4) and np.all(r[inside, 2] <= x1 - 4)
        assert np.all(r[inside, 1] >= y0 + 4) and np.all(r[inside, 3] <= y1 - 4)
    assert lay.box("no.such.scope") is None
    assert lay.box("") == lay.bounds()


def test_collapsed_scope_is_one_box_node() -> None:
    lay, preds = build(1200, seed=10)
    _, _, _, groups = training_dag(1200, seed=10)
    scope = next(g for g in groups if g.startswith("model.") and g != "model.mlp0")
    lay.relayout(collapsed={scope: 150.0})
    inside = np.nonzero([g == scope for g in groups])[0]
    xy, r = lay.positions()[1], lay.rects()
    box = r[inside[0]]
    assert np.all(xy[inside] == xy[inside[0]])
    assert box[2] - box[0] == 150.0
    assert lay.box(scope) == tuple(box.tolist())
    drawn = lay.drawn()
    assert drawn[inside].sum() == 1
    src, dst = lay.edges()
    assert drawn[src].all() and drawn[dst].all() and np.all(src != dst)
    assert len(lay.pending()) == 0
    assert_no_overlap(lay)
    lay.add_node(ID0 + 3 * 1200, [ID0 + 3 * inside[-1]], group=scope)  # joins the box
    assert lay.drawn()[-1] == False  # noqa: E712
    lay.relayout()  # expanded again
    assert lay.drawn().all()


def test_hidden_nodes_are_not_drawn() -> None:
    lay, preds = build(800, seed=11)
    visible = np.ones(800, bool)
    visible[::5] = False
    lay.relayout(visible=visible)
    xy = lay.positions()[1]
    assert np.isnan(xy[~visible]).all() and np.isfinite(xy[visible]).all()
    src, dst = lay.edges()
    assert visible[src].all() and visible[dst].all()
    assert_no_overlap(lay)
    lay.add_node(ID0 + 3 * 800, [ID0 + 3 * 799])  # later nodes are visible
    assert np.isfinite(lay.positions()[1][-1]).all()


# -- edges -------------------------------------------------------------------------------


def test_edge_paths_leave_and_enter_node_sides_and_lanes_clear_nodes() -> None:
    lay, _ = build(1500, seed=12, relayout=True)
    paths = lay.edge_paths()
    src, dst = lay.edges()
    assert np.array_equal(paths.src, src) and np.array_equal(paths.dst, dst)
    r, xy, layer = lay.rects(), lay.positions()[1], lay.layers()
    pts = paths.points
    assert pts.shape == (len(src), 4, 2)
    assert np.allclose(pts[:, 0], np.stack([r[src, 2], xy[src, 1]], axis=1))
    assert np.allclose(pts[:, 3], np.stack([r[dst, 0], xy[dst, 1]], axis=1))
    direct = ~paths.routed
    assert np.array_equal(pts[direct, 1], pts[direct, 0])
    assert paths.routed.sum() > 0
    assert np.all(paths.routed <= (layer[dst] - layer[src] > 1))
    for e in np.nonzero(paths.routed)[0][:300]:  # a lane passes no node on its way
        mid = (layer > layer[src[e]]) & (layer < layer[dst[e]])
        lane = pts[e, 1, 1]
        assert pts[e, 1, 1] == pts[e, 2, 1]
        assert not np.any(mid & (r[:, 1] <= lane) & (r[:, 3] >= lane))
    for e in np.nonzero(direct & (layer[dst] - layer[src] > 1))[0][:300]:
        mid = (layer > layer[src[e]]) & (layer < layer[dst[e]])
        ys = pts[e, [0, 3], 1]
        above = r[mid, 1] > ys.max()
        below = r[mid, 3] < ys.min()
        assert np.all(above) or np.all(below)


# -- large graphs, progress, cancellation --------------------------------------------------


def test_ten_thousand_nodes_lay_out(big) -> None:
    lay, preds, seconds = big
    assert len(lay) == 10_000
    xy = lay.positions()[1]
    assert np.isfinite(xy).all() and len(lay.pending()) == 0
    assert_no_overlap(lay)
    assert_leaves_before_first_consumer(lay, preds)
    assert seconds < 5.0  # bench/layout_bench.py checks the 1 s target


def test_progress_reports_and_cancels() -> None:
    lay, _ = build(2000, seed=13, relayout=True)
    before = lay.positions()[1].copy()
    seen: list[float] = []
    lay.relayout(sweeps=2, progress=lambda f: seen.append(f))
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)
    assert len(seen) >= 5
    calls: list[float] = []

    def stop_halfway(f: float) -> bool:
        calls.append(f)
        return f < 0.5

    with pytest.raises(LayoutCancelled):
        lay.relayout(sweeps=8, collapsed=["model.mlp0"], progress=stop_halfway)
    assert calls[-1] >= 0.5 and calls[-1] < 1.0
    assert np.array_equal(lay.positions()[1], before)
    assert lay.drawn().all()  # the collapsed view was not committed
