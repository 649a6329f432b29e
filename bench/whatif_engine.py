#!/usr/bin/env python
"""Measure what candidate engine changes would save, without editing core/.

Each patch is applied at run time (monkeypatching core's functions and op
definitions) and undone again; for one figure of engine_step.py the engine step
is timed with the patches on and off in alternating blocks, in one process, and
the saving per step is printed. These are prototypes for measurement only: they
keep the maths (the check at the start compares losses and weights after a few
steps against the unpatched engine) but not every corner of core's semantics
(create_graph, N-d inputs, events of the replaced ops).

    python bench/whatif_engine.py mlp_step contig_wgrad
    python bench/whatif_engine.py tiny_mlp_step fused_linear sgd_direct act_grad_direct
    python bench/whatif_engine.py mlp_step_events fast_summarize
    python bench/whatif_engine.py conv_step pool_direct act_grad_direct --malloc default

Patches: contig_wgrad, fused_linear, sgd_direct, sgd_one_op, act_grad_direct, lean_ce,
mse_direct, fast_reshape, linear_direct, lift_cache (cuda), pool_direct, fast_summarize, stats_cache
(give stats_cache after fast_summarize to stack them). (contig_wgrad and
fused_linear predate core's LINEAR op; against today's core they change little.)
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as engine_step.py's default
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_step as es  # noqa: E402
import numpy as np  # noqa: E402

import core  # noqa: E402
import core.events  # noqa: E402
import core.functional as F  # noqa: E402
import core.optim  # noqa: E402

T = sys.modules["core.tensor"]  # core.tensor the attribute is the factory function
from core.events import BUS, Stats  # noqa: E402
from core.ops import REGISTRY, Op, OpDef  # noqa: E402


class Patch:
    """A set of (object, attribute, new value) that can be switched on and off."""

    def __init__(self, items):
        self.items = items
        self.saved = [getattr(o, a) for o, a, _v in items]

    def on(self):
        for o, a, v in self.items:
            setattr(o, a, v)

    def off(self):
        for (o, a, _v), old in zip(self.items, self.saved):
            setattr(o, a, old)


# -- contig_wgrad: W.grad in W's own (C) layout ------------------------------------------
# F.linear computes x @ W.T; the matmul rule returns gb = x.T @ g, shape (in, out),
# and the permute rule hands W a transposed, Fortran-ordered view of it. SGD's
# ``p - g * lr`` then runs over mixed layouts. Computing (g.T @ x).T instead gives
# the same numbers, and the permute rule turns it back into a C-ordered (out, in).


def patch_contig_wgrad():
    opdef = REGISTRY[Op.MATMUL]
    orig = opdef.grad

    def grad(ctx, g):
        a, b = ctx.inputs
        bd = b.data
        if (
            b.requires_grad and a.ndim == 2 and b.ndim == 2
            and bd.flags.f_contiguous and not bd.flags.c_contiguous
        ):
            ga = g @ b.transpose(0, 1) if a.requires_grad else None
            gb = (g.transpose(0, 1) @ a).transpose(0, 1)
            return ga, gb
        return orig(ctx, g)

    return Patch([(opdef, "grad", grad)])


# -- fused_linear: one op for x @ W.T + b -------------------------------------------------
# Today a Linear is permute + matmul + add forward (3 applies, 3 nodes) and, backward,
# add's rule + sum_to + two permutes + two matmuls + permute's rule. One op with its
# own rule: forward 1 apply; backward g @ W, g.T @ x (C-ordered, W's layout), sum.


def patch_fused_linear():
    def fwd(xp, x, w, *b):
        out = x @ w.T
        if b:
            out += b[0]
        return out

    def grad(ctx, g):
        x, w = ctx.inputs[:2]
        gx = g @ w if x.requires_grad else None
        gw = g.transpose(0, 1) @ x if w.requires_grad else None
        if len(ctx.inputs) == 3:
            return gx, gw, g.sum(axis=0)
        return gx, gw

    REGISTRY.append(OpDef(Op.MATMUL, fwd, grad, same_dtype=True))
    index = len(REGISTRY) - 1
    orig = F.linear

    def linear(x, weight, bias=None):
        if x.ndim != 2:
            return orig(x, weight, bias)
        inputs = (x, weight) if bias is None else (x, weight, bias)
        return T.apply(index, inputs)

    return Patch([(F, "linear", linear)])


# -- sgd_direct: the plain SGD update on arrays when nobody listens -------------------------
# Today each parameter costs a lifted lr constant, a mul and a sub op (two applies,
# a Tensor and a 0-d array each). Same arithmetic, out of place, on the arrays:


def patch_sgd_direct():
    orig = core.optim.SGD.step

    def step(self):
        if BUS.active or self.momentum or self.weight_decay:
            return orig(self)
        for p in self.params:
            g = p.grad
            if g is None:
                continue
            gd = g.data
            p.data = p.data - gd * gd.dtype.type(self.lr)
        return None

    return Patch([(core.optim.SGD, "step", step)])


# -- sgd_one_op: the SGD update as one op (one event, one output to summarize) ---
# With listeners, each parameter's update is ``g * lr`` then ``p - that``: two
# OpForward events whose outputs are parameter-sized and get Stats, plus a lifted
# lr constant announced (TensorCreated, Stats, Source) every step. One op p - lr*g:


def patch_sgd_one_op():
    def fwd(xp, p, g, lr):
        return p - g * g.dtype.type(lr)

    REGISTRY.append(OpDef(Op.SUB, fwd, None))
    index = len(REGISTRY) - 1
    orig = core.optim.SGD.update

    def update(self, p, g, state):
        if self.momentum or self.weight_decay:
            return orig(self, p, g, state)
        return T.apply(index, (p, g), {"lr": self.lr})

    return Patch([(core.optim.SGD, "update", update)])


# -- act_grad_direct: relu/tanh rules as one array expression when no graph is built -----------
# relu's rule is g * (out > 0.0): a lifted constant, a compare op and a mul op.
# tanh's is g * (1.0 - out * out): a constant, three ops. Without create_graph the
# rule can compute on the arrays (as saved_or already does elsewhere):


def patch_act_grad_direct():
    relu, tanh = REGISTRY[Op.RELU], REGISTRY[Op.TANH]
    orig_relu, orig_tanh = relu.grad, tanh.grad

    def relu_grad(ctx, g):
        if T.is_grad_enabled():
            return orig_relu(ctx, g)
        out = ctx.output.data
        return (T._wrap(g.data * (out > 0), g.device, False),)

    def tanh_grad(ctx, g):
        if T.is_grad_enabled():
            return orig_tanh(ctx, g)
        out = ctx.output.data
        d = out * out
        d *= -1.0
        d += 1.0
        d *= g.data
        return (T._wrap(d, g.device, False),)

    return Patch([(relu, "grad", relu_grad), (tanh, "grad", tanh_grad)])


# -- lean_ce: cross-entropy without per-step target validation syncs and a one-hot -------------
# _check_targets reduces the targets (min, max) and converts to Python ints every
# step; the rule builds a one-hot array and re-runs softmax as ops (5 applies).


def patch_lean_ce():
    opdef = REGISTRY[Op.CROSS_ENTROPY]
    orig_grad = opdef.grad

    def grad(ctx, g):
        if T.is_grad_enabled():
            return orig_grad(ctx, g)
        logits, target = ctx.inputs
        z = logits.data
        n = z.shape[0]
        xp = np if isinstance(z, np.ndarray) else core.cuda.xp_for("cuda")
        e = xp.exp(z - z.max(axis=1, keepdims=True))
        e /= e.sum(axis=1, keepdims=True)
        e[xp.arange(n), target.data] -= 1.0
        e *= g.data * z.dtype.type(1.0 / n)
        return T._wrap(e, g.device, False), None

    return Patch([(opdef, "grad", grad)])


# -- mse_direct: the MSE rule on arrays when no graph is built ---------------------------------
# Today: (a - b) * (g * (2 / n)) and its negation: a lifted constant and four ops.


def patch_mse_direct():
    opdef = REGISTRY[Op.MSE_LOSS]
    orig = opdef.grad

    def grad(ctx, g):
        if T.is_grad_enabled():
            return orig(ctx, g)
        a, b = ctx.inputs
        d = a.data - b.data
        d *= g.data * d.dtype.type(2.0 / d.size)
        gb = -d if b.requires_grad else None
        return T._wrap(d, g.device, False), (None if gb is None else T._wrap(gb, g.device, False))

    return Patch([(opdef, "grad", grad)])


# -- linear_direct: today's LINEAR rule on arrays when no graph is built ---------------------------
# The rule returns g @ W, (g.reshape).T @ x.reshape and g (summed to the bias's shape
# by backward's generic sum_to): two reshapes, a permute, two matmuls and a sum_to,
# each a full apply. Without create_graph the same three products on the arrays:


def patch_linear_direct():
    opdef = REGISTRY[Op.LINEAR]
    orig = opdef.grad

    def grad(ctx, g):
        x, w = ctx.inputs[:2]
        if T.is_grad_enabled() or x.ndim != 2:
            return orig(ctx, g)
        gd, dev = g.data, g.device
        gx = T._wrap(gd @ w.data, dev, False) if x.requires_grad else None
        gw = T._wrap(gd.T @ x.data, dev, False) if w.requires_grad else None
        if len(ctx.inputs) == 3:
            xp = core.cuda.array_module(gd)
            ones = xp.ones(gd.shape[0], dtype=gd.dtype)  # sum_leading's BLAS sum
            return gx, gw, T._wrap(ones @ gd, dev, False)
        return gx, gw

    return Patch([(opdef, "grad", grad)])


# -- lift_cache: one device array per constant, not a host-to-device copy per use ---
# _lift turns every Python number (lr, 0.0 in relu's rule, 1/n...) into a new array;
# on "cuda" that is cupy.asarray(value): an allocation and a synchronous H2D copy,
# ~20 per MLP step. Keep them per (value, dtype, device) when nobody listens:


def patch_lift_cache():
    orig = T._lift
    cache: dict = {}

    def lift(value, like):
        if isinstance(value, T.Tensor) or BUS.active or like.device == "cpu":
            return orig(value, like)
        key = (value, like.data.dtype, like.device)
        t = cache.get(key)
        if t is None:
            t = cache[key] = orig(value, like)
        return t

    return Patch([(T, "_lift", lift), (F, "_lift", lift)])


# -- fast_reshape: _resolve_shape's element-count check with math.prod --------------------------
# Tensor.reshape -> _resolve_shape checks int(np.prod(shape, dtype=np.int64)) == size:
# np.prod on a tuple is ~3 us (array conversion + ufunc reduce), math.prod ~0.1 us.
# The linear rule reshapes g and x on every call, so this runs ~6 times per MLP step.


def patch_fast_reshape():
    orig = T._resolve_shape

    def resolve(shape, size, old):
        shape = tuple(int(s) for s in shape)
        if shape.count(-1) == 1:
            known = 1
            for s in shape:
                if s != -1:
                    known *= s
            if known == 0 or size % known:
                return orig(shape, size, old)  # let the original raise its error
            shape = tuple(size // known if s == -1 else s for s in shape)
        if math.prod(shape) != size:
            return orig(shape, size, old)
        return shape

    return Patch([(T, "_resolve_shape", resolve)])


# -- pool_direct: 2x2/stride-2 max pool on strided views, no unfold/fold --------------------------
# Today: the windows are copied out (unfold's transposing reshape), a float32 mask of
# the windows' size is built and normalised (mask.sum, /=), and backward multiplies
# into a new windows-sized array and folds it back with another transposing copy:
# five input-sized temporaries per step. Here: forward is two maximum() calls on
# stride-2 views (output-sized temporaries only); backward recomputes the routing
# from x and the output (both alive anyway) and writes one input-sized gradient.


def patch_pool_direct():
    opdef = REGISTRY[Op.MAX_POOL2D]
    orig_fwd, orig_grad = opdef.forward, opdef.grad

    def fwd(xp, x, kernel, stride):
        h, w = x.shape[2:]
        if kernel != (2, 2) or stride != (2, 2) or h % 2 or w % 2:
            return orig_fwd(xp, x, kernel, stride)
        cols = xp.maximum(x[..., 0::2], x[..., 1::2])
        out = xp.maximum(cols[:, :, 0::2], cols[:, :, 1::2])
        return out, {"direct": True}  # backward recomputes the routing from x and out

    def grad(ctx, g):
        if ctx.saved is None or "direct" not in ctx.saved or T.is_grad_enabled():
            return orig_grad(ctx, g)
        x = ctx.inputs[0].data
        out = ctx.output.data
        eqs = [x[:, :, i::2, j::2] == out for i in (0, 1) for j in (0, 1)]
        count = eqs[0].view(np.uint8) + eqs[1] + eqs[2] + eqs[3]
        gd = g.data
        if count.max() > 1:  # ties share the gradient, as today
            gd = gd / count
        gx = np.empty_like(x)
        for (i, j), eq in zip(((0, 0), (0, 1), (1, 0), (1, 1)), eqs):
            np.multiply(eq, gd, out=gx[:, :, i::2, j::2])
        return (T._wrap(gx, g.device, False),)

    return Patch([(opdef, "forward", fwd), (opdef, "grad", grad)])


# -- fast_summarize: Stats in about three float32 passes and no float64 copies -----------------
# summarize() copies the array to float64, then runs isfinite, isnan, min, max, mean,
# std (itself two float64 temporaries) and a squared-sum pass: ~10 passes and three
# array-sized float64 temporaries per event. Fast path: a float64-accumulated sum
# (no copy); if it is finite every element is (float32 sums cannot overflow float64);
# then min, max and a centred sum of squares. Other cases fall back to the original.


_FAST = [None]


def patch_fast_summarize():
    orig = core.events.summarize

    def summarize(array):
        if (
            not isinstance(array, np.ndarray) or array.dtype.kind != "f"
            or array.size == 0 or array.dtype.itemsize > 4
        ):
            return orig(array)
        size = int(array.size)
        total = float(array.sum(dtype=np.float64))
        if not math.isfinite(total):
            return orig(array)
        mean = total / size
        flat = array.reshape(-1) if array.flags.c_contiguous else array.ravel(order="K")
        d = flat - flat.dtype.type(mean)
        ss = float(np.dot(d, d))  # centred: no cancellation
        sq = ss + size * mean * mean
        return Stats(float(flat.min()), float(flat.max()), mean, math.sqrt(ss / size),
                     math.sqrt(sq), 0, 0, size)

    _FAST[0] = summarize
    items = []
    for mod in (core.events, T, core.optim):
        if getattr(mod, "summarize", None) is orig:
            items.append((mod, "summarize", summarize))
    return Patch(items)


# -- stats_cache: summarize each array once ------------------------------------------------------
# Per MLP step with stats on, about a third of summarize() calls get an array that
# was summarized moments before: OpBackward's grad_output is the previous rule's
# grad_input, GradAccumulated's .grad is the grad just given, ParameterUpdated's
# value is the update op's output; permute/reshape outputs are views holding the same
# elements (the Stats fields do not depend on order). Keep the last results by array
# identity (holding the array, so an id is not reused) and by view base.


def patch_stats_cache(limit: int = 64):
    cache: dict = {}
    inner = _FAST[0] or core.events.summarize  # stacks on fast_summarize if made before

    def summarize(array):
        hit = cache.get(id(array))
        if hit is not None and hit[0] is array:
            return hit[1]
        base = getattr(array, "base", None)
        if base is not None and base.size == array.size:
            hit = cache.get(id(base))
            if hit is not None and hit[0] is base:
                return hit[1]
        stats = inner(array)
        if len(cache) >= limit:
            cache.pop(next(iter(cache)))
        cache[id(array)] = (array, stats)
        return stats

    return Patch([(m, "summarize", summarize) for m in (core.events, T, core.optim)])


PATCHES = {
    "contig_wgrad": patch_contig_wgrad,
    "fused_linear": patch_fused_linear,
    "sgd_direct": patch_sgd_direct,
    "sgd_one_op": patch_sgd_one_op,
    "act_grad_direct": patch_act_grad_direct,
    "lean_ce": patch_lean_ce,
    "mse_direct": patch_mse_direct,
    "fast_reshape": patch_fast_reshape,
    "linear_direct": patch_linear_direct,
    "lift_cache": patch_lift_cache,
    "pool_direct": patch_pool_direct,
    "fast_summarize": patch_fast_summarize,
    "stats_cache": patch_stats_cache,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("figure", choices=[f for f in es.FIGURES if f != "add_us"])
    ap.add_argument("patches", nargs="+", choices=sorted(PATCHES))
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--block-ms", type=float, default=40.0)
    ap.add_argument("--clock", default="cpu", choices=("wall", "cpu"))
    ap.add_argument("--malloc", default="keep", choices=("default", "keep"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = ap.parse_args()
    if args.device == "cuda":
        args.clock = "wall"  # CPU time misses the GPU
    es.set_malloc(args.malloc)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    dev = es.Device(args.device)
    patch = Patch([])
    for name in args.patches:
        p = PATCHES[name]()
        patch.items += p.items
        patch.saved += p.saved

    # same maths: a few steps each way from the same start
    ref = es.SETUPS[args.figure](dev)
    new = es.SETUPS[args.figure](dev)
    for _ in range(3):
        lr_ = float(ref[0]().item())
        patch.on()
        ln_ = float(new[0]().item())
        patch.off()
    pdiff = max(float(np.max(np.abs(a.numpy() - b.numpy())))
                for a, b in zip(ref[2].parameters(), new[2].parameters()))
    print(f"check: loss {lr_:.6f} vs patched {ln_:.6f}, max weight diff {pdiff:.2e}")

    engine_step = es.SETUPS[args.figure](dev)[0]
    unsub = None
    if args.figure == "mlp_step_events":
        unsub = BUS.subscribe(lambda e: None, stats=True, source=True)
    flt = {}

    def block(on, n):
        (patch.on if on else patch.off)()
        f0 = es.minflt()
        t0 = clock()
        for _ in range(n):
            engine_step()
        dev.sync()
        t1 = clock()
        flt.setdefault(on, []).append((es.minflt() - f0) / n)
        patch.off()
        return (t1 - t0) / n

    warm = [block(False, 1) for _ in range(5)] + [block(True, 1) for _ in range(5)]
    inner = max(1, round(args.block_ms / 1e3 / statistics.median(warm)))
    off, on = [], []
    for r in range(args.repeats):
        order = (False, True) if r % 2 == 0 else (True, False)
        for state in order:
            (on if state else off).append(block(state, inner))
    if unsub:
        unsub()
    mo, mn = statistics.median(off), statistics.median(on)
    paired = statistics.median(a - b for a, b in zip(off, on))
    print(f"{args.figure} [{' + '.join(args.patches)}] device={args.device} clock={args.clock} "
          f"malloc={args.malloc} "
          f"blas_threads={os.environ.get('OPENBLAS_NUM_THREADS')}")
    f_off, f_on = statistics.median(flt[False]), statistics.median(flt[True])
    print(f"  engine as is : {mo * 1e3:8.3f} ms/step  minflt/step {f_off:.0f}")
    print(f"  patched      : {mn * 1e3:8.3f} ms/step  minflt/step {f_on:.0f}")
    print(f"  saving       : {(mo - mn) * 1e3:8.3f} ms/step (paired median {paired * 1e3:.3f}),"
          f" {100 * (mo - mn) / mo:.0f}%")


if __name__ == "__main__":
    main()
