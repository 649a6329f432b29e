"""How a run ends, and keeping runs apart: outcomes, one live run, a watchdog on Stop.

Three things the Session leans on, kept here so its controller stays readable:

- ``outcome(exc, ...)``: what an exception that ended a run means for the user, as a
  status (``finished``, ``stopped``, ``errored``) and a ``RunError`` naming the file
  and line. ``sys.exit()`` and ``KeyboardInterrupt`` inside a program are neither a
  finish nor a crash of Gradstep: each gets its own sentence.
- ``claim``/``release``: at most one live run per process. Tensor ids and the random
  state are process-wide, so two runs at once would mix their ids; a second run is
  refused with a message naming the first, for as long as its thread lives.
- ``Watchdog``: after Stop, the run's thread is interrupted again and again (a
  program's ``except BaseException:`` may swallow one interruption); if it has not
  ended after ``GRACE_S``, the user is told that it does not respond and the line it
  is blocked in (``time.sleep``, a lock, ``input()``).

This is a documented in-process limit. A Python thread cannot be killed: a program
blocked in a C call (a sleep, a lock, a read) ends only when that call returns. The
run keeps its claim until then, so no other run shares the process with it; the app
and the CLI stay responsive, and the message says to restart Gradstep to get rid of
it. Running each program in a child process would lift the limit at a measured cost
(``bench/stop_isolation.py``): a fresh interpreter that imports the engine for every
run, and every event and value copied across a pipe.

>>> first, second = object(), object()
>>> claim(first, "a.py")
>>> try:
...     claim(second, "b.py")
... except RunConflict as exc:
...     print(exc)
another program is still running in this process (a.py); stop it first
>>> release(first); claim(second, "b.py"); release(second)
"""

from __future__ import annotations

import ctypes
import linecache
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import GradstepError

GRACE_S = 1.0  # how long Stop waits before saying the program does not respond
FIRST_INTERRUPT_S = 0.05  # code that makes events stops at its next one before this
INTERRUPT_EVERY_S = 0.005  # then how often the thread is interrupted again: code that
# swallows the interruption in a loop lets one through only between its try blocks
_CORE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class StopRun(BaseException):
    """Raised inside the worker to end a run; user code cannot swallow it for long."""


class RunConflict(GradstepError):
    """Another run is live in this process; the message names its program."""


@dataclass(frozen=True)
class RunError:
    """An error that ended a run, kept for the user."""

    message: str  # one line, with file:line when the program's code raised
    kind: str  # exception class name
    file: str | None
    line: int | None
    traceback: str  # the full traceback text
    stage: str = "running"  # "loading", "building" or "running": where it happened


# -- outcomes ----------------------------------------------------------------------------


def outcome(exc: BaseException, path: str, stage: str, step: int) -> tuple[str, RunError | None]:
    """(status, error) of a run that ``exc`` ended, ``stage`` and ``step`` where it was.

    A ``StopRun`` is the user's Stop: ("stopped", None). Everything else keeps a
    RunError whose message names the program's line.
    """
    if isinstance(exc, StopRun):
        return "stopped", None
    from core.debug import program as programs

    if isinstance(exc, programs.ProgramError) and stage != "running":
        text = str(exc)
        return "errored", RunError(text, type(exc).__name__, exc.file, exc.line, text, stage)
    line = _line_in(exc, path)
    where = f"{path}:{line}" if line is not None else path
    during = f"in step {step}" if stage == "running" and step >= 0 else f"while {stage}"
    if isinstance(exc, SystemExit):
        status = "errored"
        message = (
            f"{where}: the program called sys.exit({_exit_code(exc)}) {during}; "
            "a program ends by returning from step(), not by exiting"
        )
    elif isinstance(exc, KeyboardInterrupt):
        status = "stopped"
        message = f"{where}: interrupted: KeyboardInterrupt {during}"
    else:
        status = "errored"
        doing = "in the run" if stage == "running" else f"while {stage}"
        message = f"{where}: {type(exc).__name__} {doing}: {exc}"
    text = "".join(traceback.format_exception(exc))
    return status, RunError(message, type(exc).__name__, path, line, text, stage)


def _line_in(exc: BaseException, path: str) -> int | None:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == path:
            line = frame.lineno
    return line


def _exit_code(exc: SystemExit) -> str:
    return "" if exc.code is None else repr(exc.code)


# -- one live run per process ------------------------------------------------------------

_lock = threading.Lock()
_live: dict[int, tuple[Any, str]] = {}  # id(owner) -> (owner, program path)


def claim(owner: Any, program: str) -> None:
    """Register ``owner`` as the live run; RunConflict while another one lives.

    An owner with a ``thread_alive()`` method counts as live until its thread ends,
    whatever else it says; ``release`` removes it earlier.
    """
    with _lock:
        for key, (other, path) in list(_live.items()):
            if other is owner:
                continue
            alive = getattr(other, "thread_alive", None)
            if alive is not None and not alive():
                del _live[key]
                continue
            stuck = getattr(other, "unresponsive", None)
            detail = f"; it does not respond: {stuck}" if stuck else ""
            advice = "restart Gradstep to end it" if stuck else "stop it first"
            raise RunConflict(
                f"another program is still running in this process ({path}){detail}; {advice}"
            )
        _live[id(owner)] = (owner, program)


def release(owner: Any) -> None:
    """The run of ``owner`` has ended; another may start."""
    with _lock:
        entry = _live.get(id(owner))
        if entry is not None and entry[0] is owner:
            del _live[id(owner)]


# -- where a thread is -----------------------------------------------------------------------


def blocked_at(ident: int | None, program: str) -> str:
    """Where thread ``ident`` is now: the program's innermost line, and the call it is in.

    >>> "in blocked_at" in blocked_at(threading.get_ident(), __file__)
    True
    """
    frame = sys._current_frames().get(ident) if ident is not None else None
    if frame is None:
        return "an unknown place (the thread has no Python frame)"
    innermost = frame
    mine = None
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if mine is None and (name == program or not name.startswith(_CORE)):
            mine = frame
        frame = frame.f_back
    chosen = mine or innermost
    file, line = chosen.f_code.co_filename, chosen.f_lineno
    text = linecache.getline(file, line).strip()
    place = f"{file}:{line} in {chosen.f_code.co_name}"
    return f"{place}: {text}" if text else place


# -- the watchdog ----------------------------------------------------------------------------


def interrupt(ident: int) -> None:
    """Raise StopRun in thread ``ident`` at its next bytecode (not inside a C call)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(StopRun))


def clear_interrupt(ident: int) -> None:
    """Cancel a StopRun that ``interrupt`` queued and that has not been raised yet."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), None)


class Watchdog:
    """Ends a stopping run: interrupts its thread until it ends, reports when it hangs.

    ``alive()`` says whether the run's thread still runs, ``interrupt_now()`` raises
    a StopRun in it (when the run allows one), and ``hung()`` is called once, after
    ``grace`` seconds, when the thread is still alive.
    """

    def __init__(
        self,
        alive: Callable[[], bool],
        interrupt_now: Callable[[], None],
        hung: Callable[[], None],
        grace: float | None = None,
    ) -> None:
        self._alive = alive
        self._interrupt = interrupt_now
        self._hung = hung
        self._grace = GRACE_S if grace is None else grace
        self._watcher = threading.Thread(target=self._watch, name="gradstep-stop", daemon=True)

    def start(self) -> None:
        self._watcher.start()

    def _watch(self) -> None:
        start = time.monotonic()
        pause = FIRST_INTERRUPT_S
        reported = False
        while self._alive():
            time.sleep(pause)
            pause = INTERRUPT_EVERY_S
            waited = time.monotonic() - start
            if not self._alive():
                return
            self._interrupt()
            if not reported and waited >= self._grace:
                reported = True
                self._hung()


# -- what a step returned, what a listener raised -------------------------------------------


def loss_value(loss: Any) -> tuple[float | None, str | None]:
    """(the loss as a float, None), or (None, what is wrong with it).

    >>> loss_value(2.5), loss_value("done")
    ((2.5, None), (None, "a str ('done')"))
    """
    if loss is None:
        return None, "None"
    if isinstance(loss, bool | str | bytes):
        return None, f"a {type(loss).__name__} ({loss!r:.40})"
    shape = getattr(loss, "shape", None)
    if isinstance(shape, tuple) and math.prod(shape) != 1:
        return None, f"a {type(loss).__name__} of shape {shape}"
    try:
        return float(loss.item() if hasattr(loss, "item") else loss), None
    except (TypeError, ValueError, OverflowError):
        return None, f"a {type(loss).__name__}"


def describe(exc: BaseException) -> str:
    """``ValueError: text (file.py:12)``: an exception and the innermost line it came from.

    >>> try:
    ...     int("x")
    ... except ValueError as exc:
    ...     describe(exc).startswith("ValueError: invalid literal")
    True
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
