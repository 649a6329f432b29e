"""Painter paths built from NumPy arrays in one call, for the graph's edges and
nodes (no per-point Python), and the small array helpers they need."""

from __future__ import annotations

import struct

import numpy as np
from PySide6.QtCore import QByteArray, QDataStream
from PySide6.QtGui import QPainterPath

# QPainterPath element types, as QDataStream writes them
MOVE, LINE, CURVE, CURVE_DATA = 0, 1, 2, 3
PATH_RECORD = np.dtype([("type", ">i4"), ("x", ">f8"), ("y", ">f8")])


def bezier(t: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray):
    """One coordinate of the cubic Bezier curve (a, b, c, d) at ``t``."""
    u = 1.0 - t
    return u * u * u * a + 3 * u * u * t * b + 3 * u * t * t * c + t * t * t * d


def path_from_arrays(types: np.ndarray, xy: np.ndarray) -> QPainterPath:
    """A QPainterPath of ``len(types)`` elements in one call (no per-point Python).

    ``types`` are QPainterPath element types (0 move, 1 line, 2 curve, 3 curve
    data), ``xy`` their points (n, 2); the path is read from QDataStream's format.
    """
    n = len(types)
    path = QPainterPath()
    if n == 0:
        return path
    buf = bytearray(4 + n * PATH_RECORD.itemsize + 8)
    struct.pack_into(">i", buf, 0, n)
    rec = np.frombuffer(buf, PATH_RECORD, count=n, offset=4)
    rec["type"], rec["x"], rec["y"] = types, xy[:, 0], xy[:, 1]
    # then the index of the last subpath's start and the fill rule (OddEvenFill)
    struct.pack_into(">ii", buf, 4 + n * PATH_RECORD.itemsize, 0, 0)
    QDataStream(QByteArray(bytes(buf))) >> path
    return path


def unique_rows(s: np.ndarray) -> np.ndarray:
    """``np.unique(s, axis=0)`` for (n, 4) int64 rows: one sort of packed keys when the
    values fit 16 bits each (chords on a pixel grid), else the general one."""
    if not len(s):
        return s
    low = s.min(axis=0)
    span = s - low
    if span.max() >= 1 << 16:
        return np.unique(s, axis=0)
    key = (span[:, 0] << 48) | (span[:, 1] << 32) | (span[:, 2] << 16) | span[:, 3]
    _, first = np.unique(key, return_index=True)
    return s[np.sort(first)]
