"""PyTorch's names mean PyTorch's semantics: each case runs the same code on
``core`` and on ``torch`` (installed or not: the module skips without it) and
compares values and gradients in float64, defaults included.

Install a CPU build to run it: ``pip install torch`` (never a dependency).
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import core
import core.functional as CF
from core import nn as cnn

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def normal(*shape):
    return ("normal", shape)


def positive(*shape):
    return ("positive", shape)


def weights(*shape):
    """Positive values that do not require grad (PyTorch refuses grad for weights)."""
    return ("weights", shape)


def probs(*shape):
    return ("probs", shape)


def ints(high, *shape):
    return ("ints", high, shape)


def draw(spec, rng):
    kind = spec[0]
    if kind == "normal":
        return rng.standard_normal(spec[1])
    if kind in ("positive", "weights"):
        return rng.uniform(0.1, 2.0, spec[1])
    if kind == "probs":
        return rng.uniform(0.05, 0.95, spec[1])
    return rng.integers(0, spec[1], spec[2])


class Marked(np.ndarray):
    """An input array that knows whether it is a weight (no gradient)."""

    def __new__(cls, values, weights: bool):
        out = np.asarray(values).view(cls)
        out.weights = weights
        return out


# (name, fn(lib, F, *inputs), inputs): the same fn runs on (core, core.functional)
# and on (torch, torch.nn.functional)
CASES = [
    ("logsumexp", lambda t, F, x: t.logsumexp(x, 1), [normal(3, 4)]),
    (
        "logsumexp keepdim",
        lambda t, F, x: t.logsumexp(x * 300, (0, 1), keepdim=True),
        [normal(2, 3)],
    ),
    ("std", lambda t, F, x: x.std(1), [normal(3, 4)]),
    ("std unbiased False", lambda t, F, x: x.std(0, False, True), [normal(3, 4)]),
    ("var correction", lambda t, F, x: x.var(dim=1, correction=0), [normal(3, 4)]),
    ("prod", lambda t, F, x: x.prod(1), [normal(3, 4)]),
    (
        "prod with zero",
        lambda t, F, x: (x * t.tensor([1.0, 0.0, 1.0], dtype=t.float64)).prod(),
        [normal(3)],
    ),
    ("cumsum", lambda t, F, x: x.cumsum(0), [normal(3, 4)]),
    ("cumprod", lambda t, F, x: x.cumprod(1), [normal(3, 4)]),
    (
        "cumprod zero",
        lambda t, F, x: (x * t.tensor([1.0, 0.0, 1.0, 2.0], dtype=t.float64)).cumprod(0),
        [normal(4)],
    ),
    ("amax", lambda t, F, x: x.amax(1), [normal(3, 4)]),
    ("max dim", lambda t, F, x: x.max(1).values * 1.0 + x.max(1)[1], [normal(3, 4)]),
    ("min dim keepdim", lambda t, F, x: x.min(1, keepdim=True)[0], [normal(3, 4)]),
    ("sort", lambda t, F, x: x.sort(1, descending=True).values, [normal(3, 4)]),
    ("topk", lambda t, F, x: x.topk(2, 0).values, [normal(3, 4)]),
    ("topk smallest", lambda t, F, x: x.topk(2, largest=False)[0], [normal(3, 4)]),
    ("argsort", lambda t, F, x: x.argsort(1, descending=True) * 1.0, [normal(3, 4)]),
    ("argmax", lambda t, F, x: x.argmax() * 1.0 + x.argmin(1, keepdim=True), [normal(3, 4)]),
    ("gather", lambda t, F, x, i: x.gather(1, i), [normal(3, 4), ints(4, 3, 2)]),
    (
        "scatter_add",
        lambda t, F, x, i, s: x.scatter_add(0, i, s),
        [normal(3, 4), ints(3, 2, 4), normal(2, 4)],
    ),
    ("index_select", lambda t, F, x, i: x.index_select(0, i), [normal(3, 4), ints(3, 5)]),
    ("flip roll", lambda t, F, x: x.flip(0).roll(1, 1) + x.roll(2), [normal(3, 4)]),
    ("repeat tile", lambda t, F, x: x.repeat(2, 3).sum() + x.tile((2,)).sum(), [normal(2, 3)]),
    (
        "split chunk",
        lambda t, F, x: x.split(2, 1)[1].sum() + x.chunk(2, 0)[1].sum(),
        [normal(3, 5)],
    ),
    (
        "narrow unbind",
        lambda t, F, x: x.narrow(1, 1, 2) * x.unbind(1)[0].unsqueeze(1),
        [normal(3, 4)],
    ),
    ("tril triu", lambda t, F, x: x.tril(-1) + x.triu(1) * 2, [normal(3, 4)]),
    ("diagonal", lambda t, F, x: x.diagonal(1, 0, 2), [normal(3, 2, 4)]),
    ("masked_fill", lambda t, F, x: x.masked_fill(x > 0, -1.5), [normal(3, 4)]),
    ("nan_to_num", lambda t, F, x: (x.log()).nan_to_num(), [normal(3, 4)]),
    (
        "fmod remainder",
        lambda t, F, x, y: x.fmod(y) + x.remainder(y) + x % 0.7,
        [normal(3, 4), normal(4)],
    ),
    (
        "math",
        lambda t, F, x: x.log1p() + x.expm1() + x.log2() + x.log10() + x.exp2() + x.sin() + x.cos(),
        [positive(3, 4)],
    ),
    (
        "rsqrt reciprocal square",
        lambda t, F, x: x.rsqrt() + x.reciprocal() + x.square(),
        [positive(3)],
    ),
    (
        "rounding",
        lambda t, F, x: (x * 3).floor() + (x * 3).ceil() + (x * 3).round() + (x * 3).trunc() + x,
        [normal(3, 4)],
    ),
    (
        "isnan isinf isfinite",
        lambda t, F, x: x.log().isnan() * 1.0 + (x / 0).isinf() + x.isfinite(),
        [normal(4)],
    ),
    ("any all ne", lambda t, F, x: (x > 0).any(1) * 1.0 + (x != 0).all() * 1.0, [normal(3, 4)]),
    (
        "silu elu selu celu",
        lambda t, F, x: F.silu(x) + F.elu(x, 0.5) + F.selu(x) + F.celu(x, 2.0),
        [normal(3, 4)],
    ),
    ("softplus mish", lambda t, F, x: F.softplus(x * 10, 2.0, 5.0) + F.mish(x), [normal(3, 4)]),
    (
        "hardtanh relu6 logsigmoid",
        lambda t, F, x: F.hardtanh(x * 2) + F.relu6(x * 5) + F.logsigmoid(x * 30),
        [normal(3, 4)],
    ),
    (
        "glu softsign hardswish",
        lambda t, F, x: F.glu(x).sum(1) + F.softsign(x).sum(1) + F.hardswish(x * 4).sum(1),
        [normal(3, 4)],
    ),
    ("gelu", lambda t, F, x: F.gelu(x) + F.gelu(x, approximate="tanh"), [normal(3, 4)]),
    (
        "mm bmm mv dot outer",
        lambda t, F, a, b: (
            t.mm(a[0], b[0]).sum()
            + t.bmm(a, b).sum()
            + t.mv(a[0], b[0, :, 0]).sum()
            + t.dot(a[0, 0], b[0, :, 1])
            + t.outer(a[0, 0], b[1, 0]).sum()
        ),
        [normal(2, 3, 4), normal(2, 4, 3)],
    ),
    (
        "einsum",
        lambda t, F, a, b: (
            t.einsum("bij,bjk->bik", a, b).sum()
            + t.einsum("bii->b", a[:, :, :3]).sum()
            + t.einsum("...ij->...ji", a).sum(1).sum()
        ),
        [normal(2, 3, 4), normal(2, 4, 3)],
    ),
    (
        "mse l1 smooth huber",
        lambda t, F, a, b: (
            F.mse_loss(a, b, reduction="sum")
            + F.l1_loss(a, b)
            + F.smooth_l1_loss(a, b, beta=0.5)
            + F.huber_loss(a, b, delta=0.7)
            + F.mse_loss(a, b, reduction="none").sum()
        ),
        [normal(3, 4), normal(3, 4)],
    ),
    (
        "bce",
        lambda t, F, p, y: (
            F.binary_cross_entropy(p, y) + F.binary_cross_entropy(p, y, reduction="sum")
        ),
        [probs(3, 4), probs(3, 4)],
    ),
    (
        "bce logits weights",
        lambda t, F, x, y, w: (
            F.binary_cross_entropy_with_logits(x, y, w, pos_weight=w[0] * 2)
            + F.binary_cross_entropy_with_logits(x, y, reduction="sum")
        ),
        [normal(3, 4), probs(3, 4), weights(3, 4)],
    ),
    (
        "kl_div",
        lambda t, F, x, y: (
            F.kl_div(x.log_softmax(1), y, reduction="batchmean")
            + F.kl_div(x, y.log(), reduction="sum", log_target=True)
        ),
        [normal(3, 4), probs(3, 4)],
    ),
    (
        "cosine normalize",
        lambda t, F, a, b: (
            F.cosine_similarity(a, b).sum()
            + F.normalize(a, dim=0).sum()
            + F.normalize(a, p=1.0).sum()
        ),
        [normal(3, 4), normal(3, 4)],
    ),
    (
        "nll_loss",
        lambda t, F, x, y: F.nll_loss(x.log_softmax(1), y) + F.nll_loss(x, y, reduction="sum"),
        [normal(5, 4), ints(4, 5)],
    ),
    (
        "cross_entropy N-d",
        lambda t, F, x, y: F.cross_entropy(x, y),
        [normal(2, 4, 3, 2), ints(4, 2, 3, 2)],
    ),
    (
        "cross_entropy weight",
        lambda t, F, x, y, w: F.cross_entropy(x, y, w),
        [normal(5, 4), ints(4, 5), weights(4)],
    ),
    (
        "cross_entropy smoothing",
        lambda t, F, x, y, w: (
            F.cross_entropy(x, y, w, label_smoothing=0.2)
            + F.cross_entropy(x, y, label_smoothing=0.1, reduction="sum")
        ),
        [normal(5, 4), ints(4, 5), weights(4)],
    ),
    (
        "cross_entropy probabilities",
        lambda t, F, x, p: F.cross_entropy(x, p.softmax(1), label_smoothing=0.1),
        [normal(5, 4), normal(5, 4)],
    ),
    (
        "cross_entropy unbatched",
        lambda t, F, x, y: F.cross_entropy(x[0], y[0]),
        [normal(5, 4), ints(4, 5)],
    ),
    (
        "batch_norm",
        lambda t, F, x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        [normal(4, 3, 2), normal(3), normal(3)],
    ),
    (
        "group_norm",
        lambda t, F, x, w, b: F.group_norm(x, 2, w, b),
        [normal(2, 4, 3), normal(4), normal(4)],
    ),
    ("instance_norm", lambda t, F, x: F.instance_norm(x), [normal(2, 3, 5)]),
    ("rms_norm", lambda t, F, x, w: F.rms_norm(x, (4,), w), [normal(3, 4), normal(4)]),
    (
        "layer_norm",
        lambda t, F, x, w, b: F.layer_norm(x, (4,), w, b),
        [normal(3, 4), normal(4), normal(4)],
    ),
    (
        "conv2d dilation groups",
        lambda t, F, x, w, b: F.conv2d(x, w, b, stride=2, padding=2, dilation=2, groups=2),
        [normal(2, 4, 7, 6), normal(6, 2, 3, 2), normal(6)],
    ),
    (
        "conv2d same",
        lambda t, F, x, w: F.conv2d(x, w, padding="same", dilation=(1, 2)),
        [normal(1, 2, 5, 6), normal(3, 2, 3, 3)],
    ),
    (
        "conv1d",
        lambda t, F, x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2),
        [normal(2, 3, 9), normal(4, 3, 3), normal(4)],
    ),
    (
        "conv_transpose2d",
        lambda t, F, x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
        [normal(2, 3, 4, 5), normal(3, 2, 3, 3), normal(2)],
    ),
    (
        "conv_transpose2d groups dilation",
        lambda t, F, x, w: F.conv_transpose2d(x, w, stride=(2, 1), groups=2, dilation=2),
        [normal(1, 4, 3, 3), normal(4, 3, 2, 3)],
    ),
    (
        "max_pool2d padding ceil",
        lambda t, F, x: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True),
        [normal(2, 2, 6, 7)],
    ),
    ("max_pool2d ceil", lambda t, F, x: F.max_pool2d(x, 2, ceil_mode=True), [normal(1, 2, 5, 5)]),
    ("avg_pool2d padding", lambda t, F, x: F.avg_pool2d(x, 3, 2, padding=1), [normal(2, 2, 6, 7)]),
    (
        "avg_pool2d ceil exclude pad",
        lambda t, F, x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False),
        [normal(1, 2, 6, 7)],
    ),
    (
        "avg_pool2d ceil include pad",
        lambda t, F, x: F.avg_pool2d(x, (2, 3), (2, 2), padding=(1, 1), ceil_mode=True),
        [normal(1, 1, 6, 7)],
    ),
    (
        "avg_pool2d divisor",
        lambda t, F, x: F.avg_pool2d(x, 2, divisor_override=3),
        [normal(1, 1, 4, 4)],
    ),
    ("adaptive_avg_pool2d", lambda t, F, x: F.adaptive_avg_pool2d(x, (3, 2)), [normal(2, 2, 7, 5)]),
    ("adaptive_avg_pool1d", lambda t, F, x: F.adaptive_avg_pool1d(x, 4), [normal(2, 2, 7)]),
    ("interpolate nearest", lambda t, F, x: F.interpolate(x, size=(5, 3)), [normal(1, 2, 3, 4)]),
    (
        "interpolate nearest scale",
        lambda t, F, x: F.interpolate(x, scale_factor=2.5),
        [normal(1, 2, 3, 4)],
    ),
    (
        "interpolate bilinear",
        lambda t, F, x: F.interpolate(x, size=(5, 7), mode="bilinear"),
        [normal(1, 2, 3, 4)],
    ),
    (
        "interpolate bilinear align",
        lambda t, F, x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True),
        [normal(1, 2, 3, 4)],
    ),
    (
        "interpolate linear",
        lambda t, F, x: F.interpolate(x, size=6, mode="linear"),
        [normal(1, 2, 4)],
    ),
    (
        "pad reflect replicate circular",
        lambda t, F, x: (
            F.pad(x, (2, 1, 1, 2), mode="reflect").sum()
            + F.pad(x, (3, 0, 1, 1), mode="replicate").sum() * 2
            + F.pad(x, (1, 2, 0, 1), mode="circular").sum() * 3
        ),
        [normal(1, 2, 3, 4)],
    ),
    ("pad negative", lambda t, F, x: F.pad(x, (-1, 2, 1, -2), value=0.5), [normal(1, 2, 4, 5)]),
]


CASES += [
    ("softmin tanhshrink", lambda t, F, x: F.softmin(x, 0) + F.tanhshrink(x), [normal(3, 4)]),
    ("prelu", lambda t, F, x, w: F.prelu(x, w), [normal(2, 3, 4), normal(3)]),
    (
        "pairwise_distance",
        lambda t, F, a, b: F.pairwise_distance(a, b) + F.pairwise_distance(a, b, p=1.0),
        [normal(3, 4), normal(3, 4)],
    ),
    (
        "pool1d",
        lambda t, F, x: F.max_pool1d(x, 3, 2, 1).sum() + F.avg_pool1d(x, 2, ceil_mode=True).sum(),
        [normal(2, 3, 7)],
    ),
    (
        "logical",
        lambda t, F, x: ((x > 0) & (x < 1)) * 1.0 + ((x > 1) | ~(x > -1)) * 2.0 + x,
        [normal(3, 4)],
    ),
    (
        "linspace eye",
        lambda t, F, x: x * t.linspace(0, 1, 4, dtype=t.float64) + t.eye(3, 4, dtype=t.float64),
        [normal(3, 4)],
    ),
    ("new_full", lambda t, F, x: x + x.new_ones(3, 4) + x.new_full((4,), 2.0), [normal(3, 4)]),
]


def to(lib, array, grad):
    grad = grad and not getattr(array, "weights", False)
    if array.dtype.kind == "f":
        if lib is torch:
            return torch.tensor(array, dtype=torch.float64, requires_grad=grad)
        return core.tensor(array, dtype="float64", requires_grad=grad)
    return lib.tensor(array)


def run(lib, F, fn, arrays):
    inputs = [to(lib, a, True) for a in arrays]
    out = fn(lib, F, *inputs)
    value = out.detach().numpy() if lib is torch else out.numpy()
    wanted = [x for x in inputs if x.requires_grad]
    if not out.requires_grad:
        return value, []
    if lib is torch:
        grads = torch.autograd.grad(out.sum(), wanted, allow_unused=True)
        return value, [None if g is None else g.numpy() for g in grads]
    grads = core.grad(out.sum(), wanted, allow_unused=True)
    return value, [None if g is None else g.numpy() for g in grads]


@pytest.mark.parametrize("name, fn, specs", CASES, ids=[c[0] for c in CASES])
def test_same_values_and_gradients_as_pytorch(name, fn, specs):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    arrays = [Marked(draw(s, rng), s[0] == "weights") for s in specs]
    want, want_grads = run(torch, TF, fn, arrays)
    got, got_grads = run(core, CF, fn, arrays)
    assert got.shape == want.shape, name
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)
    for i, (g, w) in enumerate(zip(got_grads, want_grads, strict=True)):
        if w is None:
            assert g is None or not np.any(g), f"{name}: input {i}"
            continue
        g = np.zeros_like(w) if g is None else g
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-10, err_msg=f"{name}: grad {i}")


def test_modules_match_pytorch_defaults():
    """The loss and normalization modules, built with defaults, compute the same."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5))
    pairs = [
        (cnn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)),
        (cnn.InstanceNorm1d(3), torch.nn.InstanceNorm1d(3)),
        (cnn.GroupNorm(1, 3), torch.nn.GroupNorm(1, 3)),
        (cnn.RMSNorm(5), torch.nn.RMSNorm(5)),
    ]
    for ours, theirs in pairs:
        got = ours.double()(core.tensor(x, dtype="float64")).numpy()
        want = theirs.double()(torch.tensor(x)).detach().numpy()
        name = type(ours).__name__
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("batch_first", [False, True])
def test_multihead_attention_matches_pytorch(batch_first):
    core.manual_seed(0)
    ours = cnn.MultiheadAttention(6, 2, batch_first=batch_first).double()
    theirs = torch.nn.MultiheadAttention(6, 2, batch_first=batch_first).double()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            theirs.get_parameter(name).copy_(torch.tensor(p.numpy()))
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((4, 3, 6)), rng.standard_normal((5, 3, 6))
    if batch_first:
        q, k = q.transpose(1, 0, 2), k.transpose(1, 0, 2)
    pad = np.zeros((3, 5), bool)
    pad[1, 3:] = True
    causal = np.triu(np.ones((4, 5), bool), 1)
    for kwargs in [{}, {"key_padding_mask": pad}, {"attn_mask": causal}]:
        got, got_w = ours(
            *(core.tensor(a, dtype="float64") for a in (q, k, k)),
            **{n: core.tensor(m) for n, m in kwargs.items()},
        )
        want, want_w = theirs(
            *(torch.tensor(a) for a in (q, k, k)), **{n: torch.tensor(m) for n, m in kwargs.items()}
        )
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got_w.numpy(), want_w.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_scaled_dot_product_attention_matches_pytorch():
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    mask = rng.random((4, 4)) > 0.3
    np.fill_diagonal(mask, True)
    for kwargs in [{"is_causal": True}, {"attn_mask": mask}, {"scale": 0.3}]:
        ours = CF.scaled_dot_product_attention(
            *(core.tensor(a, dtype="float64") for a in (q, k, v)),
            **{n: core.tensor(m) if isinstance(m, np.ndarray) else m for n, m in kwargs.items()},
        )
        theirs = TF.scaled_dot_product_attention(
            *(torch.tensor(a) for a in (q, k, v)),
            **{n: torch.tensor(m) if isinstance(m, np.ndarray) else m for n, m in kwargs.items()},
        )
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-9, atol=1e-12)


MORE = [
    ("tan sinh cosh", lambda t, F, x: x.tan() + x.sinh() + x.cosh(), [normal(3, 4)]),
    (
        "var_mean std_mean",
        lambda t, F, x: t.var_mean(x, 1)[0] + t.std_mean(x, 1)[1],
        [normal(3, 4)],
    ),
    (
        "repeat_interleave",
        lambda t, F, x: x.repeat_interleave(2, 1).sum(0)[:4] + x.repeat_interleave(3)[:4],
        [normal(3, 4)],
    ),
    (
        "diff diag",
        lambda t, F, x: x.diff(dim=0).sum() + t.diag(x[0], 1).sum(1).sum() + x.diag().sum(),
        [normal(4, 4)],
    ),
    (
        "meshgrid",
        lambda t, F, a, b: (
            sum(g.sum() for g in t.meshgrid(a, b, indexing="xy"))
            + t.meshgrid(a, b, indexing="ij")[0][1]
        ),
        [normal(3), normal(2)],
    ),
    ("pixel_shuffle", lambda t, F, x: F.pixel_shuffle(x, 2), [normal(2, 8, 3, 2)]),
]


@pytest.mark.parametrize("name, fn, specs", MORE, ids=[c[0] for c in MORE])
def test_more_values_and_gradients_as_pytorch(name, fn, specs):
    test_same_values_and_gradients_as_pytorch(name, fn, specs)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_encoder_matches_pytorch(norm_first, batch_first):
    core.manual_seed(0)
    kwargs = dict(dropout=0.0, batch_first=batch_first, norm_first=norm_first)
    ours = cnn.TransformerEncoder(cnn.TransformerEncoderLayer(6, 2, 10, **kwargs), 2).double()
    theirs = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(6, 2, 10, **kwargs), 2, enable_nested_tensor=False
    ).double()
    with torch.no_grad():
        for name, p in ours.named_parameters():
            theirs.get_parameter(name).copy_(torch.tensor(p.numpy()))
    x = np.random.default_rng(0).standard_normal((4, 3, 6))
    mask = (
        np.triu(np.ones((4, 4), bool), 1) if not batch_first else np.triu(np.ones((3, 3), bool), 1)
    )
    got = ours(core.tensor(x, dtype="float64"), mask=core.tensor(mask)).numpy()
    theirs.eval()  # dropout 0 anyway; eval keeps PyTorch on its reference path
    want = theirs(torch.tensor(x), mask=torch.tensor(mask)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_batch_norm_3d_matches_pytorch():
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2, 3))
    got = cnn.BatchNorm3d(3).double()(core.tensor(x, dtype="float64")).numpy()
    want = torch.nn.BatchNorm3d(3).double()(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


EXTRA = [
    (
        "margin ranking triplet cosine embedding",
        lambda t, F, a, b, c: (
            F.margin_ranking_loss(a[:, 0], b[:, 0], t.sign(c[:, 0]), 0.2)
            + F.triplet_margin_loss(a, b, c, swap=True)
            + F.cosine_embedding_loss(a, b, t.sign(c[:, 1]), 0.1)
        ),
        [normal(5, 4), normal(5, 4), normal(5, 4)],
    ),
    (
        "cdist",
        lambda t, F, a, b: t.cdist(a, b) + t.cdist(a, b, p=1.0),
        [normal(2, 3, 4), normal(2, 5, 4)],
    ),
    (
        "cross kron",
        lambda t, F, a, b: (
            t.cross(a, b, dim=1).sum() + t.kron(a, b).sum() + t.kron(a[0], b[1]).sum()
        ),
        [normal(2, 3), normal(2, 3)],
    ),
    (
        "median",
        lambda t, F, x: x.median() + x.median(1).values.sum() + x.median(0, keepdim=True)[0].sum(),
        [normal(4, 5)],
    ),
    (
        "bilinear",
        lambda t, F, a, b, w, c: F.bilinear(a, b, w, c),
        [normal(3, 4), normal(3, 2), normal(5, 4, 2), normal(5)],
    ),
    (
        "conv_transpose1d",
        lambda t, F, x, w, b: F.conv_transpose1d(x, w, b, stride=2, padding=1, output_padding=1),
        [normal(2, 3, 5), normal(3, 2, 3), normal(2)],
    ),
    (
        "adaptive_max_pool2d",
        lambda t, F, x: F.adaptive_max_pool2d(x, (2, 3)).sum() + F.adaptive_max_pool2d(x, 1).sum(),
        [normal(2, 2, 5, 7)],
    ),
]


@pytest.mark.parametrize("name, fn, specs", EXTRA, ids=[c[0] for c in EXTRA])
def test_extra_values_and_gradients_as_pytorch(name, fn, specs):
    test_same_values_and_gradients_as_pytorch(name, fn, specs)


def test_parameters_to_vector_round_trip():
    core.manual_seed(0)
    model = cnn.Linear(3, 2)
    vec = cnn.utils.parameters_to_vector(model.parameters())
    assert vec.shape == (8,)
    cnn.utils.vector_to_parameters(vec * 2.0, model.parameters())
    np.testing.assert_allclose(
        cnn.utils.parameters_to_vector(model.parameters()).numpy(), vec.numpy() * 2.0
    )


def test_nonzero_index_add_scatter_in_place_as_pytorch():
    x = np.array([[0.0, 1.5, -2.0], [3.0, 0.0, 0.0]])
    for lib in (core, torch):
        t = lib.tensor(x)
        got = (
            t.nonzero(),
            t.nonzero(as_tuple=True),
            lib.tensor(3.0).nonzero(),
            lib.tensor(0.0).nonzero(),
            t.clone().index_add_(
                1, lib.tensor([0, 2, 0]), lib.ones(2, 3, dtype=t.dtype), alpha=2.0
            ),
            t.clone().scatter_(0, lib.tensor([[1, 0, 1]]), lib.full((1, 3), 9.0, dtype=t.dtype)),
            t.ge(0.0) & t.lt(2.0),
        )
        if lib is core:
            ours = got
    for a, b in zip(ours, got, strict=True):
        if isinstance(a, tuple):
            for u, v in zip(a, b, strict=True):
                np.testing.assert_array_equal(u.numpy(), v.numpy())
        else:
            assert a.shape == tuple(b.shape)
            np.testing.assert_array_equal(a.numpy(), b.numpy())
