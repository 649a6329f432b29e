"""``gradstep compile`` and ``gradstep run --mode compiled`` / ``run FILE.gsgraph``,
each in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

from core.debug import recfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": REPO, "QT_QPA_PLATFORM": "offscreen"}


def gradstep(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
    )


def losses(path) -> list[float]:
    return [loss for _step, loss in recfile.load(path).losses]


def test_a_compiled_program_saved_and_run_alone_gives_the_same_losses(tmp_path) -> None:
    sample = os.path.join(REPO, "samples", "mlp_moons.py")
    made = gradstep("compile", sample, "--out", "m.gsgraph", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "kernels" in made.stdout and "fuse:" in made.stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    saved = gradstep(
        "run", str(tmp_path / "m.gsgraph"), "--steps", "20", "--record", "a.gsrec", cwd=elsewhere
    )
    assert saved.returncode == 0, saved.stderr
    direct = gradstep(
        "run", sample, "--mode", "compiled", "--steps", "20", "--record", "b.gsrec", cwd=tmp_path
    )
    assert direct.returncode == 0, direct.stderr
    a, b = losses(elsewhere / "a.gsrec"), losses(tmp_path / "b.gsrec")
    assert len(a) == 20 and a == b
    assert "final loss" in saved.stdout


def test_compile_refuses_a_bad_out_path(tmp_path) -> None:
    sample = os.path.join(REPO, "samples", "neuron.py")
    wrong = gradstep("compile", sample, "--out", "m.txt", cwd=tmp_path)
    assert wrong.returncode == 2 and ".gsgraph" in wrong.stderr
    missing = gradstep("compile", sample, "--out", "no/such/m.gsgraph", cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_a_program_with_batches_keeps_them_and_its_file_runs_alone(tmp_path) -> None:
    """attention.py's step takes a batch each step: the file keeps the first 12
    (--batches), a run of 20 steps takes them in turn and again from the first,
    as a compiled run of the program given those batches does."""
    sample = os.path.join(REPO, "samples", "attention.py")
    made = gradstep("compile", sample, "--out", "a.gsgraph", "--batches", "12", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "batches: the first 12 kept" in made.stdout and "again from the first" in made.stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    saved = gradstep(
        "run", str(tmp_path / "a.gsgraph"), "--steps", "20", "--record", "a.gsrec", cwd=elsewhere
    )
    assert saved.returncode == 0, saved.stderr
    script = (
        "import core, sys\n"
        "from core.debug import program\n"
        f"run = program.load({sample!r}).build('cpu')\n"
        "step = core.compile(run.step)\n"
        "print(' '.join(repr(step(run.batches(i % 12)).item()) for i in range(20)))\n"
    )
    direct = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert direct.returncode == 0, direct.stderr
    assert losses(elsewhere / "a.gsrec") == [float(v) for v in direct.stdout.split()]


def test_a_saved_graph_whose_guard_fails_says_why(tmp_path) -> None:
    """control_flow.py's graph was traced for one branch: when a kept batch
    takes the other, the run stops with the guard and its line, and the way
    out, rather than a traceback."""
    sample = os.path.join(REPO, "samples", "control_flow.py")
    made = gradstep("compile", sample, "--out", "c.gsgraph", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    ran = gradstep("run", "c.gsgraph", "--steps", "20", cwd=tmp_path)
    assert ran.returncode == 1, ran.stderr
    assert "c.gsgraph" in ran.stderr and "another path than the traced one" in ran.stderr
    assert "control_flow.py:" in ran.stderr and "--mode compiled" in ran.stderr
    assert "Traceback" not in ran.stderr
