"""Writing a file carefully: over regular files only, atomically, with the user's umask.

``atomic_write(path, write)`` checks the target first (``check_target``): a symlink
is followed and the file it points to replaced (the link stays a link); a folder,
FIFO, device or socket is refused; a read-only file is replaced only with
``force`` (the CLI's ``--force``; the app asks the user). The data goes to a
temporary file beside the target, named ``.gsrec-<pid>-*.tmp``, which then
replaces the target in one rename; a new file gets the mode the user's umask
gives, a replaced file keeps its mode. Temporary files that a killed Gradstep
left behind (their process is gone) are removed on the next write in that folder.

>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = os.path.join(tmp, "out.txt")
...     atomic_write(path, lambda fh: fh.write(b"hello"))
...     os.mkfifo(os.path.join(tmp, "pipe"))
...     try:
...         check_target(os.path.join(tmp, "pipe"))
...     except TargetError as exc:
...         print(str(exc).replace(tmp, "TMP"))
TMP/pipe: is not a regular file (a FIFO, a device or a socket): refused
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Callable
from typing import BinaryIO

from core.errors import GradstepError

PREFIX = ".gsrec-"
SUFFIX = ".tmp"
_OURS = re.compile(r"\.gsrec-(?:(\d+)-)?[A-Za-z0-9_]+\.tmp")
_LEGACY_AGE_S = 3600  # temporary files of the old naming (no pid) older than this go


class TargetError(GradstepError):
    """A file cannot be written where asked; ``read_only`` when --force would do."""

    def __init__(self, message: str, path: str, read_only: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.read_only = read_only


def check_target(path: str | os.PathLike, *, force: bool = False, option: str = "") -> str:
    """The real path to write for ``path``, or TargetError saying why not."""
    name = os.fsdecode(os.fspath(path))
    label = f"{option} {name}" if option else name
    real = os.path.realpath(name)
    folder = os.path.dirname(real) or "."
    if not os.path.isdir(folder):
        raise TargetError(f"{label}: the folder {folder} does not exist", name)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TargetError(f"{label}: cannot write in the folder {folder}", name)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real
    except OSError as exc:
        raise TargetError(f"{label}: {exc.strerror}", name) from None
    if stat.S_ISDIR(st.st_mode):
        raise TargetError(f"{label}: is a folder", name)
    if not stat.S_ISREG(st.st_mode):
        raise TargetError(
            f"{label}: is not a regular file (a FIFO, a device or a socket): refused", name
        )
    read_only = not st.st_mode & 0o222 or not os.access(real, os.W_OK)
    if read_only and not force:
        how = "use --force to replace it" if option else "replace it only if asked to"
        raise TargetError(f"{label}: the file is read-only; {how}", name, read_only=True)
    return real


def atomic_write(
    path: str | os.PathLike, write: Callable[[BinaryIO], object], *, force: bool = False
) -> None:
    """Write ``path`` through ``write(file)``, replacing it in one rename; see above."""
    real = check_target(path, force=force)
    folder = os.path.dirname(real) or "."
    clean_stale(folder)
    try:
        mode = stat.S_IMODE(os.stat(real).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~umask()
    fd, tmp = _mkstemp(folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, real)
        tmp = None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)


def _mkstemp(folder: str) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=SUFFIX, dir=folder)


def umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def clean_stale(folder: str) -> list[str]:
    """Remove our temporary files in ``folder`` whose writer is gone; returns their names."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _OURS.fullmatch(name)
        if match is None:
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            continue
        pid = match.group(1)
        if pid is None:
            stale = time.time() - st.st_mtime > _LEGACY_AGE_S
        else:
            stale = not _alive(int(pid))
        if stale:
            with contextlib.suppress(OSError):
                os.remove(path)
                removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
