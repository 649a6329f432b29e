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
import signal
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
        assert rows["Qt"].endswith("platform plugin 'offscreen' loads")


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
    elif kind == "surrogate":
        with zipfile.ZipFile(good) as zin, zipfile.ZipFile(path, "w") as zout:
            for info in zin.infolist():
                body = zin.read(info.filename)
                if info.filename == "meta.json":
                    body = body.replace(b'"device":"', b'"device":"\\udc80')
                zout.writestr(info, body)
        return
    with open(path, "wb") as fh:
        fh.write(data)


@pytest.mark.parametrize(
    "kind", ["not a zip", "truncated", "flipped bytes", "bad event", "surrogate"]
)
def test_inspect_corrupt(cli, kind, good_gsrec, tmp_path):
    path = str(tmp_path / "corrupt.gsrec")
    _corrupt(kind, good_gsrec, path)
    code, out, err = cli("inspect", path)
    assert code == 2, out + err
    line = _one_error_line(err)
    assert line.startswith(f"gradstep: {path}: "), line
    if kind == "bad event":
        assert "events.jsonl line 3" in line
    if kind == "truncated":
        assert "the file is truncated" in line
    if kind == "surrogate":
        assert "lone surrogate" in line
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
    assert "propagateSizeHints" not in proc.stderr  # the offscreen platform's noise
    assert proc.stdout.strip() == f"wrote {shot}"
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 860)  # the default --size (the window's own)
    assert len(data) > 10_000  # a drawn window, not an empty image

    QtGui = pytest.importorskip("PySide6.QtGui")
    image = QtGui.QImage(str(shot))
    assert not image.isNull()
    assert (image.width(), image.height()) == (1400, 860)
    colours = {image.pixel(x, y) for x in range(0, 1400, 50) for y in range(0, 860, 50)}
    assert len(colours) > 3  # not a blank window


def test_gui_without_a_display_says_so(monkeypatch, capsys):
    from app import cli

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli.sys, "platform", "linux")
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gradstep: no display") and "gradstep run" in err


# -- every way a run ends has an exit status (issue 9 items 3 and 11) --------------------------

ENDING = '''"""Ending

A step that ends the run its own way.
"""
import sys
import time

import core
from core.program import Run


def build(device="cpu"):
    w = core.tensor([1.0, 2.0], requires_grad=True, device=device)

    def step():
        loss = (w * w).sum()
        ENDING
        return loss

    return Run(step=step, steps=3, params={"w": w})
'''


@pytest.mark.parametrize(
    ("ending", "code", "says"),
    [
        ("pass", 0, None),
        ("sys.exit(0)", 1, "the run failed: {at}: the program called sys.exit(0) in step 0"),
        ("raise KeyboardInterrupt", 130, "{at}: interrupted: KeyboardInterrupt in step 0"),
        ("return 'done'", 1, "step() returned a str ('done')"),
    ],
)
def test_exit_status_says_how_the_run_ended(cli, tmp_path, ending, code, says):
    path = tmp_path / "ending.py"
    path.write_text(ENDING.replace("ENDING", ending))
    got, out, err = cli("run", str(path))
    assert got == code, out + err
    assert "Traceback" not in err
    at = f"{path}:{ENDING.splitlines().index('        ENDING') + 1}"
    if says is not None:
        assert err.strip().splitlines()[-1].startswith("gradstep: "), err
        assert says.format(at=at) in err, err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--steps", "-5"], "--steps must be 0 or more, not -5"),
        (["--cap-mib", "0"], "--cap-mib must be at least 1 (MiB), not 0"),
        (["--record", ""], "--record needs a file name"),
        (["--record", "{missing}/run.gsrec"], "the folder {missing} does not exist"),
        (["--trace", "{missing}/t.json"], "the folder {missing} does not exist"),
        (["--record", "{fifo}"], "is not a regular file (a FIFO, a device or a socket): refused"),
        (["--record", "{readonly}"], "the file is read-only; use --force to replace it"),
    ],
)
def test_arguments_and_outputs_are_checked_before_the_run(cli, tmp_path, args, says):
    missing = tmp_path / "no" / "such"
    fifo = tmp_path / "pipe.gsrec"
    os.mkfifo(fifo)
    readonly = tmp_path / "kept.gsrec"
    readonly.write_bytes(b"precious")
    readonly.chmod(0o444)
    names = {"missing": missing, "fifo": fifo, "readonly": readonly}
    args = [a.format(**names) for a in args]
    says = says.format(**names)
    code, out, err = cli("run", "samples/neuron.py", *args)
    assert code == 2, out + err
    assert says in _one_error_line(err)
    assert out == ""  # nothing ran: not even the title line
    assert readonly.read_bytes() == b"precious"


def test_force_replaces_a_read_only_recording(cli, tmp_path):
    kept = tmp_path / "kept.gsrec"
    kept.write_bytes(b"old")
    kept.chmod(0o444)
    code, out, err = cli(
        "run", "samples/neuron.py", "--steps", "2", "--record", str(kept), "--force"
    )
    assert code == 0, out + err
    assert len(recfile.load(kept).losses) == 2


def test_a_text_file_is_not_a_program(cli, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("buy milk\n")
    code, out, err = cli("run", str(notes))
    assert code == 2 and out == ""
    assert _one_error_line(err) == (
        f"gradstep: {notes}: not a Python program (a program is a .py file with a "
        "build(device) function)"
    )


def test_a_closed_pipe_ends_quietly_with_the_recording_saved(tmp_path):
    """`gradstep run ... --record r.gsrec | head -1`: the run used to die of
    BrokenPipeError before it saved the recording."""
    record = tmp_path / "r.gsrec"
    args = ["run", "samples/neuron.py", "--steps", "30", "--record", str(record)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read()
    assert proc.wait(TIMEOUT) == 0, err
    assert first.startswith("Single neuron")
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert len(recfile.load(record).losses) == 30


@pytest.mark.slow
def test_the_cap_is_told_while_the_run_goes_on(cli, tmp_path):
    record = str(tmp_path / "capped.gsrec")
    code, out, err = cli(
        "run", "samples/mlp_moons.py", "--steps", "100", "--cap-mib", "1", "--record", record
    )
    assert code == 0, out + err
    note = err.index("gradstep: note: the recording reached its memory cap (1 MiB)")
    assert note < err.index("] 100/100")  # before the last progress line, not after the run
    rows = _summary_rows(out)
    assert rows["memory cap reached"] == "1 MiB" and rows["steps"] == "100"
    rec = recfile.load(record)
    assert [s for s, _ in rec.losses] == list(range(100))


def test_a_run_without_record_keeps_no_recording(capsys, monkeypatch):
    from core.debug import session as sessions

    def no_recording(*args, **kwargs):
        raise AssertionError("a Recording was made without --record")

    monkeypatch.setattr(sessions, "Recording", no_recording)
    monkeypatch.chdir(REPO)
    assert cli_main(["run", "samples/mlp_moons.py", "--steps", "20"]) == 0
    rows = _summary_rows(capsys.readouterr().out)
    assert rows["steps"] == "20" and int(rows["events"]) > 20 * 50


def test_events_from_a_programs_own_thread_are_counted_in_the_summary(cli, tmp_path):
    path = tmp_path / "threads.py"
    path.write_text(
        ENDING.replace(
            "        ENDING",
            "        import threading\n"
            "        t = threading.Thread(target=lambda: w * 3.0, name='loader')\n"
            "        t.start()\n"
            "        t.join()",
        )
    )
    code, out, err = cli("run", str(path))
    assert code == 0, out + err
    assert int(_summary_rows(out)["events from thread 'loader' (not recorded)"]) >= 3
    assert "gradstep: note: events from thread 'loader' are not recorded" in err


@pytest.mark.slow
def test_ctrl_c_on_a_blocked_program_exits_and_names_its_line(tmp_path):
    path = tmp_path / "blocked.py"
    path.write_text(ENDING.replace("ENDING", "print('blocking', flush=True); time.sleep(60)"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "run", str(path)],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().startswith("Ending")  # the run has started
    assert proc.stdout.readline() == "blocking\n"  # and is about to block in C
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    line = ENDING.splitlines().index("        ENDING") + 1
    assert f"does not respond: it is blocked in {path}:{line} in step: print(" in err


# -- doctor and screenshot (issue 12 items 19 and 20) ------------------------------------------


def _patched_xcb(tmp_path) -> tuple[str, str]:
    """A copy of the xcb plugin whose first needed xcb library has a name that does not
    exist: what a machine without that library looks like to Qt."""
    from app.doctor import plugin_file

    original = plugin_file("xcb", {})
    if original is None:
        pytest.skip("this PySide6 has no xcb platform plugin")
    data = open(original, "rb").read()
    names = re.findall(rb"libxcb-[a-z]+\.so\.\d", data)
    if not names:
        pytest.skip("the xcb plugin names no libxcb-* library")
    needed = names[0]
    missing = needed.replace(b"libxcb-", b"libxcq-")
    folder = tmp_path / "plugins" / "platforms"
    folder.mkdir(parents=True)
    (folder / os.path.basename(original)).write_bytes(data.replace(needed, missing))
    return str(tmp_path / "plugins"), missing.decode()


@pytest.mark.slow
def test_doctor_tries_the_platform_plugin_and_names_a_missing_library(tmp_path):
    plugins, missing = _patched_xcb(tmp_path)
    env = {**ENV, "QT_QPA_PLATFORM": "xcb", "QT_PLUGIN_PATH": plugins}
    proc = subprocess.run(
        [sys.executable, "-m", "app", "doctor"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = dict(re.findall(r"^(\w+)\s{2,}(.+)$", proc.stdout, re.M))
    assert "platform plugin 'xcb' needs" in rows["Qt"] and missing in rows["Qt"]


@pytest.mark.slow
def test_doctor_says_when_no_such_platform_plugin_exists():
    env = {**ENV, "QT_QPA_PLATFORM": "nosuchplatform"}
    proc = subprocess.run(
        [sys.executable, "-m", "app", "doctor"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 1
    assert "no Qt platform plugin 'nosuchplatform' is installed" in proc.stdout
