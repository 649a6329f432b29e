"""The engine's contract: every value an op or a declared input, state explicit,
observing changes nothing (what lets one engine run eager and traced).

The op sequences here are read through the dispatch hook, the deferred
compiler's tracer's own entry point, so they do not depend on the bus.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import core
import core.functional as F
from core import nn, optim
from core.debug import program as programs
from core.debug import recfile
from core.engine import dispatch
from core.engine.ops import Op
from core.observe.bus import BUS
from core.observe.events import OpForward

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "samples")
SAMPLE_FILES = sorted(f for f in os.listdir(SAMPLES) if f.endswith(".py"))


@contextmanager
def dispatched() -> Iterator[list[tuple]]:
    """Every op and leaf the engine makes, as plain tuples, while the block runs."""
    seen: list[tuple] = []

    def hook(kind: str, payload) -> None:
        if kind == "op":
            nid, opdef, inputs, attrs, result, side, value_id = payload
            ids = tuple(t.id for t in inputs)
            out = result.id if value_id is None else value_id
            label = opdef.label if value_id is None else opdef.label_
            seen.append(("op", nid, label, ids, out, tuple(attrs.items()), result.shape))
        elif kind == "constant":
            seen.append((kind, payload.id, payload.shape, str(payload.dtype)))
        elif kind == "leaf":
            t, what = payload
            seen.append((kind, t.id, t.shape, str(t.dtype), what))
        elif kind == "read":
            return payload[2]  # the value read out, unchanged
        return None

    previous = dispatch.set_hook(hook)
    try:
        yield seen
    finally:
        dispatch.set_hook(previous)


def one_step(path: str, subscribe: bool) -> tuple[list[tuple], dict[str, np.ndarray]]:
    """Build the program and run its first training step; (ops, parameters after)."""
    program = programs.load(path)
    core.reset_ids()
    unsubscribe = None
    if subscribe:
        unsubscribe = BUS.subscribe(
            lambda e, arrays: None, stats=True, source=True, values=True, backward_ops=True
        )
    try:
        with dispatched() as seen:
            run = program.build("cpu")
            run.step(run.batches(0)) if run.batches else run.step()
    finally:
        if unsubscribe:
            unsubscribe()
    params = {name: p.numpy().copy() for name, p in run.named_parameters()}
    return seen, params


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_observing_changes_nothing(name: str) -> None:
    """One step of each sample, with and without a subscriber taking everything:
    the same ops (kind, ids, attrs, shapes), the same parameters after."""
    path = os.path.join(SAMPLES, name)
    quiet, quiet_params = one_step(path, subscribe=False)
    loud, loud_params = one_step(path, subscribe=True)
    assert len(quiet) == len(loud) and quiet == loud
    assert quiet_params.keys() == loud_params.keys()
    for key, value in quiet_params.items():
        np.testing.assert_array_equal(value, loud_params[key], err_msg=key)


def op_sequence(seen: list[tuple]) -> list[tuple]:
    """What a step does, without the ids (which grow from step to step). State a
    device makes on first use (dropout's seed) is made before the step's ops
    can differ: it is a leaf, not an op."""
    kept = [e for e in seen if not (e[0] == "leaf" and e[4] == "state")]
    return [(e[2], e[5], e[6]) if e[0] == "op" else (e[0], e[2], e[3]) for e in kept]


def test_adam_steps_run_the_same_ops() -> None:
    """State is made up front: steps 1, 2 and 50 of mlp_moons run the same ops."""
    run = programs.load(os.path.join(SAMPLES, "mlp_moons.py")).build("cpu")
    sequences = {}
    for i in range(50):
        with dispatched() as seen:
            run.step()
        if i in (0, 1, 49):
            sequences[i] = op_sequence(seen)
    assert sequences[0] == sequences[1] == sequences[49]
    labels = [e[0] for e in sequences[0]]
    assert labels.count("sub_") == 4 and labels.count("lerp_") == 4  # one per parameter


def test_dropout_steps_run_the_same_ops() -> None:
    core.manual_seed(0)
    layer = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))
    x = core.randn(2, 3)
    masks, sequences = [], []
    for _ in range(3):
        with dispatched() as seen:
            y = layer(x)
        sequences.append(op_sequence(seen))
        masks.append(y.numpy() != 0)
    assert sequences[0] == sequences[1] == sequences[2]
    assert any((masks[0] != m).any() for m in masks[1:]), "each call draws a new mask"
    core.manual_seed(0)
    layer2 = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5))
    np.testing.assert_array_equal(layer2(core.randn(2, 3)).numpy() != 0, masks[0])


def test_every_apply_is_an_event_for_a_subscriber_that_asks() -> None:
    """With backward_ops, one OpForward per op the engine runs, the backward's own
    ops included, each naming the forward node its rule belongs to."""
    core.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = core.randn(16, 2), core.randn(16, 1)
    events: list = []
    unsubscribe = BUS.subscribe(events.append, backward_ops=True)
    try:
        with dispatched() as seen:
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
    finally:
        unsubscribe()
    ops = [e for e in seen if e[0] == "op"]
    forwards = [e for e in events if isinstance(e, OpForward)]
    assert [e.node_id for e in forwards] == [e[1] for e in ops]
    backward = [e for e in forwards if e.phase == "backward"]
    assert {e.op for e in backward} >= {"mse_loss_backward", "tanh_backward", "matmul"}
    forward_nodes = {e.node_id for e in forwards if e.phase == "forward"}
    assert all(e.grad_of in forward_nodes for e in backward if e.op != "accumulate_grad")


def test_attrs_are_plain_json() -> None:
    for name in SAMPLE_FILES:
        seen, _ = one_step(os.path.join(SAMPLES, name), subscribe=False)
        for e in seen:
            if e[0] == "op":
                json.dumps(dict(e[5]), allow_nan=True)  # raises on arrays, slices


def test_side_outputs_are_values_of_the_graph() -> None:
    """A forward's saved softmax is an output of the op, read as a tensor."""
    logits = core.tensor([[1.0, 2.0, 0.5]], requires_grad=True)
    loss = F.cross_entropy(logits, core.tensor([1]))
    node = loss.node
    probs = node.out(1)
    assert probs.node is node and probs.requires_grad
    np.testing.assert_allclose(probs.numpy(), F.softmax(logits).numpy(), rtol=1e-6)
    assert node.out(1).id == probs.id  # the same value each time it is read


def test_index_arrays_are_inputs_not_attrs() -> None:
    x = core.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    rows = core.tensor([2, 0, 2])
    picked = x[rows, 1:]
    assert picked.node.inputs[1] is rows
    assert picked.node.attrs == {"index": (("index", 0), ("slice", 1, None, None))}
    picked.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0], [0.0, 0.0], [0.0, 2.0]])


def test_in_place_writes_keep_the_tensor_and_refuse_the_graph() -> None:
    w = core.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(core.GradError, match="in place"):
        w.add_(1.0)
    with core.no_grad():
        same = w.add_(1.0)
    assert same is w and w.tolist() == [2.0, 3.0]


# -- the four bugs ---------------------------------------------------------------------


def test_grad_touches_no_dot_grad() -> None:
    """A gradient penalty: core.grad computes what is asked and nothing else."""
    w = core.tensor([0.5, -1.0], requires_grad=True)
    b = core.tensor(0.3, requires_grad=True)
    x = core.tensor([1.0, 2.0], requires_grad=True)
    out = ((w * x).sum() + b).tanh()
    (gx,) = core.grad(out, [x], create_graph=True)
    assert w.grad is None and b.grad is None and x.grad is None
    penalty = (gx * gx).sum()
    penalty.backward()

    # d/dw of sum((w * (1 - tanh^2))^2): checked against finite differences
    def value(wv):
        s = math.tanh(wv[0] * 1.0 + wv[1] * 2.0 + 0.3)
        return sum((wi * (1 - s * s)) ** 2 for wi in wv)

    eps = 1e-4
    numeric = [
        (
            value([0.5 + eps * (i == 0), -1.0 + eps * (i == 1)])
            - value([0.5 - eps * (i == 0), -1.0 - eps * (i == 1)])
        )
        / (2 * eps)
        for i in range(2)
    ]
    np.testing.assert_allclose(w.grad.numpy(), numeric, rtol=1e-3)


def test_grad_of_an_unused_input_is_an_error_or_none() -> None:
    """As torch.autograd.grad: allow_unused=False by default."""
    a = core.tensor(1.0, requires_grad=True)
    b = core.tensor(2.0, requires_grad=True)
    with pytest.raises(core.GradError, match="does not depend on input"):
        core.grad(a * 3.0, [a, b])
    ga, gb = core.grad(a * 3.0, [a, b], allow_unused=True)
    assert ga.item() == 3.0 and gb is None


@pytest.mark.parametrize("observed", [False, True])
def test_tensors_combine_with_arrays_and_lists(observed: bool) -> None:
    unsubscribe = BUS.subscribe(lambda e: None) if observed else None
    try:
        x = core.tensor([1.0, 2.0, 3.0])
        assert (x + np.ones(3)).tolist() == [2.0, 3.0, 4.0]
        assert (x * [1.0, 0.0, 2.0]).tolist() == [1.0, 0.0, 6.0]
        m = core.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        assert (np.ones((4, 3)) @ m).shape == (4, 2)
    finally:
        if unsubscribe:
            unsubscribe()


def grads_at_zero(fn, *values):
    inputs = [core.tensor(v, dtype="float64", requires_grad=True) for v in values]
    with np.errstate(all="ignore"):  # the masked branches still meet 0 ** -1
        fn(*inputs).sum().backward()
    return [t.grad.numpy() for t in inputs]


def test_pow_gradients_at_zero_are_pytorchs() -> None:
    (g,) = grads_at_zero(lambda x: x**0, [0.0, 2.0])
    np.testing.assert_array_equal(g, [0.0, 0.0])
    ga, gb = grads_at_zero(lambda a, b: a**b, [0.0, 0.0, 0.0], [0.0, 2.0, 1.0])
    np.testing.assert_array_equal(ga, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(gb, [0.0, 0.0, 0.0])
    (gt,) = grads_at_zero(lambda t: 0.0**t, [1.0, 2.0])
    np.testing.assert_array_equal(gt, [0.0, 0.0])


@pytest.mark.parametrize(
    "loss",
    [
        lambda x: x.mean(axis=0).sum(),
        lambda x: F.cross_entropy(x, core.tensor(np.zeros(0, np.int64))),
        lambda x: F.mse_loss(x, core.zeros(0, 3, dtype=np.float64)),
    ],
    ids=["mean", "cross_entropy", "mse_loss"],
)
def test_empty_reductions_give_nan_not_an_exception(loss) -> None:
    x = core.tensor(np.zeros((0, 3)), dtype="float64", requires_grad=True)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy: "Mean of empty slice"
        out = loss(x)
        assert out.shape == () or out.numel() <= 3
        out.sum().backward() if out.numel() != 1 else out.backward()
    assert x.grad.shape == (0, 3)
    if out.numel() == 1:
        assert math.isnan(out.item()) or out.item() == 0.0


def test_a_recording_from_before_the_contract_still_loads() -> None:
    path = os.path.join(os.path.dirname(__file__), "data", "recording-before-contract.gsrec")
    rec = recfile.load(path)
    ops = [e.op for e in rec.events if isinstance(e, OpForward)]
    assert "tanh" in ops and rec.losses and len(rec) == 38


def test_gelu_is_exact_by_default() -> None:
    x = core.tensor([-1.5, 0.3, 2.0], dtype="float64")
    exact = [v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.tolist()]
    np.testing.assert_allclose(F.gelu(x).numpy(), exact, rtol=1e-12)
    assert F.gelu(x, approximate="tanh").node is None or True
    assert not np.allclose(F.gelu(x, approximate="tanh").numpy(), exact, rtol=1e-6)


def test_every_op_is_registered_with_its_rules() -> None:
    from core.engine.ops import ELEMENTWISE, REGISTRY

    for op in Op:
        d = REGISTRY[op]
        assert d.infer is not None, f"{op.label} has no shape rule"
        assert (d.expr is not None) == (op in ELEMENTWISE), op.label
