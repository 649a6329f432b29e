"""Stable node names (core.debug.naming): the same program gives the same names in
every step, module calls and update ops are named by what they are, and the
Session's node breakpoint fires by name in every step. No Qt here."""

from __future__ import annotations

import glob
import os

import pytest

from core.debug.naming import UPDATE_SCOPE, Namer, names_of_step, update_scope
from core.debug.session import Breakpoint, Session
from core.observe.events import OpForward, ParameterUpdated, StepStarted

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = sorted(glob.glob(os.path.join(ROOT, "samples", "*.py")))
DATA_DEPENDENT = {"control_flow.py"}  # its graph changes with the data


def run(path: str, steps: int = 3) -> list:
    session = Session.from_file(path, steps=steps)
    session.start()
    assert session.wait(120) and session.state == "finished", session.error
    return session.recording.events


def names_per_step(events: list) -> list[list[tuple[str, str]]]:
    namer, steps = Namer(), []
    for event in events:
        name = namer.feed(event)
        if type(event) is StepStarted:
            steps.append([])
        elif type(event) is OpForward and steps:
            steps[-1].append((name, namer.scopes[event.node_id]))
    return steps


@pytest.mark.parametrize("path", SAMPLES, ids=os.path.basename)
def test_names_are_the_same_in_every_step_and_unique_in_one(path):
    steps = names_per_step(run(path))
    for names in steps:
        labels = [n for n, _ in names]
        assert len(set(labels)) == len(labels), "names are unique within a step"
        assert not any(n.split("_")[-1].isdigit() and int(n.split("_")[-1]) > 50 for n in labels)
    if os.path.basename(path) not in DATA_DEPENDENT:
        assert steps[1] == steps[2]


def test_module_calls_and_update_ops_are_named_by_what_they_are():
    events = run(os.path.join(ROOT, "samples", "cnn_digits.py"), steps=2)
    names = names_per_step(events)[1]
    forward = [n for n, _ in names if not n.startswith(UPDATE_SCOPE + ".")]
    assert forward == [
        "conv1.conv2d",
        "relu.relu",
        "pool.max_pool2d",
        "conv2.conv2d",
        "relu_1.relu",  # the second call of model.relu
        "pool_1.max_pool2d",
        "flatten.reshape",
        "fc.linear",
        "cross_entropy",
    ]
    assert dict(names)["relu_1.relu"] == "model.relu_1"
    # each update op belongs to the parameter updated after it
    namer, owner = Namer(), []
    start = [i for i, e in enumerate(events) if type(e) is StepStarted][1]
    namer.feed_all(events[:start])
    for event in events[start:]:
        name = namer.feed(event)
        if type(event) is OpForward and event.phase == "update":
            owner.append((name, namer.scopes[event.node_id]))
        elif type(event) is ParameterUpdated:
            assert owner and all(s == update_scope(event.name) for _, s in owner), event.name
            assert all(n.startswith(f"update.{event.name}.") for n, _ in owner)
            owner = []


def test_a_namer_primed_with_the_step_before_names_a_replayed_step_alike():
    events = run(os.path.join(ROOT, "samples", "mlp_moons.py"), steps=3)
    starts = [i for i, e in enumerate(events) if type(e) is StepStarted]
    live = names_per_step(events)[2]
    before = events[: starts[0]] + events[starts[1] : starts[2]]
    namer = names_of_step(events[starts[2] :], before)
    replayed = [namer.names[e.node_id] for e in events[starts[2] :] if type(e) is OpForward]
    assert replayed == [n for n, _ in live]


def test_a_node_breakpoint_by_name_fires_in_every_step():
    path = os.path.join(ROOT, "samples", "mlp_moons.py")
    session = Session.from_file(path, steps=3, breakpoints=[Breakpoint("node", "act.tanh")])
    session.start()
    hits = []
    try:
        for _ in range(6):
            deadline = 200
            while session.state != "paused" and not session.done and deadline:
                session.wait(0.05)
                deadline -= 1
            if session.done:
                break
            event = session.recording.current()
            hits.append((session.step_index, type(event).__name__))
            assert "act.tanh" in session.reason
            session.resume()
            while session.state == "paused":
                session.wait(0.01)
    finally:
        session.stop()
        session.wait(5)
    assert hits == [(s, kind) for s in range(3) for kind in ("OpForward", "OpBackward")]


@pytest.mark.parametrize("path", SAMPLES, ids=os.path.basename)
def test_update_ops_belong_to_the_parameter_updated_after_them_in_every_step(path):
    """Also where the parameters with a gradient change from step to step
    (control_flow.py), named live and named as time travel replays a step."""
    events = run(path, steps=6)
    starts = [i for i, e in enumerate(events) if type(e) is StepStarted]
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(events)
        before = events[: starts[0]] + (events[starts[k - 1] : start] if k else [])
        for namer in (names_of_step(events[:start]), names_of_step([], before)):
            group = []
            for event in events[start:end]:
                name = namer.feed(event)
                if type(event) is OpForward and event.phase == "update" and not event.scope:
                    group.append(name)  # (clipping's ops are named after clip_grad_norm_)
                elif type(event) is ParameterUpdated:
                    assert all(n.startswith(f"update.{event.name}.") for n in group), (k, group)
                    group = []


@pytest.mark.parametrize("name", ["mlp_moons.py", "cnn_digits.py", "thermometer.py"])
def test_a_compiled_step_s_update_ops_belong_to_the_parameter_they_end_writing(name):
    """A compiled step tells its gradients and its updates only after all its update
    ops, so its groups end where their parameter is written: every op up to that
    write is named after that parameter, live and as time travel replays a step
    (fused kernels' ops too, drawn in their kernel's box)."""
    session = Session.from_file(os.path.join(ROOT, "samples", name), steps=4, mode="compiled")
    session.start()
    assert session.wait(120) and session.state == "finished", session.error
    events = session.recording.events
    parameters = {e.tensor_id: e.name for e in events if type(e) is ParameterUpdated}
    starts = [i for i, e in enumerate(events) if type(e) is StepStarted]
    for k in range(1, len(starts)):  # the first step runs eagerly, under the tracer
        start, end = starts[k], starts[k + 1] if k + 1 < len(starts) else len(events)
        before = events[: starts[0]] + events[starts[k - 1] : start]
        for namer in (names_of_step(events[:start]), names_of_step([], before)):
            group, ended = [], []
            for event in events[start:end]:
                label = namer.feed(event)
                if type(event) is not OpForward or event.phase != "update":
                    continue
                group.append(label)
                if event.writes in parameters:
                    owner = parameters[event.writes]
                    assert all(n.startswith(f"update.{owner}.") for n in group), (k, group)
                    if not event.scope:
                        assert namer.scopes[event.node_id] == update_scope(owner)
                    ended.append(owner)
                    group = []
            assert sorted(ended) == sorted(set(parameters.values())), ended
