"""Files: opening programs and recordings, saving, exporting, recent files.

A mixin of ``MainWindow`` (app/main_window.py). Recording files load and save
in the thread pool (``app.jobs``); errors go to ``show_problem`` and nothing
else changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QFileDialog, QMessageBox

from app.param_series import ParamSeries
from core.debug import graphfile, recfile
from core.debug import program as programs
from core.debug.recording import Recording
from widgets.breakpoints import from_json

NO_SOURCE_TEXT = (
    "This recording does not hold its program's text (it was saved before recordings "
    "kept it). Open the program itself to see its source."
)

MAX_RECENT = 10
FILE_FILTER = (
    "Programs, graphs and recordings (*.py *.gsgraph *.gsrec);;Programs (*.py);;"
    "Saved compiled graphs (*.gsgraph);;Recordings (*.gsrec)"
)
OPENED = (".py", ".gsgraph", ".gsrec")  # what Open and a drop take


class FilesMixin:
    """Open, save, export; the recent-files menu."""

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, path: str) -> None:
        recent = [path] + [p for p in self.recent_files() if p != path]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        if path.endswith(".py"):
            self.settings.setValue("last_program", path)
        self._update_recent_menu()

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(recent))

    def _breakpoints_key(self) -> str | None:
        if self.program is None:
            return None
        return "breakpoints/" + self.program.path.replace("/", "|")

    # -- opening ------------------------------------------------------------------------

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open", self.samples_dir, FILE_FILTER)
        if path:
            self.open_path(path)

    def open_path(self, path: str, *, then: str = "pause") -> bool:
        """Open a program (see ``open_program``) or a recording; errors show,
        nothing is lost."""
        if path.endswith(".gsrec"):
            self.open_recording(path)
            return True
        return self.open_program(path, then=then)

    def open_program(self, path: str, *, then: str = "pause") -> bool:
        """Read a program; ``then`` "pause" starts it paused before its first op
        (what a user gets), "run" runs it, "load" only reads it. Its code runs in
        the run's worker (never here): an error there shows as the run's error."""
        try:
            program = graphfile.read_any(path)
        except programs.ProgramError as exc:
            self.show_problem(f"Could not open {path}", str(exc))
            return False
        self.bridge.shutdown()
        if self.program is not None and self.program.path != program.path:
            self.steps.setValue(self.steps.minimum())  # the program's own number
        self.program = program
        if program.compiled:  # a saved graph runs compiled only
            self.mode.blockSignals(True)
            self.mode.setCurrentIndex(self.mode.findData("compiled"))
            self.mode.blockSignals(False)
        self._watch(program.path)
        self.setWindowTitle(f"{program.title} — Gradstep")
        self.source.set_source(program.path, program.source)
        self.about.show_program(program.title, program.description)
        self.samples.set_current_path(program.path)
        key = self._breakpoints_key()
        self.breakpoints.set_breakpoints(from_json(self.settings.value(key, "[]")))
        self._remember(program.path)
        self.clear_problem()
        if then != "load":
            self.start_run(paused=then == "pause")
        self._update_controls()
        return True

    def reload_program(self) -> bool:
        """Read the open program's file again; on an error it says why and the
        program loaded before stays."""
        try:
            program = graphfile.read_any(self.program.path)
        except programs.ProgramError as exc:
            self.show_problem(f"Could not reload {self.program.path}", str(exc))
            return False
        self.program = program
        self.source.set_source(program.path, program.source)
        self.setWindowTitle(f"{program.title} — Gradstep")
        self.changed_note.hide()
        return True

    def _watch(self, path: str) -> None:
        """Notice when the open program's file changes on disk."""
        old = self.watcher.files()
        if old:
            self.watcher.removePaths(old)
        self.watcher.addPath(path)
        self.changed_note.hide()

    def _on_file_changed(self, path: str) -> None:
        if self.program is None or path != self.program.path:
            return
        if os.path.exists(path) and path not in self.watcher.files():
            self.watcher.addPath(path)  # an editor saved by replacing the file
        name = os.path.basename(path)
        self.changed_note.setText(
            f"{name} changed on disk. <a href='reload'>Reload and restart</a> (Ctrl+Shift+F5)"
        )
        self.changed_note.show()

    def open_recording(self, path: str) -> None:
        """Load a recording in the thread pool; the status bar shows progress."""
        self._load_token += 1
        token = self._load_token
        self.status_reason.setText(f"Opening {os.path.basename(path)}…")
        self.layout_busy.show()
        self.layout_progress.setRange(0, 0)  # busy

        def done(result: Any) -> None:
            if token != self._load_token:
                return  # cancelled or superseded
            self.layout_busy.hide()
            self.layout_progress.setRange(0, 100)
            if isinstance(result, Exception):
                self.show_problem(f"Could not open {path}", str(result))
                return
            self.bridge.shutdown()
            self.program = None
            self._show_recording(result, os.path.basename(path))
            self._remember(os.path.abspath(path))

        self._run_job(lambda: recfile.load(path), done)

    def _show_recording(self, rec: Recording, title: str) -> None:
        self.recording = rec
        self.setWindowTitle(f"{title} — Gradstep")
        self.samples.set_current_path("")  # no program is open now
        self.about.hide()
        # the text the recording holds, never a file its (untrusted) path names
        stored = rec.program_source()
        if stored is not None:
            self.source.set_source(*stored)
        else:
            self.source.set_source("", "")
            self.source.setPlaceholderText(NO_SOURCE_TEXT)
        self.event_log.reset(rec.events, forward=rec.nodes)
        self.event_log.extend()
        self.loss.set_losses([s for s, _ in rec.losses], [v for _, v in rec.losses])
        self.param_series = ParamSeries()
        self.params.clear()
        self.graph.clear()
        self.seek(len(rec.events) - 1)
        self.reason = "recording"
        self._on_state("finished", f"recording {title}: {len(rec)} events")

    # -- files ---------------------------------------------------------------------------------

    def save_dialog(self) -> None:
        if self.recording is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save recording", "run.gsrec", "Recordings (*.gsrec)"
        )
        if path:
            self.save_recording(path)

    def save_recording(
        self, path: str, on_done: Callable[[Any], None] | None = None, *, force: bool = False
    ) -> None:
        """Save the recording in the thread pool; a read-only file is replaced
        only once the user says so."""
        rec = self.recording
        self.status_reason.setText(f"Saving {os.path.basename(path)}…")

        def done(result: Any) -> None:
            if getattr(result, "read_only", False) and not force and self._confirm_replace(path):
                self.save_recording(path, on_done, force=True)
                return
            if isinstance(result, Exception):
                self.show_problem(f"Could not save {path}", str(result))
            else:
                self.status_reason.setText(f"Saved {path}")
                self._remember(os.path.abspath(path))
            if on_done is not None:
                on_done(result)

        self._run_job(lambda: recfile.save(rec, path, force=force), done)

    def _confirm_replace(self, path: str) -> bool:
        answer = QMessageBox.question(
            self,
            "Replace a read-only file?",
            f"{path} is read-only. Replace it with this recording?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def _export(self, kind: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export graph", f"graph.{kind}", f"*.{kind}")
        if not path:
            return
        try:
            if kind == "png":
                self.graph.export_png(path)
            else:
                self.graph.export_svg(path)
            self.status_reason.setText(f"Exported {path}")
        except OSError as exc:
            self.show_problem(f"Could not export {path}", str(exc))

    def _run_job(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self.jobs.run(work, done)

    def _cancel_long_work(self) -> None:
        """Cancel the relayout or recording load in progress."""
        self.graph.cancel_relayout()
        self._load_token += 1
        self.layout_busy.hide()
        self.layout_progress.setRange(0, 100)
        self.status_reason.setText("Cancelled")

    def _on_layout_progress(self, fraction: float) -> None:
        if fraction >= 1.0:
            self.layout_busy.hide()
        else:
            self.layout_busy.show()
            self.layout_progress.setValue(int(fraction * 100))

    # -- drag and drop ---------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if any(u.toLocalFile().endswith(OPENED) for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            path = url.toLocalFile()
            if path.endswith(OPENED):
                self.open_path(path)
                break
