#!/usr/bin/env python
"""Recording files at size: save and load of a 100,000-op step, and opening a big file.

Prints JSON lines (medians of ``--repeats`` runs, with the spread as min and max):

``save_100k_op_step`` / ``load_100k_op_step``
    One step of 100,000 scalar ops and its backward pass (300,004 events, 300,002
    values kept), saved with ``core.debug.recfile.save`` and loaded back with
    ``load``. Target: under 5 s each (issue 9); ``ratio`` is seconds / 5.

``open_big_recording`` / ``first_value``
    A recording of about ``--mib`` MiB (attention.py, as many steps as that takes,
    with a cap that keeps them): the time ``load`` takes (the index: events and the
    values' places), then the time to read the last step's first value, as the
    window does when it shows a node. Target: the two within 2 s (issue 12);
    ``ratio`` is seconds / 2.

    python bench/recfile_speed.py                  # everything, 3 repeats
    python bench/recfile_speed.py --only open --mib 500
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import core  # noqa: E402
from core.debug import recfile  # noqa: E402
from core.debug.recording import Recording  # noqa: E402
from core.debug.session import Session  # noqa: E402
from core.observe.events import OpForward  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def timed(fn, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {
        "seconds": round(statistics.median(times), 3),
        "min": round(min(times), 3),
        "max": round(max(times), 3),
    }


def step_of(ops: int) -> Recording:
    rec = Recording()
    with rec.attach():
        x = core.tensor(1.0, requires_grad=True)
        y = x
        for _ in range(ops):
            y = y * 1.0001
        y.backward()
    return rec


def bench_100k(tmp: str, repeats: int) -> None:
    rec = step_of(100_000)
    path = os.path.join(tmp, "step.gsrec")
    save = timed(lambda: recfile.save(rec, path), repeats)
    size = os.path.getsize(path)
    emit(
        {"figure": "save_100k_op_step", "events": len(rec), "values": len(rec.values)}
        | save
        | {
            "file_mib": round(size / 2**20, 1),
            "target": 5.0,
            "ratio": round(save["seconds"] / 5, 3),
        }
    )
    load = timed(lambda: recfile.load(path), repeats)
    emit(
        {"figure": "load_100k_op_step", "events": len(rec)}
        | load
        | {"target": 5.0, "ratio": round(load["seconds"] / 5, 3)}
    )


def bench_open(tmp: str, repeats: int, mib: int) -> None:
    program = os.path.join(REPO, "samples", "attention.py")
    probe = Session.from_file(program, steps=2)
    probe.start()
    probe.wait()
    per_step = probe.recording.bytes / 2
    steps = max(2, int(mib * 2**20 / per_step))
    session = Session.from_file(program, steps=steps, cap_bytes=(mib + 64) * 2**20)
    session.start()
    session.wait()
    path = os.path.join(tmp, "big.gsrec")
    recfile.save(session.recording, path)
    size = os.path.getsize(path)
    del session
    gc.collect()
    opened: list[Recording] = []

    def open_it() -> None:
        opened.append(recfile.load(path))

    index = timed(open_it, repeats)
    rec = opened[-1]
    last = rec.steps[-1]
    first_op = next(e for e in rec.events[last:] if type(e) is OpForward)
    value = timed(lambda: rec.values.__getitem__(first_op.output), 1)
    emit(
        {"figure": "open_big_recording", "file_mib": round(size / 2**20), "steps": steps}
        | {"events": len(rec), "values": len(rec.values)}
        | index
        | {"target": 2.0, "ratio": round(index["seconds"] / 2, 3)}
    )
    both = index["seconds"] + value["seconds"]
    emit(
        {"figure": "first_value", "seconds": value["seconds"], "index_and_value_s": both}
        | {"target": 2.0, "ratio": round(both / 2, 3)}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mib", type=int, default=500)
    parser.add_argument("--only", choices=("100k", "open"))
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    emit(
        {"figure": "environment", "cpu": cpu_model(), "cpus": os.cpu_count()}
        | {"python": platform.python_version(), "load_average": load}
    )
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "100k"):
            bench_100k(tmp, args.repeats)
        if args.only in (None, "open"):
            bench_open(tmp, args.repeats, args.mib)


if __name__ == "__main__":
    main()
