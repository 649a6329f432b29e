"""Products with PyTorch's names: ``mm``, ``bmm``, ``mv``, ``dot``, ``outer``
and ``einsum``, all through ``matmul``, ``permute``, ``reshape`` and sums, so
their gradients (and second derivatives) come from those ops' rules.

>>> import core
>>> a = core.tensor([[1.0, 2.0], [3.0, 4.0]])
>>> b = core.tensor([[1.0, 0.0], [1.0, 1.0]])
>>> einsum("ij,jk->ik", a, b).tolist() == (a @ b).tolist()
True
>>> einsum("ii->", a).item(), einsum("ij->ji", a).tolist()
(5.0, [[1.0, 3.0], [2.0, 4.0]])
>>> outer(core.tensor([1.0, 2.0]), core.tensor([3.0, 4.0, 5.0])).shape
(2, 3)
"""

from __future__ import annotations

import math
import string
from typing import TYPE_CHECKING, Any

from core.errors import ShapeError
from core.observe.source import where

if TYPE_CHECKING:  # Tensor imports this module (Tensor.mm); the functions need only its methods
    from core.engine.tensor import Tensor


def _need(name: str, t: Tensor, ndim: int) -> None:
    if t.ndim != ndim:
        raise ShapeError(f"{name}: expected a {ndim}-d tensor, got shape {t.shape}{where()}")


def mm(a: Tensor, b: Tensor) -> Tensor:
    """The product of two matrices."""
    _need("mm", a, 2)
    _need("mm", b, 2)
    return a @ b


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix products: (B, n, m) @ (B, m, p) -> (B, n, p)."""
    _need("bmm", a, 3)
    _need("bmm", b, 3)
    if a.shape[0] != b.shape[0]:
        raise ShapeError(f"bmm: batch sizes differ ({a.shape} and {b.shape}){where()}")
    return a @ b


def mv(a: Tensor, v: Tensor) -> Tensor:
    """Matrix times vector."""
    _need("mv", a, 2)
    _need("mv", v, 1)
    return a @ v


def dot(a: Tensor, b: Tensor) -> Tensor:
    """The inner product of two vectors of the same length."""
    _need("dot", a, 1)
    _need("dot", b, 1)
    return a @ b


def outer(a: Tensor, b: Tensor) -> Tensor:
    """``a[i] * b[j]`` for vectors ``a`` and ``b``."""
    _need("outer", a, 1)
    _need("outer", b, 1)
    return a.unsqueeze(1) * b.unsqueeze(0)


# -- einsum ------------------------------------------------------------------------


def einsum(equation: str, *operands: Any) -> Tensor:
    """Sums of products over named axes, as ``torch.einsum`` ("bij,bjk->bik",
    "ii->i", "...ij->...ji"; an implicit output is the letters seen once, in
    order). Pairs of operands are contracted with one batched matmul each.
    """
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    inputs, output = _parse(equation.replace(" ", ""), operands)
    sizes: dict[str, int] = {}
    terms = []
    for subs, t in zip(inputs, operands, strict=True):
        t, subs = _diagonals(t, subs)
        for letter, n in zip(subs, t.shape):
            if sizes.setdefault(letter, n) != n:
                raise ShapeError(
                    f"einsum: axis {letter!r} has sizes {sizes[letter]} and {n} in "
                    f"{equation!r}{where()}"
                )
        terms.append((t, subs))
    # axes no other operand and not the output uses are summed first
    for k, (t, subs) in enumerate(terms):
        others = set(output).union(*(s for j, (_, s) in enumerate(terms) if j != k))
        terms[k] = _sum_out(t, subs, others)
    t, subs = terms[0]
    for k in range(1, len(terms)):
        later = set(output).union(*(s for _, s in terms[k + 1 :]))
        t, subs = _contract(t, subs, *terms[k], later, sizes)
    t, subs = _sum_out(t, subs, set(output))
    return t.permute(*[subs.index(letter) for letter in output]) if subs else t


def _parse(equation: str, operands: tuple) -> tuple[list[str], str]:
    if "->" in equation:
        left, output = equation.split("->")
    else:
        left, output = equation, None
    inputs = left.split(",")
    if len(inputs) != len(operands):
        raise ShapeError(
            f"einsum: {equation!r} names {len(inputs)} operands, {len(operands)} given{where()}"
        )
    free = [c for c in string.ascii_uppercase if c not in equation]
    counts = [
        t.ndim - len(subs.replace("...", "")) if "..." in subs else 0
        for subs, t in zip(inputs, operands, strict=True)
    ]
    ellipsis = "".join(free[: max(counts, default=0)])
    expanded = []
    for subs, t, n in zip(inputs, operands, counts, strict=True):
        subs = subs.replace("...", ellipsis[len(ellipsis) - n :])
        if len(subs) != t.ndim:
            raise ShapeError(
                f"einsum: {subs!r} names {len(subs)} axes of a {t.ndim}-d operand{where()}"
            )
        expanded.append(subs)
    if output is None:
        letters = "".join(expanded)
        once = sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ellipsis)
        output = ellipsis + "".join(once)
    else:
        output = output.replace("...", ellipsis)
    return expanded, output


def _diagonals(t: Tensor, subs: str) -> tuple[Tensor, str]:
    """A letter repeated within one operand takes the diagonal of its axes."""
    while len(set(subs)) < len(subs):
        letter = next(c for c in subs if subs.count(c) > 1)
        first = subs.index(letter)
        second = subs.index(letter, first + 1)
        t = t.diagonal(0, first, second)
        subs = subs[:first] + subs[first + 1 : second] + subs[second + 1 :] + letter
    return t, subs


def _sum_out(t: Tensor, subs: str, keep: set[str]) -> tuple[Tensor, str]:
    gone = tuple(i for i, c in enumerate(subs) if c not in keep)
    if not gone:
        return t, subs
    return t.sum(gone), "".join(c for c in subs if c in keep)


def _contract(a, sa: str, b, sb: str, later: set[str], sizes: dict) -> tuple[Tensor, str]:
    batch = [c for c in sa if c in sb and c in later]
    summed = [c for c in sa if c in sb and c not in later]
    left = [c for c in sa if c not in sb]
    right = [c for c in sb if c not in sa]

    def size(letters: list[str]) -> int:
        return math.prod(sizes[c] for c in letters)

    a3 = a.permute(*[sa.index(c) for c in batch + left + summed])
    a3 = a3.reshape(size(batch), size(left), size(summed))
    b3 = b.permute(*[sb.index(c) for c in batch + summed + right])
    b3 = b3.reshape(size(batch), size(summed), size(right))
    out = (a3 @ b3).reshape(*[sizes[c] for c in batch + left + right])
    return out, "".join(batch + left + right)
