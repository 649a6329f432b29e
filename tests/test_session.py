"""The Session: controls, breakpoints, errors, stop, and the Recording's cursor."""

from __future__ import annotations

import textwrap
import threading
import time

import numpy as np
import pytest

from core.debug.program import ProgramError
from core.debug.session import Breakpoint, Session
from core.observe.events import ModuleExit, OpBackward, OpForward, ParameterUpdated

MLP = '''
"""Tiny MLP

Two layers on random data.
"""
import core
from core import nn, optim
import core.functional as F
from core.debug.program import Run


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 8)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x):
        return self.fc2(self.fc1(x).tanh())


def build(device="cpu"):
    core.manual_seed(0)
    model = Net().to(device)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = core.randn(16, 2, device=device)
    y = core.randn(16, 1, device=device)

    def step():
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return Run(step=step, steps=STEPS, model=model)
'''


def write(tmp_path, body: str, name: str = "prog.py", steps: int = 4) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).replace("STEPS", str(steps)))
    return str(path)


def wait_for(session: Session, states: tuple[str, ...], timeout: float = 10.0) -> None:
    """Poll (no fixed sleep) until the session reaches one of ``states``."""
    deadline = time.monotonic() + timeout
    while session.state not in states:
        if time.monotonic() > deadline:
            raise AssertionError(f"session stuck in {session.state} ({session.reason})")
        time.sleep(0.001)


@pytest.fixture
def mlp(tmp_path):
    return write(tmp_path, MLP)


def test_run_to_the_end_records_every_step(mlp):
    session = Session.from_file(mlp)
    session.start()
    assert session.wait(20)
    assert session.state == "finished", session.error
    rec = session.recording
    assert [s for s, _ in rec.losses] == [0, 1, 2, 3]
    losses = [loss for _, loss in rec.losses]
    assert losses[-1] < losses[0]
    counts = rec.counts()
    assert counts["StepStarted"] == counts["StepEnded"] == 4
    assert counts["ParameterUpdated"] == 4 * 4


def test_same_program_gives_the_same_graph(mlp):
    ids = []
    for _ in range(2):
        session = Session.from_file(mlp, steps=1)
        session.start()
        assert session.wait(20)
        ids.append(
            [
                (e.node_id, e.op, e.inputs, e.output)
                for e in session.recording.events
                if type(e) is OpForward
            ]
        )
    assert ids[0] == ids[1]


def test_breakpoint_on_op_then_step_over_into_and_out(mlp):
    session = Session.from_file(mlp, breakpoints=[Breakpoint("op", "tanh")])
    session.start()
    wait_for(session, ("paused",))
    event = session.recording.current()
    assert type(event) is OpForward and event.op == "tanh" and event.scope == "model"
    assert "breakpoint: op tanh" in session.reason and "prog.py:" in session.reason

    session.step_into()
    wait_for(session, ("paused",))
    entered = session.recording.current()
    assert entered.path == "model.fc2"  # step into stops where a module is entered

    session.step_over()  # the whole fc2 call is one step at depth 1 ...
    wait_for(session, ("paused",))
    after = session.recording.current()
    assert type(after) is OpForward and after.scope == ""  # ... the next top-level op
    assert after.op == "mse_loss"

    session.step_out()  # at top level: until the forward phase ends
    wait_for(session, ("paused",))
    assert type(session.recording.current()) is OpBackward
    assert session.reason == "forward ended"

    session.step_out()
    wait_for(session, ("paused",))
    assert type(session.recording.current()) is OpForward
    assert session.recording.current().phase == "update"
    session.stop()
    assert session.wait(2)
    assert session.state == "stopped"


def test_step_out_of_a_module_stops_at_its_exit(mlp):
    session = Session.from_file(mlp, breakpoints=[Breakpoint("module", "fc1")])
    session.start()
    wait_for(session, ("paused",))
    assert session.recording.current().path == "model.fc1"
    session.step_into()
    wait_for(session, ("paused",))
    assert session.recording.current().scope == "model.fc1"
    session.step_out()
    wait_for(session, ("paused",))
    event = session.recording.current()
    assert type(event) is ModuleExit and event.path == "model.fc1"
    session.stop()
    assert session.wait(2)


def test_node_and_grad_norm_breakpoints(mlp):
    session = Session.from_file(mlp, breakpoints=[Breakpoint("grad_norm", 1e-9)])
    session.start()
    wait_for(session, ("paused",))
    assert "norm" in session.reason and session.phase == "backward"
    session.stop()
    assert session.wait(2)

    session = Session.from_file(mlp, breakpoints=[Breakpoint("node", 3)])
    session.start()
    wait_for(session, ("paused",))
    assert session.recording.current().node_id == 3
    session.resume()  # the same node again, in the backward pass
    wait_for(session, ("paused",))
    assert type(session.recording.current()) is OpBackward
    assert session.recording.current().node_id == 3
    session.stop()
    assert session.wait(2)


def test_disabled_breakpoint_does_not_stop(mlp):
    session = Session.from_file(mlp, breakpoints=[Breakpoint("op", "tanh", enabled=False)])
    session.start()
    assert session.wait(20)
    assert session.state == "finished"


def test_nan_breakpoint_names_op_inputs_and_line(tmp_path):
    path = write(
        tmp_path,
        '''
        """NaN maker

        Takes the log of a negative number at step 2.
        """
        import numpy as np
        import core
        from core.debug.program import Run

        def build(device="cpu"):
            w = core.tensor([1.0, 2.0], requires_grad=True)
            state = {"i": 0}

            def step():
                state["i"] += 1
                shift = core.tensor(5.0 if state["i"] == 3 else 0.0)
                with np.errstate(invalid="ignore"):
                    y = (w - shift).log()
                loss = y.sum()
                return loss

            return Run(step=step, steps=6, params={"w": w})
    ''',
    )
    session = Session.from_file(path, breakpoints=[Breakpoint("nan")])
    session.start()
    wait_for(session, ("paused",))
    event = session.recording.current()
    assert event.op == "log" and session.step_index == 2
    assert "first NaN/Inf: log_" in session.reason
    assert "sub_" in session.reason  # names the op's input
    assert "prog.py:18" in session.reason
    session.stop()
    assert session.wait(2)


def test_stop_ends_an_endless_model_within_100_ms(tmp_path):
    path = write(
        tmp_path,
        '''
        """Endless

        Never returns from its step.
        """
        import core
        from core.debug.program import Run

        def build(device="cpu"):
            x = core.tensor([1.0], requires_grad=True)

            def step():
                while True:
                    x * 2.0

            return Run(step=step, steps=1, params={"x": x})
    ''',
    )
    session = Session.from_file(path, record=False)
    session.start()
    while session.step_index < 0:
        time.sleep(0.001)
    started = time.perf_counter()
    session.stop()
    assert session.wait(1.0)
    assert time.perf_counter() - started < 0.1
    assert session.state == "stopped"


def test_stop_interrupts_pure_python_loop(tmp_path):
    path = write(
        tmp_path,
        '''
        """Spinner

        Loops without any tensor op.
        """
        from core.debug.program import Run

        def build(device="cpu"):
            def step():
                n = 0
                while True:
                    n += 1
            return Run(step=step, steps=1)
    ''',
    )
    session = Session.from_file(path, record=False)
    session.start()
    while session.step_index < 0:
        time.sleep(0.001)
    session.stop()
    assert session.wait(1.0)
    assert session.state == "stopped"


def test_error_in_the_model_ends_the_run_and_is_kept(tmp_path):
    path = write(
        tmp_path,
        '''
        """Broken

        A shape mismatch at step 1.
        """
        import core
        from core.debug.program import Run

        def build(device="cpu"):
            w = core.randn(3, 4, requires_grad=True)
            calls = []

            def step():
                calls.append(1)
                x = core.randn(2, 3 if len(calls) == 1 else 5)
                return (x @ w).sum()

            return Run(step=step, steps=3, params={"w": w})
    ''',
    )
    session = Session.from_file(path)
    session.start()
    assert session.wait(10)
    assert session.state == "errored"
    err = session.error
    assert err.kind == "ShapeError" and err.line == 16
    assert "matmul" in err.message and "(2, 5)" in err.message and "prog.py:16" in err.message
    assert "Traceback" in err.traceback
    assert session.recording.losses and session.recording.losses[0][0] == 0  # step 0 kept
    assert session.recording.events[-1].status == "errored"


def test_build_error_and_bad_return(tmp_path):
    path = write(
        tmp_path,
        '''
        """Bad build

        Raises in build.
        """
        def build(device="cpu"):
            return 1 / 0
    ''',
    )
    session = Session.from_file(path)
    session.start()
    assert session.wait(5)
    assert session.state == "errored" and "ZeroDivisionError" in session.error.message
    assert session.error.line == 7

    path = write(
        tmp_path,
        '''
        """Bad return

        Returns the wrong thing.
        """
        def build(device="cpu"):
            return {"steps": 3}
    ''',
        name="bad2.py",
    )
    session = Session.from_file(path)
    session.start()
    assert session.wait(5)
    assert session.state == "errored" and "expected core.program.Run" in session.error.message


def test_missing_program_is_a_clear_error(tmp_path):
    with pytest.raises(ProgramError, match="no such file"):
        Session.from_file(str(tmp_path / "nope.py"))


def test_step_back_then_forward_returns_identical_values(mlp):
    session = Session.from_file(mlp, steps=2)
    session.start()
    assert session.wait(20)
    rec = session.recording
    outputs = [(i, e.output) for i, e in enumerate(rec.events) if type(e) is OpForward]
    snapshot = {}
    rec.seek(len(rec) - 1)
    for i, tid in outputs:
        snapshot[(i, tid)] = rec.value(tid, at=i).copy()
    head = rec.position
    n = 57
    rec.step_back(n)
    assert rec.position == head - n and not rec.live
    past = rec.current()
    rec.step_forward(n)
    assert rec.position == head and rec.live
    for (i, tid), value in snapshot.items():
        np.testing.assert_array_equal(rec.value(tid, at=i), value)
    assert past is rec.events[head - n]


def test_parameter_values_follow_the_cursor(mlp):
    session = Session.from_file(mlp, steps=3)
    session.start()
    assert session.wait(20)
    rec = session.recording
    weight = session.run.model.fc1.weight
    updates = [
        i
        for i, e in enumerate(rec.events)
        if type(e) is ParameterUpdated and e.tensor_id == weight.id
    ]
    assert len(updates) == 3
    writes = [i for i, e in enumerate(rec.events) if type(e) is OpForward and e.writes == weight.id]
    assert len(writes) == 3 and writes[0] < updates[0]  # the in-place op writes the value
    before = rec.value(weight.id, at=writes[0] - 1)
    after = rec.value(weight.id, at=writes[0])
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, rec.value(weight.id, at=updates[0]))
    rec.seek(updates[-1])
    np.testing.assert_array_equal(rec.value(weight.id), weight.numpy())


def test_recording_cap_drops_values_but_keeps_stats(mlp):
    session = Session.from_file(mlp, steps=2, cap_bytes=2000)
    session.start()
    assert session.wait(20)
    rec = session.recording
    assert rec.dropped and rec.bytes <= 2000
    forward = [e for e in rec.events if type(e) is OpForward and e.phase == "forward"]
    assert all(e.stats is not None for e in forward)
    dropped = next(e for e in forward if e.output in rec.dropped)
    assert rec.value(dropped.output) is None


def test_listeners_get_states_and_events(mlp):
    states, kinds = [], []
    session = Session.from_file(mlp, steps=1)
    session.on_state(lambda state, reason: states.append(state))
    session.on_event(lambda event: kinds.append(type(event).__name__))
    session.start(paused=True)
    wait_for(session, ("paused",))
    assert threading.active_count() >= 2
    session.resume()
    assert session.wait(10)
    assert states[0] == "running" and "paused" in states and states[-1] == "finished"
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"


@pytest.mark.gpu
def test_a_run_on_the_gpu_records_host_values(mlp):
    import core

    if not core.cuda.is_available():
        pytest.skip(core.cuda.unavailable_reason())
    session = Session.from_file(mlp, device="cuda", steps=2)
    session.start()
    assert session.wait(60)
    assert session.state == "finished", session.error
    rec = session.recording
    forward = [e for e in rec.events if type(e) is OpForward]
    assert forward and all(e.device == "cuda" for e in forward)
    value = rec.value(forward[0].output)
    assert isinstance(value, np.ndarray)
    cpu = Session.from_file(mlp, device="cpu", steps=2)
    cpu.start()
    assert cpu.wait(60)
    assert [round(v, 4) for _, v in cpu.recording.losses] == [round(v, 4) for _, v in rec.losses]


def test_dead_relu_recording_shows_the_zero_gradient_fraction():
    import os

    from core.observe.events import GradAccumulated

    path = os.path.join(os.path.dirname(__file__), "..", "samples", "dead_relu.py")
    session = Session.from_file(path, steps=2)
    session.start()
    assert session.wait(30)
    rec = session.recording
    accumulated = [e for e in rec.events if type(e) is GradAccumulated and e.name == "fc1.weight"]
    assert len(accumulated) == 2
    last = accumulated[-1]
    fraction = rec.zero_grad_fraction(last.tensor_id)
    assert fraction is not None and fraction > 0.5
    assert last.stats.zeros / last.stats.size == pytest.approx(fraction)
    grad = rec.grad_of(last.tensor_id)
    assert last.stats.zeros == int((grad == 0).sum())
