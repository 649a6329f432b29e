"""Digits again: a small residual network with batch norm

The eight-by-eight digit images of cnn_digits.py, read by a small ResNet:
a 3x3 convolution, two residual blocks (convolution, batch norm, ReLU,
convolution, batch norm, plus the block's input; the second halves the
image and doubles the channels, with a 1x1 convolution on its shortcut),
global average pooling and a linear layer. AdamW follows a one-cycle
schedule (OneCycleLR). Look at the batch-norm nodes: in training they
normalize by the batch's statistics and move the running ones (state, not
parameters); evaluate() switches the model to eval mode, where the running
statistics are used, and gives the accuracy on 200 images it never saw.
"""

import numpy as np

import core
import core.functional as F
from core import nn, optim
from core.program import Run

GLYPHS = [  # 5 wide, 7 high; '#' is ink (as in cnn_digits.py)
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
STEPS = 120


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


class ResidualBlock(nn.Module):
    def __init__(self, channels_in, channels_out, stride, device="cpu"):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False, device=device)
        self.bn1 = nn.BatchNorm2d(channels_out, device=device)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False, device=device)
        self.bn2 = nn.BatchNorm2d(channels_out, device=device)
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False, device=device),
                nn.BatchNorm2d(channels_out, device=device),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, device="cpu"):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False, device=device),
            nn.BatchNorm2d(8, device=device),
            nn.ReLU(),
        )
        self.block1 = ResidualBlock(8, 8, 1, device=device)  # (N, 8, 8, 8)
        self.block2 = ResidualBlock(8, 16, 2, device=device)  # (N, 16, 4, 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10, device=device)

    def forward(self, x):
        x = self.block2(self.block1(self.stem(x)))
        return self.fc(self.pool(x).flatten(1))


def build(device="cpu"):
    core.manual_seed(0)
    test_x, test_y = make_digits(200, seed=0)
    model = ResNet(device=device)
    optimizer = optim.AdamW(model.parameters(), lr=0.01, weight_decay=1e-3)
    schedule = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.02, total_steps=STEPS)

    def batches(i):  # a fresh batch for every step; batch i is always the same
        x, y = make_digits(32, seed=1 + i)
        return core.tensor(x, device=device), core.tensor(y, device=device)

    def step(batch):
        x, y = batch
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        schedule.step()
        return loss

    def evaluate():
        model.eval()
        try:
            with core.no_grad():
                logits = model(core.tensor(test_x, device=device))
        finally:
            model.train()
        predicted = logits.argmax(1).numpy()
        return {"accuracy": float((predicted == test_y).mean())}

    return Run(step=step, steps=STEPS, model=model, batches=batches, evaluate=evaluate)
