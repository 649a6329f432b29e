"""Compiled runs in the debugger, and the Analyze menu.

A mixin of ``MainWindow`` (app/main_window.py). The toolbar's Mode chooses
Eager or Compiled for the next run; a compiled run's graph is drawn from the
ops its kernels cover (``core.deferred.narrate``), a fused kernel as a box, and
stepping stops at each kernel. The Compiled Code panel shows the generated
code of the kernel at the cursor or of the selected node. Profile and Compare
run the open program in the background (``app.analysis``) and fill their
panels.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from app.analysis import Analysis
from core.observe.events import KernelRun, OpForward

ANALYSIS_SHARE = 0.5  # of the window's height, for the Profile and Compare panels
KERNEL_LOOKAHEAD = 4096  # events scanned after an op for its kernel's KernelRun


def kernel_run_after(events: list, index: int) -> KernelRun | None:
    """The KernelRun of the kernel that computed the op at ``index`` (it follows
    the ops it covers); None for an eager op."""
    event = events[index]
    if type(event) is KernelRun:
        return event
    k = getattr(event, "kernel", None) if type(event) is OpForward else None
    if k is None:
        return None
    for i in range(index + 1, min(len(events), index + KERNEL_LOOKAHEAD)):
        e = events[i]
        if type(e) is KernelRun and e.kernel == k:
            return e
    return None


class CompiledMixin:
    """Mode, the Compiled Code panel, Profile and Compare."""

    def _build_analysis(self) -> None:
        self._code_placed = False
        self.analysis = Analysis(self._analysis_note)
        self.profile_view = self.analysis.profile_view
        self.compare_view = self.analysis.compare_view

    def run_mode(self) -> str:
        return self.mode.currentData() or "eager"

    def _code_beside_source(self) -> None:
        """A compiled run shows the Source and the Compiled Code together (the
        code under the source), once; the user's own arrangement stays after."""
        if self._code_placed:
            return
        self._code_placed = True
        code, source = self.docks["code"], self.docks["source"]
        if code.isFloating() or self.dockWidgetArea(code) != self.dockWidgetArea(source):
            return
        # out of the Samples/Source tabs (a tab holds one panel), under them
        self.removeDockWidget(code)
        self.addDockWidget(self.dockWidgetArea(source), code, Qt.Orientation.Vertical)
        code.show()
        source.raise_()

    def _on_mode_changed(self, _index: int) -> None:
        """A paused run starts again, paused, in the chosen mode; otherwise the
        mode is for the next run."""
        mode = self.mode.currentText()
        if self._paused():
            self.bridge.shutdown()
            self.start_run(paused=True)
            self._analysis_note(f"{mode} mode: started again, paused before the first op")
        else:
            self.code_view.clear(compiled=self.run_mode() == "compiled")
            self._analysis_note(f"{mode} mode: F5 runs the program, F11 steps into it")

    def _analysis_note(self, text: str) -> None:
        self.reason = text
        self.status_reason.setText(text)

    # -- the kernel of the cursor or selection ------------------------------------------------

    def _show_kernel_at(self, index: int | None, fallback: int | None = None) -> None:
        """The Compiled Code panel follows the event at ``index`` (a kernel, or an
        op a kernel computed); where that is none (the run's end, a step's
        start), the kernel of the event at ``fallback``: the selected node's."""
        rec = self.recording
        run = None
        for at in (index, fallback):
            if run is None and rec is not None and at is not None and 0 <= at < len(rec):
                run = kernel_run_after(rec.events, at)
        if run is None:
            self.code_view.clear(compiled=self._compiled_recording())
            return
        self.code_view.show_kernel(
            run.kernel, run.name, len(run.nodes), run.phase, self._kernel_code(run)
        )

    def _compiled_recording(self) -> bool:
        rec = self.recording
        return rec is not None and rec.meta.get("mode") == "compiled"

    def _kernel_code(self, run: KernelRun) -> str | None:
        s = self._session()
        if s is not None and s.recording is self.recording:
            code = s.kernel_code(run.kernel, run.name)
            if code is not None:
                return code
        stored: Any = self.recording.meta.get("kernel_code") if self.recording else None
        if isinstance(stored, dict):
            code = stored.get(f"{run.kernel} {run.name}")
            return code if isinstance(code, str) else None
        return None

    # -- Analyze --------------------------------------------------------------------------------

    def profile_program(self) -> None:
        """Profile the open program eager and compiled, on the CPU and the GPU."""
        path = self._analysis_path()
        if path is None:
            return
        self._show_panel("profile")
        self.analysis.profile(path, steps=self.steps.value() or 20, done=self._analysis_done)
        self._update_controls()

    def compare_program(self) -> None:
        """Run the open program eager and compiled and compare them."""
        path = self._analysis_path()
        if path is None:
            return
        self._show_panel("compare")
        self._analysis_note(f"comparing eager and compiled runs of {path}…")
        self.analysis.compare(path, steps=self.steps.value() or 10, done=self._analysis_done)
        self._update_controls()

    def _show_panel(self, name: str) -> None:
        """Show an analysis panel at half the window's height at least: its
        tables and charts need the room (the splitter gives it back)."""
        dock = self.docks[name]
        dock.show()
        dock.raise_()
        want = int(self.height() * ANALYSIS_SHARE)
        if dock.height() < want:
            self.resizeDocks([dock], [want], Qt.Orientation.Vertical)

    def _analysis_done(self, _result: Any) -> None:
        self._update_controls()

    def _analysis_path(self) -> str | None:
        if self.program is None:
            self.status_reason.setText("Open a program first (Ctrl+O)")
            return None
        if self.analysis.busy:
            self.status_reason.setText("A profile or comparison is already running")
            return None
        return self.program.path
