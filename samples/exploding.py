"""Exploding: house prices that stop being numbers

A linear model predicts a house's price (in thousands) from its area in
square metres, its number of rooms and its age in years, trained by plain
gradient descent on 64 made-up houses. Something is wrong: the loss grows
instead of shrinking, turns into inf after about a dozen steps and into nan
some steps later. This is a bug for you to find. Set a breakpoint on the
first NaN/Inf, step back to where the values began to grow, and compare the
size of each update with the parameter it changes. Is it the learning rate,
the inputs, or both?
"""

import numpy as np

import core
import core.functional as F
from core import nn, optim
from core.program import Run


def make_houses(n, seed):
    rng = np.random.default_rng(seed)
    area = rng.uniform(40.0, 160.0, n)
    rooms = rng.integers(1, 6, n).astype(float)
    age = rng.uniform(0.0, 60.0, n)
    price = 2.5 * area + 15.0 * rooms - 1.2 * age + 50.0 + rng.normal(0.0, 10.0, n)
    x = np.stack([area, rooms, age], axis=1)
    return x.astype(np.float32), price.reshape(-1, 1).astype(np.float32)


class PriceModel(nn.Module):
    def __init__(self, device="cpu"):
        super().__init__()
        self.linear = nn.Linear(3, 1, device=device)

    def forward(self, x):
        return self.linear(x)


def build(device="cpu"):
    core.manual_seed(0)
    features, prices = make_houses(64, seed=0)
    x = core.tensor(features, device=device)
    y = core.tensor(prices, device=device)

    model = PriceModel(device=device)
    optimizer = optim.SGD(model.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return Run(step=step, steps=40, model=model)
