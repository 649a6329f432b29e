"""Model programs: plain Python files a user opens, and what loading them gives.

A program file has a docstring (a title line, then a paragraph the app shows) and
one entry point, ``build(device)``, returning a ``Run``::

    '''Single neuron

    One neuron, tanh(w*x + b), fitted to a few points.
    '''
    import core
    from core.debug.program import Run

    def build(device="cpu"):
        w = core.tensor(0.1, requires_grad=True, device=device)
        ...
        def step():
            ...
            return loss
        return Run(step=step, steps=100, params={"w": w})

Loading is two steps. ``read(path)`` checks and compiles the file without running
any of it (a regular ``.py`` file of at most ``MAX_SOURCE_BYTES``, UTF-8 text);
``Program.execute()`` then runs its top-level code, which may take as long as the
program likes, so a Session calls it in its worker thread, never the GUI's.
``load(path)`` does both. Neither shows a bare traceback: a missing file, a file
that is not a Python program, a syntax error, an error while the file runs, or a
missing ``build`` each raise ``ProgramError`` naming the file and line.

>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = os.path.join(tmp, "notes.txt")
...     with open(path, "w") as f:
...         _ = f.write("shopping list")
...     try:
...         read(path)
...     except ProgramError as exc:
...         print(str(exc).replace(path, "notes.txt"))
notes.txt: not a Python program (a program is a .py file with a build(device) function)
"""

from __future__ import annotations

import ast
import numbers
import os
import stat
import sys
import traceback
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.errors import GradstepError

ENTRY_POINT = "build"
MAX_SOURCE_BYTES = 4 * 2**20  # a program file larger than this is refused
PROGRAM_SUFFIXES = (".py", ".pyw")


class ProgramError(GradstepError):
    """A program file could not be loaded or built; the message names file:line."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.file = file
        self.line = line


@dataclass
class Run:
    """What a program's ``build(device)`` returns: everything a run needs.

    ``step`` runs one training step and returns the loss (a Tensor or a float).
    With ``batches`` (a callable ``batches(step_index) -> batch``) the step is
    called as ``step(batch)``. ``evaluate`` (optional) returns a dict of metrics.
    ``model`` is an ``nn.Module`` or None; ``params`` names extra leaf tensors
    (for programs without a Module, like the single neuron).
    """

    step: Callable[..., Any]
    steps: int
    model: Any = None
    batches: Callable[[int], Any] | None = None
    evaluate: Callable[[], dict[str, float]] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def named_parameters(self) -> Iterable[tuple[str, Any]]:
        """The model's parameters, then ``params``, each with its name."""
        if self.model is not None:
            yield from self.model.named_parameters()
        yield from self.params.items()


@dataclass
class Program:
    """A loaded program file."""

    path: str  # absolute path
    title: str  # first docstring line (the file name when there is none)
    description: str  # the docstring's paragraph after the title
    source: str  # the file's text
    namespace: dict[str, Any] | None = None  # the module's globals once it ran
    # a saved graph: its step is compiled already and runs as it is, in either mode
    compiled: bool = field(default=False, kw_only=True)
    code: types.CodeType | None = field(default=None, repr=False)  # compiled, not yet run

    @property
    def loaded(self) -> bool:
        """Whether the file's top-level code has run (``execute``)."""
        return self.namespace is not None

    def execute(self) -> None:
        """Run the file's top-level code once; ProgramError names file and line."""
        if self.namespace is None:
            code = self.code or _compile(self.source, self.path)
            self.namespace = _execute(code, self.path)
            self.code = None

    def build(self, device: str = "cpu") -> Run:
        """Call the program's ``build(device)``; errors name the program's line."""
        self.execute()
        entry = self.namespace[ENTRY_POINT]
        try:
            run = entry(device)
        except GradstepError:
            raise
        except (Exception, SystemExit) as exc:  # a sys.exit() must not end the app
            raise _located(exc, self.path, "while building") from None
        if not isinstance(run, Run):
            raise ProgramError(
                f"{self.path}: {ENTRY_POINT}() returned {type(run).__name__}, expected "
                "core.program.Run(step=..., steps=...)",
                self.path,
            )
        for name in ("step", "batches", "evaluate"):
            value = getattr(run, name)
            if not callable(value) and (name == "step" or value is not None):
                raise ProgramError(f"{self.path}: Run.{name} is not callable", self.path)
        if not isinstance(run.steps, numbers.Integral) or run.steps < 0:
            raise ProgramError(
                f"{self.path}: Run.steps must be a whole number >= 0, got {run.steps!r}",
                self.path,
            )
        return run


def _located(exc: BaseException, path: str, doing: str) -> ProgramError:
    """A ProgramError naming the deepest line of ``path`` in ``exc``'s traceback."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(frame.filename) == path:
            line = frame.lineno
    where = f"{path}:{line}" if line is not None else path
    return ProgramError(f"{where}: {type(exc).__name__} {doing}: {exc}", path, line)


def read_docstring(source: str, fallback: str) -> tuple[str, str]:
    """(title, description) from a module's docstring, without running it."""
    try:
        doc = ast.get_docstring(ast.parse(source)) or ""
    except (SyntaxError, ValueError):
        doc = ""
    title, _, rest = doc.strip().partition("\n")
    paragraphs = [" ".join(p.split()) for p in rest.strip().split("\n\n")]
    description = "\n\n".join(p for p in paragraphs if p)
    return (title.strip() or fallback), description


def read_source(path: str | os.PathLike, limit: int = MAX_SOURCE_BYTES) -> str:
    """The text of a regular UTF-8 file of at most ``limit`` bytes; else ProgramError.

    Folders, FIFOs and devices are refused before anything is read (a FIFO would
    block the caller, a device never end), and so is a file over ``limit``.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ProgramError(f"{path}: no such file", path) from None
    except OSError as exc:
        raise ProgramError(f"{path}: cannot read the file: {exc.strerror}", path) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ProgramError(f"{path}: is a folder, not a program", path)
        raise ProgramError(f"{path}: is not a regular file (a FIFO or a device?)", path)
    with os.fdopen(fd, "rb") as f:
        if info.st_size > limit:
            raise ProgramError(
                f"{path}: {info.st_size / 2**20:.1f} MiB is too large for a program "
                f"(at most {limit / 2**20:.0f} MiB)",
                path,
            )
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ProgramError(f"{path}: the file grew past {limit} bytes while read", path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProgramError(
            f"{path}: not a Python program (not UTF-8 text: byte {exc.start})", path
        ) from None


def read(path: str | os.PathLike) -> Program:
    """Read and compile a program file without running it; see the module docstring."""
    path = os.path.abspath(os.fspath(path))
    if not path.endswith(PROGRAM_SUFFIXES) and not os.path.isdir(path):
        if os.path.exists(path):
            raise ProgramError(
                f"{path}: not a Python program (a program is a .py file with a "
                f"{ENTRY_POINT}(device) function)",
                path,
            )
    source = read_source(path)
    code = _compile(source, path)
    title, description = read_docstring(source, os.path.basename(path))
    return Program(path, title, description, source, None, code)


def load(path: str | os.PathLike) -> Program:
    """Read a program file and run its top-level code; see the module docstring."""
    program = read(path)
    program.execute()
    return program


def _compile(source: str, path: str) -> types.CodeType:
    try:
        return compile(source, path, "exec")
    except SyntaxError as exc:
        where = path if exc.lineno is None else f"{path}:{exc.lineno}"
        raise ProgramError(f"{where}: syntax error: {exc.msg}", path, exc.lineno) from None
    except ValueError as exc:  # Python 3.11 reports null bytes this way
        raise ProgramError(f"{path}: syntax error: {exc}", path) from None


def _execute(code: types.CodeType, path: str) -> dict[str, Any]:
    name = "gradstep_program_" + os.path.splitext(os.path.basename(path))[0]
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module  # dataclasses and pickling of local types need it
    try:
        exec(code, module.__dict__)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, ModuleNotFoundError):
            raise _located(exc, path, "(a module it imports is missing)") from None
        if isinstance(exc, ImportError):
            raise _located(exc, path, "while importing") from None
        if isinstance(exc, Exception | SystemExit):  # a sys.exit() must not end the app
            raise _located(exc, path, "while loading") from None
        raise
    entry = module.__dict__.get(ENTRY_POINT)
    if not callable(entry):
        raise ProgramError(
            f"{path}: no {ENTRY_POINT}(device) function; a program defines "
            f"def {ENTRY_POINT}(device): ... return core.program.Run(step=..., steps=...)",
            path,
        )
    return module.__dict__
