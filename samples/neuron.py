"""Single neuron

One neuron, tanh(w*x + b), fitted to seven points by plain gradient
descent. The whole graph is six ops: mul, add and tanh, then sub, pow and
mean for the squared error. Step through one forward and one backward pass
and check by hand that w.grad and b.grad are what the chain rule says.
"""

import core
from core import optim
from core.program import Run


def build(device="cpu"):
    core.manual_seed(0)

    # Seven points on a tanh curve (w = 1.5, b = 0.5), with a little noise.
    x = core.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], device=device)
    y = (x * 1.5 + 0.5).tanh() + core.randn(7, device=device) * 0.05

    # The two parameters: leaf tensors that want a gradient.
    w = core.tensor(0.1, requires_grad=True, device=device)
    b = core.tensor(0.0, requires_grad=True, device=device)
    optimizer = optim.SGD([w, b], lr=0.5)

    def step():
        optimizer.zero_grad()
        y_pred = (w * x + b).tanh()
        loss = ((y_pred - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        return loss

    return Run(step=step, steps=200, params={"w": w, "b": b})
