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


def test_a_graph_that_needs_inputs_says_so(tmp_path) -> None:
    sample = os.path.join(REPO, "samples", "control_flow.py")
    made = gradstep("compile", sample, "--out", "c.gsgraph", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    ran = gradstep("run", "c.gsgraph", "--steps", "2", cwd=tmp_path)
    assert ran.returncode == 2 and "input" in ran.stderr and "c.gsgraph" in ran.stderr
