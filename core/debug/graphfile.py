"""Saved graphs (``.gsgraph``) as programs: what ``gradstep run FILE.gsgraph``
and the debugger open. The program's "source" is the graph's text form; its
``build`` returns a ``Run`` whose step is the loaded graph, so a saved graph
runs with no access to the program it was traced from.

>>> import os, tempfile
>>> import core
>>> from core.debug import program as programs
>>> run = programs.load("samples/neuron.py").build("cpu")
>>> compiled = core.compile(run.step)
>>> _ = compiled()
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = os.path.join(tmp, "neuron.gsgraph")
...     compiled.save(path, initial=True, title="Single neuron", steps=5)
...     again = load_program(path)
...     loaded = again.build("cpu")
>>> again.title, loaded.steps, again.source.startswith("graph(")
('Single neuron', 5, True)
"""

from __future__ import annotations

import os

from core.debug import program as programs
from core.debug.program import Program, ProgramError, Run
from core.deferred import saved

SUFFIX = ".gsgraph"


def is_graph_file(path: str | os.PathLike) -> bool:
    return os.fspath(path).endswith(SUFFIX)


def read_any(path: str | os.PathLike) -> Program:
    """A program file read without running it (``program.read``), or a saved
    graph loaded (its arrays and generated code: no code of the user's runs);
    else ProgramError."""
    if is_graph_file(path):
        return load_program(path)
    return programs.read(path)


def load_program(path: str | os.PathLike) -> Program:
    """A Program around a saved graph; errors name the file (``ProgramError``)."""
    path = os.path.abspath(os.fspath(path))
    try:
        step = saved.load(path)
    except saved.GraphFileError as exc:
        raise ProgramError(str(exc), path) from None
    info = step.info
    calls = len(step.calls)
    if step.graph.inputs and not calls:
        raise ProgramError(
            f"{path}: this graph takes {len(step.graph.inputs)} input(s) each step (its "
            "program's batches) and keeps none; `gradstep compile` keeps a program's "
            "batches in the file",
            path,
        )
    title = info.get("title") or os.path.basename(path)
    names = list(step.state)
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    description = (
        f"A compiled step saved from {info.get('program', 'a program')}: "
        f"{len(step.graph.ops)} ops; state: {shown}."
    )
    if calls:
        description += f" Its {calls} kept batches are taken in turn, again from the first."

    def build(device: str = "cpu") -> Run:
        if device != step.bound.device:
            raise ProgramError(f"{path}: the graph was saved for {step.bound.device}", path)
        params = {name: t for name, t in step.state.items()}
        steps = int(info.get("steps", 100))
        if not calls:
            return Run(step=step, steps=steps, params=params)
        return Run(
            step=KeptCalls(step),
            steps=steps,
            params=params,
            batches=lambda i: step.saved_call(i % calls),
        )

    return Program(path, title, description, str(step.graph), {"build": build}, compiled=True)


class KeptCalls:
    """A loaded step as a run calls it, with one kept call's ``(args, kwargs)``
    for a batch; its ``graphs`` are the step's (the debugger's kernel code)."""

    def __init__(self, step: saved.LoadedStep) -> None:
        self.step = step
        self.graphs = step.graphs

    def __call__(self, call: tuple[tuple, dict]) -> object:
        args, kwargs = call
        return self.step(*args, **kwargs)
