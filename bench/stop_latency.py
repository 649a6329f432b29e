#!/usr/bin/env python
"""Stop latency: from Stop to an idle session, on a step that never ends and keeps
making tensor ops (issue 12 item 7; the GUI test sends the key through the bridge).

For each repeat the endless step runs, recorded, until it has made ``--events``
events (its graph grows as it goes), then Stop is asked; the time until the
session is "stopped" is measured. Prints one JSON line: the median and spread in
ms, the events at the moment of Stop, target 200 ms (``ratio`` = median / 200).

    python bench/stop_latency.py --repeats 7 --events 60000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ENDLESS = os.path.join(ROOT, "tests", "data", "endless.py")  # a step that never ends

from core.debug.session import Session  # noqa: E402


def once(path: str, events: int) -> tuple[float, int]:
    session = Session.from_file(path)
    session.start()
    while len(session.recording) < events:
        time.sleep(0.005)
    at = len(session.recording)
    begin = time.perf_counter()
    session.stop()
    while session.state != "stopped":
        time.sleep(0.0005)
    took = time.perf_counter() - begin
    assert session.wait(5)
    return took, at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--events", type=int, default=60_000)
    args = parser.parse_args()
    runs = [once(ENDLESS, args.events) for _ in range(args.repeats)]
    times = [t * 1e3 for t, _ in runs]
    median = statistics.median(times)
    record = {
        "figure": "stop_latency",
        "unit": "ms",
        "median": round(median, 1),
        "min": round(min(times), 1),
        "max": round(max(times), 1),
        "events_at_stop": statistics.median(n for _, n in runs),
        "target": 200,
        "ratio": round(median / 200, 3),
    }
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
