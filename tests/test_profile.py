"""The profiler and the eager/compiled comparison, in core and on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import core
from core.debug.compare import compare
from core.debug.profile import chrome_trace, profile_matrix, profile_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOONS = os.path.join(REPO, "samples", "mlp_moons.py")
ENV = {**os.environ, "PYTHONPATH": REPO, "QT_QPA_PLATFORM": "offscreen"}


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_per_op_times_add_up_to_the_step(mode: str) -> None:
    run = profile_run(MOONS, "cpu", mode, steps=5, warmup=2, profiled=7)
    assert 0.9 <= run.coverage <= 1.0, run.coverage  # per step: sum of op times / step time
    total = sum(r.self_ms.median for r in run.ops)
    assert sum(run.by_phase.values()) == pytest.approx(total, rel=0.2)
    assert {"forward", "backward", "update"} <= set(run.by_phase)
    assert run.count > 0 and run.peak_host_bytes > 0 and run.step_ms.p10 <= run.step_ms.p90
    assert run.timeline and all(op["ms"] >= 0 for op in run.timeline)


def test_compiled_steps_are_kernels_and_fewer() -> None:
    eager, compiled = profile_matrix(MOONS, ("cpu",), ("eager", "compiled"), steps=3, warmup=2)
    assert compiled.count < eager.count
    assert any(r.name.startswith("fused") for r in compiled.ops)
    trace = chrome_trace([eager, compiled])
    names = [e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"]
    assert len(names) == 2 and "eager on cpu" in names[0] and "compiled on cpu" in names[1]


def test_a_profile_taken_while_a_debug_run_is_paused_times_a_quiet_engine() -> None:
    """A paused Session lets go of the bus (its run emits nothing meanwhile), so
    a profile taken then counts kernels, not a debugger's account of their ops."""
    from core.debug.session import Session
    from core.observe.bus import BUS

    session = Session.from_file(MOONS, steps=2, mode="compiled")
    session.start(paused=True)
    try:
        deadline = time.monotonic() + 30
        while session.state != "paused" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert session.state == "paused"
        assert not BUS.active and not BUS.want_kernel_ops and not BUS.want_values
        (compiled,) = profile_matrix(MOONS, ("cpu",), ("compiled",), steps=3, warmup=2)
        assert compiled.count == 37  # mlp_moons's kernels (58 traced ops)
        session.resume()
        assert session.wait(30) and session.state == "finished"
        assert not BUS.active
    finally:
        session.stop()
        session.wait(5)


def test_a_machine_without_a_gpu_says_why() -> None:
    if core.cuda.is_available():
        pytest.skip("a GPU is present")
    (run,) = profile_matrix(MOONS, ("cuda",), ("eager",), steps=1)
    assert run.unavailable == core.cuda.unavailable_reason() and not run.ops


def test_every_eager_op_maps_to_one_kernel_or_a_pass() -> None:
    result = compare(MOONS, steps=3)
    assert result.ok and result.graphs == 1
    traced = [n.origin for n in result.entry.trace.graph.ops]
    assert set(result.mapping) == set(traced) and len(traced) == 58
    kinds = {entry[0] for entry in result.mapping.values()}
    assert kinds <= {"kernel", "merged", "removed"}
    assert all(entry[1] != "unknown" for entry in result.mapping.values())
    kernels = {entry[1] for entry in result.mapping.values() if entry[0] == "kernel"}
    assert len(kernels) == len(result.entry.program.kernels)  # every kernel covers some op


def gradstep(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_profile_command_prints_the_matrix_and_writes_json(tmp_path) -> None:
    out_json, out_trace = tmp_path / "m.json", tmp_path / "t.json"
    done = gradstep(
        "profile",
        MOONS,
        "--devices",
        "cpu,cuda",
        "--steps",
        "3",
        "--json",
        str(out_json),
        "--trace",
        str(out_trace),
    )
    assert done.returncode == 0, done.stderr
    assert "ms/step" in done.stdout and "top ops by time per step" in done.stdout
    rows = json.loads(out_json.read_text())
    assert [(r["mode"], r["device"]) for r in rows] == [
        ("eager", "cpu"),
        ("compiled", "cpu"),
        ("eager", "cuda"),
        ("compiled", "cuda"),
    ]
    if not core.cuda.is_available():
        assert "unavailable: " in done.stdout and rows[2]["unavailable"]
    assert json.loads(out_trace.read_text())["traceEvents"]
    bad = gradstep("profile", MOONS, "--modes", "lazy")
    assert bad.returncode == 2 and "--modes" in bad.stderr


NOISY = '''"""Noisy

A step that draws its noise with NumPy: a compiled graph bakes it in.
"""
import numpy as np

import core
from core import nn, optim
import core.functional as F
from core.program import Run


def build(device="cpu"):
    core.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)

    def step():
        x = core.tensor(rng.normal(size=(8, 3)).astype(np.float32))  # new values each call
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    return Run(step=step, steps=5, model=model)
'''


def test_compare_command_agrees_and_fails_on_disagreement(tmp_path) -> None:
    fine = gradstep("compare", MOONS, "--steps", "3")
    assert fine.returncode == 0, fine.stderr
    assert "max rel diff" in fine.stdout and "fuse:" in fine.stdout
    noisy = tmp_path / "noisy.py"
    noisy.write_text(NOISY)
    wrong = gradstep("compare", str(noisy), "--steps", "3")
    assert wrong.returncode == 1 and "disagree" in wrong.stderr and "NO" in wrong.stdout
