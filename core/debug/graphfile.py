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

from core.debug.program import Program, ProgramError, Run
from core.deferred import saved

SUFFIX = ".gsgraph"


def is_graph_file(path: str | os.PathLike) -> bool:
    return os.fspath(path).endswith(SUFFIX)


def load_program(path: str | os.PathLike) -> Program:
    """A Program around a saved graph; errors name the file (``ProgramError``)."""
    path = os.path.abspath(os.fspath(path))
    try:
        step = saved.load(path)
    except saved.GraphFileError as exc:
        raise ProgramError(str(exc), path) from None
    info = step.info
    if step.graph.inputs:
        raise ProgramError(
            f"{path}: this graph takes {len(step.graph.inputs)} input(s) each step (its "
            "program's batches); a saved graph runs alone only when its step takes none",
            path,
        )
    title = info.get("title") or os.path.basename(path)
    description = (
        f"A compiled step saved from {info.get('program', 'a program')}: "
        f"{len(step.graph.ops)} ops; state: {', '.join(step.state)}."
    )

    def build(device: str = "cpu") -> Run:
        if device != step.bound.device:
            raise ProgramError(f"{path}: the graph was saved for {step.bound.device}", path)
        params = {name: t for name, t in step.state.items()}
        return Run(step=step, steps=int(info.get("steps", 100)), params=params)

    return Program(path, title, description, str(step.graph), {"build": build})
