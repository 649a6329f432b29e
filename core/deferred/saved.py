"""Saved graphs (``.gsgraph``): a compiled step that runs without its program.

A ZIP archive: ``graph.json`` (format name and version, the graph, the state
names, the notes), ``constants/<value id>.npy`` and ``state/<index>.npy``
(each state tensor's value when saved). No pickle: arrays load with
``allow_pickle=False`` and the JSON is checked before anything is built.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from typing import Any

import numpy as np

from core.deferred import codegen
from core.deferred.graph import Graph
from core.deferred.runtime import Bound, flatten
from core.device import to_host
from core.engine.dispatch import leaf
from core.errors import GradstepError

FORMAT = "gradstep-graph"
VERSION = 1
MAX_MEMBER = 4 << 30  # bytes one array may take when loaded


class GraphFileError(GradstepError):
    """A saved graph could not be written or read; the message names the file."""


def save(compiled: Any, path: str | os.PathLike, *, initial: bool = False, **info: Any) -> None:
    """Write a ``Compiled`` entry (graph, constants, state values) to ``path``.

    With ``initial`` the state is saved as it was before the traced call (so
    the file starts where the program started); ``info`` goes into the file
    (a title, the program's step count).
    """
    graph: Graph = compiled.graph
    bound: Bound = compiled.bound
    names = list(bound.state)
    values = {
        name: compiled.trace.initial[name] if initial else bound.state[name].data for name in names
    }
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "graph": graph.to_json(),
        "state": names,
        "grad_state": {name: _owner_name(bound, o) for name, o in bound.grad_owners.items()},
        "device": bound.device,
        "notes": list(compiled.trace.notes),
        "info": info,
    }
    target = os.fspath(path)
    temporary = f"{target}.tmp-{os.getpid()}"
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("graph.json", json.dumps(meta, allow_nan=True))
            for vid, array in graph.constants.items():
                z.writestr(f"constants/{vid}.npy", _npy(array))
            for i, name in enumerate(names):
                z.writestr(f"state/{i}.npy", _npy(values[name]))
            for name, owner in bound.grad_owners.items():
                if owner.grad is not None and not initial:
                    z.writestr(f"grad/{name}.npy", _npy(owner.grad.data))
        os.replace(temporary, target)
    except OSError as exc:
        raise GraphFileError(f"{target}: cannot write the graph: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _owner_name(bound: Bound, owner: Any) -> str:
    for name, t in bound.state.items():
        if t is owner:
            return name
    raise GraphFileError("a .grad in the graph belongs to no state tensor")


def _npy(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(to_host(array), order="C"), allow_pickle=False)  # keeps 0-d
    return buffer.getvalue()


class LoadedStep:
    """A saved graph, runnable: ``step(*inputs)`` as the original was called.

    Its state (parameters, optimizer slots) lives in ``state``, by name.
    """

    def __init__(
        self, graph: Graph, state: dict[str, Any], grad_owners: dict, device: str, info: dict
    ):
        self.graph = graph
        self.state = state
        self.info = info  # what the file says of itself: title, program, steps
        program = codegen.generate(graph, device, tuple(grad_owners))
        self.code = program.source
        self.bound = Bound(graph, state, grad_owners, device, program)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        leaves: list = []
        tree = flatten((args, kwargs), leaves)
        if tree != self.graph.input_tree:
            raise GraphFileError(
                "the saved step was traced with other arguments: "
                f"{_describe(self.graph.input_tree)}, called with {_describe(tree)}"
            )
        return self.bound.run(leaves)


def _describe(tree: Any) -> str:
    return json.dumps(tree)[:200]


def load(path: str | os.PathLike, device: str | None = None) -> LoadedStep:
    """Read a graph written by ``CompiledStep.save``; errors name the file."""
    name = os.fspath(path)
    try:
        with zipfile.ZipFile(name) as z:
            meta = json.loads(z.read("graph.json"))
            _check_meta(meta, name)
            arrays = {info.filename: _array(z, info, name) for info in z.infolist()}
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise GraphFileError(f"{name}: not a readable gradstep graph ({exc})") from None
    graph = Graph.from_json(
        meta["graph"],
        {
            int(key.split("/")[1][:-4]): value
            for key, value in arrays.items()
            if key.startswith("constants/")
        },
    )
    device = device or meta.get("device", "cpu")
    state: dict[str, Any] = {}
    for i, state_name in enumerate(meta["state"]):
        array = arrays[f"state/{i}.npy"]
        state[state_name] = leaf(array, "cpu", False, "state", state_name)
        if device != "cpu":
            state[state_name] = state[state_name].to(device)
    owners = {}
    for grad_name, owner_name in meta["grad_state"].items():
        owner = state[owner_name]
        saved = arrays.get(f"grad/{grad_name}.npy")
        if saved is not None:
            owner.grad = leaf(saved, "cpu", False, "state")
        owners[grad_name] = owner
    return LoadedStep(graph, state, owners, device, dict(meta.get("info") or {}))


def _check_meta(meta: Any, name: str) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GraphFileError(f"{name}: not a gradstep graph (no {FORMAT!r} format marker)")
    if meta.get("version") != VERSION:
        raise GraphFileError(
            f"{name}: graph format version {meta.get('version')!r}; this Gradstep reads {VERSION}"
        )


def _array(z: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Any:
    if not info.filename.endswith(".npy"):
        return None
    if info.file_size > MAX_MEMBER:
        raise GraphFileError(f"{name}: {info.filename} is {info.file_size} bytes, over the limit")
    with z.open(info) as fh:
        return np.load(io.BytesIO(fh.read()), allow_pickle=False)
