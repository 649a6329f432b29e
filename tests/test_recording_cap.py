"""The memory cap: it bounds events and values together, drops the oldest steps first,
keeps the newest whole, and says so while the run goes on (issue 9 item 2, issue 12
item 5). Real runs of the samples, real memory measured with tracemalloc."""

from __future__ import annotations

import gc
import os
import tracemalloc

import pytest

from core.debug.recording import DROPPED, KEPT_STEPS, SLOT_BYTES
from core.debug.session import Session
from core.observe.events import OpForward, StepEnded, StepStarted

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples")
MIB = 2**20


def run(sample: str, steps: int, cap: int) -> tuple[Session, list[tuple[int, str]]]:
    session = Session.from_file(os.path.join(SAMPLES, sample), steps=steps, cap_bytes=cap)
    notes: list[tuple[int, str]] = []
    session.on_note(lambda text: notes.append((session.step_index, text)))
    session.start()
    assert session.wait(120) and session.state == "finished", session.error
    return session, notes


@pytest.mark.parametrize(
    ("sample", "steps", "mib"),
    [("mlp_moons.py", 120, 1), pytest.param("attention.py", 30, 8, marks=pytest.mark.slow)],
)
def test_the_newest_steps_keep_everything_and_the_oldest_give_way(sample, steps, mib):
    session, notes = run(sample, steps, cap=mib * MIB)
    rec = session.recording
    assert rec.capped and rec.bytes + rec.event_bytes <= rec.cap_bytes
    # told while the run went on, not only at the end
    [(at_step, note)] = notes
    assert at_step < steps - 1 and f"memory cap ({mib} MiB)" in note
    # every step's loss and summary stays
    assert [s for s, _ in rec.losses] == list(range(steps))
    assert [type(rec.events[i]) for i in rec.steps] == [StepStarted] * steps
    # the newest steps: every event, every value (the last step's nodes show values)
    newest = rec.steps[-KEPT_STEPS]
    assert all(e is not DROPPED for e in rec.events[newest:])
    last = len(rec) - 1
    outputs = [e.output for e in rec.events[rec.steps[-1] :] if type(e) is OpForward]
    assert outputs and all(rec.value(t, at=last) is not None for t in outputs)
    # the oldest step: its detail went, its summary stayed
    first = rec.steps[0]
    assert rec.events[first + 1] is DROPPED
    assert type(rec.events[rec.steps[1] - 1]) is StepEnded
    # in between, statistics stay on every event still kept
    kept = [e for e in rec.events if type(e) is OpForward and e.phase == "forward"]
    assert all(e.stats is not None for e in kept)


def test_the_cap_can_be_changed_while_a_run_records():
    session, _ = run("mlp_moons.py", 5, cap=512 * MIB)
    rec = session.recording
    assert not rec.capped
    rec.cap_bytes = 200_000
    rec.add(StepStarted(step=5))  # the next event applies the new cap
    assert rec.capped and rec.bytes + rec.event_bytes <= 200_000


@pytest.mark.slow
def test_memory_stays_flat_after_the_cap():
    """Real memory (tracemalloc) of a capped run: four times the steps may cost only the
    slots of dropped events, not their events or values."""
    cap = 2 * MIB
    sizes = {}
    for steps in (60, 240):
        gc.collect()
        tracemalloc.start()
        session, _ = run("mlp_moons.py", steps, cap)
        session.run = None  # the model and data: not the recording's
        gc.collect()
        sizes[steps] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        events = len(session.recording)
        del session
    growth = sizes[240] - sizes[60]
    slots = SLOT_BYTES * events * (240 - 60) / 240
    assert sizes[60] < 2 * cap
    # the indexes (dicts) of the kept steps neither shrink on delete nor grow
    # smoothly: one resize moves a few hundred KiB, so the allowance is half the cap
    assert growth < slots + 0.5 * cap, (sizes, slots)


def test_a_capped_recording_saves_loads_and_exports_with_its_gaps(tmp_path):
    from core.debug import recfile
    from core.debug.trace import chrome_trace

    session, _ = run("mlp_moons.py", 60, cap=1 * MIB)
    rec = session.recording
    gaps = [i for i, e in enumerate(rec.events) if e is DROPPED]
    assert gaps
    recfile.save(rec, tmp_path / "capped.gsrec")
    back = recfile.load(tmp_path / "capped.gsrec")
    assert [i for i, e in enumerate(back.events) if e is DROPPED] == gaps
    assert back.steps == rec.steps and back.losses == rec.losses
    assert back.detail_start == rec.detail_start
    newest = rec.steps[-1]
    outputs = [e.output for e in rec.events[newest:] if type(e) is OpForward]
    last = len(rec) - 1
    for tid in outputs:
        assert (back.value(tid, at=last) == rec.value(tid, at=last)).all()
    assert back.value(outputs[0], at=rec.steps[0] + 1) is None  # in a dropped step
    trace = chrome_trace(back)
    steps = [e for e in trace["traceEvents"] if e.get("cat") == "step"]
    assert len(steps) == 60


@pytest.mark.slow
def test_a_long_run_under_a_small_cap_still_keeps_the_newest_values():
    """What an old step keeps (its summary, the slots of its dropped events) is outside
    the cap; counted, it grew past the cap and starved the newest steps of values."""
    session, _ = run("neuron.py", 1500, cap=64 * 1024)
    rec = session.recording
    assert rec.bytes + rec.event_bytes <= rec.cap_bytes
    last = len(rec) - 1
    outputs = [e.output for e in rec.events[rec.steps[-1] :] if type(e) is OpForward]
    assert outputs and all(rec.value(t, at=last) is not None for t in outputs)
    assert len(rec.dropped) < 100  # the ids of long-gone steps are forgotten
