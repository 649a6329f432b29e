"""The size of a parameter's last update against the parameter (the inspector's
"Update: |Δw| / |w|" and the Parameters panel's curve), eager and compiled."""

from __future__ import annotations

import os

import numpy as np
import pytest

from app.node_info import update_ratio
from app.param_series import ParamSeries
from core.debug import program as programs
from core.debug.session import Session
from core.observe.events import ParameterUpdated

MLP = os.path.join(os.path.dirname(os.path.dirname(__file__)), "samples", "mlp_moons.py")


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_the_update_ratio_is_the_step_s_change_against_the_weights(mode):
    session = Session(programs.read(MLP), steps=3, mode=mode)
    session.start()
    assert session.wait(60) and session.state == "finished", session.error
    rec = session.recording
    end = len(rec.events) - 1
    step_start = rec.steps[-1]  # the last step's update comes after its backward
    updates = [e for e in rec.events[step_start:] if type(e) is ParameterUpdated]
    assert {e.name for e in updates} == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    series = ParamSeries()
    assert series.take(rec, budget_s=10.0)
    curves = series.series("update / weight")
    for event in updates:
        old = rec.value(event.tensor_id, step_start).astype(np.float64)
        new = rec.value(event.tensor_id, end).astype(np.float64)
        want = np.linalg.norm(new - old) / np.linalg.norm(old)
        assert want > 1e-4  # Adam moved every parameter
        ratio, found = update_ratio(rec, event.tensor_id, end)
        assert found.name == event.name
        assert ratio == pytest.approx(want, rel=1e-6)  # was 0: old and new read at one event
        steps, values = curves[event.name]
        assert steps[-1] == 2 and values[-1] == pytest.approx(want, rel=1e-6)
