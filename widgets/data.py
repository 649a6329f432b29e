"""Plain data the panels show, and the arithmetic behind their plots (Qt-free).

>>> import numpy as np
>>> counts, edges = histogram(np.array([0.0, 1.0, np.nan, np.inf, 1.0]))
>>> counts.tolist(), edges[[0, -1]].tolist()
([1, 2], [0.0, 1.0])
>>> format_number(0.1 + 0.2), format_number(float("nan")), format_number(3)
('0.3', 'nan', '3')
>>> histogram(np.array([1e16], np.float32))[0].tolist()   # one huge constant: one bin
[1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.observe.events import Source, Stats

WARNING_COLOR = "#d9480f"  # NaN, Inf and failed checks, in every panel
OK_COLOR = "#2b8a3e"  # a passed gradient check
MUTED_COLOR = "#868e96"  # empty states and secondary text
PLOT_BACKGROUND = "#ffffff"
PLOT_FOREGROUND = "#343a40"  # axes, ticks and labels
CURVE_COLOR = "#1c7ed6"  # loss curve, histogram bars, 1-D values
CURSOR_COLOR = "#f59f00"  # the time-travel cursor line

MAX_BINS = 64


@dataclass(frozen=True)
class NodeInfo:
    """Everything the inspector shows about one graph node."""

    node_id: int | None  # graph node id; None for a leaf with no node
    title: str  # display name, e.g. "matmul_3" or "fc1.weight"
    kind: str  # "op", "input", "parameter" or "constant"
    op: str  # op label ("matmul"); "" for leaves
    attrs: tuple[tuple[str, Any], ...]  # op attributes as (name, value) pairs
    scope: str  # module path, "" at top level
    source: Source | None  # the user's line that made it
    shape: tuple[int, ...]  # tensor shape
    dtype: str  # e.g. "float32"
    device: str  # "cpu" or "cuda"
    value: np.ndarray | None  # host copy of the value, None when not kept
    value_stats: Stats | None  # statistics of the value
    grad: np.ndarray | None  # host copy of the gradient, None when none or not kept
    grad_stats: Stats | None  # statistics of the gradient
    note: str = ""  # why something is missing, e.g. "value not kept: memory cap"
    update: str = ""  # a parameter's last update, e.g. "|Δw| / |w| = 3.1e-03 (Adam, step 4)"
    kernel: int | None = None  # a compiled step's op: the kernel that computed it

    @property
    def has_grad(self) -> bool:
        return self.grad is not None or self.grad_stats is not None


def format_number(x: float) -> str:
    """Six significant digits; integers without a decimal point."""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.6g}"


def histogram_bins(n_finite: int) -> int:
    """Bins for ``n_finite`` values: ceil(sqrt(n)), at least 1, at most MAX_BINS."""
    return int(min(MAX_BINS, max(1, math.ceil(math.sqrt(n_finite)))))


def histogram(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin edges of the finite values of ``array`` (empty when none)."""
    a = np.asarray(array)
    if a.dtype.kind == "c":
        a = a.real
    if a.dtype.kind in "fc":
        a = a[np.isfinite(a)]
    a = a.ravel().astype(np.float64, copy=False)
    if a.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    lo, hi = float(a.min()), float(a.max())
    bins = histogram_bins(a.size)
    if not hi - lo > abs(hi) * 1e-9 * bins:
        # all values equal, or closer than float64 can split into bins (1e16 and its
        # neighbours): one bin around them
        pad = max(abs(hi), abs(lo), 1.0) * 1e-6
        return np.array([a.size], dtype=np.int64), np.array([lo - pad, hi + pad])
    counts, edges = np.histogram(a, bins=bins)
    return counts, edges


def tile_filters(array: np.ndarray) -> tuple[np.ndarray, int, int]:
    """A 4-D weight (out, in, h, w) as one image: every h×w filter a tile, one row
    of tiles per output channel (or a near-square grid when there is one input
    channel, two of them across for one down), NaN between tiles. Returns (image,
    tile rows, tile columns).

    >>> image, rows, cols = tile_filters(np.zeros((8, 1, 3, 3)))
    >>> image.shape, rows, cols
    ((7, 15), 2, 4)
    """
    out, inp, h, w = array.shape
    if inp == 1:
        cols = int(math.ceil(math.sqrt(2 * out * w / h)))  # wider than tall, as a dock is
        cols = max(1, min(out, cols))
        rows = int(math.ceil(out / cols))
        tiles = [array[k, 0] for k in range(out)]
    else:
        rows, cols = out, inp
        tiles = [array[o, i] for o in range(out) for i in range(inp)]
    image = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        image[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = tile
    return image, rows, cols
