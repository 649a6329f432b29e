"""Work off the GUI thread: a function in the thread pool, its result back on the
GUI thread (loading and saving recordings, gradient checks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class _Signals(QObject):
    done = Signal(object)


class _Job(QRunnable):
    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__()
        self.work = work
        self.signals = _Signals()
        self.setAutoDelete(False)

    def run(self) -> None:
        try:
            result = self.work()
        except Exception as exc:  # delivered to the GUI thread and shown to the user
            result = exc
        self.signals.done.emit(result)


class Jobs:
    """Runs jobs in the global thread pool and keeps them alive until done."""

    def __init__(self) -> None:
        self._running: set[_Job] = set()

    def run(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """``done(result)`` on the GUI thread; an exception is passed as the result."""
        job = _Job(work)
        self._running.add(job)

        def finish(result: Any) -> None:
            self._running.discard(job)
            done(result)

        job.signals.done.connect(finish)
        QThreadPool.globalInstance().start(job)

    def __len__(self) -> int:
        return len(self._running)
