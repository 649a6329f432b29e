"""Dead ReLU: a network that will not learn

A two-layer ReLU network (fc1, relu, fc2) should learn a smooth bump,
y = exp(-x1^2 - x2^2), from 256 points. It has 64 hidden units and Adam,
which is plenty, yet the loss creeps down and then stalls far above zero.
This is a bug for you to find: run a step, then look at the activations
after relu and at fc1's gradients. How many hidden units take part, and
what in the model's set-up decides that?
"""

import numpy as np

import core
import core.functional as F
from core import nn, optim
from core.program import Run


class BumpNet(nn.Module):
    def __init__(self, hidden=64, device="cpu"):
        super().__init__()
        self.fc1 = nn.Linear(2, hidden, device=device)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, 1, device=device)
        # Start the hidden biases negative, so the units begin sparse.
        self.fc1.bias = nn.Parameter(core.full(hidden, -2.5, device=device))

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def build(device="cpu"):
    core.manual_seed(0)
    rng = np.random.default_rng(0)
    points = rng.uniform(-2.0, 2.0, (256, 2)).astype(np.float32)
    bump = np.exp(-(points**2).sum(axis=1, keepdims=True))
    x, y = core.tensor(points, device=device), core.tensor(bump, device=device)

    model = BumpNet(device=device)
    optimizer = optim.Adam(model.parameters(), lr=0.01)

    def step():
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return Run(step=step, steps=200, model=model)
