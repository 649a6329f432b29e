"""Going back in the graph of a step without replaying it (GraphModel.truncate):
the state after any earlier event of the step equals the one a replay gives."""

from __future__ import annotations

import os

import numpy as np
import pytest

from core.debug.naming import names_of_step
from core.debug.session import Session
from core.observe.events import StepStarted
from widgets.graph_model import GraphModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def state(model: GraphModel) -> tuple:
    nodes = [(n.label, n.kind, n.scope, n.backward, n.grad_stats) for n in model.nodes]
    return nodes, list(model.edges), sorted(model.marked), dict(model.by_name)


def replayed(events: list, start: int, stop: int, before: list) -> GraphModel:
    model = GraphModel(namer=names_of_step(before))
    for k in range(start, stop + 1):
        model.feed(events[k], k)
    return model


@pytest.mark.parametrize("sample", ["mlp_moons.py", "control_flow.py", "cnn_digits.py"])
def test_truncating_equals_replaying_up_to_there(sample):
    session = Session.from_file(os.path.join(ROOT, "samples", sample), steps=3)
    session.start()
    assert session.wait(60)
    events = session.recording.events
    starts = [i for i, e in enumerate(events) if type(e) is StepStarted]
    start, end = starts[-1], len(events) - 1
    before = events[: starts[0]] + events[starts[-2] : start]
    model = replayed(events, start, end, before)
    rng = np.random.default_rng(0)
    for index in sorted(rng.choice(np.arange(start, end), 12, replace=False), reverse=True):
        assert model.truncate(int(index))
        assert model.namer_stale
        assert state(model) == state(replayed(events, start, int(index), before)), index
    assert not model.truncate(start - 1), "not before the step it shows"
