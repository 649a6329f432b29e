"""Characters: a GRU learns to spell

A character-level language model on the few lines of text in char_gru.txt:
an embedding, a one-layer GRU (nn.GRU) and a linear layer guess each next
letter of 16-letter windows, 32 windows a step. Step into model.rnn: each
time step is a box of its own (t0 to t15) holding its gates (the reset gate
r and update gate z are sigmoids, the candidate n a tanh). In the backward
pass watch the gradient of the loss fade as it flows back through the steps:
the early letters of a window hardly move the weights. The gradients are
clipped (clip_grad_norm_, its own box) before Adam's update. evaluate() gives
the accuracy of the next-letter guesses on every window of the text.
"""

import os

import numpy as np

import core
import core.functional as F
from core import nn, optim
from core.program import Run

TEXT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "char_gru.txt")
WINDOW, BATCH, HIDDEN = 16, 32, 48


def load_text():
    with open(TEXT_FILE, encoding="utf-8") as f:
        text = f.read()
    letters = sorted(set(text))
    codes = np.array([letters.index(c) for c in text], dtype=np.int64)
    return letters, codes


class CharGRU(nn.Module):
    def __init__(self, vocab, device="cpu"):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16, device=device)
        self.rnn = nn.GRU(16, HIDDEN, batch_first=True, device=device)
        self.head = nn.Linear(HIDDEN, vocab, device=device)

    def forward(self, codes):  # codes: (batch, window) -> logits (batch, vocab, window)
        states, _last = self.rnn(self.embed(codes))
        return self.head(states).transpose(1, 2)


def build(device="cpu"):
    core.manual_seed(0)
    letters, codes = load_text()
    model = CharGRU(len(letters), device=device)
    optimizer = optim.Adam(model.parameters(), lr=0.01)

    def batches(i):  # windows at fixed random places; batch i is always the same
        rng = np.random.default_rng(i)
        starts = rng.integers(0, len(codes) - WINDOW - 1, BATCH)
        x = np.stack([codes[s : s + WINDOW] for s in starts])
        y = np.stack([codes[s + 1 : s + WINDOW + 1] for s in starts])
        return core.tensor(x, device=device), core.tensor(y, device=device)

    def step(batch):
        x, y = batch
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)  # (batch, vocab, window) against (batch, window)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    def evaluate():
        starts = np.arange(0, len(codes) - WINDOW - 1, WINDOW)
        x = np.stack([codes[s : s + WINDOW] for s in starts])
        y = np.stack([codes[s + 1 : s + WINDOW + 1] for s in starts])
        with core.no_grad():
            logits = model(core.tensor(x, device=device))
        guesses = logits.argmax(1).numpy()
        return {"accuracy": float((guesses == y).mean())}

    return Run(step=step, steps=100, model=model, batches=batches, evaluate=evaluate)
