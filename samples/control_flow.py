"""Control flow: the graph depends on the data

A model whose forward pass is ordinary Python with ifs and loops that read
tensor values. Each batch holds points from one side of zero; the sign of
the batch mean picks one of two sub-networks (left or right), and a refine
layer is then applied again and again until the hidden state is small
enough (at most four turns). So each step builds a different graph. Eager
execution just follows the path taken. A tracer that records one step into
a static graph records only that path: the .item() calls are where Gradstep's
compiler has to guard, fall back to eager and retrace when the data chooses
another way.
"""

import numpy as np

import core
import core.functional as F
from core import nn, optim
from core.program import Run


def target(x):
    """The law to learn: different on each side of zero."""
    return np.where(x < 0, -0.5 * x, x * x / 3.0)


class TwoWayNet(nn.Module):
    def __init__(self, hidden=16, device="cpu"):
        super().__init__()
        self.left = nn.Sequential(nn.Linear(1, hidden, device=device), nn.Tanh())
        self.right = nn.Sequential(nn.Linear(1, hidden, device=device), nn.Tanh())
        self.refine = nn.Sequential(nn.Linear(hidden, hidden, device=device), nn.Tanh())
        self.out = nn.Linear(hidden, 1, device=device)
        self.turns = 0  # refine turns in the last forward pass

    def forward(self, x):
        if x.mean().item() > 0:  # a branch on a value: which graph?
            h = self.right(x)
        else:
            h = self.left(x)
        self.turns = 0
        while (h * h).mean().item() > 0.15 and self.turns < 4:  # a loop on a value
            h = self.refine(h)
            self.turns += 1
        return self.out(h)


def build(device="cpu"):
    core.manual_seed(0)
    model = TwoWayNet(device=device)
    optimizer = optim.Adam(model.parameters(), lr=0.01)

    def batches(i):  # even steps: points left of zero; odd steps: right of it
        x = np.random.default_rng(i).uniform(0.0, 3.0, (32, 1)).astype(np.float32)
        x = -x if i % 2 == 0 else x
        return core.tensor(x, device=device), core.tensor(target(x), device=device)

    def step(batch):
        x, y = batch
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return Run(step=step, steps=300, model=model, batches=batches)
