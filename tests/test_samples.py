"""Every program in samples/ loads, builds and trains; bad programs give clear errors.

No Qt here: a sample's ``step`` is called directly, as a Session would call it.
"""

from __future__ import annotations

import functools
import math
import os
import sys

import numpy as np
import pytest

import core
from core.debug.program import ProgramError, Run, load
from core.observe import events
from core.observe.bus import BUS

SAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "samples")
SAMPLES = sorted(f for f in os.listdir(SAMPLES_DIR) if f.endswith(".py"))
EXPECTED = {
    "attention.py",
    "cnn_digits.py",
    "control_flow.py",
    "dead_relu.py",
    "exploding.py",
    "mlp_moons.py",
    "neuron.py",
    "thermometer.py",
}
TRAINING = [name for name in SAMPLES if name != "exploding.py"]

# The book's readings (Deep Learning with PyTorch, chapter 5).
T_C = [0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]
T_U = [35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]


def sample_path(name: str) -> str:
    return os.path.abspath(os.path.join(SAMPLES_DIR, name))


def take_step(run: Run, i: int):
    """Step ``i`` as a Session runs it: with ``batches(i)`` when the run has them."""
    return run.step(run.batches(i)) if run.batches is not None else run.step()


def losses_of(run: Run, n: int) -> list[float]:
    losses = []
    for i in range(n):
        loss = take_step(run, i)
        assert isinstance(loss, core.Tensor | float), type(loss)
        losses.append(float(loss))
    return losses


@functools.cache
def trained(name: str) -> tuple[Run, list[float]]:
    """The sample built on the CPU and run for all its steps (shared by tests)."""
    run = load(sample_path(name)).build("cpu")
    with np.errstate(over="ignore", invalid="ignore"):
        return run, losses_of(run, run.steps)


# -- every sample --------------------------------------------------------------


def test_the_samples_are_all_there():
    assert EXPECTED <= set(SAMPLES)
    readme = open(os.path.join(SAMPLES_DIR, "README.md"), encoding="utf-8").read()
    for name in SAMPLES:
        assert f"`{name}`" in readme, f"samples/README.md does not list {name}"


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_loads_builds_and_steps(name):
    program = load(sample_path(name))
    assert program.title and program.title != name, "the docstring needs a title line"
    assert len(program.description) > 40, "the docstring needs a description paragraph"
    run = program.build("cpu")
    assert isinstance(run, Run)
    assert run.steps > 0
    for i in range(3):
        loss = take_step(run, i)
        assert isinstance(loss, core.Tensor) and loss.numel() == 1
        assert loss.device == "cpu"
        assert math.isfinite(float(loss)), f"step {i}: loss {float(loss)}"
    params = list(run.named_parameters())
    assert params, "a sample has parameters to show"
    for pname, p in params:
        assert p.requires_grad and p.device == "cpu" and p.dtype.kind == "f", pname
    assert any(p.grad is not None for _name, p in params), "the step gave no gradient"


@pytest.mark.parametrize("name", TRAINING)
def test_sample_loss_goes_down(name):
    run, losses = trained(name)
    assert all(math.isfinite(v) for v in losses), name
    tail = float(np.mean(losses[-5:]))
    assert tail < 0.7 * losses[0], f"{name}: loss {losses[0]:.4g} -> {tail:.4g}"
    if run.evaluate is not None:
        metrics = run.evaluate()
        assert metrics and all(isinstance(v, float) for v in metrics.values())


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_is_repeatable(name):
    first = losses_of(load(sample_path(name)).build("cpu"), 3)
    second = losses_of(load(sample_path(name)).build("cpu"), 3)
    assert first == second, "build() must seed everything it draws"


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_events_name_its_lines_and_scopes(name):
    path = sample_path(name)
    run = load(path).build("cpu")
    seen = []
    unsubscribe = BUS.subscribe(seen.append, stats=True, source=True)
    try:
        take_step(run, 0)
    finally:
        unsubscribe()
    ops = [e for e in seen if isinstance(e, events.OpForward)]
    assert ops and any(isinstance(e, events.OpBackward) for e in seen)
    assert {e.source.file for e in ops} == {path}
    if run.model is not None:
        scopes = {e.path for e in seen if isinstance(e, events.ModuleEnter)}
        assert any(s.startswith("model.") for s in scopes), scopes


# -- what each sample promises -----------------------------------------------------


def test_neuron_fits_its_points():
    run, losses = trained("neuron.py")
    assert set(run.params) == {"w", "b"}
    assert losses[-1] < 0.01
    assert abs(run.params["w"].item() - 1.5) < 0.2 and abs(run.params["b"].item() - 0.5) < 0.2


def test_thermometer_reaches_the_least_squares_line():
    w_best, b_best = np.polyfit(T_U, T_C, 1)
    namespace = load(sample_path("thermometer.py")).namespace
    assert namespace["T_U"] == T_U and namespace["T_C"] == T_C
    run, _losses = trained("thermometer.py")
    fit = run.evaluate()
    assert abs(fit["w"] - w_best) < 1e-2, (fit, w_best)
    assert abs(fit["b"] - b_best) < 0.1, (fit, b_best)


def test_mlp_moons_separates_the_moons():
    run, _losses = trained("mlp_moons.py")
    assert run.evaluate()["accuracy"] >= 0.95


def test_cnn_digits_reads_digits():
    run, _losses = trained("cnn_digits.py")
    assert run.evaluate()["accuracy"] >= 0.9
    x, y = run.batches(0)
    assert x.shape == (32, 1, 8, 8) and y.shape == (32,)
    assert np.array_equal(run.batches(5)[0].numpy(), run.batches(5)[0].numpy())


def test_attention_learns_to_reverse():
    run, losses = trained("attention.py")
    assert losses[-1] < 0.1 * losses[0]
    assert run.evaluate()["accuracy"] >= 0.9


def test_control_flow_takes_different_paths():
    run = load(sample_path("control_flow.py")).build("cpu")
    paths = []
    for i in range(2):
        seen = []
        unsubscribe = BUS.subscribe(seen.append)
        try:
            take_step(run, i)
        finally:
            unsubscribe()
        paths.append({e.path for e in seen if isinstance(e, events.ModuleEnter)})
    assert "model.left" in paths[0] and "model.right" not in paths[0]
    assert "model.right" in paths[1] and "model.left" not in paths[1]


def first_nonfinite(name: str) -> tuple[int, int]:
    """(first inf-or-nan step, first nan step) of a fresh run."""
    run = load(sample_path(name)).build("cpu")
    with np.errstate(over="ignore", invalid="ignore"):
        losses = losses_of(run, run.steps)
    bad = [i for i, v in enumerate(losses) if not math.isfinite(v)]
    nans = [i for i, v in enumerate(losses) if math.isnan(v)]
    assert bad and nans, f"no NaN in {run.steps} steps: {losses[-3:]}"
    return bad[0], nans[0]


def test_exploding_turns_nan_at_a_fixed_step():
    first = first_nonfinite("exploding.py")
    assert first == first_nonfinite("exploding.py")
    inf_step, nan_step = first
    assert 5 <= inf_step <= nan_step <= 35, first


def test_dead_relu_kills_most_gradients():
    run = load(sample_path("dead_relu.py")).build("cpu")
    take_step(run, 0)
    grad = run.model.fc1.weight.grad.numpy()
    assert (grad == 0).mean() > 0.5
    healthy = core.nn.Linear(2, 64)  # the default init, for contrast
    assert (run.model.fc1.bias.numpy() < healthy.bias.numpy()).all()


@pytest.mark.gpu
@pytest.mark.parametrize("name", SAMPLES)
def test_sample_runs_on_cuda_like_on_cpu(name):
    if not core.cuda.is_available():
        pytest.skip(core.cuda.unavailable_reason())
    program = load(sample_path(name))
    cpu = losses_of(program.build("cpu"), 3)
    run = program.build("cuda")
    gpu = losses_of(run, 3)
    for pname, p in run.named_parameters():
        assert p.device == "cuda", pname
    np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-5)


# -- bad programs ------------------------------------------------------------------


def write(tmp_path, text: str, name: str = "prog.py") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


GOOD = '''"""Tiny

A one-parameter program.
"""
import core
from core.debug.program import Run


def build(device="cpu"):
    w = core.tensor(1.0, requires_grad=True, device=device)

    def step():
        w.grad = None
        loss = w * w
        loss.backward()
        return loss

    return Run(step=step, steps=2, params={"w": w})
'''


def test_a_good_program_loads(tmp_path):
    program = load(write(tmp_path, GOOD))
    assert (program.title, program.description) == ("Tiny", "A one-parameter program.")
    run = program.build()
    assert float(run.step()) == 1.0 and dict(run.named_parameters()).keys() == {"w"}


def test_missing_file(tmp_path):
    path = str(tmp_path / "nowhere.py")
    with pytest.raises(ProgramError, match="no such file") as info:
        load(path)
    assert path in str(info.value)


def test_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "import core\n\ndef build(device:\n    pass\n")
    with pytest.raises(ProgramError, match="syntax error") as info:
        load(path)
    assert f"{path}:3" in str(info.value) and info.value.line == 3


def test_null_bytes_are_a_syntax_error(tmp_path):
    path = tmp_path / "nul.py"
    path.write_bytes(b"x = 1\x00\n")
    with pytest.raises(ProgramError, match="null bytes") as info:
        load(path)
    assert ":None" not in str(info.value)


def test_exception_at_import_names_the_line(tmp_path):
    path = write(tmp_path, '"""T\n\nd\n"""\nx = 1\nraise RuntimeError("boom")\n')
    with pytest.raises(ProgramError, match="RuntimeError") as info:
        load(path)
    assert f"{path}:6" in str(info.value) and "boom" in str(info.value)
    assert info.value.line == 6


def test_missing_module(tmp_path):
    path = write(tmp_path, "import core\nimport no_such_module_gradstep\n")
    with pytest.raises(ProgramError, match="no_such_module_gradstep") as info:
        load(path)
    assert f"{path}:2" in str(info.value) and "missing" in str(info.value)


def test_missing_name_in_an_import(tmp_path):
    path = write(tmp_path, "from core import no_such_thing\n")
    with pytest.raises(ProgramError, match="no_such_thing") as info:
        load(path)
    assert f"{path}:1" in str(info.value)


def test_missing_build(tmp_path):
    path = write(tmp_path, '"""No entry"""\nx = 1\n')
    with pytest.raises(ProgramError, match=r"no build\(device\) function") as info:
        load(path)
    assert path in str(info.value)


def test_sys_exit_does_not_end_the_app(tmp_path):
    path = write(tmp_path, "import sys\nsys.exit(3)\n")
    with pytest.raises(ProgramError, match="SystemExit") as info:
        load(path)
    assert f"{path}:2" in str(info.value)


def test_failed_load_leaves_no_module_behind(tmp_path):
    path = write(tmp_path, "raise ValueError('no')\n", name="leftover.py")
    with pytest.raises(ProgramError):
        load(path)
    assert "gradstep_program_leftover" not in sys.modules


def test_error_in_build_names_the_line(tmp_path):
    path = write(tmp_path, 'def build(device="cpu"):\n    return 1 / 0\n')
    program = load(path)
    with pytest.raises(ProgramError, match="ZeroDivisionError") as info:
        program.build()
    assert f"{path}:2" in str(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("return 3", "returned int"),
        ("return Run(step=3, steps=1)", "Run.step is not callable"),
        ("return Run(step=print, steps=None)", "Run.steps must be"),
        ("return Run(step=print, steps=-1)", "Run.steps must be"),
        ("return Run(step=print, steps=1, batches=[1])", "Run.batches is not callable"),
    ],
)
def test_build_result_is_checked(tmp_path, body, message):
    text = f'from core.debug.program import Run\n\n\ndef build(device="cpu"):\n    {body}\n'
    program = load(write(tmp_path, text))
    with pytest.raises(ProgramError, match=message):
        program.build()


def test_description_keeps_paragraphs(tmp_path):
    text = '"""Title\n\nFirst paragraph,\n  on two lines.\n\nSecond one.\n"""\n'
    program = load(write(tmp_path, text + "def build(device): pass\n"))
    assert program.title == "Title"
    assert program.description == "First paragraph, on two lines.\n\nSecond one."


def test_no_docstring_falls_back_to_the_file_name(tmp_path):
    program = load(write(tmp_path, "def build(device): pass\n", name="plain.py"))
    assert (program.title, program.description) == ("plain.py", "")
