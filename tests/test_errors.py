"""Errors a user can cause: each names the op, the shapes or dtypes or devices, and the line.

Also the GPU probe (``core.cuda``) and the plain facts of a Tensor.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers_data import needs_gpu, next_line

import core
import core.functional as F
from core import device, nn
from core.engine.dispatch import wrap as _wrap

HERE = os.path.basename(__file__)
NO_GPU = pytest.mark.skipif(device.is_available(), reason="a GPU is available here")


def at(line: int) -> str:
    """How an error message names a line of this file."""
    return f"{HERE}:{line}"


def fake_cuda(array: np.ndarray) -> core.Tensor:
    """A tensor labelled "cuda" (host memory inside): enough to test device checks."""
    return _wrap(array, "cuda", False)


# -- shapes -------------------------------------------------------------------------------


def test_add_shape_mismatch_names_op_shapes_and_line():
    a, b = core.randn(2, 3), core.randn(4)
    with pytest.raises(core.ShapeError) as info:
        line = next_line()
        _ = a + b
    message = str(info.value)
    assert message.startswith("add:")
    assert "(2, 3)" in message and "(4,)" in message
    assert at(line) in message
    assert isinstance(info.value, core.OpError) and isinstance(info.value, ValueError)


def test_matmul_shape_mismatch_names_op_shapes_and_line():
    a, b = core.randn(2, 3), core.randn(4, 5)
    with pytest.raises(core.ShapeError) as info:
        line = next_line()
        _ = a @ b
    message = str(info.value)
    assert message.startswith("matmul:")
    assert "(2, 3)" in message and "(4, 5)" in message and at(line) in message


def test_matmul_transpose_of_a_vector_is_a_clear_error():
    a, b = core.randn(3), core.randn(3, 2)
    with pytest.raises(core.ShapeError) as info:
        line = next_line()
        F.matmul(a, b, transpose_a=True)
    message = str(info.value)
    assert message.startswith("matmul:") and "at least 2 dims" in message
    assert "transpose_a=True" in message and at(line) in message


def test_conv2d_channel_mismatch_names_op_shapes_and_line():
    x, w = core.randn(1, 3, 5, 5), core.randn(2, 4, 3, 3)
    with pytest.raises(core.ShapeError) as info:
        line = next_line()
        F.conv2d(x, w)
    message = str(info.value)
    assert message.startswith("conv2d:")
    assert "(1, 3, 5, 5)" in message and "(2, 4, 3, 3)" in message
    assert "3 channels" in message and at(line) in message


def test_shape_error_inside_a_module_points_at_the_callers_line():
    layer = nn.Linear(2, 8)
    x = core.randn(4, 3)
    with pytest.raises(core.ShapeError) as info:
        line = next_line()
        layer(x)
    message = str(info.value)
    assert message.startswith("linear:")
    assert "(4, 3)" in message and "(8, 2)" in message and at(line) in message
    assert "nn.py" not in message


def test_reshape_error_names_shapes_and_line():
    t = core.randn(2, 3)
    with pytest.raises(core.ShapeError) as info:
        line = next_line()
        t.reshape(4, 2)
    message = str(info.value)
    assert "reshape" in message and "(2, 3)" in message and "(4, 2)" in message
    assert at(line) in message


def test_reshape_with_minus_one_error_names_the_line():
    t = core.randn(2, 3)
    with pytest.raises(core.ShapeError) as info:
        line = next_line()
        t.reshape(4, -1)
    assert at(line) in str(info.value)


# -- dtypes ---------------------------------------------------------------------------------


def test_mixing_float32_and_float64_names_both_dtypes_and_line():
    a = core.randn(3)
    b = core.randn(3, dtype=np.float64)
    with pytest.raises(core.DtypeError) as info:
        line = next_line()
        _ = a + b
    message = str(info.value)
    assert message.startswith("add:")
    assert "float32" in message and "float64" in message and at(line) in message
    assert isinstance(info.value, TypeError)


def test_matmul_dtype_mix_names_op_and_line():
    a = core.randn(2, 3, dtype=np.float64)
    b = core.randn(3, 2)
    with pytest.raises(core.DtypeError) as info:
        line = next_line()
        _ = a @ b
    message = str(info.value)
    assert message.startswith("matmul:") and at(line) in message
    assert "float64[2, 3]" in message and "float32[3, 2]" in message


def test_python_numbers_take_the_tensors_dtype():
    d = core.randn(3, dtype=np.float64)
    assert (d * 2.0 + 1).dtype == np.float64
    assert (core.randn(3) * 2.0).dtype == np.float32
    assert core.arange(0.0, 1.0, 0.25).dtype == np.float32
    assert core.arange(4).dtype == np.int64


# -- devices ---------------------------------------------------------------------------------


def test_mixing_devices_names_both_and_the_line():
    a = core.tensor([1.0, 2.0, 3.0])
    b = fake_cuda(np.ones(3, np.float32))
    with pytest.raises(core.DeviceError) as info:
        line = next_line()
        _ = a + b
    message = str(info.value)
    assert message.startswith("add:")
    assert "cpu" in message and "cuda" in message and at(line) in message


@NO_GPU
def test_to_cuda_without_a_gpu_gives_the_reason():
    reason = device.unavailable_reason()
    t = core.tensor([1.0])
    for attempt in (
        lambda: t.to("cuda"),
        t.cuda,
        lambda: nn.Linear(2, 2).to("cuda"),
        lambda: core.randn(2, device="cuda"),
        lambda: core.tensor([1.0], device="cuda"),
    ):
        with pytest.raises((core.DeviceError, RuntimeError)) as info:
            attempt()
        assert reason in str(info.value) and "cuda" in str(info.value)


@NO_GPU
def test_to_cuda_without_a_gpu_raises_device_error():
    with pytest.raises(core.DeviceError):
        core.tensor([1.0]).to("cuda")


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown device 'tpu'.*'cpu', 'cuda'"):
        core.tensor([1.0], device="tpu")
    with pytest.raises(ValueError, match="unknown device"):
        device.xp_for("gpu0")


def test_cuda_probe_is_consistent():
    available = device.is_available()
    reason = device.unavailable_reason()
    assert isinstance(available, bool)
    assert available == (reason is None)
    if not available:
        assert isinstance(reason, str) and len(reason) > 10
    assert (device.is_available(), device.unavailable_reason()) == (available, reason)
    assert device.xp_for("cpu") is np
    assert device.device_of(np.zeros(2)) == "cpu"
    host = np.arange(3)
    assert device.to_host(host) is host
    assert device.to_device(host, "cpu") is host


@needs_gpu
def test_gpu_tensor_round_trip():
    import cupy

    assert device.xp_for("cuda") is cupy
    t = core.tensor([[1.0, 2.0], [3.0, 4.0]])
    g = t.to("cuda")
    assert (g.device, g.dtype, g.shape) == ("cuda", np.float32, (2, 2))
    assert isinstance(g.data, cupy.ndarray)
    host = g.numpy()
    assert isinstance(host, np.ndarray)
    np.testing.assert_array_equal(host, t.numpy())
    assert g.to("cuda") is g
    back = (g * 2.0).cpu()
    assert back.device == "cpu"
    np.testing.assert_array_equal(back.numpy(), 2 * t.numpy())
    assert (g.sum().item(), g.sum().device) == (10.0, "cuda")


@needs_gpu
def test_mixing_real_devices_names_both_and_the_line():
    a = core.tensor([1.0, 2.0])
    b = core.tensor([1.0, 2.0], device="cuda")
    with pytest.raises(core.DeviceError) as info:
        line = next_line()
        _ = b * a
    message = str(info.value)
    assert message.startswith("mul:") and "cuda, cpu" in message and at(line) in message


@needs_gpu
def test_gpu_shape_error_names_op_shapes_and_line():
    a = core.randn(2, 3, device="cuda")
    b = core.randn(4, 5, device="cuda")
    with pytest.raises(core.ShapeError) as info:
        line = next_line()
        _ = a @ b
    message = str(info.value)
    assert message.startswith("matmul:") and "(2, 3)" in message and at(line) in message


@needs_gpu
def test_to_makes_a_new_leaf_on_the_device():
    """As documented: the copy is a leaf of its own; gradients stay on its device."""
    w = core.tensor([1.0, 2.0], requires_grad=True)
    moved = w.to("cuda")
    assert moved.is_leaf and moved.requires_grad and moved.device == "cuda"
    (moved * 3.0).sum().backward()
    assert w.grad is None
    assert moved.grad.numpy().tolist() == [3.0, 3.0]


# -- tensor facts ---------------------------------------------------------------------------


def test_tensor_facts():
    t = core.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.shape == (2, 2) and isinstance(t.shape, tuple)
    assert t.dtype == np.float32 and t.device == "cpu" and t.ndim == 2
    assert t.to("cpu") is t and t.cpu() is t
    host = t.numpy()
    assert isinstance(host, np.ndarray)
    assert host.tolist() == [[1.0, 2.0], [3.0, 4.0]] == t.tolist()
    assert core.tensor(3.5).item() == 3.5 and isinstance(core.tensor(3.5).item(), float)
    assert core.tensor([7]).item() == 7
    assert core.tensor([1, 2]).dtype == np.int64
    assert core.tensor(np.zeros(2)).dtype == np.float64, "NumPy arrays keep their dtype"
    assert core.tensor([1.0], dtype=core.float64).dtype == np.float64
    assert float(t.sum()) == 10.0 and len(t) == 2 and t.numel() == 4


def test_item_on_many_elements_is_a_clear_error():
    t = core.tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match=r"one element.*\(2, 2\)"):
        t.item()
    with pytest.raises(ValueError, match="one element"):
        bool(core.tensor([1.0, 2.0]))


# -- losses ----------------------------------------------------------------------------------


def test_cross_entropy_with_float_targets_is_a_clear_error():
    logits = core.randn(3, 4)
    target = core.tensor([0.0, 1.0, 2.0])
    with pytest.raises(core.OpError) as info:
        line = next_line()
        F.cross_entropy(logits, target)
    message = str(info.value)
    assert message.startswith("cross_entropy:")
    assert "integer" in message and "float32" in message and at(line) in message


def test_cross_entropy_with_float64_targets_names_op_and_line():
    logits = core.randn(3, 4)
    target = core.tensor(np.array([0.0, 1.0, 2.0]))
    with pytest.raises(core.OpError) as info:
        line = next_line()
        F.cross_entropy(logits, target)
    message = str(info.value)
    assert message.startswith("cross_entropy:") and at(line) in message


def test_cross_entropy_with_float64_targets_asks_for_integers():
    with pytest.raises(core.OpError, match="targets must be integer"):
        F.cross_entropy(core.randn(3, 4), core.tensor(np.array([0.0, 1.0, 2.0])))


@pytest.mark.parametrize("bad", [[0, 1, 4], [-1, 0, 1]])
def test_cross_entropy_with_out_of_range_targets_is_a_clear_error(bad):
    logits = core.randn(3, 4)
    with pytest.raises(core.OpError) as info:
        line = next_line()
        F.cross_entropy(logits, core.tensor(bad))
    message = str(info.value)
    assert message.startswith("cross_entropy:")
    assert "outside 0..3" in message and at(line) in message


def test_cross_entropy_shape_errors():
    with pytest.raises(core.ShapeError, match=r"targets of shape \(2,\) do not match"):
        F.cross_entropy(core.randn(3, 4), core.tensor([0, 1]))
    with pytest.raises(core.ShapeError, match=r"\(batch, classes\)"):
        F.cross_entropy(core.randn(4), core.tensor([1]))


def test_embedding_index_out_of_range_names_op_and_line():
    weight = core.randn(5, 2)
    with pytest.raises(core.OpError) as info:
        line = next_line()
        F.embedding(core.tensor([0, 5]), weight)
    message = str(info.value)
    assert message.startswith("embedding:") and "outside 0..4" in message
    assert at(line) in message
