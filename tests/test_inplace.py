"""In-place ops and the version check.

Decision: as in PyTorch, in-place ops are allowed on tensors inside the graph
(not on leaves that require grad while gradients are recorded). Such a write
is an ordinary node on the old value; the tensor object takes the new value.
Every in-place write moves the tensor's ``_version`` on. A write in the graph
keeps the old value (the write rebinds the object, never the array): the
node that made it and the nodes that took it before the write get it back at
backward, so their gradients are right (where PyTorch refuses some of these,
``y = x.exp(); y.mul_(2)``). A write outside the graph (under ``no_grad``, an
optimizer step) keeps nothing: a backward through a node whose rule reads
the value refuses, with PyTorch's "modified by an inplace operation" error.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_op_grads import ROWS, make_inputs

import core
from core.engine.inplace import write_count


def leaf(values, grad=True):
    return core.tensor(np.asarray(values, dtype=np.float64), requires_grad=grad)


def test_writing_a_saved_leaf_under_no_grad_fails_at_backward():
    w = leaf([1.0, 2.0])
    y = (w * w).sum()
    with core.no_grad():
        w.add_(1.0)
    with pytest.raises(core.GradError, match="modified by an in-place operation") as info:
        y.backward()
    assert "add_" in str(info.value) and "mul_" in str(info.value)
    assert "test_inplace.py" in str(info.value)


def test_an_optimizer_step_then_a_retained_graph_fails_as_in_pytorch():
    w = leaf([1.0, 2.0])
    opt = core.optim.SGD([w], lr=0.1)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(core.GradError, match="in-place"):
        loss.backward()


def test_writes_that_no_rule_reads_are_fine():
    x = leaf([1.0, -2.0])
    a = x * 2.0
    b = a + 1.0  # add's rule reads no values
    a.mul_(3.0)
    b.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_in_place_inside_the_graph_is_differentiated():
    x = leaf([1.0, -2.0, 0.5])
    a = x * 2.0
    a.mul_(3.0).add_(1.0)
    a.clamp_(min=-5.0)
    a.sum().backward()
    np.testing.assert_array_equal(a.numpy(), [7.0, -5.0, 4.0])
    np.testing.assert_array_equal(x.grad.numpy(), [6.0, 0.0, 6.0])
    assert a.node is not None and a.node.opdef.label == "clip"


def test_a_consumer_gets_the_value_it_took():
    x = leaf([1.0, -2.0])
    a = x * 2.0
    b = a * a  # mul saves a; the write in the graph kept the old value for it
    a.add_(1.0)
    (b.sum() + a.sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), 8 * np.array([1.0, -2.0]) + 2.0)


def test_a_consumer_of_a_value_written_under_no_grad_is_refused():
    x = leaf([1.0, -2.0])
    a = x * 2.0
    b = a * a
    with core.no_grad():
        a.add_(1.0)
    with pytest.raises(core.GradError, match=r"input 0 of mul_\d+"):
        b.sum().backward()


def test_the_producer_keeps_the_old_value():
    x = leaf([0.5, 1.0])
    y = x.exp()
    y.mul_(2.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([0.5, 1.0]))


def test_a_leaf_that_requires_grad_cannot_be_written_while_recording():
    w = leaf([1.0])
    with pytest.raises(core.GradError, match="leaf tensor that requires grad"):
        w.mul_(2.0)


def test_writing_a_plain_tensor_with_a_graph_value_joins_the_graph():
    w = leaf([1.0, 2.0])
    buf = core.zeros(2, dtype="float64")
    buf.add_(w * 3.0)
    assert buf.requires_grad and not buf.is_leaf
    buf.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])


def test_versions_count_writes():
    t = core.zeros(3)
    before, count = t._version, write_count()
    t.add_(1.0)
    t.zero_()
    assert t._version > before and write_count() == count + 2
    np.testing.assert_array_equal(t.numpy(), [0.0, 0.0, 0.0])


def test_in_place_family_values():
    t = core.tensor([-2.0, 0.5, 3.0])
    assert t.clone().fill_(7.0).tolist() == [7.0, 7.0, 7.0]
    assert t.clone().clamp_(-1.0, 1.0).tolist() == [-1.0, 0.5, 1.0]
    assert t.clone().copy_(core.tensor([1.0])).tolist() == [1.0, 1.0, 1.0]
    assert t.clone().masked_fill_(t > 0, 0.0).tolist() == [-2.0, 0.0, 0.0]
    assert t.clone().relu_().tolist() == [0.0, 0.5, 3.0]
    assert t.clone().pow_(2).tolist() == [4.0, 0.25, 9.0]
    assert t.clone().sub_(1.0).neg_().tolist() == [3.0, 0.5, -2.0]
    assert t.clone().div_(2.0).floor_().tolist() == [-1.0, 0.0, 1.0]
    with pytest.raises(core.ShapeError, match="add_"):
        core.zeros(3).add_(core.zeros(2, 3))


def test_a_write_never_changes_an_array_handed_out():
    t = core.tensor([1.0, 2.0])
    seen = t.numpy()
    t.mul_(10.0)
    assert seen.tolist() == [1.0, 2.0] and t.tolist() == [10.0, 20.0]


def test_in_place_in_the_graph_compiles_to_the_same_values():
    x = leaf([0.3, -1.2, 2.0])

    def step():
        x.grad = None
        a = x * 2.0
        a.mul_(x).add_(1.0)
        loss = a.tanh().sum()
        loss.backward()
        return loss

    eager = step().item()
    grad = x.grad.numpy().copy()
    compiled = core.compile(step)
    compiled()
    assert compiled().item() == pytest.approx(eager)
    np.testing.assert_allclose(x.grad.numpy(), grad)


def test_two_dropouts_in_one_step_leave_backward_alone():
    core.manual_seed(0)
    x = leaf(np.ones((4, 5)))
    core.functional.dropout(core.functional.dropout(x * 2.0, 0.5), 0.5).sum().backward()
    assert set(np.unique(x.grad.numpy())) <= {0.0, 8.0}


@pytest.mark.parametrize("r", ROWS, ids=lambda r: r.name)
def test_what_each_rule_reads_is_declared(r):
    """An input the op says its gradient rule does not read (``saved_from``,
    ``saved_to``) can be written under no_grad between forward and backward
    without changing the gradients: the declaration the version check
    relies on is true."""
    inputs = make_inputs(r, "cpu")
    out = r.fn(*inputs)
    node = out.node
    if node is None or node.opdef.op is not r.op:
        pytest.skip("the row's op does not make its output")
    opdef = node.opdef
    unread = [
        t
        for i, t in enumerate(node.inputs)
        if not opdef.saved_from <= i < opdef.saved_to and t.dtype.kind == "f"
    ]
    if not unread:
        pytest.skip("the rule reads every input")
    wanted = [t for t in inputs if t.requires_grad]
    v = core.tensor(np.random.default_rng(0).standard_normal(out.shape), dtype=out.dtype)
    before = core.grad((out * v).sum(), wanted, retain_graph=True, allow_unused=True)
    with core.no_grad():
        for t in unread:
            t.mul_(1.5).add_(0.25)
    after = core.grad((out * v).sum(), wanted, allow_unused=True)
    for b, a in zip(before, after, strict=True):
        if b is None:
            assert a is None
            continue
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=r.name)
