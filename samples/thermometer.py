"""Thermometer: a linear fit

The book's first model: readings t_u of an unknown thermometer against
temperatures t_c in Celsius, fitted with t_c = w * t_u + b by gradient
descent. As in the book, the model sees t_un = 0.1 * t_u: with the raw
readings the gradient for w is about fifty times the one for b, and no
single learning rate suits both. With the book's learning rate (1e-2) and
5000 steps, w and b (the normalized model's) end at the book's 5.367 and
-17.30. evaluate() reports the fit in the original units, w / 10 and b:
the least-squares line, w = 0.5368 and b = -17.30.
"""

import core
from core import optim
from core.program import Run

T_C = [0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]
T_U = [35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]


def build(device="cpu"):
    core.manual_seed(0)
    t_c = core.tensor(T_C, device=device)
    t_u = core.tensor(T_U, device=device)
    t_un = t_u * 0.1  # normalized input

    w = core.tensor(1.0, requires_grad=True, device=device)
    b = core.tensor(0.0, requires_grad=True, device=device)
    optimizer = optim.SGD([w, b], lr=1e-2)

    def model(t):
        return w * t + b

    def step():
        optimizer.zero_grad()
        t_p = model(t_un)
        loss = ((t_p - t_c) ** 2).mean()
        loss.backward()
        optimizer.step()
        return loss

    def evaluate():
        # Undo the normalization: w * (0.1 * t_u) = (0.1 * w) * t_u.
        return {"w": 0.1 * w.item(), "b": b.item()}

    return Run(step=step, steps=5000, evaluate=evaluate, params={"w": w, "b": b})
