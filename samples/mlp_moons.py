"""Two moons: an MLP classifier

Two interleaved half circles of points, one class each, that no straight
line separates. A two-layer perceptron (fc1, tanh, fc2) learns a curved
boundary with Adam on the full batch of 200 points. Each hidden unit of fc1
is one straight cut through the plane; fc2 weighs the cuts into a curve.
evaluate() gives the accuracy on the 200 points.
"""

import numpy as np

import core
import core.functional as F
from core import nn, optim
from core.program import Run


def two_moons(n, noise, seed):
    """n points and labels: class 0 on the upper moon, class 1 on the lower."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, np.pi, n // 2)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.concatenate([upper, lower]) + rng.normal(0.0, noise, (n, 2))
    y = np.repeat([0, 1], n // 2)
    return x.astype(np.float32), y


class MLP(nn.Module):
    def __init__(self, hidden=16, device="cpu"):
        super().__init__()
        self.fc1 = nn.Linear(2, hidden, device=device)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(hidden, 2, device=device)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def build(device="cpu"):
    core.manual_seed(0)
    points, labels = two_moons(200, noise=0.1, seed=0)
    x = core.tensor(points, device=device)
    y = core.tensor(labels, device=device)

    model = MLP(device=device)
    optimizer = optim.Adam(model.parameters(), lr=0.05)

    def step():
        optimizer.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        return loss

    def evaluate():
        with core.no_grad():
            predicted = model(x).numpy().argmax(axis=1)
        return {"accuracy": float((predicted == labels).mean())}

    return Run(step=step, steps=200, model=model, evaluate=evaluate)
