#!/usr/bin/env python
"""What running each program in a child process would cost, against the in-process run.

Issue 9 item 4 asks to choose between a child process per run (a stuck program can
then be killed) and a documented in-process limit. This measures both sides on
samples/mlp_moons.py and prints JSON lines (medians of ``--repeats``, with min/max):

``start``
    In process: ``Session.start()`` to the first op event. In a child: a fresh
    ``python`` that imports the engine, loads and builds the same program and says
    "ready" on a pipe (what every run, and every restart, would pay). ``ratio`` is
    child / in-process.

``events``
    Per training step: the events a recorded step makes, taken into a Recording in
    process (``Recording.add``), against the same events encoded (the recording
    file's codec), written to a pipe, read back and decoded in a second thread, as
    a parent process would receive them; values are copied through the pipe too.
    ``ratio`` is the step's time with the transfer / without it.

``stop``
    In process: Stop to the end of a run blocked in ``time.sleep``: never (the
    watchdog names the line after its grace period; see ``core.debug.lifecycle``).
    In a child: SIGKILL to the child's exit, what Stop would cost there.

    python bench/stop_isolation.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.debug import recfile_fast as fast  # noqa: E402
from core.debug.recfile_schema import _dumps  # noqa: E402
from core.debug.recording import Recording  # noqa: E402
from core.debug.session import Session  # noqa: E402
from core.observe.events import OpForward, StepEnded  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = os.path.join(REPO, "samples", "mlp_moons.py")
CHILD = (
    "import sys\n"
    "from core.debug import program\n"
    "run = program.load(sys.argv[1]).build('cpu')\n"
    "print('ready', flush=True)\n"
    "sys.stdin.read()\n"
)


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def spread(values: list[float], scale: float = 1.0, digits: int = 2) -> dict:
    return {
        "median": round(statistics.median(values) * scale, digits),
        "min": round(min(values) * scale, digits),
        "max": round(max(values) * scale, digits),
    }


def start_in_process() -> float:
    session = Session.from_file(PROGRAM, steps=1)
    seen = threading.Event()
    session.on_event(lambda e: type(e) is OpForward and seen.set())
    begin = time.perf_counter()
    session.start()
    seen.wait(30)
    took = time.perf_counter() - begin
    session.wait(30)
    return took


def start_child() -> tuple[float, subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": REPO}
    begin = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, PROGRAM],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout.readline().strip() == "ready"
    return time.perf_counter() - begin, child


def recorded_steps(steps: int) -> tuple[Recording, list[float]]:
    session = Session.from_file(PROGRAM, steps=steps)
    times: list[float] = []
    last = [time.perf_counter()]

    def on_event(event) -> None:
        if type(event) is StepEnded:
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

    session.on_event(on_event)
    session.start()
    session.wait(120)
    return session.recording, times[1:]


def transfer(rec: Recording) -> float:
    """Seconds to push every event and value of ``rec`` through a pipe and decode them,
    as a parent process would receive a child's run."""
    read_fd, write_fd = os.pipe()
    received = []

    def reader() -> None:
        with os.fdopen(read_fd, "rb") as fh:
            for line in fh:
                if line.startswith(b"V "):
                    _, dtype, size = line.split()
                    received.append(np.frombuffer(fh.read(int(size)), dtype.decode()))
                else:
                    received.append(json.loads(line))

    thread = threading.Thread(target=reader)
    thread.start()
    begin = time.perf_counter()
    with os.fdopen(write_fd, "wb", buffering=2**16) as out:
        for event in rec.events:
            try:
                fields = fast.encode(event)
            except fast.Slow:  # a non-finite statistic: the full codec's share is small
                fields = {}
            out.write(_dumps({"type": type(event).__name__} | fields).encode() + b"\n")
        for array in rec.values.values():
            data = array.tobytes()
            out.write(f"V {array.dtype.str} {len(data)}\n".encode())
            out.write(data)
    thread.join()
    assert len(received) == len(rec) + len(rec.values)
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    emit({"figure": "environment", "python": platform.python_version(), "cpus": os.cpu_count()})

    inside = [start_in_process() for _ in range(args.repeats)]
    outside = []
    kills = []
    for _ in range(args.repeats):
        took, child = start_child()
        outside.append(took)
        begin = time.perf_counter()
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills.append(time.perf_counter() - begin)
    emit(
        {"figure": "start", "unit": "ms", "in_process": spread(inside, 1e3)}
        | {"child_process": spread(outside, 1e3)}
        | {"ratio": round(statistics.median(outside) / statistics.median(inside), 1)}
    )

    rec, step_times = recorded_steps(args.steps)
    per_step = statistics.median(step_times)
    moves = [transfer(rec) / args.steps for _ in range(args.repeats)]
    emit(
        {"figure": "events", "unit": "ms per step", "events_per_step": len(rec) // args.steps}
        | {"recorded_step": round(per_step * 1e3, 3), "transfer": spread(moves, 1e3, 3)}
        | {"ratio": round((per_step + statistics.median(moves)) / per_step, 2)}
    )
    emit(
        {"figure": "stop", "unit": "ms", "in_process_blocked": None}
        | {"child_process_kill": spread(kills, 1e3)}
    )


if __name__ == "__main__":
    main()
