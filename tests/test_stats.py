"""``core.observe.stats.summarize`` and its one-pass kernels (``core.observe.moments``).

Both implementations, Numba's compiled loop and NumPy's passes, are checked
against a plain float64 reference on the same arrays: random ones from
hypothesis, and the cases that take other paths (NaN and Inf, ints, float16,
byte-swapped and non-contiguous arrays, near-constant arrays).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers_data import assert_stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.observe import moments
from core.observe import stats as observe_stats
from core.observe.events import Stats


@pytest.fixture(params=["numba", "numpy"])
def backend(request, monkeypatch) -> str:
    """Each implementation in turn; the statistics cache is emptied for each test."""
    monkeypatch.setattr(observe_stats, "_recent", {})
    if request.param == "numpy":
        monkeypatch.setattr(moments, "_compiled", None)
        monkeypatch.setattr(moments, "_backend", "numpy")
    elif moments.backend() != "numba":
        pytest.fail(f"Numba is a dependency but unusable: {moments.unavailable_reason()}")
    return request.param


def summarize_fresh(array: np.ndarray) -> Stats:
    observe_stats._recent.clear()
    return observe_stats.summarize(array)


# sizes on both sides of the float32 kernel's blocks and of moments.SMALL (float64)
SIZES = [2, 3, 17, 1023, 1024, 1025, moments.SMALL, moments.SMALL + 1, 3073, 70_000]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", SIZES)
def test_random_arrays_match_the_reference(backend, dtype, size):
    rng = np.random.default_rng(size)
    a = (rng.standard_normal(size) * 3 + 0.5).astype(dtype)
    a[rng.integers(0, size, size // 4 + 1)] = 0.0  # some exact zeros
    a[0] = -0.0  # negative zero is a zero too
    assert_stats(summarize_fresh(a), a, f"{dtype.__name__}[{size}]")


@settings(max_examples=150, deadline=None)
@given(
    a=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40),
        elements={"allow_nan": False, "allow_infinity": False, "min_value": -1e6, "max_value": 1e6},
    )
)
def test_hypothesis_arrays_match_the_reference(a):
    for use_numpy in (False, True):
        saved = moments._compiled, moments._backend
        if use_numpy:
            moments._compiled, moments._backend = None, "numpy"
        try:
            stats = summarize_fresh(a)
        finally:
            moments._compiled, moments._backend = saved
        assert_stats(stats, a, f"{'numpy' if use_numpy else 'numba'} {a.dtype}{a.shape}")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda a: a.astype(np.int64) * 7, id="int64"),
        pytest.param(lambda a: a > 0, id="bool"),
        pytest.param(lambda a: a.astype(np.float16), id="float16"),
        pytest.param(lambda a: a.astype(">f4"), id="big-endian float32"),
        pytest.param(lambda a: a.reshape(50, 60).T, id="transposed"),
        pytest.param(lambda a: a[::3], id="strided"),
    ],
)
def test_other_layouts_and_dtypes(backend, make):
    a = make(np.random.default_rng(1).standard_normal(3000).astype(np.float32))
    assert_stats(summarize_fresh(a), np.asarray(a), str(a.dtype))


def test_nan_and_inf_are_counted_exactly(backend):
    a = np.arange(5000, dtype=np.float32) - 2500
    a[[3, 10, 4000]] = np.nan
    a[[7, 4999]] = [np.inf, -np.inf]
    stats = summarize_fresh(a)
    assert (stats.nan, stats.inf, stats.size, stats.zeros) == (3, 2, 5000, 1)
    assert not stats.finite
    assert_stats(stats, a, "with NaN and Inf")


def test_all_nan(backend):
    stats = summarize_fresh(np.full(3000, np.nan, dtype=np.float32))
    assert (stats.nan, stats.inf, stats.size) == (3000, 0, 3000)
    assert math.isnan(stats.min) and math.isnan(stats.mean)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [256, 5000])
def test_values_far_from_zero_take_the_two_pass_path_exactly(backend, dtype, size):
    rng = np.random.default_rng(7)
    a = (rng.standard_normal(size) * 0.001 - 0.0013).astype(dtype)  # |mean| > std
    stats = summarize_fresh(a)
    assert stats.std < abs(stats.mean)
    assert_stats(stats, a, f"{dtype.__name__}[{size}]")


def test_min_and_max_sit_in_any_block(backend):
    a = np.zeros(5000, dtype=np.float32) + 1.0
    for low, high in ((0, 4999), (4999, 0), (1023, 1024), (2048, 3071)):
        a[:] = 1.0
        a[low], a[high] = -7.5, 9.25
        stats = summarize_fresh(a)
        assert (stats.min, stats.max) == (-7.5, 9.25), (low, high)


def test_near_constant_array_has_an_accurate_std(backend):
    a = np.full(10_000, 1000.0, dtype=np.float32)
    a[::2] += np.float32(0.001)  # std 0.0005 around a mean of 1000: sums cancel
    stats = summarize_fresh(a)
    assert stats.std == pytest.approx(np.asarray(a, np.float64).std(), rel=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [40, 5000])
def test_constant_array_has_zero_std_and_its_value_as_mean(backend, dtype, size):
    a = np.full(size, 119837.26064146, dtype=dtype)
    stats = summarize_fresh(a)
    assert (stats.std, stats.mean, stats.min, stats.max) == (0.0, float(a[0]), a[0], a[0])


def test_moments_on_a_small_array(backend):
    total, squares, low, high, zeros = moments.moments(np.array([0.0, -1.0, 3.0]))
    assert (float(total), float(squares), float(low), float(high), int(zeros)) == (
        2.0,
        10.0,
        -1.0,
        3.0,
        1,
    )


def test_environment_switch_chooses_numpy():
    code = (
        "from core.observe import moments; import numpy as np; moments.moments(np.ones(3));"
        "print(moments.backend(), '|', moments.unavailable_reason())"
    )
    env = {**os.environ, "GRADSTEP_STATS": "numpy"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    ).stdout
    assert out.strip() == "numpy | GRADSTEP_STATS=numpy is set"


@pytest.mark.parametrize("kind", ["random", "constant", "nan-inf", "int"])
def test_stats_on_each_device(device, kind):
    """The same statistics whether the array lives in NumPy or CuPy (``gpu`` variant)."""
    import core

    rng = np.random.default_rng(3)
    a = rng.standard_normal(5000).astype(np.float32)
    if kind == "constant":
        a[:] = 3.25
    elif kind == "nan-inf":
        a[[1, 2]] = np.nan
        a[5] = -np.inf
    elif kind == "int":
        a = (a * 10).astype(np.int64)
    array = core.tensor(a, device=device).data
    stats = summarize_fresh(array)
    assert_stats(stats, a, f"{kind} on {device}")
    if kind == "constant":
        assert (stats.std, stats.mean) == (0.0, 3.25)


def test_the_app_loads_the_kernels_off_its_gui_thread(monkeypatch):
    """``gradstep`` starts the (0.6 s) kernel load in a thread; it ends with Numba ready."""
    from app.gui import warm_statistics

    monkeypatch.setattr(moments, "_compiled", None)
    monkeypatch.setattr(moments, "_backend", None)
    thread = warm_statistics()
    assert thread.name == "gradstep-stats-warmup" and thread.daemon
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert moments.backend() == "numba" and moments._compiled is not None
