"""The graph's tidy pass in the thread pool: a cancellable ``Layout.relayout``."""

from __future__ import annotations

from PySide6.QtCore import QObject, QRunnable, Signal

from widgets.layout import Layout, LayoutCancelled


class LayoutSignals(QObject):
    progress = Signal(float)
    done = Signal(object, int)  # stats or an exception, generation


class RelayoutTask(QRunnable):
    """Runs ``Layout.relayout`` in the thread pool; cancellable."""

    def __init__(self, layout: Layout, generation: int, collapsed: dict[str, float]) -> None:
        super().__init__()
        self.layout, self.generation, self.collapsed = layout, generation, collapsed
        self.signals = LayoutSignals()
        self.cancelled = False

    def run(self) -> None:
        def progress(fraction: float) -> bool:
            self.signals.progress.emit(fraction)
            return not self.cancelled

        try:
            stats = self.layout.relayout(collapsed=self.collapsed, progress=progress)
        except LayoutCancelled as exc:
            stats = exc
        except Exception as exc:  # keep the app alive; the view reports it
            stats = exc
        self.signals.done.emit(stats, self.generation)
