"""core.engine.erf32: the float32 erf against scipy.special.erf in float64, as a
ufunc behaves, the compiled loop against the NumPy one, and the exact GELU in
float32 through the engine, eager and compiled."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
from helpers_data import mse_step
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import core
import core.functional as F
from core import nn, optim
from core.engine import erf32

MAX_RELATIVE_ERROR = 4e-7  # a few float32 ulps (the loop measures 6.2e-8: fit_erf32.py)
TINY = np.finfo(np.float32).tiny  # results below this are subnormal: held to 2**-149 instead


def sweep() -> np.ndarray:
    """Sorted float32 of both signs: 1024 mantissas of every exponent
    (subnormals included), every 64th float32 in [0.25, 4] where erf bends and
    reaches 1.0, the largest finite float32 and infinity."""
    exponents = np.arange(255, dtype=np.int32)[:, None] << 23
    mantissas = np.arange(0, 1 << 23, 1 << 13, dtype=np.int32)
    every_exponent = (exponents | mantissas).ravel().view(np.float32)
    lo, hi = np.array([0.25, 4.0], np.float32).view(np.int32)
    bend = np.arange(lo, hi + 1, 64, dtype=np.int32).view(np.float32)
    ends = np.array([np.finfo(np.float32).max, np.inf], np.float32)
    positive = np.unique(np.concatenate([every_exponent, bend, ends]))
    return np.concatenate([-positive[::-1], positive])


def assert_accurate(x: np.ndarray, got: np.ndarray) -> None:
    """Relative error within MAX_RELATIVE_ERROR of erf in float64 (subnormal
    results within 2**-149), NaN exactly where x is NaN; names the worst element."""
    x, got = x.reshape(-1), got.reshape(-1)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(x))
    keep = ~np.isnan(x)
    x, got = x[keep], got[keep].astype(np.float64)
    want = scipy.special.erf(x.astype(np.float64))
    off = np.abs(got - want)
    normal = np.abs(want) >= TINY
    bound = np.where(normal, MAX_RELATIVE_ERROR * np.abs(want), 2.0**-149)
    ratio = off / bound
    if ratio.size and ratio.max() > 1.0:
        i = int(np.argmax(ratio))
        pytest.fail(f"erf({x[i]!r}) = {got[i]!r}, erf in float64 {want[i]!r}: {off[i]:.3e} off")


# -- accuracy ---------------------------------------------------------------------------


def test_accurate_on_a_sweep_of_every_exponent() -> None:
    x = sweep()
    assert_accurate(x, erf32.erf(x))


def test_monotone_bounded_and_odd_on_the_sweep() -> None:
    x = sweep()
    got = erf32.erf(x)
    drops = np.flatnonzero(np.diff(got) < 0)
    assert drops.size == 0, f"erf({x[drops[0] + 1]!r}) < erf({x[drops[0]]!r})"
    assert np.abs(got).max() == 1.0
    np.testing.assert_array_equal(erf32.erf(-x).view(np.int32), (-got).view(np.int32))


def test_special_values() -> None:
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 4.0, -4.0, 1e30], np.float32)
    got = erf32.erf(x)
    np.testing.assert_array_equal(got[:4], [0.0, -0.0, 1.0, -1.0])
    assert not np.signbit(got[0]) and np.signbit(got[1])
    assert np.isnan(got[4])
    np.testing.assert_array_equal(got[5:], [1.0, -1.0, 1.0])


floats32 = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=0, max_dims=3, max_side=40),
    elements=st.floats(width=32),  # NaN, infinities, subnormals and signed zeros included
)


@settings(max_examples=200, deadline=None)
@given(floats32)
def test_random_arrays_are_accurate_odd_and_the_same_in_both_loops(x) -> None:
    got = np.asarray(erf32.erf(x))
    assert got.shape == x.shape
    assert_accurate(x, got)
    np.testing.assert_array_equal(np.asarray(erf32.erf(-x)), -got)
    flat = np.ascontiguousarray(x).reshape(-1)
    by_numpy = np.empty_like(flat)
    erf32.numpy_loop(flat, by_numpy)
    np.testing.assert_array_equal(by_numpy, got.reshape(-1))


def test_the_compiled_loop_rounds_as_the_numpy_loop() -> None:
    x = np.concatenate([sweep(), np.array([np.nan, -np.nan], np.float32)])
    x = np.concatenate([x, np.random.default_rng(0).standard_normal(100_003).astype(np.float32)])
    compiled, by_numpy = np.empty_like(x), np.empty_like(x)
    erf32.loop()(x, compiled)
    erf32.numpy_loop(x, by_numpy)
    assert (erf32.loop() is erf32.numpy_loop) == (erf32.unavailable_reason() is not None)
    same = (compiled.view(np.int32) == by_numpy.view(np.int32)) | np.isnan(x)
    assert same.all(), f"first difference at x = {x[np.argmin(same)]!r}"


def test_without_numba_the_numpy_loop_is_used(monkeypatch) -> None:
    def broken():
        raise ImportError("no numba here")

    monkeypatch.setattr(erf32, "_compile", broken)
    monkeypatch.setattr(erf32, "_loop", None)
    monkeypatch.setattr(erf32, "_reason", None)
    assert erf32.loop() is erf32.numpy_loop
    assert "no numba here" in erf32.unavailable_reason()
    x = np.linspace(-3.0, 3.0, 20_001, dtype=np.float32)  # several blocks
    assert_accurate(x, erf32.erf(x))


# -- as a ufunc -------------------------------------------------------------------------


def test_out_strides_and_shapes() -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((30, 40)) * 2).astype(np.float32)
    want = erf32.erf(x)
    assert want.shape == x.shape and want.flags.c_contiguous
    out = np.empty_like(x)
    assert erf32.erf(x, out=out) is out
    np.testing.assert_array_equal(out, want)
    for view in (x.T, x[:, ::3], x[::-1], x[5:9, 7]):
        want_view = erf32.erf(np.ascontiguousarray(view))
        np.testing.assert_array_equal(erf32.erf(view), want_view, err_msg=str(view.shape))
    wide = np.zeros((30, 80), np.float32)
    assert erf32.erf(x, out=wide[:, ::2]) is not None  # a strided out
    np.testing.assert_array_equal(wide[:, ::2], want)
    assert not wide[:, 1::2].any()
    inplace = x.copy()
    erf32.erf(inplace, out=inplace)
    np.testing.assert_array_equal(inplace, want)
    rows = np.full((4, 5), np.nan, np.float32)
    one = np.array([0.5, -0.5, 1.0, 2.0, 0.0], np.float32)
    erf32.erf(one, out=rows)  # broadcast into out
    np.testing.assert_array_equal(rows, np.broadcast_to(erf32.erf(one), rows.shape))


def test_overlapping_out() -> None:
    buf = np.linspace(-2.0, 2.0, 50_000, dtype=np.float32)
    want = erf32.erf(buf[:-1].copy())
    erf32.erf(buf[:-1], out=buf[1:])
    np.testing.assert_array_equal(buf[1:], want)


def test_scalars_and_empty_arrays() -> None:
    zero_d = erf32.erf(np.array(0.5, np.float32))
    assert type(zero_d) is np.float32 and zero_d == erf32.erf(np.array([0.5], np.float32))[0]
    assert type(erf32.erf(np.float32(-0.25))) is np.float32
    out = np.empty((), np.float32)
    assert erf32.erf(np.array(1.0, np.float32), out=out) is out
    assert erf32.erf(np.empty((0, 3), np.float32)).shape == (0, 3)


@pytest.mark.parametrize("dtype", ["float64", "float16", "int64", "int8"])
def test_other_dtypes_are_scipys(dtype) -> None:
    values = np.array([0.0, -0.0, 0.3, -1.7, 3.0, 5.0, np.inf, np.nan, 1e-300])
    with np.errstate(invalid="ignore", over="ignore"):
        x = values.astype(dtype)
    got, want = erf32.erf(x), scipy.special.erf(x)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    assert erf32.erf(0.5) == scipy.special.erf(0.5)  # a Python float is float64


def test_float32_into_float64_out_is_scipys() -> None:
    x = np.linspace(-3.0, 3.0, 101, dtype=np.float32)
    got, want = np.empty(101), np.empty(101)
    erf32.erf(x, out=got)
    scipy.special.erf(x, out=want)
    np.testing.assert_array_equal(got, want)


# -- the exact GELU through the engine --------------------------------------------------


def gelu64(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GELU and its derivative in float64, through scipy.special.erf."""
    x = x.astype(np.float64)
    cdf = 0.5 * (1.0 + scipy.special.erf(x / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return x * cdf, cdf + x * pdf


def test_gelu_float32_forward_and_backward_near_float64() -> None:
    rng = np.random.default_rng(2)
    a = np.concatenate([np.linspace(-8.0, 8.0, 4001), rng.standard_normal(4000) * 3])
    a = a.astype(np.float32)
    g = rng.standard_normal(a.size).astype(np.float32)
    x = core.tensor(a, requires_grad=True)
    y = nn.GELU()(x)
    (y * core.tensor(g)).sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    value, slope = gelu64(a)
    np.testing.assert_allclose(y.numpy(), value, rtol=2e-6, atol=3e-7)
    np.testing.assert_allclose(x.grad.numpy(), g * slope, rtol=2e-6, atol=3e-7)
    # the forward is its formula, with this erf
    half, root = np.float32(0.5), np.float32(math.sqrt(0.5))
    by_hand = half * a * (np.float32(1.0) + erf32.erf(a * root))
    np.testing.assert_array_equal(y.numpy(), by_hand)


@pytest.mark.parametrize("shape", [(8, 16), (200, 250)], ids=["whole", "row_blocks"])
def test_gelu_and_erf_eager_and_compiled_are_bitwise_equal(shape) -> None:
    """Small kernels run on whole arrays, large ones in row blocks with out=:
    both give eager's bits."""
    rng = np.random.default_rng(3)
    x = core.tensor((rng.standard_normal(shape) * 2).astype(np.float32), requires_grad=True)

    def step():
        x.grad = None
        y = F.gelu(x) + F.erf(x * 0.5)
        (y * y).sum().backward()
        return y

    eager = step().numpy().copy()
    eager_grad = x.grad.numpy().copy()
    compiled = core.compile(step)
    compiled()
    got = compiled()
    assert compiled.eager_calls == 1, compiled.retraces
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.numpy(), eager)
    np.testing.assert_array_equal(x.grad.numpy(), eager_grad)


def gelu_mlp():
    core.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 1))
    opt = optim.SGD(model.parameters(), lr=0.05)
    x, y = core.randn(64, 32), core.randn(64, 1)
    return model, mse_step(model, opt, x, y)


def test_gelu_mlp_training_steps_are_bitwise_equal_eager_and_compiled() -> None:
    eager_model, eager_step = gelu_mlp()
    eager = [eager_step().item() for _ in range(4)]
    model, step = gelu_mlp()
    compiled = core.compile(step)
    losses = [compiled().item() for _ in range(4)]
    assert losses == eager
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        assert p.dtype == np.float32
        np.testing.assert_array_equal(p.numpy(), q.numpy())
