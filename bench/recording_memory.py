#!/usr/bin/env python
"""Peak memory of a long headless run: is it flat once the memory cap is reached?

Runs ``gradstep run samples/mlp_moons.py --steps N`` (default 30,000) as a child
process, samples its resident memory (VmRSS) every half second, and prints JSON
lines, one per way of running:

- ``summary_only``: no ``--record``: the run keeps what its summary needs;
- ``recorded``: ``--record FILE`` with the default cap (512 MiB): the recording
  is kept, bounded by the cap (events and values), and saved at the end.

Each line: the peak (VmHWM) in MiB, the RSS at each quarter of the run, and the
growth in MiB/s over the second half (flat: about 0). Target: peak under 1 GB
(``ratio`` = peak / 1024 MiB).

    python bench/recording_memory.py                # 30,000 steps, both ways
    python bench/recording_memory.py --steps 5000 --only summary_only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_MIB = 1024


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def status(pid: int, key: str) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def run(way: str, steps: int, tmp: str) -> dict:
    args = [sys.executable, "-m", "app", "run", "samples/mlp_moons.py", "--steps", str(steps)]
    if way == "recorded":
        args += ["--record", os.path.join(tmp, "run.gsrec")]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": REPO}
    start = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    samples: list[tuple[float, float]] = []
    peak = 0.0
    while proc.poll() is None:
        rss = status(proc.pid, "VmRSS")
        hwm = status(proc.pid, "VmHWM")
        if rss is not None:
            samples.append((time.monotonic() - start, rss))
        if hwm is not None:
            peak = max(peak, hwm)
        time.sleep(0.5)
    out = proc.stdout.read()
    elapsed = time.monotonic() - start
    quarters = [_at(samples, elapsed * q / 4) for q in (1, 2, 3, 4)]
    half = [s for s in samples if s[0] >= elapsed / 2]
    growth = (half[-1][1] - half[0][1]) / (half[-1][0] - half[0][0]) if len(half) > 1 else 0.0
    return {
        "figure": f"peak_rss_{way}",
        "steps": steps,
        "exit": proc.returncode,
        "seconds": round(elapsed, 1),
        "peak_mib": round(peak),
        "rss_quarters_mib": [round(q) for q in quarters],
        "growth_second_half_mib_per_s": round(growth, 2),
        "cap_reached": "memory cap reached" in out,
        "target": TARGET_MIB,
        "ratio": round(peak / TARGET_MIB, 3),
    }


def _at(samples: list[tuple[float, float]], t: float) -> float:
    before = [s for s in samples if s[0] <= t]
    return before[-1][1] if before else (samples[0][1] if samples else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--only", choices=("summary_only", "recorded"))
    args = parser.parse_args()
    emit({"figure": "environment", "python": platform.python_version(), "cpus": os.cpu_count()})
    with tempfile.TemporaryDirectory() as tmp:
        for way in ("summary_only", "recorded"):
            if args.only in (None, way):
                emit(run(way, args.steps, tmp))


if __name__ == "__main__":
    main()
