"""The heatmap of a tensor panel: a 2-D value, a chosen 2-D slice of an N-D one,
or every filter of a 4-D weight as a grid of tiles; NaN/Inf cells marked, cell
values under the mouse, whole-number ticks on the cells.

``HeatmapMixin`` is a part of ``TensorPanel`` (widgets/tensor_panel.py); it reads
the panel's array and statistics and shows into its values stack.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QLabel, QSpinBox, QWidget

from widgets.data import (
    PLOT_BACKGROUND,
    PLOT_FOREGROUND,
    WARNING_COLOR,
    format_number,
    tile_filters,
)

SAMPLE_LIMIT = 200_000  # elements looked at for colour levels without statistics
MAX_TILES = 64  # 4-D values with at most this many (out, in) tiles open as a tile grid


def style_plot(plot: pg.PlotItem) -> None:
    """Light background look shared by the panels' plots."""
    plot.getViewBox().setBackgroundColor(PLOT_BACKGROUND)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(PLOT_FOREGROUND)
        axis.setTextPen(PLOT_FOREGROUND)
        # the numbers as they are: no "(x1e+27)" scale in the label, no cut label
        axis.enableAutoSIPrefix(False)
    plot.setMenuEnabled(False)


class HeatmapMixin:
    """2-D heatmaps, slices of N-D values and the filter grid of 4-D weights."""

    def _build_heatmap(self) -> QWidget:
        view = pg.GraphicsLayoutWidget()
        view.setBackground(PLOT_BACKGROUND)
        view.setMinimumHeight(110)
        self._heat_plot = view.addPlot()
        style_plot(self._heat_plot)
        self._heat_plot.invertY(True)
        self._heat_plot.setLabel("left", "row")
        self._heat_plot.setLabel("bottom", "column")
        self._image = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self._heat_plot.addItem(self._image)
        self._bad_overlay = pg.ImageItem(axisOrder="row-major")  # NaN/Inf cells
        self._bad_overlay.setZValue(1)
        self._heat_plot.addItem(self._bad_overlay)
        self._hover = pg.SignalProxy(view.scene().sigMouseMoved, rateLimit=30, slot=self._on_hover)
        cmap = pg.colormap.get("CET-D1" if self._diverging else "viridis")
        self._colorbar = pg.ColorBarItem(colorMap=cmap, interactive=False, width=12)
        self._colorbar.setImageItem(self._image, insert_in=self._heat_plot)
        self._colorbar.getAxis("right").setPen(PLOT_FOREGROUND)
        self._colorbar.getAxis("right").setTextPen(PLOT_FOREGROUND)
        return view

    def _update_heatmap(self, image: np.ndarray) -> None:
        if image.dtype.kind == "c":
            image = image.real
        elif image.dtype.kind == "b":
            image = image.astype(np.uint8)
        lo, hi = self._levels(image)
        self._image.setImage(image, autoLevels=False, levels=(lo, hi))
        h, w = image.shape
        self._image.setRect(QRectF(-0.5, -0.5, w, h))  # cell (r, c) centred on (c, r)
        self._colorbar.setLevels(low=lo, high=hi)
        self._update_bad_overlay(image)
        self._update_heat_axes(h, w)
        # tiles: square cells, a filter looks like one; a matrix fills the panel
        self._heat_plot.setAspectLocked(self._grid is not None)
        self._heat_plot.setRange(xRange=(-0.5, w - 0.5), yRange=(-0.5, h - 0.5), padding=0)
        self._values_stack.setCurrentIndex(1)

    def _update_heat_axes(self, h: int, w: int) -> None:
        """Whole-number ticks on cells; a tile grid is labelled by channel."""
        plot = self._heat_plot
        if self._grid is not None:
            rows, cols, (out, inp, kh, kw) = self._grid
            across = [(c * (kw + 1) + (kw - 1) / 2, str(c)) for c in range(cols)]
            down = [(r * (kh + 1) + (kh - 1) / 2, str(r)) for r in range(rows)]
            plot.getAxis("bottom").setTicks([across])
            plot.getAxis("left").setTicks([down])
            plot.setLabel("bottom", "input channel" if inp > 1 else "filter (column)")
            plot.setLabel("left", "output channel" if inp > 1 else "filter (row)")
            return
        for name, n in (("bottom", w), ("left", h)):
            step = max(1, int(np.ceil(n / 6)))
            plot.getAxis(name).setTicks([[(k, str(k)) for k in range(0, n, step)]])
        plot.setLabel("left", "row")
        plot.setLabel("bottom", "column")

    def _update_bad_overlay(self, image: np.ndarray) -> None:
        stats = self._stats
        bad = None
        if image.dtype.kind == "f" and not (stats is not None and stats.finite):
            bad = ~np.isfinite(image)
        if bad is None or not bad.any():
            self._bad_overlay.clear()
            self._legend = ""
            self._values_caption.setText("")
            return
        self._legend = f'<span style="color:{WARNING_COLOR}">■ NaN/Inf</span>&nbsp;&nbsp;'
        self._values_caption.setText(self._legend)
        pixel = np.frombuffer(bytes(QColor(WARNING_COLOR).getRgb()), dtype=np.uint32)[0]
        packed = np.where(bad, pixel, np.uint32(0))  # RGBA bytes; transparent where finite
        rgba = packed.view(np.uint8).reshape(*image.shape, 4)
        self._bad_overlay.setImage(rgba, autoLevels=False)
        self._bad_overlay.setRect(QRectF(-0.5, -0.5, image.shape[1], image.shape[0]))

    def _levels(self, image: np.ndarray) -> tuple[float, float]:
        stats = self._stats
        if stats is not None and np.isfinite([stats.min, stats.max]).all():
            lo, hi = stats.min, stats.max
        else:
            sample = image.ravel()[:: max(1, image.size // SAMPLE_LIMIT)]
            sample = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample
            lo, hi = (float(sample.min()), float(sample.max())) if sample.size else (0.0, 1.0)
        if self._diverging:
            hi = max(abs(lo), abs(hi))
            lo = -hi
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        return float(lo), float(hi)

    def _on_slice_changed(self) -> None:
        a = self._array
        if a is None or a.ndim < 2 or a.size == 0:
            return
        self._grid = None
        for spin in self._slice_spins:
            spin.setEnabled(not self.tiled())
        if self.tiled():
            image, rows, cols = tile_filters(a)
            self._grid = (rows, cols, a.shape)
            self._slice_label.setText(
                f"{a.shape[0]}×{a.shape[1]} tiles of {a.shape[2]}×{a.shape[3]}"
            )
            self._update_heatmap(image)
            return
        index = self.slice_index()
        if index:
            self._slice_label.setText("[" + ", ".join(map(str, index)) + ", :, :]")
        self._update_heatmap(a[index] if index else a)

    def tiled(self) -> bool:
        """The heatmap shows every filter of a 4-D weight as a tile (by default when
        there are at most MAX_TILES: a batch of activations is shown a slice at a time)."""
        a = self._array
        if a is None or a.ndim != 4:
            return False
        return self._tiles if self._tiles is not None else a.shape[0] * a.shape[1] <= MAX_TILES

    def set_tiled(self, on: bool) -> None:
        """4-D weights: every filter as a tile (on), or one 2-D slice (off)."""
        self._on_tiles_toggled(on)

    def _on_tiles_toggled(self, on: bool | None) -> None:
        self._tiles = on
        self._on_slice_changed()

    def _on_hover(self, event) -> None:
        image = self._image.image
        if image is None or self._values_stack.currentIndex() != 1:
            return
        point = self._heat_plot.getViewBox().mapSceneToView(event[0])
        row, col = int(np.floor(point.y() + 0.5)), int(np.floor(point.x() + 0.5))
        if 0 <= row < image.shape[0] and 0 <= col < image.shape[1]:
            index = (*self.slice_index(), row, col)
            if self._grid is not None:
                index = self._tile_index(row, col)
                if index is None:
                    return
            value = format_number(image[row, col])
            where = ", ".join(map(str, index))
            self._values_caption.setText(f"{self._legend}[{where}] = {value}")

    def _tile_index(self, row: int, col: int) -> tuple[int, ...] | None:
        rows, cols, (out, inp, h, w) = self._grid
        (tr, r), (tc, c) = divmod(row, h + 1), divmod(col, w + 1)
        if r == h or c == w:
            return None  # between tiles
        if inp == 1:
            k = tr * cols + tc
            return (k, 0, r, c) if k < out else None
        return (tr, tc, r, c)

    def heatmap_image(self) -> np.ndarray | None:
        """The 2-D array the heatmap draws, or None when no heatmap is shown."""
        if self._values_stack.currentIndex() != 1:
            return None
        return self._image.image

    def set_slice(self, index: tuple[int, ...]) -> None:
        """Pick the 2-D slice ``array[index]`` of an N-D tensor (N > 2)."""
        for spin, i in zip(self._slice_spins, index, strict=True):
            spin.blockSignals(True)
            spin.setValue(i)
            spin.blockSignals(False)
        self._on_slice_changed()

    def slice_index(self) -> tuple[int, ...]:
        return tuple(spin.value() for spin in self._slice_spins)

    def _update_slice_chooser(self) -> None:
        ndim = 0 if self._array is None else self._array.ndim
        self._slice_spins = []
        while self._slice_layout.count():
            widget = self._slice_layout.takeAt(0).widget()
            if widget is not None and widget is not self._slice_label:
                widget.deleteLater()
        self._slice_row.setVisible(ndim > 2)
        if ndim <= 2:
            return
        if ndim == 4:
            tiles = QCheckBox("tiles")
            tiles.setToolTip("Every (out, in) filter as a tile; off: one 2-D slice")
            tiles.setChecked(self.tiled())
            tiles.toggled.connect(self._on_tiles_toggled)
            self._slice_layout.addWidget(tiles)
        self._slice_layout.addWidget(QLabel("slice"))
        for size in self._array.shape[:-2]:
            spin = QSpinBox()
            spin.setRange(0, max(size - 1, 0))
            spin.valueChanged.connect(self._on_slice_changed)
            self._slice_spins.append(spin)
            self._slice_layout.addWidget(spin)
        self._slice_layout.addWidget(self._slice_label)
        self._slice_layout.addStretch(1)
