"""Chrome trace export of a Recording, for Perfetto or chrome://tracing.

>>> from core.debug.recording import Recording
>>> [e["args"]["name"] for e in chrome_trace(Recording())["traceEvents"][1::2]]
['forward', 'backward', 'update', 'steps', 'modules']
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from core.debug.recfile_schema import (
    _NUMERIC_KINDS,
    MAX_DEPTH,
    RecordingFileError,
    _display,
    _float_out,
    _snapshot,
)
from core.debug.recording import Recording
from core.observe import events as ev

TRACKS = {"forward": 1, "backward": 2, "update": 3, "steps": 4, "modules": 5}
_OP_TRACKS = ("forward", "backward", "update")


def chrome_trace(recording: Recording) -> dict[str, Any]:
    """The recording as a Chrome trace (for Perfetto or chrome://tracing).

    Ops are complete events ("X") on the forward, backward and update tracks,
    each ending when its event arrived and lasting its ``duration_ns``; steps,
    backward passes and module scopes are spans on their own tracks. Times are
    microseconds from the earliest instant in the recording.

    >>> from core.debug.recording import Recording
    >>> sorted(chrome_trace(Recording()))
    ['displayTimeUnit', 'traceEvents']
    """
    events, times, _, _ = _snapshot(recording)
    spans = _spans(events, times)
    starts = [s[1] for s in spans] + list(times[:1])
    base = min(starts) if starts else 0
    trace = [_meta_event("process_name", 0, {"name": _program(recording)})]
    for track, tid in TRACKS.items():
        trace.append(_meta_event("thread_name", tid, {"name": track}))
        trace.append(_meta_event("thread_sort_index", tid, {"sort_index": tid}))
    slices = [
        {"name": name, "cat": cat, "ph": "X", "pid": 1, "tid": tid}
        | {"ts": (start - base) / 1000, "dur": max(end - start, 0) / 1000}
        | {"args": _jsonable(args)}
        for tid, start, end, name, cat, args in spans
    ]
    slices.sort(key=lambda s: (s["ts"], -s["dur"], s["tid"]))
    return {"traceEvents": trace + slices, "displayTimeUnit": "ms"}


def _program(recording: Recording) -> str:
    program = recording.meta.get("program") if isinstance(recording.meta, dict) else None
    return f"gradstep: {program}" if isinstance(program, str) else "gradstep"


def _meta_event(name: str, tid: int, args: dict) -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": 1, "tid": tid, "args": args}


def _spans(events: list, times: list) -> list[tuple]:
    """(track, start ns, end ns, name, category, args) of each op, step and scope."""
    spans: list[tuple] = []
    steps: dict[int, tuple[int, int]] = {}
    backward: list[tuple[int, int]] = []
    modules: list[tuple[str, str, int]] = []
    step_track, module_track = TRACKS["steps"], TRACKS["modules"]
    for i, (e, t) in enumerate(zip(events, times, strict=False)):
        kind = type(e)
        if kind is ev.OpForward:
            tid = TRACKS[e.phase if e.phase in _OP_TRACKS else "forward"]
            spans.append((tid, t - max(e.duration_ns, 0), t, e.op, e.phase, _op_args(i, e)))
        elif kind is ev.OpBackward:
            args = {"index": i, "node": e.node_id, "grad_output": e.grad_output}
            args |= {"grad_inputs": e.grad_inputs, "inputs": e.inputs}
            start = t - max(e.duration_ns, 0)
            spans.append((TRACKS["backward"], start, t, f"{e.op} backward", "backward", args))
        elif kind is ev.StepStarted:
            steps[e.step] = (t, i)
        elif kind is ev.StepEnded and e.step in steps:
            start, index = steps.pop(e.step)
            args = {"index": index, "step": e.step, "loss": e.loss}
            spans.append((step_track, start, t, f"step {e.step}", "step", args))
        elif kind is ev.BackwardStarted:
            backward.append((e.root, t))
        elif kind is ev.BackwardEnded and backward:
            root, start = backward.pop()
            args = {"index": i, "root": root, "duration_ns": e.duration_ns}
            spans.append((step_track, start, t, "backward pass", "backward", args))
        elif kind is ev.ModuleEnter:
            modules.append((e.path, e.kind, t))
        elif kind is ev.ModuleExit and any(path == e.path for path, _, _ in modules):
            while modules:  # close scopes left open inside this one too
                path, module, start = modules.pop()
                args = {"path": path, "kind": module}
                spans.append((module_track, start, t, path or module, "module", args))
                if path == e.path:
                    break
    end = times[-1] if times else 0
    for step, (start, index) in steps.items():
        args = {"index": index, "step": step, "unfinished": True}
        spans.append((step_track, start, end, f"step {step}", "step", args))
    for path, module, start in modules:
        args = {"path": path, "kind": module, "unfinished": True}
        spans.append((module_track, start, end, path or module, "module", args))
    return spans


def _op_args(index: int, e: ev.OpForward) -> dict[str, Any]:
    args = {
        "index": index,
        "node": e.node_id,
        "op": e.op,
        "inputs": e.inputs,
        "output": e.output,
        "shape": e.shape,
        "dtype": e.dtype,
        "device": e.device,
        "scope": e.scope,
        "phase": e.phase,
        "attrs": dict(e.attrs),
    }
    if e.source is not None:
        args["source"] = f"{e.source.file}:{e.source.line}"
    if e.stats is not None:
        args["stats"] = dataclasses.asdict(e.stats)
    return args


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Plain JSON for trace args: non-finite floats and odd objects become strings."""
    if depth > MAX_DEPTH:
        return "..."
    if isinstance(value, np.generic) and value.dtype.kind in _NUMERIC_KINDS:
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _float_out(value)
    if isinstance(value, tuple | list):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    return str(value)


def save_chrome_trace(recording: Recording, path: str | os.PathLike) -> None:
    """Write ``chrome_trace(recording)`` as JSON to ``path``; errors name the file."""
    name = _display(path)
    try:
        text = json.dumps(chrome_trace(recording), allow_nan=False)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RecordingFileError(f"{name}: cannot write the trace: {reason}", name) from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise RecordingFileError(f"{name}: cannot write the trace ({reason})", name) from exc
