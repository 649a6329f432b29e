"""The ``gradstep`` command line, run as a user runs it and in-process.

Each scenario runs twice: as a subprocess (``python -m app ...`` from the repo
root, offscreen Qt) and in-process (``app.cli.main([...])`` under capsys). The
screenshot runs as a subprocess only (it starts a QApplication, which must not
be the test process's own).
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import sys
import zipfile

import pytest

from app.cli import main as cli_main
from core import cuda
from core.debug import recfile
from core.debug.session import Session
from core.observe.events import (
    GradAccumulated,
    OpBackward,
    OpForward,
    ParameterUpdated,
    StepEnded,
    TensorCreated,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(REPO, "samples")
ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": REPO}
TIMEOUT = 120
MODES = ("subprocess", "inprocess")
PROGRESS = re.compile(r"\] (\d+)/(\d+) loss (\S+) eta ")


@pytest.fixture(params=MODES)
def cli(request, capsys, monkeypatch):
    """``cli(*args) -> (exit code, stdout, stderr)``, from the repo root, either way."""
    mode = request.param
    monkeypatch.chdir(REPO)

    def run(*args: str) -> tuple[int, str, str]:
        if mode == "subprocess":
            proc = subprocess.run(
                [sys.executable, "-m", "app", *args],
                cwd=REPO,
                env=ENV,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
            return proc.returncode, proc.stdout, proc.stderr
        capsys.readouterr()
        code = cli_main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    run.mode = mode
    return run


def _g(x: float) -> str:
    """A float as the CLI prints it."""
    return f"{x:.4g}"


def _one_error_line(err: str) -> str:
    """stderr must be exactly one line, 'gradstep: ...', and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("gradstep: "), err
    return lines[0]


# -- run, record, trace, inspect ------------------------------------------------------------


def test_run_record_trace_inspect(cli, tmp_path):
    gsrec, trace = str(tmp_path / "run.gsrec"), str(tmp_path / "trace.json")
    code, out, err = cli(
        "run", "samples/mlp_moons.py", "--steps", "200", "--record", gsrec, "--trace", trace
    )
    assert code == 0, out + err
    assert "Traceback" not in err

    rec = recfile.load(gsrec)
    _check_summary(out, rec)
    _check_progress(err, rec)
    _check_recording(rec, gsrec)
    _check_trace(trace, rec)

    code, out, err = cli("inspect", gsrec)
    assert code == 0, out + err
    _check_inspect(out, rec, gsrec)


def _summary_rows(out: str) -> dict[str, str]:
    rows = {}
    for line in out.split("\n\ntop ops by time")[0].splitlines()[1:]:
        key, _, value = line.rpartition("  ")
        rows[key.strip()] = value.strip()
    return rows


def _check_summary(out: str, rec) -> None:
    assert out.splitlines()[0].startswith("Two moons"), out
    assert "mlp_moons.py on cpu" in out.splitlines()[0]
    rows = _summary_rows(out)
    assert rows["status"] == "finished", out
    assert rows["steps"] == "200"
    assert rows["final loss"] == _g(rec.losses[-1][1]), out
    assert float(rows["time per step (median, ms)"]) > 0
    assert rows["events"] == str(len(rec))
    assert "values dropped by the cap" not in rows  # 512 MiB is plenty here

    # the top-ops table: the same numbers as the saved recording's op_times()
    assert "\ntop ops by time\n" in out
    table = out.split("top ops by time\n", 1)[1].splitlines()
    assert table[0].split() == ["op", "calls", "total", "ms", "%", "of", "op", "time"]
    assert set(table[1]) <= {"-", " "}
    printed = []
    for line in table[2:]:
        if not line.strip() or line.startswith(("recording:", "trace:")):
            break
        m = re.fullmatch(r"(.+?)\s{2,}(\d+)\s+(\S+)\s+(\S+)", line)
        assert m, line
        printed.append((m[1], int(m[2]), m[3], float(m[4])))
    expected = rec.op_times()[:8]
    assert len(printed) == len(expected) == 8
    total = sum(ns for _, _, ns in rec.op_times())
    for (op, calls, ms, pct), (e_op, e_calls, e_ns) in zip(printed, expected, strict=True):
        assert (op, calls, ms) == (e_op, e_calls, _g(e_ns / 1e6))
        assert pct == pytest.approx(100 * e_ns / total, rel=1e-3)
    assert {"linear", "linear (backward)", "cross_entropy"} <= {p[0] for p in printed}
    assert sum(p[3] for p in printed) <= 100.01
    recorded = rf"^recording: .*run\.gsrec \({len(rec)} events, [\d.]+ MiB\)$"
    assert re.search(recorded, out, re.M), out
    assert re.search(r"^trace: .*trace\.json ", out, re.M)


def _check_progress(err: str, rec) -> None:
    """Each progress line's loss is the recording's loss of that step."""
    seen = PROGRESS.findall(err)
    assert seen, err
    losses = dict(rec.losses)
    for done, total, loss in seen:
        assert total == "200"
        assert loss == _g(losses[int(done) - 1]), (done, loss)
    assert seen[-1][0] == "200"


def _check_recording(rec, path: str) -> None:
    ended = [e for e in rec.events if type(e) is StepEnded]
    assert len(ended) == 200
    assert [e.step for e in ended] == list(range(200))
    assert rec.losses == [(e.step, e.loss) for e in ended]
    assert all(math.isfinite(loss) for _, loss in rec.losses)
    assert rec.losses[-1][1] < rec.losses[0][1] / 10  # it trained
    assert len(rec.steps) == 200
    assert rec.meta["program"] == os.path.join(SAMPLES, "mlp_moons.py")
    assert rec.meta["device"] == "cpu"
    assert not rec.dropped and rec.values
    assert os.path.getsize(path) > 0


def _check_trace(path: str, rec) -> None:
    with open(path, encoding="utf-8") as fh:
        trace = json.load(fh)
    assert isinstance(trace, dict)
    events = trace["traceEvents"]
    assert isinstance(events, list) and events
    phases = set()
    for e in events:
        assert isinstance(e, dict), e
        assert e["ph"] in {"X", "M", "B", "E", "i", "I", "C"}, e
        phases.add(e["ph"])
        assert isinstance(e["name"], str) and e["name"], e
        assert type(e["pid"]) is int and type(e["tid"]) is int, e
        if e["ph"] != "M":
            for key in ("ts", "dur"):
                assert type(e[key]) in (int, float), e
                assert math.isfinite(e[key]) and e[key] >= 0, e
    assert phases == {"X", "M"}

    names = {
        e["args"]["name"]: e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert {"forward", "backward", "update"} <= set(names), names
    slices = [e for e in events if e["ph"] == "X"]
    per_track = {track: sum(1 for e in slices if e["tid"] == tid) for track, tid in names.items()}
    forward = sum(1 for e in rec.events if type(e) is OpForward and e.phase == "forward")
    update = sum(1 for e in rec.events if type(e) is OpForward and e.phase == "update")
    backward = sum(1 for e in rec.events if type(e) is OpBackward)
    assert per_track["forward"] == forward > 0
    assert per_track["backward"] == backward > 0
    assert per_track["update"] == update > 0
    steps = [e for e in slices if e.get("cat") == "step"]
    assert [e["args"]["loss"] for e in steps] == [loss for _, loss in rec.losses]
    ts = [e["ts"] for e in slices]
    assert ts == sorted(ts)


def _check_inspect(out: str, rec, path: str) -> None:
    assert out.startswith(f"{path}: {len(rec)} events, ")
    assert "  program: " + os.path.join(SAMPLES, "mlp_moons.py") in out
    counts = dict(re.findall(r"^([A-Z]\w+)\s+(\d+)$", out, re.M))
    assert {k: int(v) for k, v in counts.items()} == dict(rec.counts())
    assert counts["StepEnded"] == "200"
    assert "steps: 200; losses: 200" in out
    first, last = rec.losses[0][1], rec.losses[-1][1]
    assert f"loss: first {first:.6g}, last {last:.6g}" in out
    assert f"values kept: {len(rec.values)} " in out
    assert "dropped by the cap: 0" in out


# -- doctor ----------------------------------------------------------------------------------


def test_doctor(cli):
    code, out, err = cli("doctor")
    assert code == 0, out + err
    assert "Traceback" not in err
    rows = dict(re.findall(r"^(\w+)\s{2,}(.+)$", out, re.M))
    assert rows["Python"].startswith(".".join(map(str, sys.version_info[:2])))
    import numpy as np

    assert rows["NumPy"] == np.__version__
    from core.observe import moments

    assert rows["statistics"].startswith("compiled with Numba"), rows["statistics"]
    assert moments.backend() == "numba"
    if cuda.is_available():
        assert "CuPy" in rows["CUDA"]
    else:
        assert rows["CUDA"] == f"unavailable: {cuda.unavailable_reason()}"
        try:
            import cupy  # noqa: F401
        except ImportError:
            assert "CuPy is not installed" in rows["CUDA"]
    assert "PySide6" in rows["Qt"]
    if cli.mode == "subprocess":
        assert "QT_QPA_PLATFORM=offscreen" in rows["Qt"]


# -- the NaN breakpoint -----------------------------------------------------------------------


def _first_nonfinite(rec) -> tuple[str, object]:
    """The label the NaN breakpoint should name, found independently in a full run."""
    for e in rec.events:
        kind = type(e)
        if kind is OpForward and e.stats is not None and not e.stats.finite:
            return f"{e.op}_{e.node_id}", e
        if kind is OpBackward and any(s is not None and not s.finite for s in e.stats or ()):
            return f"the gradient from {e.op}_{e.node_id}", e
        if kind in (GradAccumulated, ParameterUpdated, TensorCreated):
            if e.stats is not None and not e.stats.finite:
                return f"{kind.__name__} of {e.name}", e
    raise AssertionError("exploding.py produced no NaN/Inf")


def test_break_on_nan(cli):
    path = os.path.join(SAMPLES, "exploding.py")
    session = Session.from_file(path)
    session.start()
    assert session.wait(60) and session.state == "finished"
    label, event = _first_nonfinite(session.recording)
    assert type(event) is OpForward and event.source is not None
    assert event.source.file == path

    code, out, err = cli("run", "samples/exploding.py", "--break-on-nan")
    assert code == 3, out + err  # stopped at a breakpoint, not finished
    assert "Traceback" not in err
    paused = [line for line in out.splitlines() if line.startswith("paused: ")]
    assert len(paused) == 1, out
    line = paused[0]
    assert "first NaN/Inf" in line
    assert f"first NaN/Inf: {label} produced " in line, (label, line)
    assert f" at {path}:{event.source.line}" in line, line
    with open(path, encoding="utf-8") as fh:
        source_line = fh.read().splitlines()[event.source.line - 1]
    assert event.op in source_line  # the line really is where the op is called
    assert _summary_rows(out)["status"] == "stopped"


# -- errors a user can cause: exit 2, one line ---------------------------------------------


def test_missing_program(cli, tmp_path):
    missing = str(tmp_path / "no_such_program.py")
    code, out, err = cli("run", missing)
    assert code == 2
    line = _one_error_line(err)
    assert missing in line and "no such file" in line
    assert out == ""


BAD_PROGRAMS = {  # name -> (source, what the one line must say, the line it names)
    "syntax error": ('"""Broken"""\n\ndef build(device="cpu"):\n    return (\n', "syntax error", 4),
    "raises on load": ('"""Broken"""\nimport math\n\nx = 1 / 0\n', "ZeroDivisionError", 4),
    "no build": ('"""Broken"""\nX = 1\n', "no build(device) function", None),
}


@pytest.mark.parametrize("kind", sorted(BAD_PROGRAMS))
def test_bad_program(cli, tmp_path, kind):
    source, says, line_no = BAD_PROGRAMS[kind]
    bad = tmp_path / "broken.py"
    bad.write_text(source)
    code, out, err = cli("run", str(bad))
    assert code == 2
    line = _one_error_line(err)
    assert says in line, line
    assert f"{bad}:{line_no}" in line if line_no else str(bad) in line, line
    assert out == ""


@pytest.mark.skipif(cuda.is_available(), reason="a GPU is available here")
def test_cuda_without_gpu(cli):
    code, out, err = cli("run", "samples/neuron.py", "--device", "cuda")
    assert code == 2
    line = _one_error_line(err)
    assert line == f"gradstep: --device cuda: {cuda.unavailable_reason()}"
    assert out == ""


@pytest.fixture(scope="module")
def good_gsrec(tmp_path_factory) -> str:
    session = Session.from_file(os.path.join(SAMPLES, "neuron.py"), steps=3)
    session.start()
    assert session.wait(30) and session.state == "finished"
    path = str(tmp_path_factory.mktemp("gsrec") / "good.gsrec")
    recfile.save(session.recording, path)
    return path


def _corrupt(kind: str, good: str, path: str) -> None:
    data = bytearray(open(good, "rb").read())
    if kind == "not a zip":
        data = bytearray(b"this is not a recording\n" * 10)
    elif kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "flipped bytes":
        with zipfile.ZipFile(good) as zf:
            info = zf.getinfo("events.jsonl")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        middle = start + info.compress_size // 2
        for i in range(middle, middle + 32):
            data[i] ^= 0xFF
    elif kind == "bad event":
        with zipfile.ZipFile(good) as zin, zipfile.ZipFile(path, "w") as zout:
            for info in zin.infolist():
                body = zin.read(info.filename)
                if info.filename == "events.jsonl":
                    lines = body.split(b"\n")
                    lines[2] = b'{"type":"OpForward","t":1,"node_id":"x"}'
                    body = b"\n".join(lines)
                zout.writestr(info, body)
        return
    with open(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize("kind", ["not a zip", "truncated", "flipped bytes", "bad event"])
def test_inspect_corrupt(cli, kind, good_gsrec, tmp_path):
    path = str(tmp_path / "corrupt.gsrec")
    _corrupt(kind, good_gsrec, path)
    code, out, err = cli("inspect", path)
    assert code == 2, out + err
    line = _one_error_line(err)
    assert line.startswith(f"gradstep: {path}: "), line
    if kind == "bad event":
        assert "events.jsonl line 3" in line
    assert out == ""


def test_inspect_missing_file(cli, tmp_path):
    path = str(tmp_path / "nothing.gsrec")
    code, out, err = cli("inspect", path)
    assert code == 2
    assert _one_error_line(err) == f"gradstep: {path}: no such file"


# -- a program that fails during the run: exit 1 with file:line -----------------------------

RAISING = '''"""Raises"""
import core
from core.debug.program import Run


def build(device="cpu"):
    w = core.tensor(1.0, requires_grad=True, device=device)
    BUILD_FAILS

    def step():
        loss = (w * 2.0).sum()
        raise RuntimeError("boom in step")  # RAISE
        return loss

    return Run(step=step, steps=5, params={"w": w})
'''


@pytest.mark.parametrize("where", ["step", "build"])
def test_program_raises(cli, tmp_path, where):
    program = tmp_path / "raising.py"
    text = RAISING.replace(
        "BUILD_FAILS", 'raise ValueError("boom in build")' if where == "build" else "pass"
    )
    program.write_text(text)
    marker = "# RAISE" if where == "step" else "boom in build"
    line_no = next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)
    code, out, err = cli("run", str(program))
    assert code == 1, out + err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("gradstep: the run failed: "), err
    assert f"{program}:{line_no}" in last, last
    assert f"boom in {where}" in last
    assert _summary_rows(out)["status"] == "errored"


# -- screenshot ---------------------------------------------------------------------------------


def test_screenshot(tmp_path):
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "screenshot",
            "samples/neuron.py",
            "--steps",
            "3",
            "--out",
            str(shot),
        ],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout.strip() == f"wrote {shot}"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1500, 900)  # the default --size
    assert len(data) > 10_000  # a drawn window, not an empty image

    QtGui = pytest.importorskip("PySide6.QtGui")
    image = QtGui.QImage(str(shot))
    assert not image.isNull()
    assert (image.width(), image.height()) == (1500, 900)
    colours = {image.pixel(x, y) for x in range(0, 1500, 50) for y in range(0, 900, 50)}
    assert len(colours) > 3  # not a blank window


def test_gui_without_a_display_says_so(monkeypatch, capsys):
    from app import cli

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli.sys, "platform", "linux")
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gradstep: no display") and "gradstep run" in err
