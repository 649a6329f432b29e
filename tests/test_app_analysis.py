"""Profiling and comparing from the app: in the background, with progress and Cancel."""

from __future__ import annotations

import os

from app.analysis import Analysis
from core.debug.profile import ProfileCancelled

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEURON = os.path.join(REPO, "samples", "neuron.py")
MOONS = os.path.join(REPO, "samples", "mlp_moons.py")


def test_profile_fills_the_view_in_the_background(qtbot) -> None:
    notes: list[str] = []
    analysis = Analysis(notes.append)
    qtbot.addWidget(analysis.profile_view)
    results: list = []
    analysis.profile(NEURON, steps=3, done=results.append)
    assert analysis.busy
    qtbot.waitUntil(lambda: bool(results), timeout=60_000)
    assert not analysis.busy and analysis.profile_view._matrix.rowCount() == 4
    assert any("profiled 4 runs" in n for n in notes)


def test_cancel_stops_a_profile(qtbot) -> None:
    notes: list[str] = []
    analysis = Analysis(notes.append)
    qtbot.addWidget(analysis.profile_view)
    results: list = []
    # long enough (mlp_moons, about 0.4 ms a step: 8 s a run) that Cancel lands in it
    analysis.profile(MOONS, steps=20_000, done=results.append)
    qtbot.waitUntil(lambda: analysis.profile_view._progress.value() > 0, timeout=30_000)
    analysis.profile_view._cancel.click()
    qtbot.waitUntil(lambda: bool(results), timeout=30_000)
    assert isinstance(results[0], ProfileCancelled) and "profile cancelled" in notes


def test_compare_fills_the_view(qtbot) -> None:
    analysis = Analysis(lambda note: None)
    qtbot.addWidget(analysis.compare_view)
    results: list = []
    analysis.compare(NEURON, steps=3, done=results.append)
    qtbot.waitUntil(lambda: bool(results), timeout=60_000)
    assert results[0].ok and analysis.compare_view._kernels.count() > 0
