"""Compiled runs in the window (issue 10), driven with real keys: the toolbar's
Mode, stepping kernel by kernel, fused kernels as boxes, each kernel's outputs
in the inspector and its generated code beside the source, a saved compiled
recording reopened, and the Analyze menu's Compare and Profile."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt

import core
from app.main_window import SAMPLES_DIR, MainWindow
from core.debug import program as programs
from core.debug.session import Breakpoint
from core.observe.events import KernelRun, OpForward, StepStarted
from widgets.kernel_code import EAGER_TEXT

WAIT = 30_000  # ms


def sample(name: str) -> str:
    return os.path.join(SAMPLES_DIR, name)


def paused_at(qtbot, w: MainWindow, after: int, said: str | None = None) -> None:
    """Wait until the run paused again past event ``after`` and the window shows
    it (its status no longer says ``said``, what it said before)."""

    def shown() -> bool:
        s = w.bridge.session
        rec = w.recording
        return (
            s is not None
            and s.state == "paused"
            and rec is not None
            and rec.position > after
            and w.status_phase.text().startswith("paused")
            # the window has caught up with the paused run
            and w.status_cursor.text() == f"event {rec.position + 1} of {len(rec)}"
            and w.reason.startswith(("step", "breakpoint", "Ready"))
            and w.status_reason.text() != said
        )

    qtbot.waitUntil(shown, timeout=WAIT)


def press_f11(qtbot, w: MainWindow) -> object:
    before, said = w.recording.position, w.status_reason.text()
    qtbot.keyClick(w, Qt.Key.Key_F11)
    paused_at(qtbot, w, before, said)
    return w.recording.current()


def compiled_step_paused(qtbot, w: MainWindow) -> None:
    """mlp_moons opened (paused, eager), switched to Compiled, run to step 1 (step
    0 is traced eagerly), paused at its start."""
    w.steps.setValue(3)
    assert w.open_path(sample("mlp_moons.py"))
    paused_at(qtbot, w, -1)
    assert w.mode.isEnabled()
    first = w.bridge.session
    w.mode.setCurrentIndex(w.mode.findData("compiled"))
    qtbot.waitUntil(  # the window shows the new run paused (not only the session is)
        lambda: w.bridge.session is not first and w.status_reason.text().startswith("Ready"),
        timeout=WAIT,
    )
    assert w.bridge.session.mode == "compiled"
    w.breakpoints.add_breakpoint(Breakpoint("step", 1))
    before, said = w.recording.position, w.status_reason.text()
    qtbot.keyClick(w, Qt.Key.Key_F5)
    paused_at(qtbot, w, before, said)
    assert type(w.recording.current()) is StepStarted and w.recording.current().step == 1


def test_f11_in_a_compiled_step_goes_kernel_by_kernel(qtbot, window):
    compiled_step_paused(qtbot, window)
    event = press_f11(qtbot, window)
    assert type(event) is KernelRun and event.kernel == 0 and event.name == "linear"
    assert "kernel 0 linear ran" in window.status_reason.text()
    # the kernel's node is drawn and selected; the inspector shows its output
    node = window.graph.model.nodes[window.graph.selected]
    assert node.kind == "op" and node.tensor_id == event.outputs[0]
    info = window.inspector.node()
    assert info is not None and info.value is not None and info.value.shape == (200, 16)
    # the generated code of that kernel, beside the source
    assert window.code_view.kernel == 0
    assert "kernel 0: linear" in window.code_view.header.text()
    assert "np.matmul(" in window.code_view.code.toPlainText()

    kernels = [event]
    while len(kernels[-1].nodes) == 1:  # on to the first fused kernel
        event = press_f11(qtbot, window)
        assert type(event) is KernelRun, event  # every stop is a kernel
        assert event.kernel == kernels[-1].kernel + 1
        kernels.append(event)
    fused = kernels[-1]
    box = f"kernel {fused.kernel}: {fused.name}"
    qtbot.waitUntil(lambda: box in window.graph.scope_boxes(), timeout=WAIT)  # one box
    in_box = [n for n in window.graph.model.nodes if n.scope == box and n.kind == "op"]
    assert len(in_box) == len(fused.nodes)
    assert f"{len(fused.nodes)} ops fused" in window.code_view.header.text()
    assert f"def K{fused.kernel}(" in window.code_view.code.toPlainText()
    inner = next(n for n in in_box if n.tensor_id not in fused.outputs)
    window.graph.select(inner.index, emit=True)  # a value the fused kernel never stores
    info = window.inspector.node()
    assert info.value is None and f"inside fused kernel {fused.kernel}" in info.note

    # Step Back lands on the fused kernel's ops, which were computed by it
    qtbot.keyClick(window, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: type(window.recording.current()) is OpForward, timeout=WAIT)
    assert window.recording.current().kernel == fused.kernel
    assert window.code_view.kernel == fused.kernel


def test_the_code_panel_keeps_the_selected_nodes_kernel_when_the_run_ends(qtbot, window):
    """At the run's end (an event no kernel made) the inspector keeps the selected
    node, and the Compiled Code panel its kernel's code, instead of asking for a
    selection the window already shows."""
    compiled_step_paused(qtbot, window)
    event = press_f11(qtbot, window)
    assert type(event) is KernelRun and event.name == "linear"
    qtbot.keyClick(window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: window.bridge.session.state == "finished", timeout=WAIT)
    qtbot.waitUntil(lambda: window.status_phase.text().startswith("finished"), timeout=WAIT)
    selected = window.graph.model.nodes[window.graph.selected]
    assert selected.label == "fc1.linear" and window.inspector.node() is not None
    assert window.code_view.kernel == 0
    assert "kernel 0: linear" in window.code_view.header.text()
    assert "np.matmul(" in window.code_view.code.toPlainText()


def test_a_saved_graph_opens_and_steps_kernel_by_kernel(qtbot, window, tmp_path):
    """A .gsgraph with kept batches (attention.py's, saved as `gradstep compile`
    saves it) opens in the window: Compiled, which it only runs as; F11 stops at
    each kernel with its ops drawn, its output in the inspector and its code
    beside the graph's text, where no line of the program is marked."""
    core.reset_ids()
    run = programs.load(sample("attention.py")).build("cpu")
    compiled = core.compile(run.step)
    compiled(run.batches(0))
    path = str(tmp_path / "attention.gsgraph")
    calls = [((run.batches(i),), {}) for i in range(3)]
    compiled.save(path, initial=True, calls=calls, title="Attention, saved", steps=3)

    assert window.open_path(path)
    paused_at(qtbot, window, -1)
    assert window.bridge.session.mode == "compiled"
    assert window.mode.currentData() == "compiled" and not window.mode.isEnabled()
    assert window.source.toPlainText().startswith("graph(")
    kernels = []
    while len(kernels) < 4:
        event = press_f11(qtbot, window)
        if type(event) is KernelRun:
            kernels.append(event)
    assert [k.kernel for k in kernels] == [0, 1, 2, 3]
    node = window.graph.model.nodes[window.graph.selected]
    assert node.kind == "op" and node.tensor_id == kernels[-1].outputs[0]
    assert window.inspector.node().value is not None
    assert window.code_view.kernel == 3 and window.code_view.code.toPlainText()
    assert window.source.highlighted_line() is None  # the graph's text is not the program
    qtbot.keyClick(window, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: window.bridge.session.state == "finished", timeout=WAIT)
    assert len(window.recording.losses) == 3


def test_eager_mode_steps_op_by_op_and_the_code_panel_says_why_it_is_empty(qtbot, window):
    assert window.open_path(sample("mlp_moons.py"))
    paused_at(qtbot, window, -1)
    assert window.mode.currentData() == "eager"
    event = press_f11(qtbot, window)
    while type(event) is not OpForward:
        event = press_f11(qtbot, window)
    assert event.kernel is None
    assert window.code_view.header.text() == EAGER_TEXT


def test_a_saved_compiled_recording_reopens_with_its_kernels_and_code(qtbot, window, tmp_path):
    window.steps.setValue(2)
    window.mode.setCurrentIndex(window.mode.findData("compiled"))
    assert window.open_program(sample("neuron.py"), then="run")
    qtbot.waitUntil(lambda: window.bridge.session.state == "finished", timeout=WAIT)
    path = str(tmp_path / "compiled.gsrec")
    saved = []
    window.save_recording(path, saved.append)
    qtbot.waitUntil(lambda: bool(saved), timeout=WAIT)
    assert not isinstance(saved[0], Exception), saved[0]
    original = window.recording
    window.open_recording(path)
    qtbot.waitUntil(lambda: window.recording is not original, timeout=WAIT)
    rec = window.recording
    assert rec.meta["mode"] == "compiled"
    last = max(i for i, e in enumerate(rec.events) if type(e) is KernelRun)
    window.seek(last)
    run = rec.events[last]
    assert window.code_view.kernel == run.kernel
    assert (
        window.code_view.code.toPlainText()
        == original.meta["kernel_code"][f"{run.kernel} {run.name}"]
    )
    assert rec.has_value(run.outputs[0])


def test_compare_and_profile_from_the_analyze_keys(qtbot, window):
    window.steps.setValue(3)
    assert window.open_program(sample("mlp_moons.py"), then="load")
    assert not window.docks["compare"].isVisible()  # shown on demand
    qtbot.keyClick(
        window,
        Qt.Key.Key_M,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    view = window.compare_view
    qtbot.waitUntil(lambda: view._comparison is not None, timeout=WAIT)
    assert window.docks["compare"].isVisible()
    assert "agree" in window.status_reason.text()
    # an eager node selected in its graph selects the kernel computing it
    eager = view.eager_graph
    tanh = next(n for n in eager.model.nodes if n.op == "tanh")
    eager.select(tanh.index, emit=True)
    kernel = view._comparison.mapping[tanh.node_id][1]
    assert view.selected_kernels() == [kernel]
    compiled_node = view.compiled_graph.model.nodes[view.compiled_graph.selected]
    assert compiled_node.node_id == tanh.node_id

    qtbot.keyClick(
        window,
        Qt.Key.Key_P,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    profile = window.profile_view
    qtbot.waitUntil(lambda: bool(profile._runs) and not window.analysis.busy, timeout=60_000)
    assert window.docks["profile"].isVisible()
    labels = [(r.mode, r.device) for r in profile._runs]
    assert ("eager", "cpu") in labels and ("compiled", "cpu") in labels
    gpu = [r for r in profile._runs if r.device == "cuda"]
    assert gpu and all(r.unavailable or r.step_ms is not None for r in gpu)
