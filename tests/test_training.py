"""Training end to end, the optimizers, nn.Module's state and structure, autograd controls."""

from __future__ import annotations

import math
import os
import threading
import zipfile

import numpy as np
import pytest
from helpers_data import make_moons, needs_gpu

import core
import core.functional as F
from core import nn, optim

HERE = os.path.basename(__file__)


class MLP(nn.Module):
    def __init__(self, hidden: int = 8, out: int = 1) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, hidden)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


# -- learning --------------------------------------------------------------------------


def _accuracy(model: nn.Module, x: core.Tensor, labels: np.ndarray) -> float:
    with core.no_grad():
        out = model(x).numpy()
    guess = out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] > 0).astype(np.int64)
    return float((guess == labels).mean())


@pytest.mark.parametrize("recipe", ["cross_entropy+adam", "bce+sgd_momentum"])
def test_mlp_learns_two_moons(recipe):
    core.manual_seed(0)
    points, labels = make_moons(240, noise=0.12, seed=7)
    x = core.tensor(points)
    if recipe == "cross_entropy+adam":
        model = MLP(hidden=16, out=2)
        opt = optim.Adam(model.parameters(), lr=0.05)
        target = core.tensor(labels)

        def loss_fn(out):
            return F.cross_entropy(out, target)

    else:
        model = MLP(hidden=16, out=1)
        opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        target = core.tensor(labels.astype(np.float32)[:, None])

        def loss_fn(out):
            return F.binary_cross_entropy_with_logits(out, target)

    start_accuracy = _accuracy(model, x, labels)
    losses = []
    accuracy = start_accuracy
    for step in range(500):
        loss = loss_fn(model(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 10 == 9:
            accuracy = _accuracy(model, x, labels)
            if accuracy >= 0.97:
                break
    assert start_accuracy < 0.9, "the untrained model should not already separate the moons"
    assert accuracy >= 0.95, f"{recipe}: {accuracy:.3f} after {step + 1} steps"
    assert losses[-1] < 0.5 * losses[0]
    assert all(math.isfinite(v) for v in losses)


def test_make_moons_is_seeded_and_balanced():
    a, la = make_moons(100, seed=3)
    b, lb = make_moons(100, seed=3)
    c, _ = make_moons(100, seed=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, c)
    assert la.sum() == 50 and a.shape == (100, 2)


def _regression():
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, size=(64, 1)).astype(np.float32)
    ys = (3.0 * xs - 1.0 + rng.normal(0, 0.01, size=xs.shape)).astype(np.float32)
    return core.tensor(xs), core.tensor(ys)


@pytest.mark.parametrize(
    "make_opt",
    [
        pytest.param(lambda ps: optim.Adam(ps, lr=0.1), id="adam"),
        pytest.param(lambda ps: optim.Adam(ps, lr=0.1, weight_decay=1e-3), id="adam_wd"),
        pytest.param(
            lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3), id="sgd_momentum_wd"
        ),
        pytest.param(lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True), id="nesterov"),
    ],
)
def test_optimizer_decreases_loss_on_a_tiny_regression(make_opt):
    core.manual_seed(0)
    x, y = _regression()
    model = nn.Linear(1, 1)
    opt = make_opt(model.parameters())
    losses = []
    for _ in range(150):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.02 * losses[0], losses[::30]
    assert model.weight.item() == pytest.approx(3.0, abs=0.1)
    assert model.bias.item() == pytest.approx(-1.0, abs=0.1)


def _run_three_steps(opt, p: core.Tensor, c: np.ndarray) -> list[np.ndarray]:
    """Minimise sum(c * p**2) for three steps; the values after each step."""
    seen = []
    for _ in range(3):
        loss = (p * p * core.tensor(c)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.append(p.numpy().astype(np.float64))
    return seen


def test_sgd_matches_the_reference_update():
    c = np.array([0.5, 1.5, -1.0])
    p0 = np.array([1.0, -2.0, 0.5])
    lr, mom, wd = 0.1, 0.9, 0.01
    for nesterov in (False, True):
        p = core.tensor(p0, dtype=np.float64, requires_grad=True)
        got = _run_three_steps(
            optim.SGD([p], lr=lr, momentum=mom, weight_decay=wd, nesterov=nesterov), p, c
        )
        ref, buf = p0.copy(), None
        for step in range(3):
            g = 2 * c * ref + wd * ref
            buf = g if buf is None else mom * buf + g
            ref = ref - lr * (g + mom * buf if nesterov else buf)
            np.testing.assert_allclose(got[step], ref, rtol=1e-12, err_msg=f"step {step}")


def test_sgd_follows_a_changed_learning_rate():
    """A schedule that sets ``opt.lr`` between steps changes the next update."""
    p = core.tensor([1.0], dtype=np.float64, requires_grad=True)
    opt = optim.SGD([p], lr=0.5)
    for lr, expected in ((0.5, 0.5), (0.25, 0.25)):  # the gradient of p.sum() is 1
        opt.lr = lr
        opt.zero_grad()
        p.sum().backward()
        opt.step()
        assert p.numpy().tolist() == [expected]


def test_adam_matches_the_reference_update():
    c = np.array([0.5, 1.5, -1.0])
    p0 = np.array([1.0, -2.0, 0.5])
    lr, (b1, b2), eps, wd = 0.05, (0.9, 0.99), 1e-8, 0.01
    p = core.tensor(p0, dtype=np.float64, requires_grad=True)
    got = _run_three_steps(optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd), p, c)
    ref, m, v = p0.copy(), np.zeros(3), np.zeros(3)
    for t in range(1, 4):
        g = 2 * c * ref + wd * ref
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        ref = ref - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(got[t - 1], ref, rtol=1e-10, err_msg=f"step {t}")


def test_optimizer_skips_parameters_without_grad_and_checks_arguments():
    a = core.tensor([1.0], requires_grad=True)
    b = core.tensor([1.0], requires_grad=True)
    opt = optim.SGD([a, b], lr=0.5)
    (a * a).sum().backward()
    opt.step()
    assert a.item() == 0.0 and b.item() == 1.0
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    with pytest.raises(ValueError, match="no parameters"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        optim.Adam([a], lr=0.0)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        optim.SGD([a], lr=math.nan)


# -- nn.Module: state ---------------------------------------------------------------------


def test_state_dict_names_and_copies():
    core.manual_seed(0)
    model = MLP()
    state = model.state_dict()
    assert list(state) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert state["fc1.weight"].shape == (8, 2) and state["fc2.bias"].shape == (1,)
    state["fc1.bias"][:] = 99.0
    assert not np.any(model.fc1.bias.numpy() == 99.0), "state_dict must hold copies"


def test_load_state_dict_makes_models_agree():
    core.manual_seed(0)
    a = MLP()
    core.manual_seed(1)
    b = MLP()
    x = core.randn(5, 2)
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_load_state_dict_names_missing_unexpected_and_bad_shapes():
    core.manual_seed(0)
    model = MLP()
    before = model.state_dict()
    state = model.state_dict()
    del state["fc2.bias"]
    state["fc3.weight"] = np.zeros((1, 1), np.float32)
    with pytest.raises(
        core.GradstepError, match=r"missing \['fc2.bias'\].*unexpected \['fc3.weight'\]"
    ):
        model.load_state_dict(state)
    state["fc1.bias"] = state["fc1.bias"] + 1.0
    model.load_state_dict(state, strict=False)  # loads what fits, ignores the rest
    np.testing.assert_array_equal(model.fc1.bias.numpy(), state["fc1.bias"])
    before = model.state_dict()
    wrong = model.state_dict()
    wrong["fc1.bias"] = np.ones(8, np.float32)
    wrong["fc2.weight"] = np.zeros((2, 8), np.float32)
    with pytest.raises(core.GradstepError) as info:
        model.load_state_dict(wrong)
    assert "fc2.weight" in str(info.value)
    assert "(2, 8)" in str(info.value) and "(1, 8)" in str(info.value)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"{name} changed")


def test_save_and_load_npz(tmp_path):
    core.manual_seed(0)
    model = MLP()
    path = tmp_path / "weights.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(model.state_dict())
    core.manual_seed(5)
    other = MLP()
    other.load(path)
    for (name, a), (_n, b) in zip(model.named_parameters(), other.named_parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


def test_save_writes_exactly_the_given_path(tmp_path):
    model = nn.Linear(2, 2)
    path = tmp_path / "weights"
    model.save(path)
    assert path.exists() and not (tmp_path / "weights.npz").exists()
    nn.Linear(2, 2).load(path)


def _truncated_npz(tmp_path):
    path = tmp_path / "full.npz"
    nn.Linear(3, 2).save(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _pickled_npz(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, weight=np.array([{"a": 1}], dtype=object), bias=np.zeros(2))
    return path


def _garbage(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"not an npz file at all" * 5)
    return path


def _bad_zip_member(tmp_path):
    path = tmp_path / "member.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("weight.npy", b"\x93NUMPY garbage")
        z.writestr("bias.npy", b"")
    return path


@pytest.mark.parametrize(
    "make_file",
    [_truncated_npz, _pickled_npz, _garbage, _bad_zip_member, lambda tmp: tmp / "missing.npz"],
    ids=["truncated", "pickled", "garbage", "bad_member", "missing"],
)
def test_load_bad_file_raises_gradstep_error_naming_it(tmp_path, make_file):
    path = make_file(tmp_path)
    model = nn.Linear(3, 2)
    before = model.state_dict()
    with pytest.raises(core.GradstepError) as info:
        model.load(path)
    assert str(path) in str(info.value)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_mismatched_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "wide.npz"
    nn.Linear(2, 4).save(path)
    with pytest.raises(core.GradstepError) as info:
        nn.Linear(2, 3).load(path)
    message = str(info.value)
    assert str(path) in message and "weight" in message
    assert "(4, 2)" in message and "(3, 2)" in message
    path = tmp_path / "nobias.npz"
    nn.Linear(2, 3, bias=False).save(path)
    with pytest.raises(core.GradstepError, match=r"missing \['bias'\]"):
        nn.Linear(2, 3).load(path)


# -- nn.Module: structure and layers -------------------------------------------------------


def test_children_and_named_modules():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(2, 4), nn.ReLU())
            self.head = nn.Linear(4, 1)

        def forward(self, x):
            return self.head(self.body(x))

    net = Net()
    assert [type(m).__name__ for m in net.children()] == ["Sequential", "Linear"]
    assert [name for name, _ in net.named_children()] == ["body", "head"]
    assert [name for name, _ in net.named_modules()] == ["", "body", "body.0", "body.1", "head"]
    assert [name for name, _ in net.named_parameters()] == [
        "body.0.weight",
        "body.0.bias",
        "head.weight",
        "head.bias",
    ]
    assert len(net.body) == 2 and isinstance(net.body[1], nn.ReLU)
    assert net(core.randn(3, 2)).shape == (3, 1)
    assert "Linear(2, 4)" in repr(net)


def test_module_without_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self) -> None:
            self.fc = nn.Linear(1, 1)

    with pytest.raises(core.GradstepError, match="super\\(\\).__init__"):
        Broken()


def test_train_and_eval_toggle_dropout():
    core.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 64), nn.Dropout(0.5))
    x = core.randn(8, 4)
    assert all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    with core.no_grad():
        hidden = model[0](x).numpy()
        np.testing.assert_array_equal(model(x).numpy(), hidden)
    model.train()
    assert all(m.training for m in model.modules())
    out = model(x).numpy()
    dropped = out == 0
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_allclose(out[~dropped], 2.0 * hidden[~dropped], rtol=1e-6)
    assert not np.array_equal(model(x).numpy() == 0, dropped), "each call draws a new mask"


def test_dropout_gradient_uses_the_forward_mask():
    core.manual_seed(0)
    x = core.randn(100, requires_grad=True)
    out = nn.Dropout(0.25)(x)
    out.sum().backward()
    kept = out.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 1 / 0.75, 0.0), rtol=1e-6)


def test_layer_output_shapes():
    core.manual_seed(0)
    images = core.randn(2, 3, 8, 8)
    assert nn.Conv2d(3, 4, 3, padding=1)(images).shape == (2, 4, 8, 8)
    assert nn.Conv2d(3, 5, 3, stride=2)(images).shape == (2, 5, 3, 3)
    assert nn.Conv2d(3, 2, (3, 1))(images).shape == (2, 2, 6, 8)
    assert nn.MaxPool2d(2)(images).shape == (2, 3, 4, 4)
    assert nn.MaxPool2d(3, stride=1)(images).shape == (2, 3, 6, 6)
    assert nn.Flatten()(images).shape == (2, 192)
    seq = core.randn(2, 5, 16)
    assert nn.LayerNorm(16)(seq).shape == (2, 5, 16)
    assert nn.Dropout(0.1)(seq).shape == (2, 5, 16)
    tokens = core.tensor(np.array([[0, 3, 9], [1, 1, 2]]))
    assert nn.Embedding(10, 4)(tokens).shape == (2, 3, 4)
    for layer in (nn.GELU(), nn.Sigmoid(), nn.ReLU(), nn.Tanh()):
        assert layer(seq).shape == (2, 5, 16)


def test_layer_values_match_numpy():
    core.manual_seed(0)
    x = core.randn(3, 6)
    a = x.numpy().astype(np.float64)
    exact = 0.5 * a * (1 + np.vectorize(math.erf)(a / math.sqrt(2)))  # PyTorch's default
    np.testing.assert_allclose(nn.GELU()(x).numpy(), exact, rtol=1e-5, atol=1e-6)
    tanh_form = 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))
    np.testing.assert_allclose(nn.GELU("tanh")(x).numpy(), tanh_form, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-a)), rtol=1e-5)
    np.testing.assert_array_equal(nn.ReLU()(x).numpy(), np.maximum(x.numpy(), 0))
    normed = nn.LayerNorm(6)(x).numpy()
    np.testing.assert_allclose(normed.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(normed.std(axis=1), 1.0, rtol=1e-3)
    emb = nn.Embedding(5, 3)
    rows = emb(core.tensor(np.array([4, 0, 4]))).numpy()
    np.testing.assert_array_equal(rows, emb.weight.numpy()[[4, 0, 4]])
    images = core.tensor(np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4))
    assert nn.MaxPool2d(2)(images).numpy().ravel().tolist() == [5.0, 7.0, 13.0, 15.0]


def test_small_cnn_trains_one_step():
    core.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.LayerNorm(64),
        nn.GELU(),
        nn.Linear(64, 3),
    )
    x = core.randn(4, 1, 8, 8)
    target = core.tensor(np.array([0, 1, 2, 1]))
    opt = optim.Adam(model.parameters(), lr=0.01)
    first = F.cross_entropy(model(x), target)
    first.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.all(np.isfinite(p.grad.numpy())), name
    for _ in range(5):
        opt.step()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), target)
        loss.backward()
    assert loss.item() < first.item()


def test_parameter_is_float_and_requires_grad():
    p = nn.Parameter(np.array([1, 2, 3]))
    assert p.requires_grad and p.dtype == np.float32 and p.is_leaf


# -- autograd controls ------------------------------------------------------------------------


def test_no_grad_records_no_graph_and_restores():
    w = core.tensor([1.0, 2.0], requires_grad=True)
    assert core.is_grad_enabled()
    with core.no_grad():
        assert not core.is_grad_enabled()
        y = w * 2.0
        with core.enable_grad():
            z = w * 3.0
    assert core.is_grad_enabled()
    assert not y.requires_grad and y.node is None and y.is_leaf
    assert z.requires_grad and z.node is not None
    with pytest.raises(core.GradError, match="does not require grad"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="boom"):
        with core.no_grad():
            raise RuntimeError("boom")
    assert core.is_grad_enabled(), "no_grad must restore the mode after an exception"


def test_no_grad_is_per_thread():
    w = core.tensor([1.0, 2.0], requires_grad=True)
    inside, checked = threading.Event(), threading.Event()
    worker_saw = {}

    def worker():
        with core.no_grad():
            inside.set()
            checked.wait(timeout=30)
            worker_saw["enabled"] = core.is_grad_enabled()
            worker_saw["requires_grad"] = (w * 2.0).requires_grad

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert inside.wait(timeout=30), "worker never entered no_grad"
        main_enabled = core.is_grad_enabled()
        main_requires = (w * 2.0).requires_grad
    finally:
        checked.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert main_enabled and main_requires, "a worker's no_grad leaked into the main thread"
    assert worker_saw == {"enabled": False, "requires_grad": False}


def test_a_new_thread_does_not_inherit_no_grad():
    w = core.tensor([1.0], requires_grad=True)
    seen = {}

    def worker():
        seen["requires_grad"] = (w * 2.0).requires_grad

    with core.no_grad():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(timeout=30)
        assert not (w * 2.0).requires_grad
    assert seen == {"requires_grad": True}


def test_detach_cuts_the_graph():
    w = core.tensor([1.0, 2.0], requires_grad=True)
    y = w * 3.0
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.node is None
    np.testing.assert_array_equal(d.numpy(), y.numpy())
    (y * d).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 3.0 * d.numpy())  # d acts as a constant


def test_requires_grad_():
    x = core.tensor([1.0, -2.0])
    assert x.requires_grad_() is x and x.requires_grad
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -4.0])
    x.requires_grad_(False)
    with pytest.raises(core.GradError):
        (x * x).sum().backward()
    with pytest.raises(core.DtypeError, match="int64"):
        core.tensor([1, 2]).requires_grad_()
    with pytest.raises(core.DtypeError, match="int64"):
        core.tensor([1, 2], requires_grad=True)


def test_second_backward_without_retain_graph_is_a_clear_error():
    w = core.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    loss.backward()
    with pytest.raises(core.GradError) as info:
        loss.backward()
    message = str(info.value)
    assert "retain_graph=True" in message and "sum_" in message
    assert f"{HERE}:" in message


def test_retain_graph_lets_grads_accumulate_twice():
    w = core.tensor([0.5, -1.0], requires_grad=True)
    loss = (w * w).tanh().sum()
    loss.backward(retain_graph=True)
    once = w.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * once, rtol=1e-6)
    a = w.numpy().astype(np.float64)
    np.testing.assert_allclose(once, 2 * a * (1 - np.tanh(a * a) ** 2), rtol=1e-5)


def test_grad_accumulates_into_a_leaf_used_twice():
    x = core.tensor([1.0, -2.0, 0.5], requires_grad=True)
    (x * x + x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 3.0)
    (x * 2.0).sum().backward()  # a second graph adds into .grad
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 5.0)


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = core.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * x
    with pytest.raises(core.GradError) as info:
        y.backward()
    message = str(info.value)
    assert "(2, 2)" in message and "gradient" in message and f"{HERE}:" in message
    y.backward(core.tensor([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 0.0], [3.0, 16.0]])
    with pytest.raises(core.ShapeError, match="gradient shape"):
        (x * 2.0).backward(core.ones(3))


# -- on the GPU -----------------------------------------------------------------------------


@needs_gpu
def test_training_step_on_cuda_matches_cpu():
    results = {}
    for device in ("cpu", "cuda"):
        core.manual_seed(0)
        model = MLP().to(device)
        opt = optim.Adam(model.parameters(), lr=0.05)
        points, labels = make_moons(64, seed=1)
        x = core.tensor(points, device=device)
        y = core.tensor(labels.astype(np.float32)[:, None], device=device)
        for _ in range(3):
            loss = F.binary_cross_entropy_with_logits(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert all(p.device == device for p in model.parameters())
        results[device] = model.state_dict()
    for name, value in results["cpu"].items():
        np.testing.assert_allclose(results["cuda"][name], value, rtol=1e-4, atol=1e-5)
