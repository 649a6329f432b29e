#!/usr/bin/env python
"""Profile the engine side of one engine_step.py figure.

    python bench/profile_engine.py mlp_step [--steps 300] [--mode cprofile|ops|faults|alloc]
                                           [--malloc default|keep] [--device cpu|cuda]

cprofile: cProfile of the engine step, top functions by own time.
ops:      per-op array time from the engine's own OpForward/OpBackward durations
          (a subscriber without stats/source), against the step's wall time.
faults:   minor page faults and wall time per step of engine and baseline.
alloc:    peak NumPy memory (tracemalloc) a step holds above what was live before it.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import pstats
import sys
import time
import tracemalloc

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as engine_step.py's default
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_step as es  # noqa: E402

from core.observe.bus import BUS  # noqa: E402
from core.observe.events import OpBackward, OpForward


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("figure", choices=[f for f in es.FIGURES if f != "add_us"])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--mode", default="cprofile", choices=("cprofile", "ops", "faults", "alloc"))
    ap.add_argument("--malloc", default="keep", choices=("default", "keep"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", default="tottime")
    args = ap.parse_args()
    es.set_malloc(args.malloc)
    dev = es.Device(args.device)
    engine_step, base_step, _model, _base = es.SETUPS[args.figure](dev)
    unsub = None
    if args.figure == "mlp_step_events":
        unsub = BUS.subscribe(lambda e: None, stats=True, source=True)
    for _ in range(20):
        engine_step()
        base_step()
    if args.mode == "cprofile":
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.steps):
            engine_step()
        dev.sync()
        prof.disable()
        st = pstats.Stats(prof)
        st.sort_stats(args.sort).print_stats(args.top)
    elif args.mode == "ops":
        agg = collections.defaultdict(lambda: [0, 0])

        def on(e):
            if isinstance(e, OpForward):
                k = (e.phase, e.op, e.shape)
            elif isinstance(e, OpBackward):
                k = ("backward-rule", e.op, ())
            else:
                return
            agg[k][0] += 1
            agg[k][1] += e.duration_ns

        u = BUS.subscribe(on)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            engine_step()
        wall = time.perf_counter() - t0
        u()
        n = args.steps
        print(f"wall per step (with a plain subscriber): {wall / n * 1e6:.1f} us")
        tot = 0
        for k, (c, d) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
            if k[0] != "backward-rule":
                tot += d
            print(f"{d / n / 1e3:9.1f} us  x{c // n:<3d} {k}")
        print(
            f"sum of forward/update op array time: {tot / n / 1e3:.1f} us per step "
            "(backward rules include the ops they call)"
        )
    elif args.mode == "alloc":
        # peak of NumPy/Python memory a step holds at once above what was live before it
        tracemalloc.start()
        for name, fn in (("engine", engine_step), ("baseline", base_step)) * 2:
            fn()
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            fn()
            peak = tracemalloc.get_traced_memory()[1]
            print(f"{name:9s} peak temporaries per step: {(peak - before) / 1e6:.2f} MB")
        tracemalloc.stop()
    else:
        for name, fn in (("engine", engine_step), ("baseline", base_step)) * 2:
            f0 = es.minflt()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            t1 = time.perf_counter()
            print(
                f"{name:9s} {(t1 - t0) / args.steps * 1e3:.3f} ms/step "
                f"{(es.minflt() - f0) / args.steps:.1f} minflt/step"
            )
    if unsub:
        unsub()


if __name__ == "__main__":
    main()
