"""Errors a user can cause with the PyTorch-named functions: each names the op
(or function), the shapes and the user's line."""

from __future__ import annotations

import inspect

import pytest

import core
import core.functional as F
from core import nn


def here(offset: int = 1) -> str:
    """The file and line ``offset`` lines below the caller's."""
    frame = inspect.currentframe().f_back
    return f"test_torch_errors.py:{frame.f_lineno + offset}"


def test_gather_index_out_of_range():
    x = core.randn(3, 4)
    with pytest.raises(core.OpError) as info:
        line = here()
        x.gather(1, core.tensor([[0], [4], [1]]))
    text = str(info.value)
    assert text.startswith("gather:") and "(3, 4)" in text and "outside 0..3" in text
    assert line in text


def test_einsum_size_mismatch():
    with pytest.raises(core.ShapeError) as info:
        line = here()
        core.einsum("ij,jk->ik", core.randn(2, 3), core.randn(4, 5))
    assert "einsum" in str(info.value) and "'j'" in str(info.value) and line in str(info.value)


def test_conv2d_groups_that_do_not_divide():
    with pytest.raises(core.ShapeError) as info:
        line = here()
        F.conv2d(core.randn(1, 3, 4, 4), core.randn(4, 1, 3, 3), groups=2)
    assert "groups" in str(info.value) and line in str(info.value)


def test_nll_loss_target_shape():
    with pytest.raises(core.ShapeError) as info:
        line = here()
        F.nll_loss(core.randn(3, 4).log_softmax(1), core.tensor([0, 1]))
    text = str(info.value)
    assert "nll_loss" in text and "(2,)" in text and "(3, 4)" in text and line in text


def test_unknown_reduction():
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.l1_loss(core.randn(3), core.randn(3), reduction="average")


def test_recurrent_input_features():
    gru = nn.GRU(3, 2)
    with pytest.raises(core.ShapeError) as info:
        line = here()
        gru(core.randn(5, 2, 4))
    assert "GRU" in str(info.value) and "(5, 2, 4)" in str(info.value) and line in str(info.value)


def test_batch_norm_channels():
    bn = nn.BatchNorm2d(3)
    with pytest.raises(core.ShapeError) as info:
        line = here()
        bn(core.randn(2, 4, 3, 3))
    assert "BatchNorm2d(3)" in str(info.value) and line in str(info.value)


def test_dim_out_of_range():
    with pytest.raises(core.ShapeError) as info:
        line = here()
        core.randn(2, 3).cumsum(2)
    assert "dim 2 is out of range for a 2-d tensor" in str(info.value) and line in str(info.value)


def test_in_place_on_a_leaf_names_the_op_and_line():
    w = core.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(core.GradError) as info:
        line = here()
        w.clamp_(0.0, 1.0)
    assert str(info.value).startswith("clip_:") and line in str(info.value)


def test_backward_through_a_value_written_under_no_grad_names_both():
    w = core.tensor([1.0, 2.0], requires_grad=True)
    y = (w.exp() * w).sum()
    with core.no_grad():
        w.mul_(2.0)
    with pytest.raises(core.GradError) as info:
        line = here()
        y.backward()
    text = str(info.value)
    assert "modified by an in-place operation" in text and "mul_" in text and line in text


def test_logical_ops_need_booleans():
    with pytest.raises(core.DtypeError, match="boolean"):
        core.randn(3) & core.randn(3)
