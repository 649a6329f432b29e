"""The graph's colours: kinds and op groups before the gradient arrives, the
gradient-norm ramp after, and the marks for the cursor and the selection."""

from __future__ import annotations

import math

from PySide6.QtGui import QColor

from core.engine.ops import ELEMENTWISE, LOSS, MOVEMENT, REDUCE, Op
from widgets.graph_model import GraphModel, GraphNode

BACKGROUND = QColor("#fbfbfd")
KIND_COLOURS = {
    "input": QColor("#cfe8cf"),
    "parameter": QColor("#ffd8a8"),
    "constant": QColor("#e4e4e8"),
}
GROUP_COLOURS = [
    (ELEMENTWISE, QColor("#dbe7fb")),
    (REDUCE, QColor("#e7ddfa")),
    (MOVEMENT, QColor("#eef0f3")),
    (LOSS, QColor("#f9d6d5")),
]
NETWORK_COLOUR = QColor("#d3eef0")
NONFINITE = QColor("#e0218a")
CURRENT = QColor("#f08c00")
SELECTED = QColor("#1c7ed6")
EDGE = QColor(120, 126, 140, 150)
GRAD_EDGE = QColor(214, 90, 49, 190)
BOX_FILL = QColor(120, 140, 180, 22)
BOX_PEN = QColor(120, 140, 180, 140)
# gradient-norm colour ramp (low -> high), sampled on a log scale
RAMP = [QColor("#fff3bf"), QColor("#ffc078"), QColor("#ff8787"), QColor("#c92a2a")]

_OP_BY_LABEL = {op.label: op for op in Op}


def over_background(colour: QColor) -> QColor:
    """The opaque colour ``colour`` shows over the background."""
    a = colour.alphaF()
    return QColor(
        round(colour.red() * a + BACKGROUND.red() * (1 - a)),
        round(colour.green() * a + BACKGROUND.green() * (1 - a)),
        round(colour.blue() * a + BACKGROUND.blue() * (1 - a)),
    )


def op_colour(node: GraphNode) -> QColor:
    """Fill colour of a node before the gradient reaches it."""
    if node.kind != "op":
        return KIND_COLOURS.get(node.kind, KIND_COLOURS["constant"])
    op = _OP_BY_LABEL.get(node.op)
    for group, colour in GROUP_COLOURS:
        if op in group:
            return colour
    return NETWORK_COLOUR


def _ramp_table(steps: int = 256) -> list[int]:
    table = []
    for k in range(steps):
        t = k / (steps - 1) * (len(RAMP) - 1)
        i = min(int(t), len(RAMP) - 2)
        f = t - i
        a, b = RAMP[i], RAMP[i + 1]
        rgb = [round(x + (y - x) * f) for x, y in zip(a.getRgb()[:3], b.getRgb()[:3])]
        table.append((0xFF << 24) | (rgb[0] << 16) | (rgb[1] << 8) | rgb[2])
    return table


RAMP_ARGB = _ramp_table()  # the ramp as ARGB numbers: colouring nodes needs no QColor


def ramp_argb(t: float) -> int:
    """ARGB at ``t`` in [0, 1] on the gradient ramp (256 steps)."""
    return RAMP_ARGB[round(min(max(t, 0.0), 1.0) * (len(RAMP_ARGB) - 1))]


def ramp(t: float) -> QColor:
    """Colour at ``t`` in [0, 1] on the gradient ramp."""
    t = min(max(t, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(t), len(RAMP) - 2)
    f = t - i
    a, b = RAMP[i], RAMP[i + 1]
    return QColor(
        round(a.red() + (b.red() - a.red()) * f),
        round(a.green() + (b.green() - a.green()) * f),
        round(a.blue() + (b.blue() - a.blue()) * f),
    )


class NodePalette:
    """ARGB fill per node of a GraphModel: the kind's or op group's colour, kept as
    nodes arrive; the gradient ramp (log of the norm, scaled over the nodes reached)
    or the NaN/Inf colour for the nodes the model marked."""

    def __init__(self) -> None:
        self._kinds: dict[tuple[str, str], int] = {}  # (kind, op) -> ARGB
        self._base: list[int] = []  # each node's colour before the gradient reaches it
        self._base_of: int | None = None  # the model generation _base was made for

    def colours(self, model: GraphModel) -> list[int]:
        colours = list(self._base_colours(model))
        marked = [model.nodes[i] for i in model.marked]
        norms = [n.grad_norm for n in marked if n.backward]
        finite = [math.log10(v) for v in norms if v > 0 and math.isfinite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
        bad = NONFINITE.rgba()
        for n in marked:
            if n.nonfinite:
                colours[n.index] = bad
            elif n.backward and n.grad_stats is not None:
                v = n.grad_norm
                t = 0.0 if not (v > 0 and hi > lo) else (math.log10(v) - lo) / (hi - lo)
                colours[n.index] = ramp_argb(t)
        return colours

    def _base_colours(self, model: GraphModel) -> list[int]:
        if self._base_of != model.generation:
            self._base_of, self._base = model.generation, []
        base, kinds = self._base, self._kinds
        for n in model.nodes[len(base) :]:
            key = (n.kind, n.op)
            if key not in kinds:
                kinds[key] = op_colour(n).rgba()
            base.append(kinds[key])
        return base
