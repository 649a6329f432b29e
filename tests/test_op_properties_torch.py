"""The new ops on random shapes (hypothesis), size-0 dimensions and
broadcasting included: gradients against finite differences in float64."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_op_grads import PROPERTY, Arg, away, check, fixed, grid, normal, row

from core.engine.ops import Op

SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3)


@PROPERTY
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    op=st.sampled_from([Op.FMOD, Op.REMAINDER]),
)
def test_fmod_remainder_broadcasting_property(device: str, shapes, op) -> None:
    sa, sb = shapes.input_shapes
    fn = (lambda a, b: a.fmod(b)) if op is Op.FMOD else (lambda a, b: a.remainder(b))
    check(row(f"{op.label} {sa}x{sb}", op, fn, normal(*sa), away(*sb)), device)


@PROPERTY
@given(data=st.data())
def test_prod_and_scans_property(device: str, data) -> None:
    shape = data.draw(SHAPES, label="shape")
    axis = data.draw(st.integers(0, len(shape) - 1), label="axis")
    kind = data.draw(st.sampled_from(["prod", "cumsum", "cumprod"]), label="op")
    keep = data.draw(st.booleans(), label="keepdim")
    gen = data.draw(st.sampled_from([normal, grid]), label="values")  # grid: zeros
    fn = {
        "prod": lambda a: a.prod(axis, keepdim=keep),
        "cumsum": lambda a: a.cumsum(axis),
        "cumprod": lambda a: a.cumprod(axis),
    }[kind]
    op = {"prod": Op.PROD, "cumsum": Op.CUMSUM, "cumprod": Op.CUMPROD}[kind]
    check(row(f"{kind} {shape} axis={axis}", op, fn, gen(*shape)), device)


def index_for(shape: tuple, axis: int, rng_seed: int) -> Arg:
    rng = np.random.default_rng(rng_seed)
    index_shape = list(shape)
    index_shape[axis] = int(rng.integers(0, 4))
    high = max(shape[axis], 1)
    values = rng.integers(0, high, index_shape) if shape[axis] else np.zeros(index_shape, int)
    return fixed(values)


@PROPERTY
@given(data=st.data())
def test_gather_scatter_property(device: str, data) -> None:
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
    axis = data.draw(st.integers(0, len(shape) - 1))
    seed = data.draw(st.integers(0, 1000))
    index = index_for(shape, axis, seed)
    index_shape = index.draw(None).shape
    if data.draw(st.booleans(), label="gather"):
        r = row(
            f"gather {shape} {axis}",
            Op.GATHER,
            lambda a, i: a.gather(axis, i),
            normal(*shape),
            index,
        )
    else:
        add = data.draw(st.booleans(), label="add")
        fn = (
            (lambda a, i, s: a.scatter_add(axis, i, s))
            if add
            else (lambda a, i, s: a.scatter(axis, i, s))
        )
        r = row(
            f"scatter {shape} {axis} {add}",
            Op.SCATTER,
            fn,
            normal(*shape),
            index,
            normal(*index_shape),
        )
        if not add and _repeats(index, axis):
            return  # repeated targets: which write wins is unspecified (as in PyTorch)
    check(r, device)


def _repeats(index: Arg, axis: int) -> bool:
    values = index.draw(None)
    if values.size == 0:
        return False
    moved = np.moveaxis(values, axis, -1).reshape(-1, values.shape[axis])
    return any(len(set(r)) < len(r) for r in moved)
