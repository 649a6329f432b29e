"""Saved graphs (``.gsgraph``): a compiled step that runs without its program.

A ZIP archive: ``graph.json`` (format name and version, the graph, the state
names, the notes, and the graph as traced, from which a debugger is told the
calls op by op), ``constants/<value id>.npy``, ``traced_constants/<value
id>.npy``, ``state/<index>.npy`` (each state tensor's value when saved), and,
for a step that takes inputs (a program's batches), the arguments of its first
calls, ``calls/<call>/<input>.npy``, so that the file runs alone. No pickle:
arrays load with ``allow_pickle=False`` and the JSON is checked before
anything is built.
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
from core.deferred.interpret import GuardFailed
from core.deferred.narrate import Narrator, run_told
from core.deferred.runtime import Bound, flatten, unflatten
from core.device import to_host
from core.engine.dispatch import leaf, tracing
from core.errors import GradstepError
from core.observe.bus import BUS

FORMAT = "gradstep-graph"
VERSION = 1
MAX_MEMBER = 4 << 30  # bytes one array may take when loaded


class GraphFileError(GradstepError):
    """A saved graph could not be written or read; the message names the file."""


def save(
    compiled: Any,
    path: str | os.PathLike,
    *,
    initial: bool = False,
    calls: list[tuple[tuple, dict]] = (),
    **info: Any,
) -> None:
    """Write a ``Compiled`` entry (graph, constants, state values) to ``path``.

    With ``initial`` the state is saved as it was before the traced call (so
    the file starts where the program started); ``calls`` are the arguments
    (``(args, kwargs)``) of the step's calls to keep, which a run of the file
    goes through in turn; ``info`` goes into the file (a title, the program's
    step count).
    """
    graph: Graph = compiled.graph
    bound: Bound = compiled.bound
    kept = [_call_arrays(graph, args, kwargs, i) for i, (args, kwargs) in enumerate(calls)]
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
        "calls": len(kept),
        "traced": compiled.trace.graph.to_json(),
        "merged": [[old, new] for old, new in compiled.merged.items()],
    }
    target = os.fspath(path)
    temporary = f"{target}.tmp-{os.getpid()}"
    try:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("graph.json", json.dumps(meta, allow_nan=True))
            for vid, array in graph.constants.items():
                z.writestr(f"constants/{vid}.npy", _npy(array))
            for vid, array in compiled.trace.graph.constants.items():
                z.writestr(f"traced_constants/{vid}.npy", _npy(array))
            for i, name in enumerate(names):
                z.writestr(f"state/{i}.npy", _npy(values[name]))
            for name, owner in bound.grad_owners.items():
                if owner.grad is not None and not initial:
                    z.writestr(f"grad/{name}.npy", _npy(owner.grad.data))
            for i, arrays in enumerate(kept):
                for j, array in enumerate(arrays):
                    z.writestr(f"calls/{i}/{j}.npy", _npy(array))
        os.replace(temporary, target)
    except OSError as exc:
        raise GraphFileError(f"{target}: cannot write the graph: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _call_arrays(graph: Graph, args: tuple, kwargs: dict, index: int) -> list[Any]:
    leaves: list = []
    if flatten((args, kwargs), leaves) != graph.input_tree:
        raise GraphFileError(
            f"call {index} to keep has other arguments than the traced call: "
            f"{_describe(graph.input_tree)}"
        )
    return [t.data for t in leaves]


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
        self,
        graph: Graph,
        state: dict[str, Any],
        grad_owners: dict,
        device: str,
        info: dict,
        calls: list[list[np.ndarray]] = (),
        traced: Graph | None = None,
        merged: dict[int, int] | None = None,
    ):
        self.graph = graph
        self.traced = traced  # as traced, before the passes: None in older files
        self.state = state
        self.info = info  # what the file says of itself: title, program, steps
        self.calls = list(calls)  # the kept calls' input arrays, on the host
        self.program = codegen.generate(graph, device, tuple(grad_owners))
        self.code = self.program.source
        self.bound = Bound(graph, state, grad_owners, device, self.program)
        self.narrator = None
        if traced is not None:
            self.narrator = Narrator(
                traced, graph, merged or {}, self.program.kernels, state, grad_owners, device
            )

    @property
    def graphs(self) -> tuple[LoadedStep]:
        """Its one graph, as a compiled step's cache lists them (each with its
        ``program``): what a debugger reads a kernel's code from."""
        return (self,)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if tracing():  # its kernels work on arrays: a trace would see no op of it
            raise GraphFileError(
                "a saved graph is a compiled step already: call it as it is, not "
                "inside core.compile"
            )
        leaves: list = []
        tree = flatten((args, kwargs), leaves)
        if tree != self.graph.input_tree:
            raise GraphFileError(
                "the saved step was traced with other arguments: "
                f"{_describe(self.graph.input_tree)}, called with {_describe(tree)}"
            )
        try:
            if self.narrator is not None and BUS.want_kernel_ops:
                return run_told(self.bound, self.narrator, leaves)
            return self.bound.run(leaves)
        except GuardFailed as exc:  # nothing was written: a program would trace again
            raise GraphFileError(
                f"this call takes another path than the traced one: {exc.guard.describe()} "
                f"when traced, and this call gave {exc.seen!r}; a saved graph has no program "
                "to trace it again: run the program itself with --mode compiled"
            ) from None

    def saved_call(self, index: int) -> tuple[tuple, dict]:
        """The arguments of kept call ``index`` as the step takes them: fresh
        input tensors on the step's device."""
        device = self.bound.device
        leaves = []
        for j, array in enumerate(self.calls[index]):
            t = leaf(array, "cpu", False, "input", f"in{j}")
            leaves.append(t if device == "cpu" else t.to(device))
        return unflatten(self.graph.input_tree, leaves)


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
    try:
        return _build(meta, arrays, name, device)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise GraphFileError(
            f"{name}: not a readable gradstep graph ({type(exc).__name__}: {exc})"
        ) from None


def _constants(arrays: dict[str, Any], folder: str) -> dict[int, Any]:
    return {
        int(key.split("/")[1][:-4]): value
        for key, value in arrays.items()
        if key.startswith(f"{folder}/")
    }


def _build(meta: dict, arrays: dict[str, Any], name: str, device: str | None) -> LoadedStep:
    graph = Graph.from_json(meta["graph"], _constants(arrays, "constants"))
    traced = merged = None
    if "traced" in meta:
        traced = Graph.from_json(meta["traced"], _constants(arrays, "traced_constants"))
        merged = {int(old): int(new) for old, new in meta.get("merged", [])}
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
    calls = []
    for i in range(meta.get("calls", 0)):
        count = len(graph.inputs)
        members = [arrays.get(f"calls/{i}/{j}.npy") for j in range(count)]
        if any(m is None for m in members):
            raise GraphFileError(f"{name}: call {i} of the {meta['calls']} kept is missing inputs")
        calls.append(members)
    info = dict(meta.get("info") or {})
    return LoadedStep(graph, state, owners, device, info, calls, traced, merged)


def _check_meta(meta: Any, name: str) -> None:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise GraphFileError(f"{name}: not a gradstep graph (no {FORMAT!r} format marker)")
    if meta.get("version") != VERSION:
        raise GraphFileError(
            f"{name}: graph format version {meta.get('version')!r}; this Gradstep reads {VERSION}"
        )
    calls = meta.get("calls", 0)
    if type(calls) is not int or calls < 0:
        raise GraphFileError(f"{name}: 'calls' is {calls!r}, not a count of kept calls")


def _array(z: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Any:
    if not info.filename.endswith(".npy"):
        return None
    if info.file_size > MAX_MEMBER:
        raise GraphFileError(f"{name}: {info.filename} is {info.file_size} bytes, over the limit")
    with z.open(info) as fh:
        return np.load(io.BytesIO(fh.read()), allow_pickle=False)
