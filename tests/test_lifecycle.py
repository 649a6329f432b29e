"""How runs start, end and stay apart: each test is an issue's reproduction, as a user
(or a program) would cause it, with the real engine and real program files."""

from __future__ import annotations

import os
import textwrap
import threading
import time

import pytest

from core.debug import lifecycle
from core.debug.session import Breakpoint, Session
from core.observe.bus import BUS
from core.observe.events import RunFinished, StepEnded

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples")
ENDLESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "endless.py")

HEADER = '''
"""Test program

Made by tests/test_lifecycle.py.
"""
import sys
import threading
import time

import core
from core.debug.program import Run
'''


def program(tmp_path, body: str, name: str = "prog.py") -> str:
    """A program file: HEADER, then ``body`` (dedented); returns its path."""
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(body))
    return str(path)


def line_of(path: str, text: str) -> int:
    with open(path, encoding="utf-8") as fh:
        return next(i for i, line in enumerate(fh, 1) if text in line)


def wait_until(condition, timeout: float = 10.0) -> None:
    """Poll (no fixed sleep) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        time.sleep(0.002)


@pytest.fixture(autouse=True)
def no_run_left_behind():
    """A failed test must not leave a live run that would refuse the next test's."""
    yield
    for owner, _path in list(lifecycle._live.values()):
        owner.stop()
        owner.wait(10)


def finished(session: Session, timeout: float = 20.0) -> Session:
    """Start ``session`` (unless it was) and wait for its end."""
    if session.state == "idle":
        session.start()
    assert session.wait(timeout), f"still {session.state}"
    return session


# -- issue 9 item 3: every way a run ends has a status and a message -----------------------

STEP_ENDS_WITH = """
def build(device="cpu"):
    w = core.tensor([1.0, 2.0], requires_grad=True)

    def step():
        loss = (w * w).sum()
        ENDING
        return loss

    return Run(step=step, steps=3, params={"w": w})
"""


@pytest.mark.parametrize(
    ("ending", "state", "says"),
    [
        ("sys.exit()", "errored", "the program called sys.exit() in step 0"),
        ("sys.exit(3)", "errored", "the program called sys.exit(3) in step 0"),
        ("raise KeyboardInterrupt", "stopped", "interrupted: KeyboardInterrupt in step 0"),
        ("raise GeneratorExit", "errored", "GeneratorExit in the run"),
    ],
)
def test_exits_and_interrupts_in_a_step_are_not_a_finish(tmp_path, ending, state, says):
    path = program(tmp_path, STEP_ENDS_WITH.replace("ENDING", ending))
    session = finished(Session.from_file(path))
    assert session.state == state
    assert session.error is not None and says in session.error.message
    assert f"{path}:{line_of(path, ending)}" in session.error.message
    assert session.recording.events[-1] == RunFinished(status=state, error=session.error.message)


@pytest.mark.parametrize(
    ("returned", "says"),
    [
        ('"a string"', "step() returned a str ('a string')"),
        ("w * 2.0", "step() returned a Tensor of shape (2,)"),
        ("[1.0]", "step() returned a list"),
    ],
)
def test_a_step_that_returns_no_loss_is_named(tmp_path, returned, says):
    body = STEP_ENDS_WITH.replace("ENDING", "pass").replace("return loss", f"return {returned}")
    path = program(tmp_path, body)
    session = finished(Session.from_file(path))
    assert session.state == "errored"
    assert says in session.error.message and "must return the loss" in session.error.message
    assert f"{path}:{line_of(path, 'def step')}" in session.error.message


def test_a_step_that_returns_nothing_finishes_with_a_note(tmp_path):
    body = STEP_ENDS_WITH.replace("ENDING", "pass").replace("return loss", "loss.backward()")
    path = program(tmp_path, body)
    session = finished(Session.from_file(path))
    assert session.state == "finished" and session.recording.losses == []
    [note] = session.notes
    assert note.startswith("step() returned None") and "return the loss" in note


# -- issue 9 item 10: listener errors are the listener's ------------------------------------


def test_a_failing_event_listener_is_dropped_with_a_note_and_the_run_goes_on():
    session = Session.from_file(os.path.join(SAMPLES, "neuron.py"), steps=3)

    def listener(event):
        if type(event) is StepEnded:
            raise ValueError("listener bug")

    session.on_event(listener)
    finished(session).wait()
    assert session.state == "finished" and session.error is None
    assert len(session.recording.losses) == 3
    [note] = session.notes
    assert "a listener failed" in note and "ValueError: listener bug" in note
    assert "test_lifecycle.py" in note  # the listener's own line, not the program's


def test_a_listener_that_fails_on_run_finished_leaves_no_run_running():
    session = Session.from_file(os.path.join(SAMPLES, "neuron.py"), steps=2)
    states = []

    def listener(event):
        if type(event) is RunFinished:
            raise RuntimeError("fails at the end")

    session.on_event(listener)
    session.on_state(lambda state, reason: states.append(state))
    finished(session)
    assert session.state == "finished" and states[-1] == "finished"
    assert not BUS.active  # the session's subscription did not leak


def test_a_failing_bus_subscriber_is_unsubscribed_and_the_program_is_not_blamed():
    import core

    reports = []
    old = BUS.on_error
    BUS.on_error = lambda callback, exc: reports.append((callback, exc))

    def subscriber(event):
        raise ValueError("listener bug")

    try:
        BUS.subscribe(subscriber)
        x = core.tensor([1.0, 2.0], requires_grad=True)
        y = (x * 3.0).sum()  # the op runs; the subscriber's error does not reach here
    finally:
        BUS.on_error = old
    assert float(y.item()) == 9.0 and not BUS.active
    [(callback, exc)] = reports
    assert callback is subscriber and str(exc) == "listener bug"


# -- issue 9 item 12: ops in threads a program spawns ------------------------------------------


def test_ops_in_a_thread_the_program_spawns_are_counted_and_said(tmp_path):
    path = program(
        tmp_path,
        """
        def build(device="cpu"):
            w = core.tensor([1.0], requires_grad=True)

            def helper():
                for _ in range(5):
                    w * 2.0

            def step():
                worker = threading.Thread(target=helper, name="augmenter")
                worker.start()
                worker.join()
                return (w * w).sum()

            return Run(step=step, steps=2, params={"w": w})
        """,
    )
    session = finished(Session.from_file(path))
    assert session.state == "finished"
    assert session.other_threads["augmenter"] >= 2 * 5  # two steps of five ops
    [note] = session.notes
    assert "events from thread 'augmenter' are not recorded" in note


# -- issue 9 item 5: two sessions never share ids ------------------------------------------------


def test_a_second_run_beside_a_live_one_is_refused_naming_it():
    moons = Session.from_file(os.path.join(SAMPLES, "mlp_moons.py"), steps=50)
    digits = Session.from_file(os.path.join(SAMPLES, "cnn_digits.py"), steps=2)
    moons.start(paused=True)
    wait_until(lambda: moons.state == "paused")
    digits.start()
    assert digits.state == "errored" and digits.wait(0)
    assert "another program is still running in this process" in digits.error.message
    assert "mlp_moons.py" in digits.error.message and "stop it first" in digits.error.message
    moons.stop()
    finished(moons)
    again = Session.from_file(os.path.join(SAMPLES, "cnn_digits.py"), steps=1)
    again.start()
    assert finished(again).state == "finished"


# -- issue 9 item 4: Stop always stops, or says why not ---------------------------------------


def test_stop_gets_through_a_program_that_swallows_it(tmp_path):
    path = program(
        tmp_path,
        """
        def build(device="cpu"):
            w = core.tensor([1.0], requires_grad=True)

            def step():
                while True:
                    try:
                        w * 2.0
                        sum(range(1000))
                    except BaseException:  # swallows everything, the stop included
                        pass

            return Run(step=step, steps=1, params={"w": w})
        """,
    )
    session = Session.from_file(path, record=False)
    session.start()
    wait_until(lambda: session.step_index == 0)
    session.stop()
    assert session.wait(2.0), "the run swallowed the stop"
    assert session.state == "stopped" and session.unresponsive is None


BLOCKED = """
def build(device="cpu"):
    w = core.tensor([1.0], requires_grad=True)

    def step():
        w * 2.0
        time.sleep(SECONDS)  # blocks in C: no interruption lands before it returns
        return (w * w).sum()

    return Run(step=step, steps=1, params={"w": w})
"""


@pytest.mark.slow
def test_a_blocked_program_is_reported_with_its_line_and_no_run_starts_beside_it(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(lifecycle, "GRACE_S", 0.3)
    path = program(tmp_path, BLOCKED.replace("SECONDS", "2.0"))
    session = Session.from_file(path)
    notes = []
    session.on_note(notes.append)
    session.start()
    wait_until(lambda: session.recording.counts()["OpForward"] >= 1)
    asked = time.monotonic()
    session.stop()
    wait_until(lambda: notes, timeout=1.5)
    assert time.monotonic() - asked < 1.0  # the user hears about it after the grace period
    line = line_of(path, "time.sleep")
    assert "does not respond to Stop" in notes[0]
    assert f"{path}:{line} in step: time.sleep(2.0)" in notes[0]
    assert session.unresponsive.startswith(f"{path}:{line}")
    beside = Session.from_file(os.path.join(SAMPLES, "neuron.py"), steps=1)
    beside.start()
    assert beside.state == "errored"
    assert "does not respond" in beside.error.message and "restart Gradstep" in beside.error.message
    assert session.wait(5.0) and session.state == "stopped"  # once the sleep returned
    after = Session.from_file(os.path.join(SAMPLES, "neuron.py"), steps=1)
    assert finished(after).state == "finished"


# -- issue 12 item 6: a program's own code never runs on the caller's thread -------------------


def test_top_level_code_and_build_run_in_the_worker(tmp_path):
    path = program(
        tmp_path,
        """
        LOADED_IN = threading.get_ident()
        time.sleep(0.3)


        def build(device="cpu"):
            w = core.tensor([1.0], requires_grad=True)
            built_in = threading.get_ident()

            def step():
                return (w * float(built_in == LOADED_IN)).sum()

            return Run(step=step, steps=1, params={"w": w})
        """,
    )
    started = time.perf_counter()
    session = Session.from_file(path)
    session.start()
    assert time.perf_counter() - started < 0.25  # the caller did not wait for the sleep
    finished(session)
    assert session.state == "finished" and session.recording.losses == [(0, 1.0)]
    loaded_in = session.program.namespace["LOADED_IN"]
    assert loaded_in != threading.get_ident()


@pytest.mark.parametrize("where", ["top level", "build"])
def test_stop_works_while_the_program_loads_or_builds(tmp_path, where):
    spin = "n = 0\nwhile True:\n    n += 1\n"
    if where == "top level":
        body = spin + '\n\ndef build(device="cpu"):\n    return Run(step=lambda: 1.0, steps=1)\n'
    else:
        body = 'def build(device="cpu"):\n' + textwrap.indent(spin, "    ")
    path = program(tmp_path, body)
    session = Session.from_file(path)
    session.start()
    wait_until(
        lambda: (
            session.thread_alive()
            and session.stage == ("loading" if where == "top level" else "building")
        )
    )
    time.sleep(0.05)  # let it spin: the stop must interrupt running Python code
    session.stop()
    assert session.wait(1.0) and session.state == "stopped"


def test_a_program_that_fails_to_load_ends_the_run_as_errored_while_loading(tmp_path):
    path = program(tmp_path, "x = 1 / 0\n")
    session = finished(Session.from_file(path))
    assert session.state == "errored" and session.error.stage == "loading"
    assert f"{path}:{line_of(path, 'x = 1 / 0')}" in session.error.message


# -- issue 12 item 7: Stop under 200 ms on an endless step that keeps making ops ---------------


def test_stop_takes_an_endless_recorded_step_to_idle_within_200_ms(tmp_path):
    session = Session.from_file(ENDLESS)
    session.start()
    wait_until(lambda: len(session.recording) > 30_000, timeout=30)
    asked = time.perf_counter()
    session.stop()
    assert session.wait(1.0)
    took = time.perf_counter() - asked
    assert session.state == "stopped" and session.done
    assert took < 0.2, f"Stop took {took * 1e3:.0f} ms"


# -- issue 12 item 10: step out is right at every depth ------------------------------------------


def test_step_out_twice_from_fc2_returns_from_the_model_in_the_same_step():
    session = Session.from_file(
        os.path.join(SAMPLES, "mlp_moons.py"), breakpoints=[Breakpoint("module", "fc2")]
    )
    session.start()
    wait_until(lambda: session.state == "paused")
    assert session.reason.startswith("breakpoint: entering module model.fc2")
    step = session.step_index
    session.breakpoints.clear()
    for command, reason in [
        (session.step_into, "step"),
        (session.step_out, "returned from model.fc2"),
        (session.step_out, "returned from model"),
    ]:
        before = len(session.recording)
        command()
        wait_until(lambda b=before: session.state == "paused" and len(session.recording) > b)
        assert session.reason == reason and session.step_index == step
    session.stop()
    finished(session)
