"""Action ids, their labels and shortcuts: one table shared by menus, toolbar and
tests; and the toolbar's choosers (device, mode, steps)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence, QStandardItemModel
from PySide6.QtWidgets import QComboBox, QSpinBox

import core


@dataclass(frozen=True)
class ActionSpec:
    id: str
    text: str
    shortcut: str = ""
    tip: str = ""


RUN = "run"
PAUSE = "pause"
STEP_OVER = "step_over"
STEP_INTO = "step_into"
STEP_OUT = "step_out"
STEP_BACK = "step_back"
STOP = "stop"
RESTART = "restart"
OPEN = "open"
SAVE = "save"
FIT = "fit"
FIND = "find"
TIDY = "tidy"
EXPORT_PNG = "export_png"
EXPORT_SVG = "export_svg"
QUIT = "quit"
RESET_LAYOUT = "reset_layout"
HELP_KEYS = "help_keys"
HELP_FIRST_STEPS = "help_first_steps"
PROFILE = "profile"
COMPARE = "compare"

ACTIONS = (
    ActionSpec(RUN, "Run / Continue", "F5", "Run the program, or continue to the next breakpoint"),
    ActionSpec(PAUSE, "Pause", "F6", "Pause at the next event"),
    ActionSpec(
        STEP_OVER, "Step Over", "F10", "Next op at this module depth (a module call is one step)"
    ),
    ActionSpec(STEP_INTO, "Step Into", "F11", "Next op, entering modules"),
    ActionSpec(STEP_OUT, "Step Out", "Shift+F11", "Until this module returns, or this phase ends"),
    ActionSpec(
        STEP_BACK, "Step Back", "Shift+F10", "One event back in the recording (nothing re-runs)"
    ),
    ActionSpec(STOP, "Stop", "Shift+F5", "End the run"),
    ActionSpec(RESTART, "Restart", "Ctrl+Shift+F5", "Stop and run again from the start"),
    ActionSpec(
        OPEN,
        "Open…",
        "Ctrl+O",
        "Open a program (.py), a saved graph (.gsgraph) or a recording (.gsrec)",
    ),
    ActionSpec(SAVE, "Save Recording…", "Ctrl+S", "Save the recording of this run"),
    ActionSpec(FIT, "Fit Graph", "Ctrl+0", "Fit the whole graph in the view"),
    ActionSpec(FIND, "Find Node…", "Ctrl+F", "Find a node by name"),
    ActionSpec(TIDY, "Tidy Layout", "Ctrl+L", "Lay the whole graph out again"),
    ActionSpec(EXPORT_PNG, "Export Graph as PNG…", "", "Save the graph as a picture"),
    ActionSpec(EXPORT_SVG, "Export Graph as SVG…", "", "Save the graph as a vector drawing"),
    ActionSpec(QUIT, "Quit", "Ctrl+Q", "Close Gradstep"),
    ActionSpec(RESET_LAYOUT, "Reset Layout", "", "Every panel back in its default place"),
    ActionSpec(HELP_KEYS, "Keyboard Shortcuts", "F1", "The keys of every command"),
    ActionSpec(HELP_FIRST_STEPS, "First Steps", "", "How to open, step, look and stop"),
    ActionSpec(
        PROFILE,
        "Profile CPU vs GPU",
        "Ctrl+Shift+P",
        "Time the program eager and compiled, on the CPU and the GPU, op by op",
    ),
    ActionSpec(
        COMPARE,
        "Compare Eager with Compiled",
        "Ctrl+Shift+M",
        "Run the program eager and compiled side by side: agreement, kernels, passes",
    ),
)
BY_ID = {spec.id: spec for spec in ACTIONS}
RUN_CONTROLS = (RUN, PAUSE, STEP_OVER, STEP_INTO, STEP_OUT, STEP_BACK, STOP, RESTART)


def make_actions(parent: QObject, handlers: dict[str, Callable[[], object]]) -> dict[str, QAction]:
    """One QAction per spec, with its shortcut (application-wide) and handler."""
    made: dict[str, QAction] = {}
    for spec in ACTIONS:
        action = QAction(spec.text, parent)
        action.setObjectName(spec.id)
        if spec.shortcut:
            action.setShortcut(QKeySequence(spec.shortcut))
            action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        action.setToolTip(f"{spec.tip} ({spec.shortcut})" if spec.shortcut else spec.tip)
        action.setStatusTip(spec.tip)
        handler = handlers.get(spec.id)
        if handler is not None:
            action.triggered.connect(lambda _=False, h=handler: h())
        made[spec.id] = action
    return made


def device_choice() -> QComboBox:
    """CPU / GPU; the GPU item is disabled, with the reason, when CUDA is unusable."""
    combo = QComboBox()
    combo.setObjectName("device")
    combo.addItem("CPU", "cpu")
    combo.addItem("GPU (CUDA)", "cuda")
    if not core.cuda.is_available():
        model = combo.model()
        assert isinstance(model, QStandardItemModel)
        reason = f"GPU unavailable: {core.cuda.unavailable_reason() or 'unknown reason'}"
        model.item(1).setEnabled(False)
        model.item(1).setToolTip(reason)
        combo.setItemData(1, reason, Qt.ItemDataRole.ToolTipRole)
        combo.setToolTip(reason)
    return combo


def mode_choice() -> QComboBox:
    """Eager (op by op, as the program runs) or Compiled (the step traced once,
    optimized and fused, then run as generated code; stepping goes kernel by kernel)."""
    combo = QComboBox()
    combo.setObjectName("mode")
    combo.addItem("Eager", "eager")
    combo.addItem("Compiled", "compiled")
    combo.setItemData(0, "Run op by op, as the program is written", Qt.ItemDataRole.ToolTipRole)
    combo.setItemData(
        1,
        "Trace the step once, optimize and fuse it, then run the generated code: the graph "
        "shows kernels as boxes and F11 steps kernel by kernel",
        Qt.ItemDataRole.ToolTipRole,
    )
    combo.setToolTip("Eager or compiled execution for the next run")
    return combo


def steps_choice() -> QSpinBox:
    """Training steps to run; its minimum means "the program's own number"."""
    spin = QSpinBox()
    spin.setObjectName("steps")
    spin.setRange(0, 10_000_000)
    spin.setSpecialValueText("program's")
    spin.setToolTip("Training steps to run (the program's own number when left at its minimum)")
    return spin
