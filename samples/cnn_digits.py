"""Digits: a small convolutional network

Eight-by-eight images of the digits 0 to 9, drawn in this file from 5x7
glyphs, each shifted a pixel or two and sprinkled with noise. A conv net
(conv, ReLU, max-pool, twice, then flatten and a linear layer) learns to
tell them apart from mini-batches of 32, a new batch for every step. Look
at conv1's eight 3x3 filters as they turn into stroke detectors;
evaluate() gives the accuracy on 200 images the network never trained on.
"""

import numpy as np

import core
import core.functional as F
from core import nn, optim
from core.program import Run

GLYPHS = [  # 5 wide, 7 high; '#' is ink
    ".###. #...# #..## #.#.# ##..# #...# .###.",  # 0
    "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",  # 1
    ".###. #...# ....# ...#. ..#.. .#... #####",  # 2
    "####. ....# ....# .###. ....# ....# ####.",  # 3
    "...#. ..##. .#.#. #..#. ##### ...#. ...#.",  # 4
    "##### #.... ####. ....# ....# #...# .###.",  # 5
    "..##. .#... #.... ####. #...# #...# .###.",  # 6
    "##### ....# ...#. ..#.. .#... .#... .#...",  # 7
    ".###. #...# #...# .###. #...# #...# .###.",  # 8
    ".###. #...# #...# .#### ....# ...#. .##..",  # 9
]


def make_digits(n, seed):
    """n noisy 8x8 images (n, 1, 8, 8) and their labels."""
    rng = np.random.default_rng(seed)
    glyphs = [np.array([[c == "#" for c in row] for row in g.split()]) for g in GLYPHS]
    labels = rng.integers(0, 10, n)
    images = np.zeros((n, 1, 8, 8), dtype=np.float32)
    for i, label in enumerate(labels):
        top, left = rng.integers(0, 2), rng.integers(0, 4)  # random shift
        images[i, 0, top : top + 7, left : left + 5] = glyphs[label]
    images += rng.normal(0.0, 0.3, images.shape).astype(np.float32)
    return images, labels


class DigitNet(nn.Module):
    def __init__(self, device="cpu"):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, padding=1, device=device)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1, device=device)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16 * 2 * 2, 10, device=device)

    def forward(self, x):  # x: (N, 1, 8, 8)
        x = self.pool(self.relu(self.conv1(x)))  # (N, 8, 4, 4)
        x = self.pool(self.relu(self.conv2(x)))  # (N, 16, 2, 2)
        return self.fc(self.flatten(x))  # (N, 10)


def build(device="cpu"):
    core.manual_seed(0)
    test_x, test_y = make_digits(200, seed=0)
    model = DigitNet(device=device)
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    batch_size = 32

    def batches(i):  # a fresh batch for every step; batch i is always the same
        x, y = make_digits(batch_size, seed=1 + i)
        return core.tensor(x, device=device), core.tensor(y, device=device)

    def step(batch):
        x, y = batch
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    def evaluate():
        with core.no_grad():
            logits = model(core.tensor(test_x, device=device))
        predicted = logits.numpy().argmax(axis=1)
        return {"accuracy": float((predicted == test_y).mean())}

    return Run(step=step, steps=300, model=model, batches=batches, evaluate=evaluate)
