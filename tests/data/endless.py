"""Endless

One step that never ends and keeps making tensor ops: what Stop (Shift+F5) is for.
"""

import core
from core.program import Run


def build(device="cpu"):
    x = core.tensor([1.0, 2.0, 3.0], requires_grad=True)

    def step():
        y = x
        while True:
            y = (y * 1.0001).tanh()

    return Run(step=step, steps=1, params={"x": x})
