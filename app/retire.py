"""A replaced run's recording, freed a slice per turn of the event loop.

Starting a run after a 3,000-step run of ``mlp_moons.py`` dropped the last
reference to its recording (282,000 events, 231,000 kept arrays and the
indexes over them) on the GUI thread: 130-215 ms in which nothing was drawn
and no key was read. Freeing it from another thread does not help: freeing
holds the GIL, and the GUI thread waits for it all the same. So the window
keeps the old recording and empties it here, SLICE objects per turn, between
the events it handles.

A recording a save is still reading (a job in the pool) is left whole: its
last reference goes as before.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from PySide6.QtCore import QObject, QTimer

from core.debug.recording import Recording

SLICE = 4000  # objects freed per turn (about 1-2 ms)
TURN_MS = 5  # between turns: the run and the window get theirs


class Retirer(QObject):
    """Empties recordings handed to ``retire``, a slice per timer turn."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._parts: deque[Any] = deque()  # lists and dicts still to empty
        self._timer = QTimer(self)
        self._timer.setInterval(TURN_MS)
        self._timer.timeout.connect(self._turn)

    def retire(self, rec: Recording) -> None:
        """Empty ``rec`` bit by bit: its events, values and indexes. The caller
        makes sure nothing reads it any more (no run appends to it, no save)."""
        self._parts.extend(rec.containers())
        self._timer.start()

    def pending(self) -> int:
        """Objects still to free."""
        return sum(len(part) for part in self._parts)

    def _turn(self) -> None:
        budget = SLICE
        while self._parts and budget > 0:
            part = self._parts[0]
            n = min(budget, len(part))
            if isinstance(part, dict):
                for _ in range(n):
                    part.popitem()
            else:
                del part[len(part) - n :]
            budget -= n
            if not part:
                self._parts.popleft()
        if not self._parts:
            self._timer.stop()
