#!/usr/bin/env python
"""Engine overhead against hand-written array code, measured in the same run.

Each figure times a Gradstep training step (or op) against a raw NumPy (CPU) or
CuPy (CUDA) baseline computing the same thing on the same data, and prints one
JSON line. Engine and baseline blocks alternate (E B, B E, E B, ...) so slow
drift of a noisy machine hits both alike; each side reports the median over
repeats of its per-step time, and ``ratio`` is the ratio of those medians.

Before timing, one step of each network is run by both sides from the same
weights; the losses (and updated weights) must agree within 1e-4, else the
script exits 1 after printing the ``check`` line.

    python bench/engine_step.py                     # all figures on the CPU
    python bench/engine_step.py --only conv_step --repeats 50
    python bench/engine_step.py --device cuda       # engine on "cuda", CuPy baseline

Figures and targets: mlp_step (<= 1.25), mlp_step_events (<= 1.6),
tiny_mlp_step (<= 3), add_us (<= 5 microseconds), conv_step (<= 1.2).

The ratios depend on the machine as well as the engine, so the ``check`` line
names what they depend on: the CPU model, the CPU Numba compiles the
statistics kernels for, and the kernel set OpenBLAS picked (the baseline's
matmuls: an AVX-512 ``SkylakeX`` set makes NumPy faster, so the same engine
overhead is a larger ratio than on ``Haswell`` kernels). After
``mlp_step_events`` a ``mlp_step_events_breakdown`` line splits the figure's
extra time into event building and statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

if __name__ == "__main__":
    from blas_threads import pin_from_argv

    pin_from_argv()

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import core  # noqa: E402
import core.device  # noqa: E402
import core.functional as F  # noqa: E402
import core.observe.moments  # noqa: E402
from core import nn, optim  # noqa: E402
from core.observe.bus import BUS  # noqa: E402

FIGURES = ("mlp_step", "mlp_step_events", "tiny_mlp_step", "add_us", "conv_step")
TARGETS = {
    "mlp_step": ("ratio", 1.25),
    "mlp_step_events": ("ratio", 1.6),
    "tiny_mlp_step": ("ratio", 3.0),
    "add_us": ("us", 5.0),
    "conv_step": ("ratio", 1.2),
}
LR = 0.01
CHECK_TOL = 1e-4


# -- helpers -------------------------------------------------------------------


CLOCK = time.perf_counter  # --clock cpu switches to time.process_time


def set_malloc(mode: str) -> None:
    """``keep`` (the default): glibc keeps freed memory, as the app's entry point
    sets it (``core.memory.keep_freed_memory``); ``default`` leaves glibc as it is.

    By default glibc returns large freed blocks to the kernel, so a step that
    allocates fresh large temporaries pays page faults each time; which side
    pays how much then depends on allocation history.
    """
    if mode == "keep":
        from core.memory import keep_freed_memory

        keep_freed_memory()


def machine_facts() -> dict:
    """What the ratios depend on besides the engine: the CPU, the code paths
    the libraries chose on it, and the Python running them."""
    facts = {"python": sys.version.split()[0], "numpy": np.__version__}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            facts["cpu_model"] = next(
                (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")),
                "unknown",
            )
    except OSError:
        facts["cpu_model"] = "unknown"
    try:  # the CPU Numba compiles the statistics kernels for
        import llvmlite.binding as llvm

        facts["numba_target_cpu"] = llvm.get_host_cpu_name()
    except Exception as exc:  # Numba absent or broken: the NumPy fallback is used
        facts["numba_target_cpu"] = f"unavailable ({type(exc).__name__})"
    facts.update(_openblas_facts())
    return facts


def _openblas_facts() -> dict:
    """OpenBLAS's version and the kernel set it picked for this CPU (Haswell,
    SkylakeX, Zen...): the baseline's matmuls run on those kernels."""
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
    except OSError:
        return {"blas": "unknown"}
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        # NumPy's wheels: scipy_openblas_get_corename64_; plain OpenBLAS: openblas_get_corename
        for pattern in ("scipy_openblas_get_{}64_", "scipy_openblas_get_{}", "openblas_get_{}"):
            core_name = getattr(lib, pattern.format("corename"), None)
            config = getattr(lib, pattern.format("config"), None)
            if core_name is not None and config is not None:
                core_name.restype = config.restype = ctypes.c_char_p
                facts = {
                    "blas_kernels": core_name().decode(),
                    "blas_config": config().decode().strip(),
                }
                threads = getattr(lib, pattern.format("num_threads"), None)
                if threads is not None:  # the count it really uses, not the one asked for
                    threads.restype = ctypes.c_int
                    facts["blas_threads"] = threads()
                return facts
    return {"blas": "not OpenBLAS"}


def events_breakdown(dev, steps: int = 150, rounds: int = 5) -> dict:
    """Per-step time of the events figure's MLP step with no subscriber, with
    one taking sources only, and with one taking statistics too (medians of
    interleaved rounds): the figure's extra time, split into its two parts."""
    engine_step = setup_mlp(dev)[0]
    modes = {"none": None, "sources": {"source": True}, "stats": {"stats": True, "source": True}}
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(rounds):
        for mode, flags in modes.items():
            unsubscribe = BUS.subscribe(lambda e: None, **flags) if flags else None
            try:
                engine_step()
                dev.sync()
                start = CLOCK()
                for _ in range(steps):
                    engine_step()
                dev.sync()
                times[mode].append((CLOCK() - start) / steps)
            finally:
                if unsubscribe is not None:
                    unsubscribe()
    med = {m: statistics.median(t) * 1e3 for m, t in times.items()}
    return {
        "figure": "mlp_step_events_breakdown",
        "step_ms": round(med["none"], 4),
        "events_without_stats_ms": round(med["sources"] - med["none"], 4),
        "statistics_ms": round(med["stats"] - med["sources"], 4),
        "device": dev.name,
    }


def minflt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


class Device:
    """The engine's device name, the baseline's array module and a sync."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "cpu":
            self.xp = np
            self.sync = lambda: None
        else:
            import cupy  # only reached when core.cuda says CUDA works

            self.xp = cupy
            dev = cupy.cuda.Device()

            def sync() -> None:
                core.cuda.synchronize("cuda")
                dev.synchronize()

            self.sync = sync

    def host(self, a) -> np.ndarray:
        return core.device.to_host(a)


# -- baselines -------------------------------------------------------------------


def _softmax_ce(xp, z, y, rows):
    """Mean cross-entropy of logits ``z`` and its gradient, in a few passes."""
    n = z.shape[0]
    s = z - z.max(axis=1, keepdims=True)
    e = xp.exp(s)
    se = e.sum(axis=1, keepdims=True)
    loss = (xp.log(se[:, 0]) - s[rows, y]).mean()
    e /= se
    e[rows, y] -= 1.0
    e *= np.float32(1.0 / n)
    return loss, e


class NumpyMLP:
    """Dense layers with weights stored (in, out), the faster layout for x @ W.

    Forward keeps each layer's activation; backward computes the gradient of
    the input before updating a layer's weights in place (``W -= lr * gW``).
    """

    def __init__(self, xp, layers, act: str, loss: str, batch: int, lr: float) -> None:
        self.xp = xp
        self.W = [xp.asarray(np.ascontiguousarray(w.T)) for w, _b in layers]
        self.b = [xp.asarray(b.copy()) for _w, b in layers]
        self.act, self.loss_kind = act, loss
        self.lr = np.float32(lr)
        self.ones = xp.ones(batch, dtype=np.float32)
        self.rows = xp.arange(batch)

    def step(self, x, y):
        xp, W, b, lr = self.xp, self.W, self.b, self.lr
        acts = [x]
        h = x
        last = len(W) - 1
        for i in range(len(W)):
            z = h @ W[i]
            z += b[i]
            if i < last:
                if self.act == "relu":
                    xp.maximum(z, 0, out=z)
                else:
                    xp.tanh(z, out=z)
            acts.append(z)
            h = z
        if self.loss_kind == "ce":
            loss, g = _softmax_ce(xp, h, y, self.rows)
        else:
            d = h - y
            loss = (d * d).mean()
            d *= np.float32(2.0 / d.size)
            g = d
        for i in range(last, -1, -1):
            a = acts[i]
            gW = a.T @ g
            gb = self.ones @ g
            if i > 0:
                g = g @ W[i].T
                if self.act == "relu":
                    g *= a > 0
                else:
                    g *= 1.0 - a * a
            W[i] -= lr * gW
            b[i] -= lr * gb
        return loss

    def params(self):
        """Weights back in the engine's (out, in) layout, on the host."""
        out = []
        for w, b in zip(self.W, self.b):
            out += [core.device.to_host(w).T, core.device.to_host(b)]
        return out


class NumpyConvNet:
    """conv3x3(pad 1) - relu - maxpool 2x2 - linear, im2col in NHWC layout.

    The image columns are one (N*H*W, 9) copy of a strided view of the padded
    input, so the convolution and its weight gradient are single GEMMs; the
    activations stay (N, H, W, C), and the linear weight's rows are permuted
    once so it reads that layout (the same function as the engine's NCHW net).
    """

    def __init__(self, xp, conv_w, conv_b, lin_w, lin_b, batch: int, lr: float) -> None:
        o, c, kh, kw = conv_w.shape
        assert c == 1 and (kh, kw) == (3, 3)
        self.xp, self.o = xp, o
        self.Wc = xp.asarray(np.ascontiguousarray(conv_w.reshape(o, 9).T))  # (9, O)
        self.bc = xp.asarray(conv_b.copy())
        classes = lin_w.shape[0]
        wl = lin_w.reshape(classes, o, 14, 14).transpose(2, 3, 1, 0).reshape(14 * 14 * o, classes)
        self.Wl = xp.asarray(np.ascontiguousarray(wl))  # (H*W*C, classes), NHWC rows
        self.bl = xp.asarray(lin_b.copy())
        self.lr = np.float32(lr)
        self.ones_n = xp.ones(batch, dtype=np.float32)
        self.ones_px = xp.ones(batch * 28 * 28, dtype=np.float32)
        self.rows = xp.arange(batch)

    def step(self, x, y):
        xp, lr, o = self.xp, self.lr, self.o
        n = x.shape[0]
        xpad = xp.pad(x[:, 0], ((0, 0), (1, 1), (1, 1)))  # (N, 30, 30)
        s0, s1, s2 = xpad.strides
        windows = xp.lib.stride_tricks.as_strided(xpad, (n, 28, 28, 3, 3), (s0, s1, s2, s1, s2))
        cols = windows.reshape(n * 784, 9)  # the one im2col copy
        z = cols @ self.Wc
        z += self.bc
        xp.maximum(z, 0, out=z)
        w6 = z.reshape(n, 14, 2, 14, 2, o)
        p = xp.maximum(
            xp.maximum(w6[:, :, 0, :, 0], w6[:, :, 0, :, 1]),
            xp.maximum(w6[:, :, 1, :, 0], w6[:, :, 1, :, 1]),
        )  # (N, 14, 14, O)
        flat = p.reshape(n, 14 * 14 * o)
        logits = flat @ self.Wl
        logits += self.bl
        loss, dl = _softmax_ce(xp, logits, y, self.rows)
        gWl = flat.T @ dl
        gbl = self.ones_n @ dl
        dp = (dl @ self.Wl.T).reshape(n, 14, 1, 14, 1, o)
        dp *= p[:, :, None, :, None, :] > 0  # relu: only windows whose max is positive
        dz = ((w6 == p[:, :, None, :, None, :]) * dp).reshape(n * 784, o)  # route to the max
        gWc = cols.T @ dz
        gbc = self.ones_px @ dz
        self.Wc -= lr * gWc
        self.bc -= lr * gbc
        self.Wl -= lr * gWl
        self.bl -= lr * gbl
        return loss

    def params(self):
        h = core.device.to_host
        o = self.o
        classes = self.Wl.shape[1]
        wl = h(self.Wl).reshape(14, 14, o, classes).transpose(3, 2, 0, 1).reshape(classes, -1)
        return [h(self.Wc).T.reshape(o, 1, 3, 3), h(self.bc), wl, h(self.bl)]


# -- figure set-ups: (engine_step, baseline_step, check) ---------------------------


def _engine_trainer(model, x, y, loss_fn):
    opt = optim.SGD(model.parameters(), lr=LR)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def _check(name, dev, engine_step, base_step, model, base):
    le = float(engine_step().item())
    lb = float(dev.host(base_step()))
    ep = [p.numpy() for p in model.parameters()]
    bp = base.params()
    pdiff = max(float(np.max(np.abs(a - b))) for a, b in zip(ep, bp))
    return {
        "loss_engine": le,
        "loss_baseline": lb,
        "loss_abs_diff": abs(le - lb),
        "param_max_abs_diff_after_step": pdiff,
        "ok": abs(le - lb) <= CHECK_TOL and pdiff <= CHECK_TOL,
    }


def setup_mlp(dev, sizes=(784, 256, 256, 10), batch=64, act="relu", loss="ce"):
    core.manual_seed(0)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU() if act == "relu" else nn.Tanh())
    model = nn.Sequential(*layers).to(dev.name)
    x = core.randn(batch, sizes[0], device=dev.name)
    if loss == "ce":
        y = core.randint(0, sizes[-1], (batch,), device=dev.name)
        loss_fn = F.cross_entropy
    else:
        y = core.randn(batch, sizes[-1], device=dev.name)
        loss_fn = F.mse_loss
    engine_step = _engine_trainer(model, x, y, loss_fn)
    ps = [p.numpy() for p in model.parameters()]
    base = NumpyMLP(dev.xp, list(zip(ps[0::2], ps[1::2])), act, loss, batch, LR)
    bx, by = dev.xp.asarray(x.numpy()), dev.xp.asarray(y.numpy())

    def base_step():
        return base.step(bx, by)

    return engine_step, base_step, model, base


def setup_conv(dev, batch=32):
    core.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 14 * 14, 10),
    ).to(dev.name)
    x = core.randn(batch, 1, 28, 28, device=dev.name)
    y = core.randint(0, 10, (batch,), device=dev.name)
    engine_step = _engine_trainer(model, x, y, F.cross_entropy)
    cw, cb, lw, lb = [p.numpy() for p in model.parameters()]
    base = NumpyConvNet(dev.xp, cw, cb, lw, lb, batch, LR)
    bx, by = dev.xp.asarray(x.numpy()), dev.xp.asarray(y.numpy())

    def base_step():
        return base.step(bx, by)

    return engine_step, base_step, model, base


SETUPS = {
    "mlp_step": lambda dev: setup_mlp(dev),
    "mlp_step_events": lambda dev: setup_mlp(dev),
    "tiny_mlp_step": lambda dev: setup_mlp(dev, (2, 16, 16, 1), 16, "tanh", "mse"),
    "conv_step": setup_conv,
}
CHECKED = {
    "mlp_step": "mlp",
    "mlp_step_events": "mlp",
    "tiny_mlp_step": "tiny_mlp",
    "conv_step": "conv",
}


# -- timing ------------------------------------------------------------------------


def interleaved(engine_fn, base_fn, dev, repeats, block_s, warmup_s=0.3):
    """Median seconds per call of each side over alternating timed blocks."""
    sync = dev.sync

    def block(fn, n):
        f0 = minflt()
        t0 = CLOCK()
        for _ in range(n):
            fn()
        sync()
        t1 = CLOCK()
        return t1 - t0, minflt() - f0

    # warm up both (allocator, BLAS threads, caches) and size the blocks
    end = time.perf_counter() + warmup_s
    warm_e, warm_b = [], []
    while time.perf_counter() < end or len(warm_e) < 5:
        warm_e.append(block(engine_fn, 1)[0])
        warm_b.append(block(base_fn, 1)[0])
    per = max(statistics.median(warm_e), statistics.median(warm_b))
    inner = max(1, int(round(block_s / per)))

    e_t, b_t, e_f, b_f, paired = [], [], [], [], []
    for r in range(repeats):
        if r % 2 == 0:
            te, fe = block(engine_fn, inner)
            tb, fb = block(base_fn, inner)
        else:
            tb, fb = block(base_fn, inner)
            te, fe = block(engine_fn, inner)
        e_t.append(te / inner)
        b_t.append(tb / inner)
        e_f.append(fe / inner)
        b_f.append(fb / inner)
        paired.append(te / tb)
    return {
        "engine": e_t,
        "baseline": b_t,
        "paired": paired,
        "inner": inner,
        "minflt_engine": statistics.median(e_f),
        "minflt_baseline": statistics.median(b_f),
    }


def _quartiles(xs):
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def step_figure(name, dev, args, parts):
    engine_step, base_step, model, base = parts
    unsubscribe = None
    if name == "mlp_step_events":
        unsubscribe = BUS.subscribe(lambda e: None, stats=True, source=True)
    try:
        res = interleaved(engine_step, base_step, dev, args.repeats, args.block_ms / 1e3)
    finally:
        if unsubscribe is not None:
            unsubscribe()
    me, mb = statistics.median(res["engine"]), statistics.median(res["baseline"])
    e25, e75 = _quartiles(res["engine"])
    b25, b75 = _quartiles(res["baseline"])
    kind, target = TARGETS[name]
    ratio = me / mb
    return {
        "figure": name,
        "ratio": round(ratio, 3),
        "median_paired_ratio": round(statistics.median(res["paired"]), 3),
        "median_engine_ms": round(me * 1e3, 4),
        "median_baseline_ms": round(mb * 1e3, 4),
        "engine_ms_iqr": [round(e25 * 1e3, 4), round(e75 * 1e3, 4)],
        "baseline_ms_iqr": [round(b25 * 1e3, 4), round(b75 * 1e3, 4)],
        "minflt_per_step_engine": round(res["minflt_engine"], 1),
        "minflt_per_step_baseline": round(res["minflt_baseline"], 1),
        "target": target,
        "meets_target": ratio <= target,
        "device": dev.name,
        "repeats": args.repeats,
        "steps_per_block": res["inner"],
    }


def add_figure(dev, args):
    core.manual_seed(0)
    a = core.randn(4, requires_grad=True, device=dev.name)
    b = core.randn(4, requires_grad=True, device=dev.name)
    ra, rb = a.data, b.data
    n = args.adds

    def engine_loop():
        for _ in range(n):
            a + b

    def numpy_loop():
        for _ in range(n):
            ra + rb

    res = interleaved(engine_loop, numpy_loop, dev, args.repeats, 0.0, warmup_s=0.1)
    me, mb = statistics.median(res["engine"]) / n, statistics.median(res["baseline"]) / n
    us = me * 1e6
    return {
        "figure": "add_us",
        "us": round(us, 3),
        "numpy_us": round(mb * 1e6, 3),
        "ratio": round(me / mb, 2),
        "median_engine_ms": round(me * 1e3, 6),
        "median_baseline_ms": round(mb * 1e3, 6),
        "adds_per_block": n,
        "target": TARGETS["add_us"][1],
        "meets_target": us <= TARGETS["add_us"][1],
        "device": dev.name,
        "repeats": args.repeats,
    }


# -- main --------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--repeats", type=int, default=40, help="timed blocks per side")
    ap.add_argument(
        "--only", choices=FIGURES, action="append", help="run only this figure (may be repeated)"
    )
    ap.add_argument(
        "--block-ms",
        type=float,
        default=25.0,
        help="approximate length of one timed block of steps",
    )
    ap.add_argument("--adds", type=int, default=20000, help="adds per timed block (add_us)")
    ap.add_argument(
        "--blas-threads",
        default=None,
        help="BLAS threads for both sides (default 1, or $OPENBLAS_NUM_THREADS; "
        "0 leaves the library default); read before NumPy is imported",
    )
    ap.add_argument(
        "--clock",
        default="wall",
        choices=("wall", "cpu"),
        help="wall: time.perf_counter; cpu: time.process_time (all threads)",
    )
    ap.add_argument(
        "--malloc",
        default="keep",
        choices=("default", "keep"),
        help="keep (as the app runs): glibc keeps freed memory; default: glibc's own",
    )
    ap.add_argument("--strict", action="store_true", help="exit 2 when a figure misses its target")
    args = ap.parse_args(argv)
    if args.repeats < 2:
        ap.error("--repeats must be at least 2")

    if args.device == "cuda" and not core.cuda.is_available():
        emit({"figure": "skipped", "device": "cuda", "reason": core.cuda.unavailable_reason()})
        return 0
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    set_malloc(args.malloc)
    dev = Device(args.device)
    env = {
        "clock": args.clock,
        "malloc": args.malloc,
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "library default"),
        "loadavg_start": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "stats": core.observe.moments.backend(),
        **machine_facts(),
    }
    figures = args.only or list(FIGURES)

    # correctness: one step of each network from identical weights
    parts, checks = {}, {}
    for name in figures:
        if name not in SETUPS:
            continue
        key = CHECKED[name]
        if key not in checks:
            check_parts = SETUPS[name](dev)
            checks[key] = _check(
                name, dev, check_parts[0], check_parts[1], check_parts[2], check_parts[3]
            )
        parts[name] = SETUPS[name](dev)  # fresh, untouched state for timing
    ok = all(c["ok"] for c in checks.values())
    emit({"figure": "check", "device": dev.name, "tol": CHECK_TOL, "ok": ok, **checks, **env})
    if not ok:
        return 1

    missed = False
    for name in figures:
        record = (
            add_figure(dev, args) if name == "add_us" else step_figure(name, dev, args, parts[name])
        )
        missed |= not record["meets_target"]
        record["loadavg"] = round(os.getloadavg()[0], 2)
        emit(record)
        if name == "mlp_step_events":
            emit(events_breakdown(dev))
    return 2 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
