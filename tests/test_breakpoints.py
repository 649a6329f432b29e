"""Conditional breakpoints (a loss above a value, one parameter's gradient norm
above a threshold): in the Session, in the app's replay of a recording, and
added through the Breakpoints panel and hit with F5."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import math

import pytest
from PySide6.QtCore import QSettings, Qt

from app.main_window import SAMPLES_DIR, MainWindow
from app.replay import next_stop
from core.debug.breakpoints import Breakpoint, param_grad_parts
from core.debug.session import Session
from core.observe.events import GradAccumulated, StepEnded
from widgets.breakpoints import parse_value

EXPLODING = os.path.join(SAMPLES_DIR, "exploding.py")


def run_to_pause(bp: Breakpoint, steps: int = 12) -> Session:
    session = Session.from_file(EXPLODING, steps=steps, breakpoints=[bp])
    session.start()
    return session


def losses_and_grads(steps: int = 12) -> tuple[list[float], list[float]]:
    session = Session.from_file(EXPLODING, steps=steps)
    session.start()
    assert session.wait(30) and session.state == "finished"
    events = session.recording.events
    losses = [e.loss for e in events if type(e) is StepEnded]
    norms = [
        e.stats.norm for e in events if type(e) is GradAccumulated and e.name == "linear.weight"
    ]
    return losses, norms


def wait_paused(session: Session) -> None:
    import time

    deadline = time.monotonic() + 30
    while session.state == "running" and time.monotonic() < deadline:
        session.wait(0.01)


def test_a_loss_breakpoint_pauses_at_the_first_step_above_it() -> None:
    losses, _ = losses_and_grads()
    threshold = losses[4] * 0.999  # step 4's loss is the first above it (it grows)
    assert all(a < b for a, b in zip(losses, losses[1:], strict=False))
    session = run_to_pause(Breakpoint("loss", threshold))
    try:
        wait_paused(session)
        assert session.state == "paused", session.reason
        assert session.reason.startswith("breakpoint: loss") and "at step 4" in session.reason
        assert type(session.recording.current()) is StepEnded
    finally:
        session.stop()
        session.wait(10)


def test_a_parameter_gradient_breakpoint_names_the_parameter() -> None:
    _, norms = losses_and_grads()
    threshold = norms[3] * 0.999
    session = run_to_pause(Breakpoint("param_grad", f"linear.weight > {threshold!r}"))
    try:
        wait_paused(session)
        assert session.state == "paused"
        event = session.recording.current()
        assert type(event) is GradAccumulated and event.name == "linear.weight"
        assert event.stats.norm > threshold and session.step_index == 3
        assert "gradient of linear.weight has norm" in session.reason
    finally:
        session.stop()
        session.wait(10)


def test_replay_stops_where_the_session_would() -> None:
    session = Session.from_file(EXPLODING, steps=12)
    session.start()
    assert session.wait(30)
    events = session.recording.events
    losses = [e.loss for e in events if type(e) is StepEnded]
    bp = Breakpoint("loss", losses[6] * 0.999)
    at = next_stop(events, 0, "run", [bp])
    assert type(events[at]) is StepEnded and events[at].step == 6


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("fc1.weight", "write a parameter"),
        ("fc1.weight > lots", "not a number"),
        ("fc1.weight > -1", "0 or more"),
        ("fc1.weight > inf", "finite"),
    ],
)
def test_a_bad_parameter_gradient_condition_says_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        param_grad_parts(text)
    with pytest.raises(ValueError, match=error):
        parse_value("param_grad", text)


def test_nan_loss_always_stops() -> None:
    from core.debug.breakpoints import loss_over

    assert loss_over(Breakpoint("loss", 1.0), StepEnded(step=2, loss=math.nan))


def test_added_in_the_panel_and_hit_with_f5(qtbot, tmp_path) -> None:
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings=settings)
    qtbot.addWidget(window)
    window.show()
    try:
        assert window.open_path(EXPLODING)
        qtbot.waitUntil(lambda: window.status_reason.text().startswith("Ready"), timeout=30_000)
        panel = window.breakpoints
        panel._kind.setCurrentIndex(panel._kind.findData("param_grad"))
        qtbot.keyClicks(panel._value, "linear.weight > 1e6")
        qtbot.keyClick(panel._value, Qt.Key.Key_Return)
        assert [bp.kind for bp in panel.breakpoints()] == ["param_grad"]
        qtbot.keyClick(window, Qt.Key.Key_F5)
        qtbot.waitUntil(
            lambda: window.status_reason.text().startswith("breakpoint: gradient of linear.weight"),
            timeout=30_000,
        )
        event = window.recording.current()
        assert type(event) is GradAccumulated and event.stats.norm > 1e6
    finally:
        window.bridge.shutdown()
