"""What the two samples of the PyTorch-coverage work promise: the character
GRU learns to spell and its gradient fades back through time; the residual
network with batch norm reads digits, in eval mode from running statistics."""

from __future__ import annotations

import functools
import os

import numpy as np

import core
import core.functional as F
from core.debug.program import load
from core.observe import events
from core.observe.bus import BUS

SAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "samples")


@functools.cache
def trained(name: str):
    run = load(os.path.join(SAMPLES, name)).build("cpu")
    losses = [float(run.step(run.batches(i))) for i in range(run.steps)]
    return run, losses


def test_char_gru_learns_to_spell():
    run, losses = trained("char_gru.py")
    assert np.mean(losses[-5:]) < 0.3 * losses[0]
    assert run.evaluate()["accuracy"] >= 0.6


def test_char_gru_shows_every_gate_of_every_step():
    run = load(os.path.join(SAMPLES, "char_gru.py")).build("cpu")
    seen = []
    unsubscribe = BUS.subscribe(seen.append)
    try:
        run.step(run.batches(0))
    finally:
        unsubscribe()
    window = run.batches(0)[0].shape[1]
    for t in range(window):  # each time step in a scope of its own
        gates = [e.op for e in seen if type(e) is events.OpForward and e.scope == f"model.rnn.t{t}"]
        assert gates.count("sigmoid") == 2 and gates.count("tanh") == 1, (t, gates)
    entered = [e.path for e in seen if type(e) is events.ModuleEnter]
    assert entered.count("model.rnn.t0") == 1 and "clip_grad_norm_" in entered


def test_char_gru_gradient_fades_back_through_time():
    run, _ = trained("char_gru.py")
    model = run.model
    x, y = run.batches(1000)
    embedded = model.embed(x)
    states, _ = model.rnn(embedded)
    last = F.cross_entropy(model.head(states[:, -1]), y[:, -1])
    (g,) = core.grad(last, [embedded])
    per_step = np.sqrt((g.numpy() ** 2).sum(axis=(0, 2)))
    assert per_step[0] < 0.05 * per_step[-1], per_step


def test_resnet_digits_reads_digits_from_running_statistics():
    run, losses = trained("resnet_digits.py")
    assert run.evaluate()["accuracy"] >= 0.9
    bn = run.model.block1.bn1
    assert bn.num_batches_tracked.item() == run.steps
    assert np.abs(bn.running_mean.numpy()).max() > 0.0
    assert run.model.training  # evaluate() puts the model back in training mode
    names = [name for name, _ in run.model.named_buffers()]
    assert "block2.shortcut.1.running_var" in names
