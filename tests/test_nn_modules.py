"""Modules: containers, buffers, dtype moves, train/eval, recurrent layers and
batch norm trained for a few steps and checked against finite differences on
tiny sizes (and against PyTorch, with the same weights, when it is installed)."""

from __future__ import annotations

import numpy as np
import pytest

import core
import core.functional as F
from core import nn, optim


def test_containers_name_their_children():
    core.manual_seed(0)
    blocks = nn.ModuleList([nn.Linear(2, 3), nn.Linear(3, 1)])
    heads = nn.ModuleDict({"a": nn.Linear(1, 1), "b": nn.Identity(7, key=1)})
    model = nn.Sequential(blocks[0], nn.Tanh(), blocks[1])
    owner = nn.Module()
    owner.blocks, owner.heads = blocks, heads
    names = [n for n, _ in owner.named_parameters()]
    assert names == [
        "blocks.0.weight",
        "blocks.0.bias",
        "blocks.1.weight",
        "blocks.1.bias",
        "heads.a.weight",
        "heads.a.bias",
    ]
    assert len(blocks) == 2 and list(heads) == ["a", "b"] and "b" in heads
    x = core.randn(4, 2)
    assert heads["b"](x) is x
    assert model(x).shape == (4, 1) and len(blocks[1:]) == 1
    blocks.append(nn.ReLU())
    assert len(blocks) == 3 and isinstance(blocks[-1], nn.ReLU)


def test_buffers_are_state_saved_and_moved():
    bn = nn.BatchNorm1d(3)
    assert [n for n, _ in bn.named_buffers()] == [
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    state = bn.state_dict()
    assert set(state) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    bn(core.randn(4, 3))
    assert bn.num_batches_tracked.item() == 1 and bn.running_mean.numpy().any()
    fresh = nn.BatchNorm1d(3)
    fresh.load_state_dict(bn.state_dict())
    np.testing.assert_array_equal(fresh.running_var.numpy(), bn.running_var.numpy())
    bn.double()
    assert bn.weight.dtype == np.float64 and bn.running_mean.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64
    assert bn.float().running_var.dtype == np.float32


def test_batch_norm_train_and_eval():
    core.manual_seed(0)
    bn = nn.BatchNorm2d(2, momentum=0.5)
    x = core.randn(4, 2, 3, 3) * 3.0 + 1.0
    y = bn(x).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), 1.0, atol=1e-3)
    mean = x.numpy().mean(axis=(0, 2, 3))
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.5 * mean, rtol=1e-5)
    before = bn.running_mean.numpy().copy()
    bn.eval()
    again = bn(x)
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)  # eval reads, never writes
    var = bn.running_var.numpy().reshape(1, 2, 1, 1)
    expected = (x.numpy() - before.reshape(1, 2, 1, 1)) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(again.numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(core.ShapeError, match="more than 1 value per channel"):
        bn.train()(core.randn(1, 2, 1, 1))


def test_dropout_train_and_eval():
    core.manual_seed(0)
    drop = nn.Dropout(0.5)
    x = core.ones(200)
    y = drop(x).numpy()
    assert set(np.unique(y)) == {0.0, 2.0}
    drop.eval()
    assert drop(x) is x


def test_module_to_dtype_and_cells_in_float64():
    core.manual_seed(0)
    cell = nn.GRUCell(3, 2).double()
    h = cell(core.randn(4, 3, dtype="float64"))
    assert h.dtype == np.float64 and h.shape == (4, 2)
    assert cell(core.randn(3, dtype="float64")).shape == (2,)


def tiny(make):
    """A float64 module made from the global seed."""
    core.manual_seed(1)
    return make().double()


RECURRENT = [
    ("RNN relu 2 layers", lambda: nn.RNN(3, 2, num_layers=2, nonlinearity="relu")),
    ("GRU batch_first", lambda: nn.GRU(3, 2, batch_first=True)),
    pytest.param(
        "GRU 2 layers bidirectional",
        lambda: nn.GRU(3, 2, num_layers=2, bidirectional=True),
        marks=pytest.mark.slow,
    ),
    ("LSTM", lambda: nn.LSTM(3, 2)),
    ("LSTM 2 layers batch_first", lambda: nn.LSTM(3, 2, num_layers=2, batch_first=True)),
]


NAMES = [r.values[0] if hasattr(r, "marks") else r[0] for r in RECURRENT]


@pytest.mark.parametrize("name, make", RECURRENT, ids=NAMES)
def test_recurrent_gradients_against_finite_differences(name, make):
    model = tiny(make)
    x = core.tensor(np.random.default_rng(0).standard_normal((4, 2, 3)), dtype="float64")
    params = model.parameters()

    def fn(*ps):
        out, state = model(x)
        last = state[0] if isinstance(state, tuple) else state
        return (out * out).sum() + last.sum()

    report = core.gradcheck(fn, params)
    assert report.ok, f"{name}\n{report}"


@pytest.mark.parametrize("name, make", RECURRENT, ids=NAMES)
def test_recurrent_layers_match_pytorch(name, make):
    torch = pytest.importorskip("torch")
    model = tiny(make)
    kind = type(model).__name__
    kwargs = {k: getattr(model, k) for k in ("num_layers", "batch_first", "bidirectional")}
    if kind == "RNN":
        kwargs["nonlinearity"] = "relu" if model.mode == "RNN_RELU" else "tanh"
    theirs = getattr(torch.nn, kind)(3, 2, **kwargs).double()
    with torch.no_grad():
        for n, p in model.named_parameters():
            getattr(theirs, n).copy_(torch.tensor(p.numpy()))
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    out, state = model(core.tensor(x, dtype="float64"))
    want_out, want_state = theirs(torch.tensor(x))
    np.testing.assert_allclose(out.numpy(), want_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    if kind == "LSTM":
        state, want_state = state[1], want_state[1]
    np.testing.assert_allclose(state.numpy(), want_state.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_lstm_cell_and_initial_state():
    core.manual_seed(0)
    cell = nn.LSTMCell(3, 2)
    x, h0, c0 = core.randn(4, 3), core.randn(4, 2), core.randn(4, 2)
    h, c = cell(x, (h0, c0))
    gates = x.numpy() @ cell.weight_ih.numpy().T + cell.bias_ih.numpy()
    gates += h0.numpy() @ cell.weight_hh.numpy().T + cell.bias_hh.numpy()
    i, f, g, o = np.split(gates, 4, axis=1)
    sig = lambda v: 1 / (1 + np.exp(-v))
    want_c = sig(f) * c0.numpy() + sig(i) * np.tanh(g)
    np.testing.assert_allclose(c.numpy(), want_c, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.numpy(), sig(o) * np.tanh(want_c), rtol=1e-5, atol=1e-6)
    lstm = nn.LSTM(3, 2, num_layers=2)
    out, (hn, cn) = lstm(core.randn(5, 4, 3), (core.zeros(2, 4, 2), core.zeros(2, 4, 2)))
    assert out.shape == (5, 4, 2) and hn.shape == cn.shape == (2, 4, 2)
    with pytest.raises(core.ShapeError, match="expected input"):
        lstm(core.randn(5, 4, 2))


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1)),
        lambda: nn.Sequential(nn.GroupNorm(2, 4), nn.Flatten(), nn.Linear(4 * 3, 1)),
        lambda: nn.Sequential(nn.RMSNorm(3), nn.Linear(3, 1)),
    ],
    ids=["batch norm", "group norm", "rms norm"],
)
def test_normalization_gradients_against_finite_differences(make):
    model = tiny(make)
    shape = (5, 4, 3) if isinstance(model[0], nn.GroupNorm) else (5, 3)
    x = core.tensor(np.random.default_rng(2).standard_normal(shape), dtype="float64")
    report = core.gradcheck(lambda *ps: model(x).tanh().sum(), model.parameters())
    assert report.ok, str(report)


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.GRU(3, 8, batch_first=True),
        lambda: nn.LSTM(3, 8, batch_first=True),
    ],
    ids=["GRU", "LSTM"],
)
def test_recurrent_models_learn(make):
    core.manual_seed(0)
    rnn, head = make(), nn.Linear(8, 1)
    params = rnn.parameters() + head.parameters()
    opt = optim.Adam(params, lr=0.05)
    x = core.randn(16, 6, 3)
    y = x[:, :, 0].sum(1, keepdim=True)  # the sum of the first feature over time
    losses = []
    for _ in range(30):
        opt.zero_grad()
        out, _ = rnn(x)
        loss = F.mse_loss(head(out[:, -1]), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_batch_norm_model_learns_and_evaluates():
    core.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 1))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = core.randn(64, 2)
    y = (x[:, :1] * x[:, 1:]).tanh()
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    assert F.mse_loss(model(x), y).item() < losses[0]


def test_init_functions_fill_in_place_with_pytorch_bounds():
    core.manual_seed(0)
    w = nn.Linear(400, 300).weight
    before = w.id
    nn.init.xavier_uniform_(w)
    bound = (6 / (400 + 300)) ** 0.5
    values = w.numpy()
    assert w.id == before and abs(values).max() <= bound and abs(values).max() > 0.9 * bound
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.numpy().std() - (2 / 400) ** 0.5) < 0.05 * (2 / 400) ** 0.5
    nn.init.orthogonal_(w)
    np.testing.assert_allclose(w.numpy() @ w.numpy().T, np.eye(300), atol=1e-5)
    nn.init.constant_(w, 0.5)
    assert set(np.unique(w.numpy())) == {0.5}
    nn.init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert abs(w.numpy()).max() <= 0.5
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx((2 / 1.04) ** 0.5)
    assert w.requires_grad and w.is_leaf


def test_no_grad_as_a_decorator_and_inference_mode():
    w = core.tensor([1.0], requires_grad=True)

    @core.no_grad()
    def doubled(x):
        return x * 2.0

    assert not doubled(w).requires_grad and (w * 2.0).requires_grad
    with core.inference_mode():
        assert not (w * 2.0).requires_grad
    with core.inference_mode(False):
        assert (w * 2.0).requires_grad


def test_embedding_padding_row_gets_no_gradient():
    core.manual_seed(0)
    emb = nn.Embedding(5, 3, padding_idx=-1)
    assert emb.padding_idx == 4 and not emb.weight.numpy()[4].any()
    emb(core.tensor([[4, 1], [1, 4]])).sum().backward()
    grad = emb.weight.grad.numpy()
    assert not grad[4].any() and (grad[1] == 2.0).all()


def test_layer_norm_without_affine_and_dropout2d_channels():
    norm = nn.LayerNorm(4, elementwise_affine=False)
    assert norm.parameters() == []
    y = norm(core.randn(3, 4)).numpy()
    np.testing.assert_allclose(y.mean(1), 0.0, atol=1e-6)
    core.manual_seed(0)
    out = nn.Dropout2d(0.5)(core.ones(4, 6, 3, 3)).numpy()
    per_channel = out.reshape(4, 6, -1)
    assert all(len(set(c)) == 1 for c in per_channel.reshape(24, 9).tolist())
    assert set(np.unique(out)) == {0.0, 2.0}


def test_transformer_encoder_layers_are_independent_copies():
    core.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    enc = nn.TransformerEncoder(layer, 3)
    ids = [p.id for p in enc.parameters()]
    assert len(ids) == len(set(ids)) == 3 * len(layer.parameters())
    first, second = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    opt = optim.SGD(enc.parameters(), lr=0.1)
    enc(core.randn(2, 5, 8)).square().mean().backward()
    opt.step()
    assert not np.array_equal(first.numpy(), layer.linear1.weight.numpy())
    assert not np.array_equal(first.numpy(), second.numpy())


def test_gumbel_softmax_soft_and_hard():
    core.manual_seed(0)
    logits = core.tensor(np.log([[0.7, 0.2, 0.1]] * 2000), dtype="float64", requires_grad=True)
    soft = F.gumbel_softmax(logits, tau=0.5)
    np.testing.assert_allclose(soft.numpy().sum(1), 1.0)
    hard = F.gumbel_softmax(logits, hard=True)
    values = hard.numpy()
    assert set(np.unique(values)) == {0.0, 1.0} and (values.sum(1) == 1.0).all()
    frequencies = values.mean(0)  # Gumbel-max samples the softmax's categories
    np.testing.assert_allclose(frequencies, [0.7, 0.2, 0.1], atol=0.04)
    (hard * core.tensor([1.0, 2.0, 3.0], dtype="float64")).sum().backward()
    assert logits.grad is not None and np.abs(logits.grad.numpy()).sum() > 0
