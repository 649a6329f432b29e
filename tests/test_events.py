"""The events of one training step: what a debugger sees, in what order, and how ids link.

One step of a small MLP (forward, mse_loss, backward, SGD) runs under a subscriber;
the tests check the module nesting, the forward ops and their scopes, that every
id an event names was introduced earlier, the user's source lines, the backward
order, the gradients and the updates, and the statistics against NumPy.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
from helpers_data import assert_stats, needs_gpu, next_line

import core
import core.functional as F
from core import device, nn, optim
from core.observe.bus import BUS
from core.observe.events import (
    BackwardEnded,
    BackwardStarted,
    GradAccumulated,
    ModuleEnter,
    ModuleExit,
    OpBackward,
    OpForward,
    ParameterUpdated,
    TensorCreated,
)

HERE = os.path.abspath(__file__)
LR = 0.1
PARAM_NAMES = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


class MLP(nn.Module):
    """Defined here, not shared: source lines inside forward must point at this file."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 8)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def run_step(model: nn.Module, opt: optim.Optimizer) -> SimpleNamespace:
    """One training step; records the line of each statement the tests look for."""
    lines = {}
    lines["announce"] = next_line()
    model.announce_parameters()
    lines["x"] = next_line()
    x = core.randn(4, 2)
    lines["y"] = next_line()
    y = core.randn(4, 1)
    lines["forward"] = next_line()
    out = model(x)
    lines["loss"] = next_line()
    loss = F.mse_loss(out, y)
    opt.zero_grad()
    loss.backward()
    lines["step"] = next_line()
    opt.step()
    return SimpleNamespace(x=x, y=y, out=out, loss=loss, lines=lines)


@pytest.fixture
def recorder():
    """``recorder(**options)`` subscribes a list to the bus; all are unsubscribed after."""
    unsubscribers = []

    def subscribe(**options):
        seen = []
        if options.get("values"):

            def callback(event, arrays):
                copies = {k: np.array(device.to_host(v), copy=True) for k, v in arrays.items()}
                seen.append((event, copies))

        else:
            callback = seen.append
        unsubscribers.append(BUS.subscribe(callback, **options))
        return seen

    yield subscribe
    for unsubscribe in unsubscribers:
        unsubscribe()


@pytest.fixture
def step(recorder):
    """One step of ``MLP`` with stats, sources and values; its events and values."""
    core.manual_seed(0)
    model = MLP()
    opt = optim.SGD(model.parameters(), lr=LR)
    before = {name: p.numpy().copy() for name, p in model.named_parameters()}
    seen = recorder(stats=True, source=True, values=True)
    result = run_step(model, opt)
    result.model = model
    result.params = dict(model.named_parameters())
    result.before = before
    result.events = [event for event, _arrays in seen]
    result.arrays = [arrays for _event, arrays in seen]
    result.values = {}
    for arrays in result.arrays:
        result.values.update(arrays)
    return result


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def forward_ops(events):
    return [e for e in of(events, OpForward) if e.phase == "forward"]


def check_nesting(events) -> None:
    """ModuleEnter/Exit pairs nest, and each forward op's scope is the open module."""
    stack: list[str] = []
    for e in events:
        if isinstance(e, ModuleEnter):
            if stack:
                assert e.path.startswith(stack[-1] + "."), (e.path, stack)
            stack.append(e.path)
        elif isinstance(e, ModuleExit):
            assert stack and stack[-1] == e.path, f"exit {e.path} while {stack} are open"
            stack.pop()
        elif isinstance(e, OpForward) and e.phase == "forward":
            assert e.scope == (stack[-1] if stack else ""), (e.op, e.scope, stack)
    assert stack == [], f"modules never exited: {stack}"


# -- modules and forward ops ----------------------------------------------------------


def test_module_events_nest_with_dotted_paths(step):
    marks = [
        (type(e).__name__, e.path, e.kind)
        for e in step.events
        if isinstance(e, ModuleEnter | ModuleExit)
    ]
    assert marks == [
        ("ModuleEnter", "model", "MLP"),
        ("ModuleEnter", "model.fc1", "Linear"),
        ("ModuleExit", "model.fc1", "Linear"),
        ("ModuleEnter", "model.act", "Tanh"),
        ("ModuleExit", "model.act", "Tanh"),
        ("ModuleEnter", "model.fc2", "Linear"),
        ("ModuleExit", "model.fc2", "Linear"),
        ("ModuleExit", "model", "MLP"),
    ]
    check_nesting(step.events)


def test_nested_sequential_paths(recorder):
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
            self.head = nn.Linear(3, 1)

        def forward(self, x):
            return self.head(self.body(x))

    seen = recorder()
    Net()(core.randn(5, 2))
    check_nesting(seen)
    entered = [e.path for e in of(seen, ModuleEnter)]
    assert entered == ["model", "model.body", "model.body.0", "model.body.1", "model.head"]
    scopes = [(e.op, e.scope) for e in forward_ops(seen)]
    assert scopes == [
        ("linear", "model.body.0"),
        ("relu", "model.body.1"),
        ("linear", "model.head"),
    ]


def test_forward_ops_in_execution_order(step):
    fwd = forward_ops(step.events)
    assert [(e.op, e.scope) for e in fwd] == [
        ("linear", "model.fc1"),
        ("tanh", "model.act"),
        ("linear", "model.fc2"),
        ("mse_loss", ""),
    ]
    assert [e.shape for e in fwd] == [(4, 8), (4, 8), (4, 1), ()]
    assert fwd[0].attrs == ()
    ids = [e.node_id for e in fwd]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for e in fwd:
        assert (e.dtype, e.device, e.requires_grad) == ("float32", "cpu", True)
        assert isinstance(e.duration_ns, int) and e.duration_ns >= 0


def test_forward_ids_link_leaves_and_outputs(step):
    p = {name: t.id for name, t in step.params.items()}
    lin1, tanh, lin2, mse = forward_ops(step.events)
    assert lin1.inputs == (step.x.id, p["fc1.weight"], p["fc1.bias"])
    assert tanh.inputs == (lin1.output,)
    assert lin2.inputs == (tanh.output, p["fc2.weight"], p["fc2.bias"])
    assert lin2.output == step.out.id
    assert mse.inputs == (step.out.id, step.y.id)
    assert mse.output == step.loss.id
    assert mse.node_id == step.loss.node.id


def test_every_id_is_introduced_before_use(step):
    known: set[int] = set()
    for e in step.events:
        if isinstance(e, TensorCreated):
            assert e.tensor_id not in known
            known.add(e.tensor_id)
        elif isinstance(e, OpForward):
            missing = [i for i in e.inputs if i not in known]
            assert not missing, f"{e.op} node {e.node_id} uses unannounced ids {missing}"
            assert e.output not in known
            known.add(e.output)
        elif isinstance(e, OpBackward):
            assert set(e.inputs) <= known
            known.update(g for g in e.grad_inputs if g is not None)
        elif isinstance(e, GradAccumulated):
            assert e.tensor_id in known and e.grad_id in known
        elif isinstance(e, ParameterUpdated):
            assert e.tensor_id in known and e.value_id in known


def test_leaves_are_announced(step):
    created = of(step.events, TensorCreated)
    params = [e for e in created if e.kind == "parameter"]
    assert [(e.name, e.tensor_id) for e in params] == [
        (name, step.params[name].id) for name in PARAM_NAMES
    ]
    for e in params:
        assert e.requires_grad and e.shape == step.params[e.name].shape
        assert (e.dtype, e.device, e.scope) == ("float32", "cpu", "")
    inputs = {e.tensor_id: e for e in created if e.kind == "input"}
    assert set(inputs) == {step.x.id, step.y.id}
    assert inputs[step.x.id].shape == (4, 2) and not inputs[step.x.id].requires_grad
    assert inputs[step.y.id].shape == (4, 1)


def model_line() -> int:
    """The line of ``MLP.forward`` that calls the layers."""
    lines, start = inspect.getsourcelines(MLP.forward)
    return start + next(i for i, text in enumerate(lines) if "return" in text)


def test_sources_point_at_the_users_lines(step):
    lines = step.lines
    for e in step.events:
        if isinstance(e, TensorCreated | OpForward):
            assert e.source is not None, e
            assert e.source.file == HERE, e.source
    created = {e.tensor_id: e.source for e in of(step.events, TensorCreated)}
    assert created[step.x.id].line == lines["x"]
    assert created[step.y.id].line == lines["y"]
    for name in PARAM_NAMES:
        assert created[step.params[name].id].line == lines["announce"]
    fwd = forward_ops(step.events)
    # Ops inside the model point at the user's model code, the loss at the step.
    assert {(e.source.line, e.source.function) for e in fwd[:-1]} == {(model_line(), "forward")}
    assert (fwd[-1].source.line, fwd[-1].source.function) == (lines["loss"], "run_step")
    updates = [e for e in of(step.events, OpForward) if e.phase == "update"]
    assert updates and {e.source.line for e in updates} == {lines["step"]}
    assert str(fwd[-1].source) == f"{HERE}:{lines['loss']} in run_step"


def test_sources_of_a_sequential_point_at_the_call(recorder):
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh())
    x = core.randn(2, 2)
    seen = recorder(source=True)
    line = next_line()
    model(x)
    fwd = forward_ops(seen)
    assert [e.op for e in fwd] == ["linear", "tanh"]
    assert {(e.source.file, e.source.line) for e in fwd} == {(HERE, line)}


def test_events_are_frozen_and_hold_no_arrays(step):
    for e in step.events:
        for field in dataclasses.fields(e):
            value = getattr(e, field.name)
            assert not isinstance(value, np.ndarray), (type(e).__name__, field.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        step.events[0].kind = "changed"


def test_every_event_class_behaves_as_a_frozen_dataclass():
    """``events.event`` builds them faster; the dataclass contract still holds."""
    import core.observe.events as ev

    classes = [c for c in vars(ev).values() if isinstance(c, type) and dataclasses.is_dataclass(c)]
    assert OpForward in classes and ev.Stats in classes and len(classes) == 18
    for cls in classes:
        fields = dataclasses.fields(cls)
        required = {f.name: i for i, f in enumerate(fields) if f.default is dataclasses.MISSING}
        e = cls(**required)
        for f in fields:  # each value where it belongs, defaults filled in
            expected = required[f.name] if f.name in required else f.default
            assert getattr(e, f.name) == expected, (cls.__name__, f.name)
        assert e == cls(*[getattr(e, f.name) for f in fields])  # positional too
        assert hash(e) == hash(cls(**required))
        assert not hasattr(e, "__dict__"), cls.__name__  # slots
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(e, fields[0].name, "changed")
        with pytest.raises(TypeError):
            cls(**required, unknown=1)
        if required:
            with pytest.raises(TypeError):
                cls()


# -- backward ---------------------------------------------------------------------------


def test_backward_started_lists_the_forward_nodes_consumers_first(step):
    fwd = forward_ops(step.events)
    (started,) = of(step.events, BackwardStarted)
    assert started.root == step.loss.id
    assert sorted(started.nodes) == sorted(e.node_id for e in fwd)
    position = {node: i for i, node in enumerate(started.nodes)}
    for e in fwd:
        for consumer in fwd:
            if e.output in consumer.inputs:
                assert position[consumer.node_id] < position[e.node_id], (consumer.op, e.op)


def test_op_backward_in_reverse_topological_order(step):
    fwd = {e.node_id: e for e in forward_ops(step.events)}
    (started,) = of(step.events, BackwardStarted)
    bwd = of(step.events, OpBackward)
    assert [b.node_id for b in bwd] == list(started.nodes)
    done: set[int] = set()
    for b in bwd:
        f = fwd[b.node_id]
        assert (b.op, b.inputs) == (f.op, f.inputs)
        consumers = [c.node_id for c in fwd.values() if f.output in c.inputs]
        assert set(consumers) <= done, f"{b.op} ran before the nodes that consumed it"
        done.add(b.node_id)
        assert len(b.grad_inputs) == len(b.inputs)
        assert b.duration_ns >= 0


def test_gradients_flow_along_the_graph(step):
    fwd = {e.node_id: e for e in forward_ops(step.events)}
    shapes = {e.output: e.shape for e in fwd.values()}
    shapes.update((p.id, p.shape) for p in step.params.values())
    bwd = of(step.events, OpBackward)
    assert bwd[0].node_id == step.loss.node.id
    assert step.values[bwd[0].grad_output] == 1.0
    given: dict[int, int] = {}  # forward tensor id -> the gradient id flowing into it
    for b in bwd:
        if b is not bwd[0]:
            assert b.grad_output == given[fwd[b.node_id].output], b.op
        for tensor_id, grad_id in zip(b.inputs, b.grad_inputs, strict=True):
            if grad_id is not None:
                given[tensor_id] = grad_id
                assert step.values[grad_id].shape == shapes[tensor_id], b.op
    no_grad = {
        (b.op, tensor_id)
        for b in bwd
        for tensor_id, grad_id in zip(b.inputs, b.grad_inputs, strict=True)
        if grad_id is None
    }
    assert no_grad == {("linear", step.x.id), ("mse_loss", step.y.id)}
    (ended,) = of(step.events, BackwardEnded)
    assert ended.root == step.loss.id and ended.duration_ns >= 0


def test_only_backward_events_between_started_and_ended(step):
    kinds = [type(e) for e in step.events]
    start = kinds.index(BackwardStarted)
    end = kinds.index(BackwardEnded)
    inside = set(kinds[start + 1 : end])
    assert inside == {OpBackward, GradAccumulated}
    assert kinds.count(BackwardStarted) == kinds.count(BackwardEnded) == 1


def test_grad_accumulated_names_each_parameter(step):
    events = step.events
    accumulated = of(events, GradAccumulated)
    assert sorted(e.name for e in accumulated) == sorted(PARAM_NAMES)
    produced = {
        g: i
        for i, e in enumerate(events)
        if isinstance(e, OpBackward)
        for g in e.grad_inputs
        if g is not None
    }
    end = next(i for i, e in enumerate(events) if isinstance(e, BackwardEnded))
    for e in accumulated:
        p = step.params[e.name]
        assert e.tensor_id == p.id
        assert e.grad_id == p.grad.id
        assert produced[e.grad_id] < events.index(e) < end
        np.testing.assert_array_equal(step.values[e.grad_id], p.grad.numpy())
        assert p.grad.shape == p.shape


# -- the optimizer ----------------------------------------------------------------------


def test_parameter_updates_follow_backward(step):
    events = step.events
    end = next(i for i, e in enumerate(events) if isinstance(e, BackwardEnded))
    updated = [(i, e) for i, e in enumerate(events) if isinstance(e, ParameterUpdated)]
    assert [e.name for _i, e in updated] == PARAM_NAMES
    assert all(i > end for i, _e in updated)
    for i, e in updated:
        p = step.params[e.name]
        assert (e.tensor_id, e.optimizer) == (p.id, "SGD")
        update = events[i - 1]  # p -= lr * grad, one op in place
        assert isinstance(update, OpForward) and update.op == "add_scaled_"
        assert update.output == e.value_id and update.writes == p.id
        assert update.inputs == (p.id, p.grad.id) and update.attrs == (("alpha", -LR),)
        expected = step.before[e.name] - np.float32(LR) * p.grad.numpy()
        np.testing.assert_allclose(step.values[e.value_id], expected, rtol=1e-6)
        np.testing.assert_array_equal(p.numpy(), step.values[e.value_id])
    for e in events[end + 1 :]:
        if isinstance(e, OpForward):
            assert (e.phase, e.scope, e.requires_grad) == ("update", "", False)


# -- statistics --------------------------------------------------------------------------


def test_stats_match_numpy(step):
    values = step.values
    checked = 0
    for e in step.events:
        if isinstance(e, TensorCreated):
            assert_stats(e.stats, values[e.tensor_id], f"leaf {e.name}")
        elif isinstance(e, OpForward) and e.phase == "update":
            assert e.stats is None, "optimizer temporaries are not summarized"
        elif isinstance(e, OpForward):
            assert_stats(e.stats, values[e.output], f"{e.op} node {e.node_id}")
        elif isinstance(e, OpBackward):
            assert len(e.stats) == len(e.grad_inputs)
            for grad_id, stats in zip(e.grad_inputs, e.stats, strict=True):
                if grad_id is None:
                    assert stats is None
                else:
                    assert_stats(stats, values[grad_id], f"grad of {e.op}")
        elif isinstance(e, GradAccumulated):
            assert_stats(e.stats, values[e.grad_id], f"grad of {e.name}")
        elif isinstance(e, ParameterUpdated):
            assert_stats(e.stats, values[e.value_id], f"update of {e.name}")
        else:
            continue
        checked += 1
    assert checked > 20


def test_values_are_passed_for_the_ids_an_event_names(step):
    for event, arrays in zip(step.events, step.arrays, strict=True):
        if isinstance(event, OpForward):
            assert set(arrays) == {event.output}
            assert arrays[event.output].shape == event.shape
        elif isinstance(event, TensorCreated):
            assert set(arrays) == {event.tensor_id}
        elif isinstance(event, OpBackward):
            named = {event.grad_output} | {g for g in event.grad_inputs if g is not None}
            assert set(arrays) == named
    loss_event = forward_ops(step.events)[-1]
    assert step.values[loss_event.output] == pytest.approx(step.loss.item())


def test_stats_count_nan_and_inf(recorder):
    seen = recorder(stats=True, values=True)
    t = core.tensor([1.0, math.nan, math.inf, -math.inf, -2.0, 0.5])
    doubled = t * 2.0
    (op,) = [e for e, _ in seen if isinstance(e, OpForward)]
    assert op.output == doubled.id
    stats = op.stats
    assert (stats.nan, stats.inf, stats.size, stats.finite) == (1, 2, 6, False)
    assert (stats.min, stats.max) == (-4.0, 2.0)
    assert stats.mean == pytest.approx(-1.0 / 3.0)
    assert stats.norm == pytest.approx(math.sqrt(4 + 16 + 1))
    assert_stats(stats, doubled.numpy(), "mul")
    leaf = [e for e, _ in seen if isinstance(e, TensorCreated) and e.tensor_id == t.id]
    assert leaf[0].stats.nan == 1 and leaf[0].stats.inf == 2


# -- subscribing --------------------------------------------------------------------------


def test_plain_subscriber_gets_events_without_stats_or_sources():
    core.manual_seed(1)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = optim.SGD(model.parameters(), lr=LR)
    seen = []
    unsubscribe = BUS.subscribe(seen.append)
    try:
        assert BUS.active is True
        assert (BUS.want_stats, BUS.want_source) == (False, False)
        run_step(model, opt)
    finally:
        unsubscribe()
    assert BUS.active is False
    check_nesting(seen)
    assert [e.path for e in of(seen, ModuleEnter)] == ["model", "model.0", "model.1", "model.2"]
    assert [e.kind for e in of(seen, ModuleEnter)] == ["Sequential", "Linear", "Tanh", "Linear"]
    assert [e.scope for e in forward_ops(seen)] == ["model.0", "model.1", "model.2", ""]
    names = ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert sorted(e.name for e in of(seen, GradAccumulated)) == sorted(names)
    assert [e.name for e in of(seen, ParameterUpdated)] == names
    for e in seen:
        assert getattr(e, "stats", None) is None, e
        assert getattr(e, "source", None) is None, e


def test_no_subscriber_means_inactive_bus():
    assert BUS.active is False, "a subscriber leaked from another test"
    assert (BUS.want_stats, BUS.want_source) == (False, False)
    core.manual_seed(2)
    model = MLP()
    opt = optim.SGD(model.parameters(), lr=LR)
    result = run_step(model, opt)
    assert math.isfinite(result.loss.item())
    unsubscribe = BUS.subscribe(lambda event: None, stats=True, source=True)
    assert (BUS.active, BUS.want_stats, BUS.want_source) == (True, True, True)
    unsubscribe()
    assert (BUS.active, BUS.want_stats, BUS.want_source) == (False, False, False)


def test_unsubscribed_callback_gets_nothing():
    gone, kept = [], []
    unsubscribe_gone = BUS.subscribe(gone.append, stats=True, source=True)
    unsubscribe_kept = BUS.subscribe(kept.append)
    unsubscribe_gone()
    try:
        assert (BUS.active, BUS.want_stats, BUS.want_source) == (True, False, False)
        core.manual_seed(3)
        model = MLP()
        run_step(model, optim.SGD(model.parameters(), lr=LR))
    finally:
        unsubscribe_kept()
    unsubscribe_gone()  # a second call is harmless
    assert gone == []
    assert len(of(kept, OpForward)) >= 8
    assert all(e.stats is None for e in of(kept, OpForward))
    assert BUS.active is False


@needs_gpu
def test_events_on_cuda_name_the_device_and_stats_match(recorder):
    core.manual_seed(0)
    model = MLP().to("cuda")
    opt = optim.SGD(model.parameters(), lr=LR)
    seen = recorder(stats=True, values=True)
    x = core.randn(4, 2, device="cuda")
    y = core.randn(4, 1, device="cuda")
    loss = F.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    ops = [(e, arrays) for e, arrays in seen if isinstance(e, OpForward)]
    assert len(ops) == 4 + len(PARAM_NAMES)  # linear, tanh, linear, mse; 1 per update
    for e, arrays in ops:
        assert e.device == "cuda"
        if e.phase == "update":
            assert e.stats is None
        else:
            assert_stats(e.stats, arrays[e.output], f"{e.op} on cuda")
    updated = [e for e, _ in seen if isinstance(e, ParameterUpdated)]
    assert [e.name for e in updated] == PARAM_NAMES
