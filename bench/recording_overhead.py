#!/usr/bin/env python
"""What recording a run costs: time against unrecorded runs, and bytes on disk.

For each program (samples/mlp_moons.py, samples/cnn_digits.py) this prints JSON lines:

``recording_overhead``
    The same N training steps run several ways, interleaved (the order rotates
    every repeat, so a noisy machine's drift hits all alike); each way reports
    the median wall time of its repeats, per step:

    - ``full``: ``Session(program, record=True)``, the default cap (what
      ``gradstep run`` and the app do);
    - ``none``: ``Session(program, record=False)``. The Session still
      subscribes to the bus (stats, sources and values), so the engine still
      builds every event; only ``Recording.add`` is skipped;
    - ``plain``: ``program.build("cpu")`` and N calls of ``run.step()`` in this
      thread, no Session and no bus subscriber: the true baseline;
    - with ``--breakdown`` (the default), plain loops with one bus subscriber
      that asks for more and more: ``events`` (no stats, no sources),
      ``stats``, ``stats_source`` and ``stats_source_values`` (what the
      Session asks for), so the differences say what each part costs.

    ``ratio_full_none`` (target <= 2.0) and ``ratio_full_plain`` are ratios
    of the medians.

``recording_size``
    One full recording saved with ``core.debug.recfile.save``: bytes on disk per
    1000 events, events, values kept, their MiB, the file's MiB, the
    uncompressed/stored sizes of its members, the bytes each kept value costs
    beyond its data (alignment in values.bin, its row in meta.json's index), and
    the kept values by the kind of event that named them.

``profile``
    When a ratio misses 2.0 (``--profile auto``, the default) or with
    ``--profile always``: cProfile of one full Session run (in this thread),
    the functions that matter by own and cumulative time, in microseconds per
    event and as a share of the run; then ``micro``: what ``summarize`` costs
    per call by array size, and a dtype's ``.name`` against a dict lookup.

    python bench/recording_overhead.py                 # both programs
    python bench/recording_overhead.py --steps 300 --repeats 7 --only mlp_moons
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
import zipfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as engine_step.py: steadier times
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from core.debug import program as programs  # noqa: E402
from core.debug import recfile  # noqa: E402
from core.debug.recording import DEFAULT_CAP  # noqa: E402
from core.debug.session import Session  # noqa: E402
from core.engine.tensor import reset_ids  # noqa: E402
from core.observe import events as ev  # noqa: E402
from core.observe.bus import BUS  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = {"mlp_moons": 300, "cnn_digits": 300}  # program -> default steps
TARGET = 2.0
BREAKDOWN = {  # name -> what the subscriber asks for (stats, source, values)
    "events": (False, False, False),
    "stats": (True, False, False),
    "stats_source": (True, True, False),
    "stats_source_values": (True, True, True),
}


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


# -- the ways of running ---------------------------------------------------------------


def plain_loop(program: programs.Program, steps: int) -> None:
    """The program's own loop: build, then step, nothing listening."""
    with np.errstate(all="ignore"):  # as the Session's worker
        run = program.build("cpu")
        batches = run.batches
        for i in range(steps):
            run.step(batches(i)) if batches is not None else run.step()


def subscribed_loop(program, steps, stats, source, values) -> None:
    """The plain loop with one do-nothing bus subscriber asking for these."""
    sink = (lambda event, arrays: None) if values else (lambda event: None)
    unsubscribe = BUS.subscribe(sink, stats=stats, source=source, values=values)
    try:
        plain_loop(program, steps)
    finally:
        unsubscribe()


def session_run(program, steps: int, record: bool) -> Session:
    session = Session(program, steps=steps, record=record)
    session.start()
    session.wait()
    if session.state != "finished":
        raise SystemExit(f"the run ended {session.state}: {session.reason}")
    return session


def timed(fn) -> tuple[float, object]:
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# -- figures --------------------------------------------------------------------------------


def overhead(name: str, program, steps: int, repeats: int, breakdown: bool) -> tuple[dict, Session]:
    ways = {
        "full": lambda: session_run(program, steps, True),
        "none": lambda: session_run(program, steps, False),
        "plain": lambda: (reset_ids(), plain_loop(program, steps)),
    }
    if breakdown:
        for way, flags in BREAKDOWN.items():
            ways[way] = lambda flags=flags: (reset_ids(), subscribed_loop(program, steps, *flags))
    names = list(ways)
    plain_loop(program, min(steps, 20))  # warm up: imports, caches, BLAS
    session_run(program, min(steps, 20), True)
    times: dict[str, list[float]] = {way: [] for way in names}
    last_full: Session | None = None
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for way in order:
            seconds, result = timed(ways[way])
            times[way].append(seconds)
            if way == "full":
                last_full = result
            del result
    med = {way: statistics.median(ts) for way, ts in times.items()}
    events = len(last_full.recording)
    record = {
        "figure": "recording_overhead",
        "program": f"samples/{name}.py",
        "steps": steps,
        "repeats": repeats,
        "events": events,
        "events_per_step": round(events / steps, 1),
        "ms_per_step": {way: round(med[way] / steps * 1e3, 4) for way in names},
        "spread_pct": {
            way: round(100 * (max(ts) - min(ts)) / statistics.median(ts), 1)
            for way, ts in times.items()
        },
        "ratio_full_none": round(med["full"] / med["none"], 3),
        "ratio_full_plain": round(med["full"] / med["plain"], 3),
        "ratio_none_plain": round(med["none"] / med["plain"], 3),
        "us_per_event_full_vs_plain": round((med["full"] - med["plain"]) / events * 1e6, 2),
        "us_per_event_full_vs_none": round((med["full"] - med["none"]) / events * 1e6, 2),
        "target_full_none": TARGET,
        "ok": med["full"] / med["none"] <= TARGET,
    }
    if breakdown:
        # each step of the ladder: what it adds, in microseconds per event
        ladder = ["plain", *BREAKDOWN, "none", "full"]
        record["us_per_event_added"] = {
            f"{b} - {a}": round((med[b] - med[a]) / events * 1e6, 2)
            for a, b in zip(ladder, ladder[1:])
        }
    emit(record)
    return record, last_full


def size(name: str, session: Session) -> dict:
    rec = session.recording
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.gsrec")
        start = time.perf_counter()
        recfile.save(rec, path)
        save_s = time.perf_counter() - start
        nbytes = os.path.getsize(path)
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
        events_info = next(i for i in infos if i.filename == "events.jsonl")
        values_stored = sum(i.compress_size for i in infos if i.filename == "values.bin")
        start = time.perf_counter()
        recfile.load(path)
        load_s = time.perf_counter() - start
    record = {
        "figure": "recording_size",
        "program": f"samples/{name}.py",
        "events": len(rec),
        "values_kept": len(rec.values),
        "values_dropped": len(rec.dropped),
        "values_mib": round(rec.bytes / 2**20, 2),
        "cap_mib": DEFAULT_CAP // 2**20,
        "file_mib": round(nbytes / 2**20, 2),
        "bytes_per_1000_events": round(nbytes / len(rec) * 1000),
        "events_jsonl_mib": round(events_info.file_size / 2**20, 2),
        "events_jsonl_deflated_mib": round(events_info.compress_size / 2**20, 2),
        "values_stored_mib": round(values_stored / 2**20, 2),
        # what is not raw value data nor events: 64-byte alignment and the index row
        "overhead_bytes_per_value": round(
            (nbytes - rec.bytes - events_info.compress_size) / max(len(rec.values), 1)
        ),
        "values_mib_by_event": _values_by_event(rec),
        "save_s": round(save_s, 3),
        "load_s": round(load_s, 3),
    }
    emit(record)
    return record


def _values_by_event(rec) -> dict[str, dict]:
    """Kept values (count, MiB), by the kind of event that first named them."""
    owner: dict[int, str] = {}
    for e in rec.events:
        kind = type(e)
        if kind is ev.OpForward:
            ids = [(e.output, f"OpForward/{e.phase}")]
        elif kind is ev.TensorCreated:
            ids = [(e.tensor_id, f"TensorCreated/{e.kind}")]
        elif kind is ev.OpBackward:
            ids = [(i, "OpBackward") for i in (e.grad_output, *e.grad_inputs) if i is not None]
        elif kind is ev.GradAccumulated:
            ids = [(e.grad_id, "GradAccumulated")]
        elif kind is ev.ParameterUpdated:
            ids = [(e.value_id, "ParameterUpdated")]
        else:
            continue
        for tid, name in ids:
            owner.setdefault(tid, name)
    out: dict[str, list] = {}
    for tid, array in rec.values.items():
        entry = out.setdefault(owner.get(tid, "?"), [0, 0])
        entry[0] += 1
        entry[1] += int(array.nbytes)
    ordered = sorted(out.items(), key=lambda kv: -kv[1][1])
    return {k: {"count": n, "mib": round(b / 2**20, 2)} for k, (n, b) in ordered}


def micro() -> None:
    """Per-call costs behind the profile: statistics by array size, dtype names."""
    import timeit

    summarize = getattr(ev, "_summarize", ev.summarize)  # the uncached path, if there is one
    rng = np.random.default_rng(0)
    shapes = [(), (16,), (200, 2), (200, 16), (32, 8, 8, 8), (32, 72, 64)]
    stats_us = {}
    for shape in shapes:
        a = rng.normal(size=shape).astype(np.float32)
        n = 2000 if a.size < 10_000 else 200
        best = min(timeit.repeat(lambda a=a: summarize(a), number=n, repeat=5)) / n
        stats_us["x".join(map(str, shape)) or "scalar"] = round(best * 1e6, 2)
    dtype = np.dtype(np.float32)
    names = {dtype: dtype.name}
    n = 100_000

    def per_call(fn) -> float:
        return round(min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6, 3)

    emit(
        {
            "figure": "micro",
            "summarize_us_by_shape": stats_us,
            "dtype_name_us": per_call(lambda: dtype.name),
            "dict_lookup_us": per_call(lambda: names[dtype]),
        }
    )


# -- profile --------------------------------------------------------------------------------

# (file suffix, function) -> what it stands for; cumulative time is reported for each
WATCH = {
    ("core/events.py", "summarize"): "stats: summarize() (all of it)",
    ("core/events.py", "_summarize"): "stats: _summarize() (cache misses)",
    ("core/events.py", "_summarize_nonfinite"): "stats: the NaN/Inf path",
    ("core/events.py", "_moments"): "stats: min/max/mean/std/norm (old / NaN path)",
    ("numpy/_core/_dtype.py", "_name_get"): "numpy dtype.name (per event)",
    ("core/tensor.py", "announce"): "TensorCreated: announce() (constants, inputs)",
    ("core/tensor.py", "_emit_backward"): "OpBackward: build + emit",
    ("core/tensor.py", "_flush_leaves"): "GradAccumulated: _flush_leaves",
    ("core/tensor.py", "user_source"): "source lines: user_source()",
    ("core/tensor.py", "plain_attrs"): "op attributes for events",
    ("core/tensor.py", "_emit_forward"): "OpForward: build + emit (incl. stats, source, bus)",
    ("core/events.py", "emit"): "bus: delivery to subscribers",
    ("core/session.py", "_on_bus"): "Session._on_bus (record + listeners + control)",
    ("core/session.py", "_control"): "Session._control (phase, depth, breakpoints)",
    ("core/recording.py", "add"): "Recording.add (all of it)",
    ("core/recording.py", "_keep"): "Recording._keep (host copies of values)",
    ("core/recording.py", "_index"): "Recording._index",
}


def profile(name: str, program, steps: int, top: int) -> None:
    """cProfile of one full Session run, run in this thread so cProfile sees it."""
    session = Session(program, steps=steps, record=True)  # not started: _work runs here
    prof = cProfile.Profile()
    gc.collect()
    start = time.perf_counter()
    prof.enable()
    session._work()
    prof.disable()
    wall = time.perf_counter() - start
    events = len(session.recording)
    stats = pstats.Stats(prof)
    total = stats.total_tt
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        rows.append((file, line, func, nc, tt, ct))

    def where(file: str, line: int, func: str) -> str:
        rel = os.path.relpath(file, REPO) if file.startswith(REPO) else file
        return f"{rel}:{line}:{func}" if not file.startswith("~") else func

    def row(file, line, func, nc, tt, ct) -> dict:
        return {
            "where": where(file, line, func),
            "calls": nc,
            "own_s": round(tt, 4),
            "cum_s": round(ct, 4),
            "own_us_per_event": round(tt / events * 1e6, 2),
            "cum_us_per_event": round(ct / events * 1e6, 2),
            "cum_pct": round(100 * ct / total, 1),
        }

    watched = {}
    for file, line, func, nc, tt, ct in rows:
        for (suffix, fname), label in WATCH.items():
            if file.endswith(suffix) and func == fname:
                watched[label] = row(file, line, func, nc, tt, ct)
    # dataclass __init__ of the (frozen, slotted) events: defined in "<string>"
    inits = [r for r in rows if r[0] == "<string>" and r[2] == "__init__"]
    if inits:
        watched["event construction: dataclass __init__ (all types)"] = {
            "calls": sum(r[3] for r in inits),
            "own_s": round(sum(r[4] for r in inits), 4),
            "own_us_per_event": round(sum(r[4] for r in inits) / events * 1e6, 2),
        }
    by_own = sorted(rows, key=lambda r: -r[4])[:top]
    emit(
        {
            "figure": "profile",
            "program": f"samples/{name}.py",
            "steps": steps,
            "events": events,
            "wall_s_profiled": round(wall, 3),
            "profiled_total_s": round(total, 3),
            "watched": watched,
            "top_own_time": [row(*r) for r in by_own],
        }
    )


# -- main -----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=sorted(PROGRAMS), action="append")
    ap.add_argument("--steps", type=int, help="training steps (default: 300 each)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats (>= 5)")
    ap.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    ap.add_argument("--profile", choices=("auto", "always", "never"), default="auto")
    ap.add_argument("--profile-steps", type=int, default=100)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    emit(
        {
            "figure": "environment",
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "cpus": os.cpu_count(),
        }
    )
    ok = True
    profiled = False
    for name in args.only or list(PROGRAMS):
        program = programs.load(os.path.join(REPO, "samples", f"{name}.py"))
        steps = args.steps or PROGRAMS[name]
        record, full = overhead(name, program, steps, args.repeats, args.breakdown)
        size(name, full)
        del full
        ok &= record["ok"]
        missed = record["ratio_full_none"] > TARGET or record["ratio_full_plain"] > TARGET
        if args.profile == "always" or (args.profile == "auto" and missed):
            profile(name, program, args.profile_steps, args.top)
            profiled = True
    if profiled:
        micro()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
