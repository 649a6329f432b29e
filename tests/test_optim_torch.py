"""Optimizers, schedules and gradient clipping: PyTorch's numbers (when torch is
installed), state made up front (steps 1, 2 and 30 run the same ops), and a
compiled step that follows its schedule."""

from __future__ import annotations

import numpy as np
import pytest
from test_contract import dispatched, op_sequence

import core
import core.functional as F
from core import nn, optim

OPTIMIZERS = [
    ("Adamax", lambda o, ps: o.Adamax(ps, lr=0.05, weight_decay=0.01)),
    ("Adadelta", lambda o, ps: o.Adadelta(ps, lr=0.5, weight_decay=0.01)),
    ("NAdam", lambda o, ps: o.NAdam(ps, lr=0.02)),
    ("RAdam", lambda o, ps: o.RAdam(ps, lr=0.02, weight_decay=0.01)),
    ("Rprop", lambda o, ps: o.Rprop(ps, lr=0.02, step_sizes=(1e-4, 0.05))),
    ("SGD momentum nesterov", lambda o, ps: o.SGD(ps, lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD weight decay", lambda o, ps: o.SGD(ps, lr=0.1, weight_decay=0.01)),
    ("Adam", lambda o, ps: o.Adam(ps, lr=0.01)),
    ("AdamW", lambda o, ps: o.AdamW(ps, lr=0.01)),
    ("AdamW decay 0.1", lambda o, ps: o.AdamW(ps, lr=0.02, weight_decay=0.1, betas=(0.8, 0.9))),
    ("RMSprop", lambda o, ps: o.RMSprop(ps, lr=0.01)),
    (
        "RMSprop centered momentum",
        lambda o, ps: o.RMSprop(ps, lr=0.01, momentum=0.5, centered=True, weight_decay=0.1),
    ),
    ("Adagrad", lambda o, ps: o.Adagrad(ps, lr=0.1)),
    (
        "Adagrad decay",
        lambda o, ps: o.Adagrad(
            ps, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.5, weight_decay=0.01
        ),
    ),
]
SCHEDULES = [
    ("none", None),
    ("ExponentialLR", lambda s, opt: s.ExponentialLR(opt, gamma=0.8)),
    ("MultiStepLR", lambda s, opt: s.MultiStepLR(opt, milestones=[2, 5, 9], gamma=0.5)),
    ("ConstantLR", lambda s, opt: s.ConstantLR(opt, factor=0.5, total_iters=4)),
    ("LinearLR", lambda s, opt: s.LinearLR(opt, start_factor=0.2, total_iters=7)),
    ("WarmRestarts", lambda s, opt: s.CosineAnnealingWarmRestarts(opt, 3, eta_min=0.001)),
    ("LambdaLR", lambda s, opt: s.LambdaLR(opt, lambda e: 0.9**e / (e + 1.0))),
    ("CyclicLR", lambda s, opt: s.CyclicLR(opt, 0.01, 0.1, 3, 2, cycle_momentum=False)),
    (
        "CyclicLR exp_range",
        lambda s, opt: s.CyclicLR(
            opt, 0.01, 0.1, 2, mode="exp_range", gamma=0.9, cycle_momentum=False
        ),
    ),
    (
        "CyclicLR triangular2 momentum",
        lambda s, opt: s.CyclicLR(opt, 0.01, 0.1, 2, mode="triangular2"),
    ),
    ("WarmRestarts T_mult 2", lambda s, opt: s.CosineAnnealingWarmRestarts(opt, 2, T_mult=2)),
    ("StepLR", lambda s, opt: s.StepLR(opt, step_size=3, gamma=0.5)),
    ("CosineAnnealingLR", lambda s, opt: s.CosineAnnealingLR(opt, T_max=7, eta_min=0.001)),
    ("OneCycleLR", lambda s, opt: s.OneCycleLR(opt, max_lr=0.05, total_steps=12)),
    (
        "OneCycleLR linear 3 phase",
        lambda s, opt: s.OneCycleLR(
            opt, max_lr=0.05, total_steps=12, anneal_strategy="linear", three_phase=True
        ),
    ),
]


def data():
    rng = np.random.default_rng(3)
    return (
        rng.standard_normal((4, 3)),
        rng.standard_normal(3),
        rng.standard_normal((8, 3)),
        rng.standard_normal((8, 4)),
    )


def train_core(make_opt, make_sched, steps, clip=None):
    w0, b0, x, y = data()
    w = core.tensor(w0, dtype="float64", requires_grad=True)
    b = core.tensor(b0, dtype="float64", requires_grad=True)
    opt = make_opt(optim, [w, b])
    sched = make_sched(optim.lr_scheduler, opt) if make_sched else None
    xs, ys = core.tensor(x, dtype="float64"), core.tensor(y, dtype="float64")
    rates = []
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(xs @ w.T + b[0], ys).backward()
        if clip:
            nn.utils.clip_grad_norm_([w, b], clip)
        opt.step()
        if sched:
            sched.step()
            rates.append(sched.get_last_lr()[0])
    return w.numpy(), b.numpy(), rates


def train_torch(torch, make_opt, make_sched, steps, clip=None):
    w0, b0, x, y = data()
    w = torch.tensor(w0, requires_grad=True)
    b = torch.tensor(b0, requires_grad=True)
    opt = make_opt(torch.optim, [w, b])
    sched = make_sched(torch.optim.lr_scheduler, opt) if make_sched else None
    xs, ys = torch.tensor(x), torch.tensor(y)
    rates = []
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(xs @ w.T + b[0], ys).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_([w, b], clip)
        opt.step()
        if sched:
            sched.step()
            rates.append(sched.get_last_lr()[0])
    return w.detach().numpy(), b.detach().numpy(), rates


@pytest.mark.parametrize("opt_name, make_opt", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
@pytest.mark.parametrize("sched_name, make_sched", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_same_parameters_as_pytorch(opt_name, make_opt, sched_name, make_sched):
    torch = pytest.importorskip("torch")
    cycles = sched_name.startswith("OneCycle") or sched_name.endswith("momentum")
    if cycles and "SGD" in opt_name and "momentum" not in opt_name:
        pytest.skip("the schedule cycles momentum, which this SGD lacks (PyTorch refuses too)")
    if cycles and opt_name.startswith(("Adagrad", "Adadelta", "Rprop")):
        pytest.skip(f"{opt_name} has no momentum to cycle (PyTorch refuses too)")
    if cycles and opt_name.startswith("RMSprop") and "momentum" not in opt_name:
        pytest.skip("RMSprop without momentum: nothing to cycle")
    got = train_core(make_opt, make_sched, 12)
    want = train_torch(torch, make_opt, make_sched, 12)
    # PyTorch keeps NAdam's product of momenta in float32, even for float64 parameters
    rtol = 1e-7 if opt_name == "NAdam" else 1e-9
    for g, w, what in zip(got, want, ("weight", "bias", "rates"), strict=True):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-12, err_msg=f"{opt_name} {what}")


@pytest.mark.parametrize("clip", [0.05, 100.0])
def test_clip_grad_norm_as_pytorch(clip):
    torch = pytest.importorskip("torch")
    make = OPTIMIZERS[0][1]
    got = train_core(make, None, 5, clip=clip)
    want = train_torch(torch, make, None, 5, clip=clip)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-9)


def test_clip_grad_norm_scales_to_the_limit():
    w = core.tensor([3.0, 4.0], dtype="float64", requires_grad=True)
    (w * w).sum().backward()  # gradient (6, 8), norm 10
    total = nn.utils.clip_grad_norm_([w], 1.0)
    assert total.item() == pytest.approx(10.0)
    np.testing.assert_allclose(w.grad.numpy(), [0.6, 0.8], rtol=1e-6)
    nn.utils.clip_grad_value_([w], 0.7)
    np.testing.assert_allclose(w.grad.numpy(), [0.6, 0.7], rtol=1e-6)
    w.grad = core.tensor([np.inf, 1.0], dtype="float64")
    with pytest.raises(core.GradError, match="non-finite"):
        nn.utils.clip_grad_norm_([w], 1.0, error_if_nonfinite=True)


def scheduled_step(make_opt, make_sched):
    core.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = make_opt(optim, model.parameters())
    sched = make_sched(optim.lr_scheduler, opt) if make_sched else None
    x, y = core.randn(8, 3), core.randn(8, 1)

    def step():
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        if sched:
            sched.step()
        return loss

    return step, model


@pytest.mark.parametrize("opt_name, make_opt", OPTIMIZERS[::2], ids=[o[0] for o in OPTIMIZERS[::2]])
def test_state_is_made_up_front(opt_name, make_opt):
    """Steps 1, 2 and 10 run the same ops, schedule and clipping included."""
    make_sched = dict(SCHEDULES)["CosineAnnealingLR"]
    step, _ = scheduled_step(make_opt, make_sched)
    shapes = []
    for i in range(10):
        with dispatched() as seen:
            step()
        if i in (0, 1, 9):
            shapes.append(op_sequence(seen))
    assert shapes[0] == shapes[1] == shapes[2]


@pytest.mark.parametrize("sched_name, make_sched", SCHEDULES[1:], ids=[s[0] for s in SCHEDULES[1:]])
def test_compiled_step_follows_the_schedule(sched_name, make_sched):
    make_opt = OPTIMIZERS[0][1]
    eager, eager_model = scheduled_step(make_opt, make_sched)
    losses = [eager().item() for _ in range(10)]
    step, model = scheduled_step(make_opt, make_sched)
    compiled = core.compile(step)
    got = [compiled().item() for _ in range(10)]
    np.testing.assert_allclose(got, losses, rtol=1e-5)
    for (name, p), q in zip(model.named_parameters(), eager_model.parameters(), strict=True):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-7, err_msg=name)
    assert compiled.eager_calls == 1, compiled.retraces


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mode": "max", "patience": 1, "factor": 0.5, "cooldown": 1},
        {"threshold_mode": "abs", "patience": 0, "min_lr": 0.02},
    ],
)
def test_reduce_on_plateau_as_pytorch(kwargs):
    torch = pytest.importorskip("torch")
    metrics = [1.0, 0.9, 0.9, 0.95, 0.89995, 0.7, 0.8, 0.8, 0.8, 0.8] * 2
    rates = []
    for lib in (optim, torch.optim):
        w = (
            core.tensor([1.0], requires_grad=True)
            if lib is optim
            else torch.tensor([1.0], requires_grad=True)
        )
        opt = lib.SGD([w], lr=0.1)
        sched = lib.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
        seen = []
        for m in metrics:
            sched.step(m)
            seen.append(opt.param_groups[0]["lr"])
        rates.append(seen)
    np.testing.assert_allclose(rates[0], rates[1], rtol=1e-6)
