#!/usr/bin/env python
"""Fits the coefficients of ``core/engine/erf32.py`` and checks the shipped ones.

    python scripts/fit_erf32.py           # fit, print, check every float32 in [0, 4]
    python scripts/fit_erf32.py --quick   # check one float32 in 64 instead (seconds)

The form: ``erf(x) = x * P(x*x) / Q(x*x)`` for ``|x| <= 4`` (odd, so a small
``x`` keeps its relative accuracy), P of degree 5 and Q of degree 6 in ``x*x``,
``Q(0) = 1``; ``|x|`` is clamped to 4, where erf rounds to 1.0 in float32.

The fit minimises the largest relative error against ``scipy.special.erf`` in
float64 on 16,000 nodes in [0, 4] (Chebyshev-spaced, plus evenly spaced):
Sanathanan-Koerner iterations first (the linearised error ``P - f Q`` divided
by the last ``f Q``, so each least-squares solve weighs the true relative
error), then Lawson's reweighting (each node's weight times its error), which
moves the least-squares solution towards the minimax one; the iterate with the
smallest largest error is kept.

The check runs the module's own loop (as shipped, not the fit above) on every
float32 from 0 to 4 against ``scipy.special.erf`` in float64: the largest
relative error and where, and whether any value is below the one before.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import scipy.special

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from core.engine import erf32  # noqa: E402

DEGREES = (5, 6)  # of P and of Q, in x*x
SK_ITERATIONS = 30
LAWSON_ITERATIONS = 300


def nodes(n: int = 8000) -> np.ndarray:
    """Chebyshev nodes on [0, CLAMP] (dense at both ends) and evenly spaced ones."""
    cheb = (1.0 - np.cos(np.pi * (np.arange(n) + 0.5) / n)) / 2.0 * erf32.CLAMP
    even = np.linspace(0.0, erf32.CLAMP, n)
    return np.unique(np.concatenate([cheb, even]))


def erf_over_x(x: np.ndarray) -> np.ndarray:
    """erf(x) / x, with its limit 2 / sqrt(pi) at 0."""
    safe = np.where(x == 0.0, 1.0, x)
    return np.where(x == 0.0, 2.0 / math.sqrt(math.pi), scipy.special.erf(safe) / safe)


def fit(x: np.ndarray, p: int, q: int) -> tuple[np.ndarray, np.ndarray, float]:
    """P, Q (Q[0] = 1) and the largest relative error of x P(x^2) / Q(x^2) on x."""
    t, f = x * x, erf_over_x(x)
    powers = np.vander(t, max(p, q) + 1, increasing=True)
    design = np.hstack([powers[:, : p + 1], -f[:, None] * powers[:, 1 : q + 1]])
    last_q = np.ones_like(t)
    weight = np.full_like(t, 1.0 / t.size)
    best = (math.inf, None, None)
    for i in range(SK_ITERATIONS + LAWSON_ITERATIONS):
        scale = np.sqrt(weight) / (f * last_q)
        coef, *_ = np.linalg.lstsq(design * scale[:, None], f * scale, rcond=None)
        num, den = coef[: p + 1], np.concatenate([[1.0], coef[p + 1 :]])
        last_q = powers[:, : q + 1] @ den
        error = (powers[:, : p + 1] @ num) / last_q / f - 1.0
        worst = float(np.abs(error).max())
        if worst < best[0]:
            best = (worst, num, den)
        if i >= SK_ITERATIONS:
            weight = weight * np.abs(error)
            weight /= weight.sum()
    worst, num, den = best
    return num, den, worst


def check(stride: int) -> None:
    """The shipped loop on every ``stride``-th float32 in [0, CLAMP]."""
    loop = erf32.loop()
    top = int(np.float32(erf32.CLAMP).view(np.int32))
    chunk = 1 << 24
    worst, at, drops, last = 0.0, 0.0, 0, np.float32(0.0)
    start = time.perf_counter()
    for lo in range(0, top + 1, chunk * stride):
        bits = np.arange(lo, min(lo + chunk * stride, top + 1), stride, dtype=np.int32)
        x = bits.view(np.float32)
        got = np.empty_like(x)
        loop(x, got)
        want = scipy.special.erf(x.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(got - want) / want
        rel[want < np.finfo(np.float32).tiny] = 0.0  # subnormal results: checked below
        i = int(np.argmax(rel))
        if rel[i] > worst:
            worst, at = float(rel[i]), float(x[i])
        drops += int(np.count_nonzero(np.diff(got) < 0)) + int(got[0] < last)
        last = got[-1]
    tiny = np.arange(1, 1 << 23, stride, dtype=np.int32).view(np.float32)  # subnormal inputs
    got = np.empty_like(tiny)
    loop(tiny, got)
    sub_off = np.abs(got.astype(np.float64) - scipy.special.erf(tiny.astype(np.float64)))
    seconds = time.perf_counter() - start
    print(f"checked every {stride} float32 in [0, {erf32.CLAMP}] in {seconds:.0f} s:")
    print(f"  largest relative error {worst:.3e} at x = {at!r} (normal results)")
    print(f"  largest error on subnormal results: {sub_off.max() / 2.0**-149:.2f} x 2**-149")
    print(f"  values below the one before: {drops}")
    edges = np.array([erf32.CLAMP, np.inf], np.float32)
    loop(edges, edges)
    print(f"  erf({erf32.CLAMP}) = {edges[0]!r}, erf(inf) = {edges[1]!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="check one float32 in 64")
    args = ap.parse_args()
    num, den, worst = fit(nodes(), *DEGREES)
    print(f"fit: largest relative error {worst:.3e} on the nodes (in float64)")
    print(f"P = {tuple(float(c) for c in num)!r}")
    print(f"Q = {tuple(float(c) for c in den)!r}")
    shipped = np.max(np.abs(np.array(erf32.P) / num - 1.0))
    shipped = max(shipped, np.max(np.abs(np.array(erf32.Q) / den - 1.0)))
    print(f"largest relative difference from the shipped coefficients: {shipped:.1e}")
    check(64 if args.quick else 1)


if __name__ == "__main__":
    main()
