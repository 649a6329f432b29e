"""Deferred mode: ``core.compile`` against eager on every sample and on random
programs, the guards, the text and file forms, and the events."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from helpers_data import mse_step
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import core
import core.functional as F
from core import nn, optim
from core.debug import graphfile
from core.debug import program as programs
from core.debug.program import ProgramError
from core.debug.recording import Recording
from core.debug.session import Session
from core.deferred import saved
from core.deferred.graph import Graph
from core.deferred.interpret import GuardFailed
from core.engine.dispatch import announce
from core.observe.bus import BUS
from core.observe.events import KernelRun, OpForward, PassApplied, StepRetraced

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "samples")
SAMPLE_FILES = sorted(f for f in os.listdir(SAMPLES) if f.endswith(".py"))


def run_sample(name: str, mode: str, steps: int = 20, **compile_args):
    core.reset_ids()
    run = programs.load(os.path.join(SAMPLES, name)).build("cpu")
    step = core.compile(run.step, **compile_args) if mode == "compiled" else run.step
    losses = []
    with np.errstate(all="ignore"):
        for i in range(steps):
            loss = step(run.batches(i)) if run.batches else step()
            losses.append(loss.item())
    params = {n: p.numpy().copy() for n, p in run.named_parameters()}
    return losses, params, step


def assert_close(a, b, what: str) -> None:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    same_nan = np.isnan(a) == np.isnan(b)
    assert same_nan.all(), what
    finite = ~np.isnan(a)
    np.testing.assert_allclose(a[finite], b[finite], rtol=1e-5, atol=1e-7, err_msg=what)


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_every_sample_matches_eager_step_by_step(name: str) -> None:
    eager_losses, eager_params, _ = run_sample(name, "eager")
    losses, params, compiled = run_sample(name, "compiled")
    assert_close(losses, eager_losses, f"{name} losses")
    for key in eager_params:
        assert_close(params[key], eager_params[key], f"{name} {key}")
    if name == "control_flow.py":
        assert compiled.retraces and len(compiled.graphs) > 1
        assert any("control_flow.py" in r for r in compiled.retraces), compiled.retraces
    else:
        assert compiled.eager_calls == 1 and not compiled.retraces, compiled.retraces


def test_interpreter_and_generated_code_agree() -> None:
    losses, params, _ = run_sample("mlp_moons.py", "compiled", 5)
    ref_losses, ref_params, _ = run_sample("mlp_moons.py", "compiled", 5, backend="interpret")
    assert losses == ref_losses
    for key in params:
        np.testing.assert_array_equal(params[key], ref_params[key])


# -- guards ------------------------------------------------------------------------------


def branchy():
    core.manual_seed(0)
    w = core.tensor([0.5, -0.25], requires_grad=True)

    def step(x):
        w.grad = None
        y = (w * x).sum()
        if y.item() > 0:  # a decision on a value
            y = y * 3.0
        y.backward()
        with core.no_grad():
            w.sub_(w.grad * 0.01)
        return y

    return w, step


def test_a_failed_guard_runs_eagerly_and_retraces() -> None:
    w, step = branchy()
    compiled = core.compile(step)
    positive, negative = core.tensor([1.0, 1.0]), core.tensor([-1.0, 1.0])
    compiled(positive)
    compiled(positive)
    assert compiled.eager_calls == 1
    guard = [g for g in compiled.graph.guards if g.kind == "compare"]
    assert len(guard) == 1 and guard[0].detail == {"op": ">", "other": 0.0}
    assert guard[0].source.endswith(f"test_compile.py:{branchy.__code__.co_firstlineno + 7}")
    compiled(negative)  # the other way: eager, and traced again
    assert compiled.eager_calls == 2 and len(compiled.graphs) == 2
    assert "was True" in compiled.retraces[0]
    compiled(negative)
    compiled(positive)
    assert compiled.eager_calls == 2  # both paths are cached now
    w2, eager = branchy()
    for x in (positive, positive, negative, negative, positive):
        eager(x)
    np.testing.assert_allclose(w.numpy(), w2.numpy(), rtol=1e-6)


def test_a_failed_guard_writes_nothing() -> None:
    w, step = branchy()
    compiled = core.compile(step)
    compiled(core.tensor([1.0, 1.0]))
    before = w.numpy().copy()
    with pytest.raises(GuardFailed):
        compiled.latest.bound.run([core.tensor([-1.0, 1.0])])
    np.testing.assert_array_equal(w.numpy(), before)


def test_other_shapes_are_another_graph() -> None:
    core.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = model(x).tanh().sum()
        loss.backward()
        opt.step()
        return loss

    compiled = core.compile(step)
    compiled(core.randn(4, 3))
    compiled(core.randn(5, 3))
    assert len(compiled.graphs) == 2 and "in0" in compiled.retraces[0]


def test_random_values_inside_a_step_are_noted() -> None:
    x = core.tensor([1.0, 2.0], requires_grad=True)

    def step():
        return (x * core.randn(2)).sum()

    compiled = core.compile(step)
    compiled()
    assert any("random values" in note for note in compiled.latest.trace.notes)


# -- forms -------------------------------------------------------------------------------


def test_text_and_json_forms() -> None:
    _, _, compiled = run_sample("mlp_moons.py", "compiled", 2)
    graph = compiled.graph
    text = str(graph)
    assert text.startswith("graph(") and "linear(" in text and "fc1.weight <- " in text
    again = Graph.from_json(graph.to_json(), graph.constants)
    assert str(again) == text
    annotated = compiled.latest.trace.graph.annotated()
    assert "model.fc1" in annotated and "mlp_moons.py:" in annotated and "backward" in annotated
    assert "def step(I):" in compiled.code


def test_saved_graph_runs_in_a_fresh_process_from_another_folder(tmp_path) -> None:
    losses, _, compiled = run_sample("mlp_moons.py", "compiled", 3)
    path = tmp_path / "moons.gsgraph"
    compiled.save(path)
    more = [compiled().item() for _ in range(3)]
    script = (
        "import core, sys\n"
        f"step = core.compile.load({str(path)!r})\n"
        "print(' '.join(repr(step().item()) for _ in range(3)))\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert [float(v) for v in out.stdout.split()] == more


def test_a_broken_graph_file_names_the_file(tmp_path) -> None:
    path = tmp_path / "not.gsgraph"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(saved.GraphFileError, match="not.gsgraph"):
        core.compile.load(path)


def test_kept_calls_run_a_graph_with_inputs_alone(tmp_path) -> None:
    """A step that takes batches, saved with its first calls' arguments: the
    loaded step runs them in turn (the structure of the arguments rebuilt) and
    gives what the compiled step gave; a wrong count of calls is refused."""
    core.reset_ids()
    run = programs.load(os.path.join(SAMPLES, "attention.py")).build("cpu")
    compiled = core.compile(run.step)
    batches = [run.batches(i) for i in range(3)]
    path = tmp_path / "attention.gsgraph"
    compiled(batches[0])
    compiled.save(path, initial=True, calls=[((b,), {}) for b in batches[1:]])
    want = [compiled(b).item() for b in batches[1:]]
    step = core.compile.load(path)
    assert len(step.calls) == 2 and len(step.calls[0]) == len(step.graph.inputs) > 0
    # the file's state is the one before the traced call: run it up to the kept calls
    step(batches[0])
    got = [step(*args, **kwargs).item() for args, kwargs in map(step.saved_call, range(2))]
    assert got == want
    bare = tmp_path / "bare.gsgraph"
    compiled.save(bare)  # no calls kept: it cannot run as a program alone
    with pytest.raises(ProgramError, match=r"bare\.gsgraph: .*keeps none"):
        graphfile.load_program(bare)
    with pytest.raises(saved.GraphFileError, match="other arguments"):
        compiled.save(tmp_path / "other.gsgraph", calls=[((batches[0], batches[1]), {})])
    broken = tmp_path / "broken.gsgraph"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "graph.json":
                meta = json.loads(data)
                meta["calls"] = "two"
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    with pytest.raises(saved.GraphFileError, match=r"broken\.gsgraph: 'calls' is 'two'"):
        core.compile.load(broken)


def test_a_saved_graph_is_not_compiled_again(tmp_path) -> None:
    """Its kernels work on arrays, so a trace of it would see no op and replay a
    constant: ``core.compile`` of a loaded step refuses, and a debugging session
    in compiled mode runs the file as it is (the same losses as in eager mode)."""
    _, _, compiled = run_sample("neuron.py", "compiled", 1)
    path = tmp_path / "neuron.gsgraph"
    compiled.save(path, initial=True, title="neuron", steps=4)
    again = core.compile(core.compile.load(path))
    with pytest.raises(saved.GraphFileError, match="compiled step already"):
        again()
    losses = {}
    for mode in ("eager", "compiled"):
        session = Session.from_file(str(path), mode=mode, steps=4)
        session.start()
        assert session.wait(timeout=60)
        assert session.state == "finished" and session.mode == "compiled"
        losses[mode] = [loss for _step, loss in session.recording.losses]
    assert losses["eager"] == losses["compiled"] and len(losses["eager"]) == 4


# -- events ------------------------------------------------------------------------------


def test_kernel_and_pass_events_only_when_someone_listens() -> None:
    events: list = []
    unsubscribe = BUS.subscribe(events.append)
    try:
        _, _, compiled = run_sample("neuron.py", "compiled", 3)
    finally:
        unsubscribe()
    passes = [e for e in events if isinstance(e, PassApplied)]
    kernels = [e for e in events if isinstance(e, KernelRun)]
    assert [p.name for p in passes] == list(compiled.passes)
    assert len(kernels) == 2 * len(compiled.latest.program.kernels)  # two compiled calls
    assert all(k.duration_ns > 0 and k.device == "cpu" for k in kernels)
    covered = {n for k in kernels for n in k.nodes}
    assert covered  # each kernel names the eager nodes it covers
    assert not [e for e in events if isinstance(e, StepRetraced)]


def test_a_debugger_watching_a_compiled_run_changes_nothing() -> None:
    """Told op by op to a recording, the compiled run computes the same bits."""
    quiet_losses, quiet_params, _ = run_sample("mlp_moons.py", "compiled", 5)
    rec = Recording()
    with rec.attach():
        losses, params, _ = run_sample("mlp_moons.py", "compiled", 5)
    assert any(isinstance(e, KernelRun) for e in rec.events)
    assert losses == quiet_losses
    for key in params:
        np.testing.assert_array_equal(params[key], quiet_params[key])


@pytest.mark.parametrize("name", ["mlp_moons.py", "attention.py"])
def test_a_recorded_compiled_step_reads_like_an_eager_one(name: str) -> None:
    """A debugger's recording of a compiled call: each kernel's ops before it,
    every input an op reads made before it, each kernel's outputs kept, and the
    parameters' values and gradients as the live tensors have them."""
    core.reset_ids()
    run = programs.load(os.path.join(SAMPLES, name)).build("cpu")
    compiled = core.compile(run.step)
    for i in range(2):  # traced, then compiled
        compiled(run.batches(i)) if run.batches else compiled()
    rec = Recording()
    with rec.attach():  # build's parameters first, as a Session records them
        for p_name, p in run.named_parameters():
            announce(p, "parameter", p_name)
        compiled(run.batches(2)) if run.batches else compiled()
    entry = compiled.latest
    kernels = [e for e in rec.events if isinstance(e, KernelRun)]
    assert [k.kernel for k in kernels] == list(range(len(entry.program.kernels)))
    told = [e for e in rec.events if isinstance(e, OpForward) and e.kernel is not None]
    assert sum(len(k.nodes) for k in kernels) == len(told)
    for kernel in kernels:  # its ops come just before it, and say so
        at = rec.events.index(kernel)
        ops = rec.events[at - len(kernel.nodes) : at]
        assert all(isinstance(e, OpForward) and e.kernel == kernel.kernel for e in ops)
        assert all(rec.has_value(i) for i in kernel.outputs)
    made = {e.output for e in told} | {s for e in told for s in e.side_outputs}
    made |= {t.id for t in entry.trace.state.values()}  # parameters, optimizer state
    for e in told:  # nothing an op reads is anonymous
        for tid in e.inputs:
            assert tid in made or tid in rec.producer, (e.op, tid)
    for p_name, p in run.named_parameters():
        np.testing.assert_array_equal(rec.value(p.id), p.numpy(), err_msg=p_name)
        np.testing.assert_array_equal(rec.grad_of(p.id), p.grad.numpy(), err_msg=p_name)


# -- random programs ---------------------------------------------------------------------

UNARY = [
    lambda a: a.tanh(),
    lambda a: a.exp(),
    lambda a: a.sigmoid(),
    lambda a: F.relu(a),
    lambda a: a * a,
    lambda a: F.gelu(a, approximate="tanh"),
    lambda a: a.abs(),
    lambda a: -a,
]
BINARY = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b, lambda a, b: a / b]
REDUCE = [
    lambda a: a.sum(axis=0, keepdims=True),
    lambda a: a.mean(axis=-1, keepdims=True),
    lambda a: a.max(axis=0, keepdims=True),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    program=st.lists(
        st.tuples(st.sampled_from(["unary", "binary", "reduce"]), st.integers(0, 7)),
        min_size=2,
        max_size=9,
    ),
    specials=st.lists(st.sampled_from([math.nan, math.inf, -math.inf, -0.0]), max_size=3),
    seed=st.integers(0, 2**16),
)
def test_random_programs_agree_compiled_and_eager(program, specials, seed) -> None:
    """Elementwise, broadcasting and reduction ops, NaN and Inf among the values:
    the same values and gradients compiled as eager."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((4, 3))
    for i, value in enumerate(specials):
        base.flat[(i * 5) % base.size] = value
    row = rng.standard_normal((1, 3))

    def build():
        x = core.tensor(base, dtype="float64", requires_grad=True)
        r = core.tensor(row, dtype="float64", requires_grad=True)

        def step():
            x.grad = None
            r.grad = None
            values = [x, r]
            for kind, k in program:
                a = values[-1]
                if kind == "unary":
                    values.append(UNARY[k % len(UNARY)](a))
                elif kind == "binary":
                    values.append(BINARY[k % len(BINARY)](a, values[k % len(values)]))
                else:
                    values.append(REDUCE[k % len(REDUCE)](a))
            out = values[-1] * 1.0 + x
            out.sum().backward()
            return out

        return x, r, step

    with np.errstate(all="ignore"):
        x1, r1, eager = build()
        want = [eager().numpy() for _ in range(2)]
        x2, r2, step = build()
        compiled = core.compile(step)
        got = [compiled().numpy() for _ in range(2)]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, equal_nan=True)
    np.testing.assert_allclose(x2.grad.numpy(), x1.grad.numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(r2.grad.numpy(), r1.grad.numpy(), rtol=1e-12, equal_nan=True)
    assert compiled.eager_calls == 1


def test_an_op_reading_one_value_twice_in_a_row_blocked_kernel() -> None:
    """``u + u`` frees u's scratch block once: freed twice, it was handed to two
    values alive at once in a kernel large enough to run in row blocks."""
    x = core.tensor(np.linspace(-2.0, 2.0, 600 * 500, dtype=np.float32).reshape(600, 500))

    def step():
        u = x * 3.0
        return (u + u) * (x * 0.5).tanh() + (x * x).exp()

    eager = step().numpy()
    compiled = core.compile(step)
    compiled()
    assert "for r in range(0, 600," in compiled.latest.program.source  # row blocks
    np.testing.assert_array_equal(compiled().numpy(), eager)


@pytest.mark.parametrize("case", ["rows", "transposed", "batched"])
def test_a_big_bias_gradient_sums_as_eager_does(case: str) -> None:
    """A bias gradient over 128 rows of 64 sums through BLAS with a ones vector
    made once, as the eager op does for a contiguous array (also over a batch of
    matrices, a position bias), and with NumPy's reduction when the rows are a
    transposed view: the same bits either way."""

    def make():
        core.manual_seed(3)
        layer = nn.Linear(300, 64)
        position = nn.Parameter(core.randn(32, 64).data)
        opt = optim.SGD([*layer.parameters(), position], lr=0.1)
        x, y = core.randn(128, 300), core.randn(128, 64)

        def step():
            opt.zero_grad()
            out = layer(x)
            if case == "transposed":
                loss = F.mse_loss(out.T, y.T)
            elif case == "batched":
                loss = F.mse_loss(out.reshape(4, 32, 64) + position, y.reshape(4, 32, 64))
            else:
                loss = F.mse_loss(out, y)
            loss.backward()
            opt.step()
            return loss

        return layer, position, step

    eager_layer, eager_position, eager_step = make()
    layer, position, step = make()
    compiled = core.compile(step)
    for _ in range(3):
        eager_step(), compiled()
        np.testing.assert_array_equal(layer.bias.grad.numpy(), eager_layer.bias.grad.numpy())
        np.testing.assert_array_equal(layer.bias.numpy(), eager_layer.bias.numpy())
        np.testing.assert_array_equal(position.numpy(), eager_position.numpy())
    assert "np.matmul(ONES128_float32" in compiled.code
    if case == "batched":
        assert "np.matmul(ONES4_float32" in compiled.code
    assert compiled.eager_calls == 1


# -- the GPU's code, checked here ----------------------------------------------------------


def test_fused_cuda_code_computes_what_the_numpy_kernel_does(tmp_path) -> None:
    """The CUDA C of a fused kernel (the body CuPy's ElementwiseKernel compiles)
    built with g++ on the host, against the NumPy kernel of the same node."""
    import ctypes
    import shutil

    from core.deferred.codegen import Literals
    from core.deferred.kernels_numpy import cuda_operation, fused_kernel
    from core.engine.expr import C_PRELUDE

    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ is not installed")
    core.manual_seed(0)
    x = core.randn(64, 8, requires_grad=True)

    def step():
        x.grad = None
        y = F.gelu(x, approximate="tanh") * x.sigmoid() + x * 0.5
        y.sum().backward()
        return x.grad

    compiled = core.compile(step)
    compiled()
    graph = compiled.graph
    fused = [n for n in graph.nodes if n.kind == "fused"]
    assert fused, str(graph)
    rng = np.random.default_rng(0)
    for k, node in enumerate(fused):
        _ins, _outs, body = cuda_operation(graph, node)
        arrays = [
            rng.standard_normal(graph.values[v].shape).astype(graph.values[v].dtype)
            for v in node.inputs
        ]
        literals = Literals(np)
        source = fused_kernel(graph, node, "numpy_kernel", literals)
        namespace = {"np": np, **literals.values}
        exec(source, namespace)  # noqa: S102
        want = namespace["numpy_kernel"](*arrays)
        want = want if isinstance(want, tuple) else (want,)
        params = ", ".join(f"float a{i}" for i in range(len(arrays)))
        outs = ", ".join(f"float& o{i}" for i in range(len(want)))
        pointers_in = ", ".join(f"const float* p{i}" for i in range(len(arrays)))
        pointers_out = ", ".join(f"float* q{i}" for i in range(len(want)))
        reads = ", ".join(f"p{i}[i]" for i in range(len(arrays)))
        writes = ", ".join(f"q{i}[i]" for i in range(len(want)))
        source = C_PRELUDE + (
            f"static inline void element({params}, {outs}) {{ {body}; }}\n"
            f'extern "C" void run(long n, {pointers_in}, {pointers_out}) {{\n'
            f"  for (long i = 0; i < n; i++) element({reads}, {writes});\n}}\n"
        )
        src, lib = tmp_path / f"k{k}.cpp", tmp_path / f"k{k}.so"
        src.write_text(source)
        subprocess.run(
            [compiler, "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(lib), str(src)],
            check=True,
            capture_output=True,
        )
        got = [np.empty_like(w) for w in want]
        full = [np.ascontiguousarray(np.broadcast_to(a, want[0].shape)) for a in arrays]
        pointers = [a.ctypes.data_as(ctypes.c_void_p) for a in (*full, *got)]
        ctypes.CDLL(str(lib)).run(ctypes.c_long(want[0].size), *pointers)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-7)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["mlp_moons.py", "cnn_digits.py", "attention.py"])
def test_samples_match_eager_on_cuda(name: str) -> None:
    if not core.cuda.is_available():
        pytest.skip(f"needs a CUDA device: {core.cuda.unavailable_reason()}")

    def run(mode: str):
        core.reset_ids()
        r = programs.load(os.path.join(SAMPLES, name)).build("cuda")
        step = core.compile(r.step) if mode == "compiled" else r.step
        out = [float((step(r.batches(i)) if r.batches else step()).item()) for i in range(10)]
        return out, step

    eager, _ = run("eager")
    compiled_losses, compiled = run("compiled")
    np.testing.assert_allclose(compiled_losses, eager, rtol=1e-4)
    fused = [k for k in compiled.latest.program.kernels if k.name.startswith("fused")]
    assert fused and "ElementwiseKernel" in compiled.code


def test_numba_kernels_are_kept_only_where_they_win_and_cached_on_disk(tmp_path, monkeypatch):
    """An arithmetic-only fused group big enough is compiled with Numba and
    timed; whichever kernel is kept, the values are the eager ones, and the
    kernel's source sits in the cache folder for the next process."""
    pytest.importorskip("numba")
    monkeypatch.setenv("GRADSTEP_CACHE", str(tmp_path))
    core.manual_seed(0)
    model = nn.Linear(128, 64)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    x, y = core.randn(32, 128), core.randn(32, 64)
    compiled = core.compile(mse_step(model, opt, x, y))
    losses = [compiled().item() for _ in range(3)]
    core.manual_seed(0)
    model2 = nn.Linear(128, 64)
    eager = mse_step(model2, optim.Adam(model2.parameters(), lr=1e-3), x, y)
    np.testing.assert_allclose(losses, [eager().item() for _ in range(3)], rtol=1e-6)
    np.testing.assert_allclose(model.weight.numpy(), model2.weight.numpy(), rtol=1e-5, atol=1e-7)
    assert list((tmp_path / "kernels").glob("gs_*.py")), "the candidate's source is cached"
    names = [k.name for k in compiled.latest.program.kernels]
    assert any(name.startswith("fused") for name in names)


# -- every op through the code generator ----------------------------------------------------


def _rows():
    """The gradient table, but the dropout rows: they reseed inside the step
    (``core.manual_seed``), a Python side effect a compiled step does not replay."""
    from test_op_grads import ROWS

    return [r for r in ROWS if not r.name.startswith("dropout")]


@pytest.mark.parametrize("r", _rows(), ids=lambda r: r.name)
def test_every_op_of_the_gradient_table_compiles_to_the_same_values(r) -> None:
    """Each row's function and its gradients, compiled (the second call runs the
    generated code): the same shapes, dtypes and values as eager."""
    from test_op_grads import make_inputs

    inputs = make_inputs(r, "cpu")
    wanted = [t for t in inputs if t.requires_grad]

    def step():
        for t in wanted:
            t.grad = None
        out = r.fn(*inputs)
        if out.requires_grad:
            (out * out).sum().backward()
        return out

    with np.errstate(all="ignore"):
        eager = step()
        eager_grads = [t.grad.numpy().copy() if t.grad is not None else None for t in wanted]
        compiled = core.compile(step)
        compiled()
        got = compiled()
    assert compiled.eager_calls == 1, compiled.retraces
    assert got.shape == eager.shape and got.dtype == eager.dtype, r.name
    np.testing.assert_allclose(got.numpy(), eager.numpy(), rtol=1e-12, atol=1e-14)
    for t, want in zip(wanted, eager_grads, strict=True):
        if want is None:
            assert t.grad is None
            continue
        assert t.grad.shape == want.shape, r.name
        np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-12, atol=1e-14, err_msg=r.name)
