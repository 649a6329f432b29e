"""Action ids, their labels and shortcuts: one table shared by menus, toolbar and tests."""

from __future__ import annotations

from dataclasses import dataclass


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
    ActionSpec(OPEN, "Open…", "Ctrl+O", "Open a program (.py) or a recording (.gsrec)"),
    ActionSpec(SAVE, "Save Recording…", "Ctrl+S", "Save the recording of this run"),
    ActionSpec(FIT, "Fit Graph", "Ctrl+0", "Fit the whole graph in the view"),
    ActionSpec(FIND, "Find Node…", "Ctrl+F", "Find a node by name"),
    ActionSpec(TIDY, "Tidy Layout", "Ctrl+L", "Lay the whole graph out again"),
    ActionSpec(EXPORT_PNG, "Export Graph as PNG…", "", "Save the graph as a picture"),
    ActionSpec(EXPORT_SVG, "Export Graph as SVG…", "", "Save the graph as a vector drawing"),
    ActionSpec(QUIT, "Quit", "Ctrl+Q", "Close Gradstep"),
)
BY_ID = {spec.id: spec for spec in ACTIONS}
RUN_CONTROLS = (RUN, PAUSE, STEP_OVER, STEP_INTO, STEP_OUT, STEP_BACK, STOP, RESTART)
