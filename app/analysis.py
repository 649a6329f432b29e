"""Profiling and comparing a program from the app: the work runs in the thread
pool, progress comes back on the GUI thread, Cancel stops it between steps,
and the results go to the profile and compare views."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.jobs import Jobs
from core.debug import compare as comparing
from core.debug import profile as profiling
from core.device import is_available, unavailable_reason
from widgets.compare_view import CompareView
from widgets.profile_view import ProfileView


class _Progress(QObject):
    """Carries progress from the worker to the GUI thread (a queued signal)."""

    changed = Signal(int, int, str)


class Analysis:
    """Owns the two views and the jobs that fill them."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        self.profile_view = ProfileView()
        self.compare_view = CompareView()
        self._notify = notify  # a line for the status bar
        self._jobs = Jobs()
        self._cancel = threading.Event()
        self._progress = _Progress()
        self._progress.changed.connect(self.profile_view.set_progress)
        self.profile_view.sig_cancel.connect(self.cancel)
        self.busy = False

    def devices(self) -> tuple[str, ...]:
        """The devices a profile runs on: the GPU too, or its row says why not."""
        return ("cpu", "cuda")

    def profile(self, path: str, steps: int = 20, done: Callable[[Any], None] | None = None):
        """Profile ``path`` eager and compiled on every device, in the background."""
        if self.busy:
            self._notify("a profile or comparison is already running")
            return
        self.busy = True
        self._cancel.clear()
        self.profile_view.set_progress(0, 1, "starting")
        if not is_available():
            self._notify(f"profiling on the CPU only: {unavailable_reason()}")

        def work() -> Any:
            return profiling.profile_matrix(
                path,
                self.devices(),
                profiling.MODES,
                steps=steps,
                progress=self._progress.changed.emit,
                cancelled=self._cancel.is_set,
            )

        def finish(result: Any) -> None:
            self.busy = False
            self.profile_view.set_progress(1, 1, "")
            if isinstance(result, profiling.ProfileCancelled):
                self._notify("profile cancelled")
            elif isinstance(result, Exception):
                self._notify(f"profile failed: {result}")
            else:
                self.profile_view.set_runs(result)
                self._notify(f"profiled {len(result)} runs of {path}")
            if done is not None:
                done(result)

        self._jobs.run(work, finish)

    def compare(self, path: str, steps: int = 10, done: Callable[[Any], None] | None = None):
        """Run ``path`` eager and compiled side by side, in the background."""
        if self.busy:
            self._notify("a profile or comparison is already running")
            return
        self.busy = True

        def finish(result: Any) -> None:
            self.busy = False
            if isinstance(result, Exception):
                self._notify(f"comparison failed: {result}")
            else:
                self.compare_view.set_comparison(result)
                verdict = "agree" if result.ok else "DISAGREE"
                self._notify(f"eager and compiled {verdict} over {steps} steps")
            if done is not None:
                done(result)

        self._jobs.run(lambda: comparing.compare(path, steps), finish)

    def cancel(self) -> None:
        self._cancel.set()
