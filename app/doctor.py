"""``gradstep doctor``: what this machine gives Gradstep, and what is missing.

Each check is one row: Python, NumPy and its BLAS, CUDA (with the reason when it
is unavailable), the statistics backend, PySide6, and the Qt platform plugin the
app will use, tried for real in a child process (a plugin that cannot load
aborts the process that tries it). A plugin that needs a system library that is
not installed names that library.

>>> platform_name({"QT_QPA_PLATFORM": "offscreen"})
'offscreen'
>>> missing_libraries("libfoo.so.1 => not found\\n\\tlibc.so.6 => /lib/libc.so.6 (0x1)")
['libfoo.so.1']
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any, TextIO

PROBE_TIMEOUT_S = 30
_PROBE = (
    "import sys\n"
    "from PySide6.QtGui import QGuiApplication\n"
    "app = QGuiApplication(sys.argv[:1])\n"
    "print('platform:', app.platformName())\n"
)
_CANNOT_OPEN = re.compile(r"(lib[\w.+-]+?\.so[\w.]*): cannot open shared object file")


def doctor(out: TextIO) -> int:
    """Print the checks as a table; 1 when the app could not open its window, else 0."""
    import numpy as np

    from app.cli import table
    from core import cuda

    rows: list[list[str]] = [
        ["Python", f"{platform.python_version()} ({sys.executable})"],
        ["platform", platform.platform()],
        ["NumPy", np.__version__],
        ["BLAS", _blas_name(np)],
    ]
    if cuda.is_available():
        rows.append(["CUDA", _gpu_name()])
    else:
        rows.append(["CUDA", f"unavailable: {cuda.unavailable_reason()}"])
    rows.append(["statistics", _stats_status()])
    qt, qt_ok = qt_status(os.environ)
    rows.append(["Qt", qt])
    print(table(rows, ["check", "result"]), file=out)
    return 0 if qt_ok else 1


def _blas_name(np: Any) -> str:
    try:
        config = np.show_config(mode="dicts")
        blas = config.get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception as exc:  # the config format differs between NumPy versions
        return f"unknown ({exc})"


def _stats_status() -> str:
    from core.observe import moments

    if moments.backend() == "numba":
        import numba

        return f"compiled with Numba {numba.__version__}"
    return f"NumPy passes: {moments.unavailable_reason()}"


def _gpu_name() -> str:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"{name}, CuPy {cupy.__version__}"


def platform_name(env: Mapping[str, str]) -> str:
    """The Qt platform plugin the app will use in ``env`` (its first choice)."""
    chosen = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if chosen:
        return chosen
    if sys.platform == "darwin":
        return "cocoa"
    if sys.platform.startswith("win"):
        return "windows"
    if env.get("XDG_SESSION_TYPE") == "wayland" and env.get("WAYLAND_DISPLAY"):
        return "wayland"
    return "xcb"


def plugin_file(name: str, env: Mapping[str, str]) -> str | None:
    """Where Qt finds the platform plugin ``name``: QT_PLUGIN_PATH first, then PySide6's."""
    try:
        import PySide6
    except ImportError:
        return None
    folders = [p for p in env.get("QT_PLUGIN_PATH", "").split(os.pathsep) if p]
    folders.append(os.path.join(os.path.dirname(PySide6.__file__), "Qt", "plugins"))
    for folder in folders:
        for suffix in (".so", ".dylib", ".dll"):
            path = os.path.join(folder, "platforms", f"libq{name}{suffix}")
            if os.path.isfile(path):
                return path
    return None


def missing_libraries(ldd_output: str) -> list[str]:
    """The libraries ``ldd`` reports as not found, each once, in order."""
    found = re.findall(r"^\s*(\S+) => not found", ldd_output, re.M)
    return list(dict.fromkeys(found))


def qt_status(env: Mapping[str, str]) -> tuple[str, bool]:
    """(one line about PySide6 and its platform plugin, whether the plugin loads)."""
    try:
        import PySide6
    except ImportError:
        return "PySide6 not installed (the GUI needs it)", False
    name = platform_name(env)
    chosen = env.get("QT_QPA_PLATFORM") or "default"
    head = f"PySide6 {PySide6.__version__}, QT_QPA_PLATFORM={chosen}"
    path = plugin_file(name, env)
    if path is None:
        return f"{head}: no Qt platform plugin {name!r} is installed", False
    missing = _ldd_missing(path)
    if missing:
        libs = ", ".join(missing)
        return f"{head}: platform plugin {name!r} needs {libs}, not installed", False
    ok, detail = _try_plugin(name, env)
    if ok:
        return f"{head}: platform plugin {name!r} loads", True
    return f"{head}: platform plugin {name!r} fails: {detail}", False


def _ldd_missing(path: str) -> list[str]:
    ldd = shutil.which("ldd")
    if ldd is None or not sys.platform.startswith("linux"):
        return []
    try:
        proc = subprocess.run([ldd, path], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return missing_libraries(proc.stdout)


def _try_plugin(name: str, env: Mapping[str, str]) -> tuple[bool, str]:
    """Start a QGuiApplication on ``name`` in a child process; (it worked, why not)."""
    child = {**env, "QT_QPA_PLATFORM": name, "QT_DEBUG_PLUGINS": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env=child,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return False, f"starting it took over {PROBE_TIMEOUT_S} s"
    except OSError as exc:
        return False, f"cannot start Python to try it ({exc.strerror})"
    if proc.returncode == 0 and "platform:" in proc.stdout:
        return True, ""
    text = proc.stderr
    library = _CANNOT_OPEN.findall(text)
    if library:
        return False, f"{library[-1]} is missing (cannot open shared object file)"
    for needle, why in (
        ("could not connect to display", "cannot connect to the display"),
        ("Failed to create wl_display", "cannot connect to the Wayland display"),
        ("could not find the Qt platform plugin", "Qt cannot find it"),
    ):
        if needle in text:
            return False, why
    lines = [line for line in text.splitlines() if line.strip() and "qt.core." not in line]
    return False, (lines[-1] if lines else f"exit status {proc.returncode}")
