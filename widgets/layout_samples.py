"""Synthetic graphs for the layout's demos, tests and benchmarks (NumPy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def training_dag(
    n_nodes: int, seed: int = 0
) -> tuple[list[int], list[tuple[int, ...]], list[float], list[str]]:
    """A synthetic graph shaped like unrolled training steps, in execution order.

    Returns (ids, preds, widths, groups). A few MLP, conv and attention blocks;
    each step runs forward, loss, backward (gradient ops read saved forward
    values: the long skip edges) and an SGD update of every parameter, whose
    result the next step reads. For demos, tests and benchmarks.

    >>> ids, preds, widths, groups = training_dag(40)
    >>> len(ids), preds[0], groups[0]
    (40, (), 'model.mlp0')
    """
    rng = np.random.default_rng(seed)
    preds: list[tuple[int, ...]] = []
    groups: list[str] = []

    def node(inputs: Sequence[int], scope: str) -> int:
        preds.append(tuple(inputs))
        groups.append(scope)
        return len(preds) - 1

    kinds = ["mlp"] + rng.choice(["mlp", "conv", "attn"], int(rng.integers(3, 7))).tolist()
    n_params = {"mlp": 2, "conv": 2, "attn": 4}
    scopes = [f"model.{k}{b}" for b, k in enumerate(kinds)]
    params = [[node((), s) for _ in range(n_params[k])] for s, k in zip(scopes, kinds, strict=True)]
    ops: list[tuple[int, tuple[int, ...], str]] = []  # this step's forward ops

    def op(inputs: tuple[int, ...], scope: str) -> int:
        out = node(inputs, scope)
        ops.append((out, inputs, scope))
        return out

    while len(preds) < n_nodes:
        ops.clear()
        h = node((), "")
        for s, kind, p in zip(scopes, kinds, params, strict=True):
            if kind == "attn":
                q, k, v = (op((h, p[j]), s) for j in range(3))
                att = op((op((q, k), s),), s)
                h = op((op((op((att, v), s), h), s), p[3]), s)  # residual, then scale
            else:
                z = op((h, p[0]), s)
                h = op((op((z, p[1]), s),), s)
                if kind == "conv":
                    h = op((h,), s)  # pool
        loss = op((h, node((), "")), "loss")
        grads = {loss: node((), "")}
        needs = {q for ps in params for q in ps} | {out for out, _, _ in ops}
        for out, inputs, s in reversed(ops):
            g = grads.get(out)
            for j, x in enumerate(inputs):
                if g is None or x not in needs:
                    continue
                gx = node((g,) + inputs[:j] + inputs[j + 1 :], s)
                grads[x] = node((grads[x], gx), s) if x in grads else gx
        lr = node((), "optim")
        params = [[node((q, node((grads[q], lr), "optim")), "optim") for q in ps] for ps in params]
    del preds[n_nodes:], groups[n_nodes:]
    widths = (40.0 + 8.0 * rng.integers(2, 14, len(preds))).tolist()
    return list(range(len(preds))), preds, widths, groups
