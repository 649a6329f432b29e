"""Where in the user's program something happened: the first frame that is not
Gradstep's own code (the ``core`` package) nor Python's standard library.

>>> def users_function():
...     return user_source(1)
>>> users_function().function
'users_function'
"""

from __future__ import annotations

import os
import sys
import sysconfig

from core.observe.events import Source

_CORE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_STDLIB = tuple(
    os.path.abspath(sysconfig.get_path(name)) + os.sep
    for name in ("stdlib", "platstdlib")
    if sysconfig.get_path(name)
)
_NOT_USER = (_CORE, *_STDLIB)

# Both caches key by file name, never by code object: code objects compiled from
# different files with the same text compare equal.
_skipped: dict[str, bool] = {}  # file name -> is it Gradstep's or the stdlib's
_sources: dict[tuple[str, int, str], Source] = {}  # (file, line, function) -> Source
_MAX_SOURCES = 100_000


def user_source(skip: int = 1) -> Source | None:
    """The user's file, line and function, starting ``skip`` frames up; None
    when every frame is Gradstep's or the standard library's (a run's own
    bookkeeping in a worker thread, say)."""
    frame = sys._getframe(skip)
    while frame is not None:
        name = frame.f_code.co_filename
        skipped = _skipped.get(name)
        if skipped is None:
            skipped = _skipped[name] = _is_skipped(name)
        if not skipped:
            break
        frame = frame.f_back
    if frame is None:
        return None
    code = frame.f_code
    key = (code.co_filename, frame.f_lineno, code.co_name)
    source = _sources.get(key)
    if source is None:
        if len(_sources) > _MAX_SOURCES:
            _sources.clear()
        source = _sources[key] = Source(*key)
    return source


def _is_skipped(name: str) -> bool:
    if name.startswith("<frozen "):  # importlib and friends
        return True
    return os.path.abspath(name).startswith(_NOT_USER) if os.path.isabs(name) else False


def where(skip: int = 2) -> str:
    """`` (at file:line in function)`` for an error message, or ""."""
    src = user_source(skip + 1)
    return f" (at {src})" if src is not None else ""
