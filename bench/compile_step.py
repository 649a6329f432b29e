#!/usr/bin/env python
"""Compiled (``core.compile``) against eager and against hand-written NumPy,
measured in the same run: medians of interleaved blocks (see engine_step.py).

    python bench/compile_step.py                 # every figure
    python bench/compile_step.py --only tiny_mlp_step --repeats 30

Figures (one JSON line each):

- ``tiny_mlp_step``: the 2-16-16-1 tanh MLP step, compiled against the NumPy
  step (ratio, target <= 1.5; eager is about 3.4);
- ``gelu_layernorm_mlp``: an MLP with GELU and LayerNorm, width 1024, batch
  256, eager against compiled (speedup, target >= 1.5); ``gemm_floor_ms``: its
  five big matrix products alone, and ``speedup_bound``: eager over them, the
  most compiling could give with every other op free;
- ``gelu_chain``: the tanh-form GELU written as a chain of tensor ops on 4M
  float32 values, forward and backward, eager against compiled (speedup,
  target >= 2); both speedups are taken after three calls each way agree
  (``max_rel_diff``, ``agrees``);
- ``mlp_step``: the 784-256-256-10 MLP step, compiled against NumPy (ratio,
  target <= 1.05);
- ``samples``: per sample, ops per eager step against kernels per compiled
  step, and the peak traced memory (tracemalloc) of a step each way;
- ``first_call``: trace + passes + code generation of mlp_moons, in ms.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import tracemalloc

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from blas_threads import pin_from_argv

    pin_from_argv()

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from engine_step import (  # noqa: E402
    Device,
    emit,
    interleaved,
    machine_facts,
    set_malloc,
    setup_mlp,
)

import core  # noqa: E402
import core.functional as F  # noqa: E402
from core import nn, optim  # noqa: E402
from core.debug import program as programs  # noqa: E402
from core.debug.compare import Agreement, agree  # noqa: E402
from core.engine import dispatch  # noqa: E402

FIGURES = ("tiny_mlp_step", "gelu_layernorm_mlp", "gelu_chain", "mlp_step", "samples", "first_call")
SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples")


def _medians(res: dict) -> tuple[float, float]:
    return statistics.median(res["engine"]), statistics.median(res["baseline"])


def against_numpy(name: str, dev, args, setup, target: float) -> dict:
    """Compiled step against the hand-written NumPy step (lower is better)."""
    engine_step, base_step, _model, _base = setup(dev)
    compiled = core.compile(engine_step)
    compiled()  # traced
    compiled_loss, numpy_loss = float(compiled().item()), float(base_step())
    res = interleaved(compiled, base_step, dev, args.repeats, args.block_ms / 1e3)
    me, mb = _medians(res)
    return {
        "figure": name,
        "ratio": round(me / mb, 3),
        "median_compiled_ms": round(me * 1e3, 4),
        "median_numpy_ms": round(mb * 1e3, 4),
        "compiled_ms_iqr": _iqr(res["engine"]),
        "numpy_ms_iqr": _iqr(res["baseline"]),
        "kernels": len(compiled.latest.program.kernels),
        "losses_after_warmup": [compiled_loss, numpy_loss],
        "target": target,
        "meets_target": me / mb <= target,
    }


def _iqr(xs: list[float]) -> list[float]:
    q = statistics.quantiles(xs, n=4)
    return [round(q[0] * 1e3, 4), round(q[2] * 1e3, 4)]


def speedup(name: str, dev, args, make_step, target: float) -> dict:
    """Eager against compiled on the same state (higher is better), after
    checking that they compute the same: ``make_step(dev)`` twice gives two
    identical states; three calls of each, eager and compiled, must agree
    (``max_rel_diff``, relative to the largest value, under 1e-4 in float32)."""
    eager_step = make_step(dev)
    compiled = core.compile(make_step(dev))
    row = Agreement(name)
    with np.errstate(all="ignore"):
        for i in range(3):
            agree(row, _host64(eager_step()), _host64(compiled()), i)
    diff = row.max_rel
    res = interleaved(eager_step, compiled, dev, args.repeats, args.block_ms / 1e3)
    me, mc = _medians(res)
    agrees = diff < 1e-4 and not row.nan_mismatch
    return {
        "figure": name,
        "speedup": round(me / mc, 3),
        "max_rel_diff": float(f"{diff:.3g}"),
        "agrees": agrees,
        "median_eager_ms": round(me * 1e3, 3),
        "median_compiled_ms": round(mc * 1e3, 3),
        "eager_ms_iqr": _iqr(res["engine"]),
        "compiled_ms_iqr": _iqr(res["baseline"]),
        "kernels": len(compiled.latest.program.kernels),
        "target": target,
        "meets_target": agrees and me / mc >= target,
    }


def _host64(t) -> np.ndarray:
    return core.device.to_host(t.data).astype(np.float64)


def gelu_layernorm_mlp(dev):
    core.manual_seed(0)
    width, batch = 1024, 256
    model = nn.Sequential(
        nn.Linear(width, width),
        nn.GELU(),
        nn.LayerNorm(width),
        nn.Linear(width, width),
        nn.GELU(),
        nn.LayerNorm(width),
        nn.Linear(width, 16),
    ).to(dev.name)
    opt = optim.SGD(model.parameters(), lr=0.01)
    x, y = core.randn(batch, width, device=dev.name), core.randn(batch, 16, device=dev.name)

    def step():
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def gemm_floor(dev, width=1024, batch=256):
    """The five 256x1024 by 1024x1024 matrix products of a gelu_layernorm_mlp
    step (two layers forward, their two weight gradients, one input gradient),
    alone: no compiled step can take less, so eager's time over this bounds any
    speedup compiling can give (``speedup_bound`` in its line)."""
    xp = dev.xp
    rng = np.random.default_rng(0)
    x, g = (xp.asarray(rng.standard_normal((batch, width), np.float32)) for _ in range(2))
    w = xp.asarray(rng.standard_normal((width, width), np.float32))

    def step():
        for _ in range(2):
            xp.matmul(x, w.T)  # a layer's forward
            xp.matmul(g.T, x)  # its weight's gradient
        xp.matmul(g, w)  # the input gradient of the second layer

    return step


def gelu_chain(dev, n=4 * 2**20):
    """The tanh-form GELU as a user writes it, forward and backward."""
    core.manual_seed(0)
    x = core.randn(n, requires_grad=True, device=dev.name)
    k = math.sqrt(2.0 / math.pi)

    def step():
        x.grad = None
        y = 0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
        y.sum().backward()
        return x.grad

    return step


def sample_figures(device: str = "cpu") -> dict:
    rows = {}
    for name in sorted(f for f in os.listdir(SAMPLES) if f.endswith(".py")):
        run = programs.load(os.path.join(SAMPLES, name)).build(device)
        compiled = core.compile(run.step)

        def do_eager(i, run=run):
            return run.step(run.batches(i)) if run.batches else run.step()

        def do_compiled(i, run=run, compiled=compiled):
            return compiled(run.batches(i)) if run.batches else compiled()

        do_compiled(0)
        ops = _count_ops(lambda: do_eager(1))
        eager_peak = _peak(lambda: do_eager(2))
        compiled_peak = _peak(lambda: do_compiled(3))
        kernels = len(compiled.latest.program.kernels)
        rows[name] = {
            "eager_ops": ops,
            "compiled_kernels": kernels,
            "eager_peak_kib": round(eager_peak / 1024, 1),
            "compiled_peak_kib": round(compiled_peak / 1024, 1),
            "graphs": len(compiled.graphs),
        }
    return {"figure": "samples", "device": device, "per_sample": rows}


def _count_ops(fn) -> int:
    count = [0]

    def hook(kind, payload):
        if kind == "op":
            count[0] += 1
        return payload[2] if kind == "read" else None

    previous = dispatch.set_hook(hook)
    try:
        fn()
    finally:
        dispatch.set_hook(previous)
    return count[0]


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


_FIRST_CALL = """
import os, sys, time
sys.path.insert(0, {root!r})
import core
import core.functional as F
from core import nn, optim
from core.debug import program as programs
if {which!r} == "mlp_moons.py":
    step = programs.load(os.path.join({samples!r}, "mlp_moons.py")).build("cpu").step
else:  # a 784-256-256-10 MLP with Adam: its updates are Numba candidates
    core.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    opt = optim.Adam(model.parameters())
    x, y = core.randn(64, 784), core.randint(0, 10, (64,))

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
compiled = core.compile(step, kernels={kernels!r})
start = time.perf_counter()
compiled()
entry = compiled.latest
numba = sum("[numba]" in k.name for k in entry.program.kernels)
print(time.perf_counter() - start, entry.trace_ns / 1e9, entry.compile_ns / 1e9, numba)
"""


def first_call() -> dict:
    """Trace + passes + code generation of mlp_moons's step in a fresh process:
    with NumPy kernels only, and with Numba's where they win, cold (an empty
    kernel cache) and warm (the cache the cold run left)."""
    import subprocess
    import tempfile

    root = os.path.dirname(SAMPLES)
    out: dict = {"figure": "first_call"}
    for which in ("mlp_moons.py", "adam_mlp_784"):
        row = {}
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "GRADSTEP_CACHE": cache}
            for label, kernels in (("numpy_kernels", "numpy"), ("cold", "auto"), ("warm", "auto")):
                code = _FIRST_CALL.format(root=root, samples=SAMPLES, kernels=kernels, which=which)
                done = subprocess.run(
                    [sys.executable, "-c", code], env=env, capture_output=True, text=True
                )
                if done.returncode != 0:
                    raise RuntimeError(done.stderr)
                total, _tracing, compiling, numba = done.stdout.split()
                row[f"{label}_ms"] = round(float(total) * 1e3, 1)
                row[f"{label}_passes_and_codegen_ms"] = round(float(compiling) * 1e3, 1)
                row[f"{label}_numba_kernels"] = int(numba)
        out[which] = row
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--block-ms", type=float, default=40.0)
    ap.add_argument("--only", choices=FIGURES, action="append")
    ap.add_argument(
        "--blas-threads",
        default=None,
        help="BLAS threads (default 1; 0: as the environment says); see blas_threads.py",
    )
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not core.cuda.is_available():
        emit({"figure": "skipped", "device": "cuda", "reason": core.cuda.unavailable_reason()})
        return 0
    set_malloc("keep")
    dev = Device(args.device)
    emit({"figure": "environment", **machine_facts(), "cpus": os.cpu_count()})
    figures = args.only or list(FIGURES)
    for name in figures:
        if name == "tiny_mlp_step":
            tiny = lambda d: setup_mlp(d, (2, 16, 16, 1), 16, "tanh", "mse")  # noqa: E731
            emit(against_numpy(name, dev, args, tiny, 1.5))
        elif name == "mlp_step":
            emit(against_numpy(name, dev, args, setup_mlp, 1.05))
        elif name == "gelu_layernorm_mlp":
            row = speedup(name, dev, args, gelu_layernorm_mlp, 1.5)
            gemms = interleaved(
                lambda: None, gemm_floor(dev), dev, args.repeats, args.block_ms / 1e3
            )
            floor = statistics.median(gemms["baseline"])
            row["gemm_floor_ms"] = round(floor * 1e3, 3)
            row["speedup_bound"] = round(row["median_eager_ms"] / (floor * 1e3), 3)
            emit(row)
        elif name == "gelu_chain":
            emit(speedup(name, dev, args, gelu_chain, 2.0))
        elif name == "samples":
            emit(sample_figures(dev.name))
        elif name == "first_call":
            emit(first_call())
    return 0


if __name__ == "__main__":
    with np.errstate(all="ignore"):
        sys.exit(main())
