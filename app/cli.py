"""The ``gradstep`` command line.

    gradstep                       the desktop app, on the last program or the neuron
    gradstep PROGRAM.py|FILE.gsgraph|FILE.gsrec   the desktop app on that file
    gradstep run PROGRAM.py|FILE.gsgraph [--steps N] [--device cpu|cuda]
                            [--mode eager|compiled] [--record FILE]
                            [--trace FILE] [--break-on-nan] [--cap-mib N] [--force]
    gradstep compile PROGRAM.py --out FILE.gsgraph [--device cpu|cuda] [--batches N]
    gradstep profile PROGRAM.py [...] [--devices cpu,cuda] [--modes eager,compiled]
                            [--steps N] [--trace FILE] [--json FILE]
    gradstep compare PROGRAM.py [--steps N]
    gradstep inspect FILE.gsrec
    gradstep doctor
    gradstep screenshot PROGRAM.py --steps N --out FILE.png [--until backward]

Exit status of ``run``: 0 the run finished; 1 it failed (an error in the program,
``sys.exit()`` in it, a step that returned no usable loss); 2 an error a user can
cause before the run (a bad argument, a file that is not a program, a program that
fails to load), one clear line; 3 it stopped at a breakpoint (``--break-on-nan``);
130 interrupted (Ctrl+C, or a ``KeyboardInterrupt`` in the program). Arguments and
output files are checked before the run; the recording is saved before the summary
is printed, and a closed pipe on stdout ends the output quietly.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from core.errors import GradstepError
from core.observe.events import StepEnded

SUBCOMMANDS = ("run", "compile", "profile", "compare", "inspect", "doctor", "screenshot", "gui")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradstep", description="Step through autograd graphs: run, record, inspect."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a program headless, with a progress bar")
    run.add_argument("program", help="a model program (.py) or a saved graph (.gsgraph)")
    run.add_argument(
        "--steps", type=int, default=None, help="training steps (default: the program's)"
    )
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    run.add_argument("--record", metavar="FILE", help="save the recording (.gsrec)")
    run.add_argument("--trace", metavar="FILE", help="save a Chrome trace (.json)")
    run.add_argument("--break-on-nan", action="store_true", help="stop at the first NaN/Inf")
    run.add_argument(
        "--cap-mib",
        type=int,
        default=512,
        help="memory cap of the recording, values and events (MiB; default 512)",
    )
    run.add_argument("--force", action="store_true", help="replace read-only output files")
    run.add_argument(
        "--mode",
        choices=("eager", "compiled"),
        default="eager",
        help="compiled: run the step through core.compile (traced on the first step)",
    )
    comp = sub.add_parser("compile", help="trace, optimize and save a program's step")
    comp.add_argument("program", help="a model program (.py)")
    comp.add_argument("--out", required=True, help="the graph file to write (.gsgraph)")
    comp.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    comp.add_argument(
        "--batches",
        type=int,
        default=None,
        metavar="N",
        help="batches of the program kept in the file, for a run of the file alone "
        "(default: one per step of the program, at most 64 MiB)",
    )
    comp.add_argument(
        "--show",
        choices=("none", "graph", "passes", "code"),
        default="none",
        help="print the optimized graph, the graph after each pass, or the generated code",
    )
    from app.cli_profile import add_commands

    add_commands(sub)
    inspect = sub.add_parser("inspect", help="describe what a recording holds")
    inspect.add_argument("file", help="a .gsrec recording")
    sub.add_parser("doctor", help="check Python, NumPy, CuPy/GPU and Qt")
    gui = sub.add_parser("gui", help="open the desktop app (the default)")
    gui.add_argument(
        "file", nargs="?", help="a program (.py), a saved graph (.gsgraph) or a recording (.gsrec)"
    )
    shot = sub.add_parser("screenshot", help="render the main window offscreen to a PNG")
    shot.add_argument("program", help="a model program (.py)")
    shot.add_argument("--steps", type=int, required=True, help="steps to run first")
    shot.add_argument("--out", required=True, help="the PNG to write")
    shot.add_argument(
        "--until",
        choices=("end", "forward", "backward"),
        default="end",
        help="stop half way through the next step's forward or backward pass",
    )
    shot.add_argument("--select", help="a node to select, by name (e.g. fc1.linear)")
    shot.add_argument(
        "--size", default="1400x860", help="window size, WIDTHxHEIGHT (the app's default)"
    )
    shot.add_argument(
        "--mode", choices=("eager", "compiled"), default="eager", help="run eager or compiled"
    )
    shot.add_argument(
        "--show",
        choices=("graph", "profile", "compare"),
        default="graph",
        help="the panel to show: the graph, a profile (CPU/GPU, eager/compiled) or a comparison",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from core.memory import tune_process

    tune_process()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in SUBCOMMANDS and not argv[0].startswith("-")):
        argv.insert(0, "gui")
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args, sys.stdout, sys.stderr)
        if args.command in ("profile", "compare"):
            from app import cli_profile

            if args.command == "profile":
                return cli_profile.cmd_profile(args, sys.stdout, sys.stderr)
            return cli_profile.cmd_compare(args, sys.stdout, sys.stderr)
        if args.command == "compile":
            from app.cli_compile import cmd_compile

            return cmd_compile(args, sys.stdout)
        if args.command == "inspect":
            return cmd_inspect(args.file, sys.stdout)
        if args.command == "gui":
            return cmd_gui(args.file)
        if args.command == "screenshot":
            return cmd_screenshot(args, sys.stdout)
        return cmd_doctor(sys.stdout)
    except GradstepError as exc:
        print(f"gradstep: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gradstep: interrupted", file=sys.stderr)
        return 130


class Progress:
    """A one-line progress bar on a terminal (a line every 10% otherwise)."""

    def __init__(self, total: int, out: TextIO, width: int = 30) -> None:
        self.total, self.out, self.width = max(total, 1), out, width
        self.tty = out.isatty()
        self.start = time.perf_counter()
        self._last_tenth = -1

    def update(self, done: int, loss: float | None) -> None:
        frac = min(done / self.total, 1.0)
        elapsed = time.perf_counter() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        bar = "#" * int(frac * self.width)
        loss_text = "" if loss is None else f" loss {loss:.4g}"
        line = f"[{bar:<{self.width}}] {done}/{self.total}{loss_text} eta {eta:.1f}s"
        if self.tty:
            self.out.write("\r" + line)
            self.out.flush()
        elif int(frac * 10) != self._last_tenth:
            self._last_tenth = int(frac * 10)
            self.out.write(line + "\n")

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")


def table(rows: list[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """A plain text table, numbers right-aligned; without ``header``, rows only."""
    width = len(header) if header is not None else len(rows[0])
    body = [[_cell(v) for v in row] for row in rows]
    cells = body if header is None else [[str(h) for h in header], *body]
    widths = [max(len(r[i]) for r in cells) for i in range(width)]
    numeric = [all(isinstance(row[i], int | float) for row in rows) for i in range(width)]
    lines = []
    for n, row in enumerate(cells):
        is_header = header is not None and n == 0
        parts = [
            c.rjust(w) if num and not is_header else c.ljust(w)
            for c, w, num in zip(row, widths, numeric)
        ]
        lines.append("  ".join(parts).rstrip())
        if is_header:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


EXIT_FINISHED, EXIT_FAILED, EXIT_USAGE, EXIT_BREAKPOINT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Out:
    """Writes lines to a stream; once its reader has gone (a closed pipe), quietly none."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed = False

    def __call__(self, text: str = "") -> None:
        if self.closed:
            return
        try:
            print(text, file=self.stream, flush=True)
        except BrokenPipeError:
            self.closed = True
            _silence(self.stream)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            self.closed = True
            _silence(self.stream)


def _silence(stream: TextIO) -> None:
    """Point a stream whose pipe closed at /dev/null, so exiting does not fail on it."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _check_run_args(args: argparse.Namespace) -> None:
    """Refuse bad arguments and unwritable outputs before anything runs (GradstepError)."""
    from core.debug import recfile

    if args.steps is not None and args.steps < 0:
        raise GradstepError(f"--steps must be 0 or more, not {args.steps}")
    if args.cap_mib < 1:
        raise GradstepError(f"--cap-mib must be at least 1 (MiB), not {args.cap_mib}")
    for option, path in (("--record", args.record), ("--trace", args.trace)):
        if path is None:
            continue
        if not path.strip():
            raise GradstepError(f"{option} needs a file name")
        recfile.check_target(path, force=args.force, option=option)


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from core import cuda
    from core.debug import lifecycle
    from core.debug.session import Breakpoint, Session
    from core.debug.summary import RunSummary
    from core.observe.events import RunStarted

    _check_run_args(args)
    if args.device == "cuda" and not cuda.is_available():
        print(f"gradstep: --device cuda: {cuda.unavailable_reason()}", file=err)
        return EXIT_USAGE
    say = _Out(out)
    breakpoints = [Breakpoint("nan")] if args.break_on_nan else []
    session = Session.from_file(
        args.program,
        device=args.device,
        steps=args.steps,
        breakpoints=breakpoints,
        record=bool(args.record or args.trace or args.break_on_nan),  # nan: names inputs
        cap_bytes=args.cap_mib * 2**20,
        mode=args.mode,
    )
    summary = RunSummary()
    progress: Progress | None = None
    step_times: list[float] = []
    last = [time.perf_counter()]

    def on_event(event: Any) -> None:
        nonlocal progress
        summary.add(event)
        if type(event) is StepEnded:
            now = time.perf_counter()
            step_times.append(now - last[0])
            last[0] = now
            if progress is None:
                total = args.steps if args.steps is not None else session.run.steps
                progress = Progress(total, err)
            progress.update(event.step + 1, event.loss)
        elif type(event) is RunStarted:
            program = session.program
            say(f"{program.title} — {program.path} on {args.device}")

    def on_note(text: str) -> None:
        if progress is not None and progress.tty:
            err.write("\n")
        print(f"gradstep: note: {text}", file=err, flush=True)

    session.on_event(on_event)
    session.on_note(on_note)
    session.start()
    stopped_at: str | None = None
    interrupted = False
    try:
        while not session.wait(0.05):
            if session.state == "paused" and stopped_at is None:
                stopped_at = session.reason
                if progress is not None:
                    progress.close()
                    progress = None
                say(f"paused: {session.reason}")
                session.stop()
    except KeyboardInterrupt:
        interrupted = True
        session.stop()
        if not session.wait(lifecycle.GRACE_S + 0.5):
            print(
                f"gradstep: the program does not respond: it is blocked in "
                f"{lifecycle.blocked_at(session._ident, session.program.path)}; exiting",
                file=err,
            )
            return EXIT_INTERRUPTED
    if progress is not None:
        progress.close()
    error = session.error
    if error is not None and error.stage == "loading":
        print(f"gradstep: {error.message}", file=err)
        return EXIT_USAGE
    _save_outputs(session.recording, args, say)
    _summary(session, summary, step_times, say)
    if session.state == "errored":
        print(f"gradstep: the run failed: {error.message}", file=err)
        return EXIT_FAILED
    if interrupted or (error is not None and error.kind == "KeyboardInterrupt"):
        message = error.message if error is not None else "interrupted (Ctrl+C)"
        print(f"gradstep: {message}", file=err)
        return EXIT_INTERRUPTED
    if stopped_at is not None:
        return EXIT_BREAKPOINT
    return EXIT_FINISHED


def _save_outputs(rec: Any, args: argparse.Namespace, say: _Out) -> None:
    from core.debug import recfile

    if args.record:
        recfile.save(rec, args.record, force=args.force)
        size = os.path.getsize(args.record) / 2**20
        say(f"recording: {args.record} ({len(rec)} events, {size:.1f} MiB)")
    if args.trace:
        recfile.save_chrome_trace(rec, args.trace)
        say(f"trace: {args.trace} (open in https://ui.perfetto.dev)")


def _summary(session: Any, summary: Any, step_times: list[float], say: _Out) -> None:
    rows: list[list[Any]] = [["status", session.state]]
    if summary.steps:
        rows.append(["steps", summary.steps])
    if summary.last_loss is not None:
        rows.append(["final loss", summary.last_loss])
    if step_times:
        ordered = sorted(step_times)
        rows.append(["time per step (median, ms)", ordered[len(ordered) // 2] * 1e3])
    rows.append(["events", summary.events])
    rec = session.recording
    if rec is not None and rec.dropped:
        rows.append(["values dropped by the cap", len(rec.dropped)])
    if rec is not None and rec.capped:
        rows.append(["memory cap reached", f"{rec.cap_bytes / 2**20:.0f} MiB"])
    for name, count in sorted(session.other_threads.items()):
        rows.append([f"events from thread {name!r} (not recorded)", count])
    say(table(rows))
    times = summary.op_times()
    top = times[:8]
    if top:
        total = sum(ns for _op, _n, ns in times) or 1
        say("\ntop ops by time")
        body = [[op, calls, ns / 1e6, 100.0 * ns / total] for op, calls, ns in top]
        say(table(body, ["op", "calls", "total ms", "% of op time"]))


def cmd_inspect(path: str, out: TextIO) -> int:
    from core.debug import recfile

    rec = recfile.load(path)
    print(f"{path}: {len(rec)} events, {os.path.getsize(path) / 2**20:.2f} MiB", file=out)
    for key, value in sorted(rec.meta.items()):
        if key == "source" and isinstance(value, str):
            value = f"the program's text, {len(value.splitlines())} lines"
        print(f"  {key}: {value}", file=out)
    counts = rec.counts()
    print(table(sorted(counts.items(), key=lambda kv: -kv[1]), ["event", "count"]), file=out)
    print(f"steps: {len(rec.steps)}; losses: {len(rec.losses)}", file=out)
    if rec.losses:
        print(f"loss: first {rec.losses[0][1]:.6g}, last {rec.losses[-1][1]:.6g}", file=out)
    print(
        f"values kept: {len(rec.values)} ({rec.bytes / 2**20:.2f} MiB); "
        f"dropped by the cap: {len(rec.dropped)}",
        file=out,
    )
    return 0


def cmd_doctor(out: TextIO) -> int:
    from app.doctor import doctor

    return doctor(out)


def cmd_gui(path: str | None) -> int:
    if path is not None and not os.path.exists(path):
        print(f"gradstep: {path}: no such file", file=sys.stderr)
        return 2
    if _no_display():
        print(
            "gradstep: no display to open the window on (DISPLAY and WAYLAND_DISPLAY are "
            "unset); run headless with `gradstep run PROGRAM.py`, or set "
            "QT_QPA_PLATFORM=offscreen",
            file=sys.stderr,
        )
        return 2
    from app.gui import run_gui

    return run_gui(path)


def _no_display() -> bool:
    """On Linux without X11 or Wayland, Qt would abort; say so instead."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_screenshot(args: argparse.Namespace, out: TextIO) -> int:
    from app.gui import screenshot

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"gradstep: --size must look like 1400x860, not {args.size}", file=sys.stderr)
        return 2
    restore = _quiet_offscreen_warnings()
    try:
        path = screenshot(
            args.program,
            args.out,
            steps=args.steps,
            until=args.until,
            select=args.select,
            size=(width, height),
            mode=args.mode,
            show=args.show,
        )
    except (RuntimeError, OSError) as exc:
        print(f"gradstep: screenshot failed: {exc}", file=sys.stderr)
        return 1
    finally:
        restore()
    print(f"wrote {path}", file=out)
    return 0


# what the offscreen platform says about window hints it cannot apply, on every run
OFFSCREEN_NOISE = ("This plugin does not support propagateSizeHints()",)


def _quiet_offscreen_warnings():
    """Drop Qt's offscreen-platform noise from stderr; other Qt messages still go there.
    Returns the function that puts the previous message handler back."""
    from PySide6.QtCore import qInstallMessageHandler

    def handler(mode: Any, context: Any, message: str) -> None:
        if not any(noise in message for noise in OFFSCREEN_NOISE):
            sys.stderr.write(message + "\n")

    previous = qInstallMessageHandler(handler)
    return lambda: qInstallMessageHandler(previous)
