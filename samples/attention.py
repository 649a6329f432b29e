"""Attention: one transformer block reverses a sequence

Sequences of six tokens (0 to 7) go in; the same tokens in reverse order
should come out. Reversal needs no knowledge of the tokens, only of
positions, so the block learns to make position i attend to position 5 - i.
One block: token and position embeddings, single-head self-attention
softmax(Q K^T / sqrt(d)) V, a GELU MLP, LayerNorm before each and residual
connections around both. After training, look at the attention weights (the
softmax in block.attn): they form an anti-diagonal.
"""

import math

import numpy as np

import core
import core.functional as F
from core import nn, optim
from core.program import Run

VOCAB, LENGTH, DIM = 8, 6, 32


class SelfAttention(nn.Module):
    def __init__(self, dim, device="cpu"):
        super().__init__()
        self.query = nn.Linear(dim, dim, device=device)
        self.key = nn.Linear(dim, dim, device=device)
        self.value = nn.Linear(dim, dim, device=device)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x):  # x: (batch, length, dim)
        q, k, v = self.query(x), self.key(x), self.value(x)
        scores = q @ k.transpose(-1, -2) * self.scale  # (batch, length, length)
        return F.softmax(scores, axis=-1) @ v


class Block(nn.Module):
    def __init__(self, dim, device="cpu"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, device=device)
        self.attn = SelfAttention(dim, device=device)
        self.norm2 = nn.LayerNorm(dim, device=device)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim, device=device),
            nn.GELU(),
            nn.Linear(4 * dim, dim, device=device),
        )

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Reverser(nn.Module):
    def __init__(self, device="cpu"):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, DIM, device=device)
        self.positions = nn.Embedding(LENGTH, DIM, device=device)
        self.block = Block(DIM, device=device)
        self.head = nn.Linear(DIM, VOCAB, device=device)

    def forward(self, seq):  # seq: (batch, length) integers
        where = core.arange(LENGTH, device=seq.device)
        x = self.tokens(seq) + self.positions(where)
        return self.head(self.block(x))  # (batch, length, vocab)


def build(device="cpu"):
    core.manual_seed(0)
    model = Reverser(device=device)
    optimizer = optim.Adam(model.parameters(), lr=3e-3)

    def random_sequences(n, seed):
        seq = np.random.default_rng(seed).integers(0, VOCAB, (n, LENGTH))
        return core.tensor(seq, device=device)

    def batches(i):  # batch i is always the same 64 sequences
        seq = random_sequences(64, seed=1 + i)
        return seq, seq[:, ::-1]

    def step(batch):
        seq, target = batch
        optimizer.zero_grad()
        logits = model(seq)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), target.reshape(-1))
        loss.backward()
        optimizer.step()
        return loss

    def evaluate():
        seq = random_sequences(256, seed=0)
        with core.no_grad():
            guess = model(seq).numpy().argmax(axis=-1)
        return {"accuracy": float((guess == seq.numpy()[:, ::-1]).mean())}

    return Run(step=step, steps=300, model=model, batches=batches, evaluate=evaluate)
