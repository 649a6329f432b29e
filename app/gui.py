"""Starting the desktop app, and rendering it offscreen for screenshots."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence

NEURON = "neuron.py"


def _app():
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Gradstep")
    app.setOrganizationName("Gradstep")
    return app


def run_gui(path: str | None = None) -> int:
    """Open the main window on ``path`` (default: the last program, else the neuron)."""
    app = _app()
    from app.main_window import SAMPLES_DIR, MainWindow

    window = MainWindow()
    warm_statistics()
    if path is None:
        last = window.settings.value("last_program")
        path = last if isinstance(last, str) and os.path.exists(last) else None
    if path is None:
        path = os.path.join(SAMPLES_DIR, NEURON)
    window.show()
    if os.path.exists(path) or path.endswith((".py", ".gsgraph", ".gsrec")):
        window.open_path(path)
    return app.exec()


def warm_statistics() -> threading.Thread:
    """Load the statistics kernels (Numba: about 0.6 s, once) off the GUI thread,
    before a recording's inspector or a run first asks for statistics."""
    from core.observe import moments

    thread = threading.Thread(target=moments.backend, name="gradstep-stats-warmup", daemon=True)
    thread.start()
    return thread


def _wait(app, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.002)
    app.processEvents()
    return True


def screenshot(
    program: str,
    out: str,
    *,
    steps: int,
    until: str = "end",
    select: str | None = None,
    size: Sequence[int] = (1400, 860),  # the window's own default size
    timeout: float = 120.0,
    mode: str = "eager",
    show: str = "graph",
) -> str:
    """Render the main window after ``steps`` steps of ``program`` to ``out`` (PNG).

    ``until``: "end" (after the steps), "forward" (half way through the forward
    pass of the next step), "backward" (half way through its backward pass).
    ``select`` names a node to select (its name, e.g. "fc1.linear"; the first whose
    name contains it). ``mode``: "eager" or "compiled" (the toolbar's Mode).
    ``show``: "graph" (the debugger), "profile" or "compare" (the Analyze menu's
    panel, filled for the program and enlarged).
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = _app()
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow
    from core.debug.session import Breakpoint

    settings = QSettings(
        os.path.join(os.path.dirname(os.path.abspath(out)), ".gradstep-shot.ini"),
        QSettings.Format.IniFormat,
    )
    settings.clear()
    window = MainWindow(settings=settings)
    window.resize(*size)
    window.show()
    if not window.open_program(program, then="load"):
        raise RuntimeError(window.problems.toPlainText().strip())
    if until != "end":
        window.breakpoints.set_breakpoints([Breakpoint("step", steps)])
    window.steps.setValue(steps + (1 if until != "end" else 0))
    window.mode.setCurrentIndex(max(0, window.mode.findData(mode)))
    window.start_run()
    session = window.bridge.session

    def settled() -> bool:
        # the worker has stopped and the window has shown that state
        state = session.state
        stopped = state in ("paused", "finished", "stopped", "errored")
        return stopped and window.status_phase.text().startswith(state)

    if not _wait(app, settled, timeout):
        raise RuntimeError(f"the run did not reach step {steps} within {timeout} s")
    if session.state == "errored":
        raise RuntimeError(session.error.message)
    if until in ("forward", "backward"):
        _step_to_middle(app, window, until, timeout)
        _wait(app, settled, timeout)
    _wait(app, lambda: not window.graph.busy, timeout)
    if select:
        index = window.graph.search(select)
        if index is None:
            raise RuntimeError(f"no node named {select!r}")
    window.graph.fit()
    if show in ("profile", "compare"):
        _show_analysis(app, window, show, timeout)
    app.processEvents()
    image = window.grab()
    if not image.save(out):
        raise OSError(f"could not write {out}")
    window.bridge.shutdown()
    window.close()
    try:
        os.remove(settings.fileName())
    except OSError:
        pass
    return out


def _show_analysis(app, window, show: str, timeout: float) -> None:
    """Profile or compare the program, then give its panel most of the window."""
    from PySide6.QtCore import Qt

    (window.profile_program if show == "profile" else window.compare_program)()
    if not _wait(app, lambda: not window.analysis.busy, timeout):
        raise RuntimeError(f"the {show} did not finish within {timeout} s")
    dock = window.docks[show]
    dock.raise_()
    window.resizeDocks([dock], [int(window.height() * 0.62)], Qt.Orientation.Vertical)
    app.processEvents()


def _step_to_middle(app, window, phase: str, timeout: float) -> None:
    """Step into the paused step until half of its forward or backward ops ran."""
    from core.observe.events import KernelRun, OpBackward, OpForward

    session = window.bridge.session
    rec = session.recording

    def wanted(event) -> bool:
        if type(event) is KernelRun:  # a compiled step: its kernels
            return event.phase == phase
        if phase == "forward":
            return type(event) is OpForward and event.phase == "forward"
        return type(event) is OpBackward

    steps = rec.steps
    previous = rec.events[steps[-2] : steps[-1]] if len(steps) > 1 else []
    total = sum(1 for e in previous if wanted(e)) or 2
    seen = 0
    while session.state == "paused" and seen < total // 2:
        before = len(rec.events)
        window.step_into()
        _wait(
            app,
            lambda b=before: (
                session.done
                or (
                    session.state == "paused"
                    and len(rec.events) > b
                    and window.status_phase.text().startswith("paused")
                )
            ),
            timeout,
        )
        if wanted(rec.current()):
            seen += 1
    window.bridge.drain()
    window._show_cursor(select=True)
