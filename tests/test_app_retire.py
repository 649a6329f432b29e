"""A replaced run's recording is freed a slice per turn of the event loop, never
all at once on the GUI thread, and never while a save may still read it."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading

from PySide6.QtCore import Qt

from app import retire
from app.main_window import SAMPLES_DIR

MLP = os.path.join(SAMPLES_DIR, "mlp_moons.py")


def run_done(qtbot, window) -> None:
    qtbot.waitUntil(
        lambda: window.bridge.session.done and window.status_phase.text().startswith("finished"),
        timeout=30_000,
    )


def test_f5_after_a_run_frees_the_old_recording_in_slices(qtbot, window, monkeypatch):
    monkeypatch.setattr(retire, "SLICE", 500)
    window.steps.setValue(40)
    assert window.open_program(MLP, then="run")
    run_done(qtbot, window)
    old = window.recording
    events = len(old.events)
    assert events > 3000 and old.values

    qtbot.keyClick(window, Qt.Key.Key_F5)  # a new run of the same program
    assert window.recording is not old
    pending = window.retirer.pending()
    assert pending > events - 3 * 500, "hardly anything is freed as the new run starts"
    window.retirer._turn()  # one turn of its timer frees one slice
    assert window.retirer.pending() == pending - 500
    qtbot.waitUntil(lambda: window.retirer.pending() == 0, timeout=30_000)
    assert old.events == [] and old.values == {} and old.nodes == {}
    run_done(qtbot, window)
    assert window.recording.events, "the new run's recording is whole"


def test_a_recording_being_saved_is_not_emptied(qtbot, window, tmp_path):
    window.steps.setValue(5)
    assert window.open_program(MLP, then="run")
    run_done(qtbot, window)
    old = window.recording
    events = len(old.events)
    release = threading.Event()
    window.jobs.run(release.wait, lambda _result: None)  # a save still under way
    try:
        qtbot.keyClick(window, Qt.Key.Key_F5)
        assert window.retirer.pending() == 0
        assert len(old.events) == events
    finally:
        release.set()
    qtbot.waitUntil(lambda: len(window.jobs) == 0, timeout=10_000)
    run_done(qtbot, window)
