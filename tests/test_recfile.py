"""Recording files: exact round trips, strict refusal of corrupt files, Chrome traces."""

from __future__ import annotations

import dataclasses
import glob
import io
import json
import math
import os
import pickle
import re
import struct
import types
import typing
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import core
from core import functional as F
from core import nn, optim
from core.debug.recfile import (
    EVENT_TYPES,
    RecordingFileError,
    chrome_trace,
    load,
    save,
    save_chrome_trace,
)
from core.debug.recording import EVENT_BYTES, Recording
from core.debug.session import Session
from core.errors import GradstepError
from core.observe import events as ev
from core.observe.bus import BUS
from core.observe.events import RunFinished, RunStarted, StepEnded, StepStarted

# -- building real recordings -------------------------------------------------------------


def record_mlp(cap_bytes: int = 512 * 2**20, steps: int = 2) -> Recording:
    """A small MLP trained with Adam for ``steps`` steps, then a step that makes NaNs."""
    core.manual_seed(0)
    meta = {"program": "mlp.py", "seed": 0, "lr": 0.01, "shape": (6, 3), "tags": ["a", "b"]}
    meta["nested"] = {"none": None, "inf": math.inf, "flag": True}
    rec = Recording(cap_bytes=cap_bytes, meta=meta)
    with rec.attach():
        BUS.emit(RunStarted(program="mlp.py", device="cpu"))
        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
        model.announce_parameters()
        opt = optim.Adam(model.parameters(), lr=0.01)
        x, y = core.randn(6, 3), core.randn(6, 1)
        for step in range(steps):
            BUS.emit(StepStarted(step=step))
            loss = F.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            BUS.emit(StepEnded(step=step, loss=loss.item()))
        BUS.emit(StepStarted(step=steps))
        w = core.tensor([-1.0, 2.0], requires_grad=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            bad = (w.log() * w).clip(-math.inf, 5.0).sum()
            bad.backward()
        (core.arange(5) * 2).sum()  # an int64 op
        BUS.emit(StepEnded(step=steps, loss=bad.item()))
        BUS.emit(RunFinished(status="errored", error="loss is NaN"))
    return rec


def _norm(x: typing.Any) -> typing.Any:
    """A comparable form: NaN equals NaN, -0.0 differs from 0.0, types matter."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return type(x).__name__, tuple(_norm(getattr(x, f.name)) for f in dataclasses.fields(x))
    if isinstance(x, float):
        return "float", repr(x)
    if isinstance(x, tuple | list):
        return type(x).__name__, tuple(_norm(v) for v in x)
    if isinstance(x, dict):
        return "dict", tuple((k, _norm(v)) for k, v in x.items())
    return type(x).__name__, x


def events_equal(a: typing.Any, b: typing.Any) -> bool:
    return _norm(a) == _norm(b)


def same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_same(rec: Recording, back: Recording) -> None:
    assert len(back.events) == len(rec.events)
    for i, (a, b) in enumerate(zip(rec.events, back.events, strict=True)):
        assert events_equal(a, b), f"event {i}: {a} != {b}"
    assert back.times == rec.times
    assert sorted(back.values) == sorted(rec.values)
    for tid, array in rec.values.items():
        assert same_array(array, back.values[tid]), tid
    assert back.dropped == rec.dropped
    assert _norm(back.meta) == _norm(rec.meta)
    assert (back.cap_bytes, back.bytes) == (rec.cap_bytes, rec.bytes)
    assert (back.nodes, back.producer, back.leaves) == (rec.nodes, rec.producer, rec.leaves)
    assert back.steps == rec.steps
    assert _norm(back.losses) == _norm(rec.losses)
    for tid in rec.producer:
        assert same_array(rec.value(tid), back.value(tid)), tid
        assert same_array(rec.grad_of(tid), back.grad_of(tid)), tid


def save_v1(rec: Recording, path: str | os.PathLike) -> None:
    """Write ``rec`` in format version 1 (one .npy member per value), as Gradstep did."""
    from core.debug.recfile_schema import _dumps, _encoder, _plain_dict_out

    lines = []
    for item, t in zip(rec.events, rec.times, strict=True):
        obj = {"type": type(item).__name__, "t": t} | _encoder(type(item))(item)
        lines.append(_dumps(obj) + "\n")
    meta = {
        "format": "gradstep-recording",
        "version": 1,
        "meta": _plain_dict_out(rec.meta),
        "cap_bytes": rec.cap_bytes,
        "dropped": sorted(rec.dropped),
        "values": sorted(rec.values),
        "event_count": len(lines),
    }
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta.json", _dumps(meta), zipfile.ZIP_DEFLATED)
        zf.writestr("events.jsonl", "".join(lines), zipfile.ZIP_DEFLATED)
        for tid in sorted(rec.values):
            zf.writestr(f"values/{tid}.npy", npy(rec.values[tid]))


@pytest.fixture(scope="module")
def mlp() -> Recording:
    return record_mlp()


# -- round trips -----------------------------------------------------------------------


def test_round_trip_of_a_training_run_is_exact(mlp, tmp_path):
    path = tmp_path / "run.gsrec"
    save(mlp, path)
    back = load(path)
    assert_same(mlp, back)
    assert back.counts()["OpBackward"] > 0 and back.dropped == set()
    nan_ops = [
        e
        for e in back.events
        if type(e) is ev.OpForward and e.stats is not None and e.stats.nan == e.stats.size
    ]
    assert nan_ops and math.isnan(nan_ops[0].stats.min) and math.isnan(back.losses[-1][1])


def test_loaded_recording_answers_values_and_gradients(mlp, tmp_path):
    save(mlp, tmp_path / "run.gsrec")
    back = load(str(tmp_path / "run.gsrec"))
    params = [e for e in back.events if type(e) is ev.TensorCreated and e.kind == "parameter"]
    assert params
    for e in params:
        grad = back.grad_of(e.tensor_id)
        assert grad is not None and grad.shape == e.shape
        assert same_array(grad, mlp.grad_of(e.tensor_id))
    back.seek(0)
    assert back.position == 0 and back.current() == mlp.events[0]


def test_tiny_cap_round_trips_the_dropped_ids(tmp_path):
    events = len(record_mlp(steps=1))
    rec = record_mlp(cap_bytes=EVENT_BYTES * events + 400, steps=1)
    assert rec.dropped and rec.values
    save(rec, tmp_path / "cap.gsrec")
    back = load(tmp_path / "cap.gsrec")
    assert_same(rec, back)
    assert back.dropped == rec.dropped and not back.dropped & set(back.values)


def test_empty_recording_round_trips(tmp_path):
    save(Recording(cap_bytes=0), tmp_path / "empty.gsrec")
    back = load(tmp_path / "empty.gsrec")
    assert (back.events, back.values, back.cap_bytes, back.meta) == ([], {}, 0, {})


def test_file_layout(mlp, tmp_path):
    path = tmp_path / "run.gsrec"
    save(mlp, path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        meta = json.loads(zf.read("meta.json"))
        lines = zf.read("events.jsonl").decode().splitlines()
        assert zf.getinfo("events.jsonl").compress_type == zipfile.ZIP_DEFLATED
        assert zf.getinfo("values.bin").compress_type == zipfile.ZIP_STORED
        blob = zf.read("values.bin")
    assert names == ["meta.json", "events.jsonl", "values.bin"]
    assert (meta["format"], meta["version"], meta["event_count"]) == (
        "gradstep-recording",
        2,
        len(mlp.events),
    )
    assert meta["meta"]["shape"] == [6, 3] and meta["meta"]["tags"] == {"list": ["a", "b"]}
    first = json.loads(lines[0])
    assert first == {"type": "RunStarted", "t": mlp.times[0], "program": "mlp.py", "device": "cpu"}
    assert any('"nan"' in line for line in lines)  # a non-finite stat
    assert any('["lo",{"float":"-inf"}]' in line for line in lines)  # a non-finite attr
    assert sorted(row[0] for row in meta["arrays"]) == sorted(mlp.values)
    for tid, dtype, shape, offset, crc in meta["arrays"]:
        array = np.frombuffer(blob, dtype, math.prod(shape), offset).reshape(shape)
        assert same_array(array, mlp.values[tid]) and offset % 64 == 0
        assert zlib.crc32(array.tobytes()) == crc
    assert not list(tmp_path.glob(".*.tmp"))


def test_version_1_files_still_load(mlp, tmp_path):
    path = tmp_path / "old.gsrec"
    save_v1(mlp, path)
    back = load(path)
    assert_same(mlp, back)
    assert type(back.values) is dict


def test_values_are_read_when_asked_and_survive_a_replaced_file(mlp, tmp_path):
    path = tmp_path / "run.gsrec"
    save(mlp, path)
    back = load(path)
    tid = next(iter(sorted(mlp.values)))
    save(Recording(), path)  # the file is replaced by another recording
    assert same_array(back.values[tid], mlp.values[tid])
    assert same_array(back.value(tid, at=len(back) - 1), mlp.value(tid, at=len(mlp) - 1))


def test_a_value_changed_in_place_is_named_corrupt(mlp, tmp_path):
    path = tmp_path / "run.gsrec"
    save(mlp, path)
    back = load(path)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("values.bin")
        meta = json.loads(zf.read("meta.json"))
    tid, _dtype, _shape, offset, _crc = max(meta["arrays"], key=lambda row: math.prod(row[2]))
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    with open(path, "r+b") as fh:
        fh.seek(start + offset)
        byte = fh.read(1)
        fh.seek(start + offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(RecordingFileError, match=rf"value of tensor {tid} is corrupt"):
        back.values[tid]


def test_save_refuses_what_a_file_cannot_hold_and_keeps_the_old_file(mlp, tmp_path):
    path = tmp_path / "run.gsrec"
    save(mlp, path)
    before = path.read_bytes()
    first_op = next(e for e in mlp.events if type(e) is ev.OpForward)
    odd = Recording()
    odd.add(dataclasses.replace(first_op, attrs=(("fn", print),)), None, 0)
    with pytest.raises(RecordingFileError, match=r"run\.gsrec.*attrs"):
        save(odd, path)
    objects = Recording()
    objects.values[1] = np.array([None], dtype=object)
    with pytest.raises(RecordingFileError, match="not a numeric"):
        save(objects, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.gsrec"]
    with pytest.raises(RecordingFileError, match="the folder .* does not exist"):
        save(mlp, tmp_path / "no" / "such" / "dir.gsrec")


# -- generated events, any value a field may hold ----------------------------------------

_COUNTS = {"duration_ns", "nan", "inf", "size"}
plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda kids: (
        st.lists(kids, max_size=3).map(tuple)
        | st.lists(kids, max_size=3)
        | st.dictionaries(st.text(max_size=4), kids, max_size=3)
    ),
    max_leaves=8,
)


def strategy(tp: typing.Any, name: str = "") -> st.SearchStrategy:
    if tp is typing.Any:
        return plain
    if tp is int:
        low = 0 if name in _COUNTS else -(2**63)
        return st.integers(low, 2**63 - 1)
    simple = {float: st.floats(), str: st.text(max_size=8), bool: st.booleans()}
    if tp in simple:
        return simple[tp]
    if tp is type(None):
        return st.none()
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return st.one_of([strategy(a, name) for a in args])
    if typing.get_origin(tp) is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy(args[0], name), max_size=3).map(tuple)
        return st.tuples(*(strategy(a, name) for a in args))
    hints = typing.get_type_hints(tp, vars(ev))
    fields = {f.name: strategy(hints[f.name], f.name) for f in dataclasses.fields(tp)}
    return st.builds(tp, **fields)


any_event = st.one_of([strategy(cls) for cls in EVENT_TYPES.values()])
numeric_dtypes = st.sampled_from(["bool", "int8", "uint64", "float16", ">f4", "<f8", "complex64"])
any_array = hnp.arrays(numeric_dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("recfile"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(st.tuples(any_event, st.integers(-(2**63), 2**63 - 1)), max_size=8),
    arrays=st.dictionaries(st.integers(0, 10**6), any_array, max_size=3),
    meta=st.dictionaries(st.text(max_size=5), plain, max_size=3),
)
def test_any_events_round_trip(scratch, items, arrays, meta):
    rec = Recording(meta=meta)
    for item, t in items:
        rec.add(item, None, time_ns=t)
    rec.values = dict(arrays)
    rec.dropped = {-1, 10**7}
    path = os.path.join(scratch, "any.gsrec")
    save(rec, path)
    back = load(path)
    assert events_equal(back.events, rec.events) and back.times == rec.times
    assert all(same_array(rec.values[k], back.values[k]) for k in rec.values)
    assert _norm(back.meta) == _norm(rec.meta) and back.dropped == rec.dropped


def test_every_event_class_is_storable():
    classes = {
        name
        for name, obj in vars(ev).items()
        if dataclasses.is_dataclass(obj) and obj not in (ev.Stats, ev.Source)
    }
    assert classes == set(EVENT_TYPES)


# -- corrupt files ----------------------------------------------------------------------

UNPICKLED: list[str] = []


def _mark_unpickled() -> None:
    UNPICKLED.append("unpickled")


class Evil:
    def __reduce__(self):
        return (_mark_unpickled, ())


def members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def build(items: list[tuple[str, bytes]], compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP of ``items``; values.bin stays stored (uncompressed), as save writes it."""
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        with zipfile.ZipFile(out, "w", compress) as zf:
            for name, data in items:
                method = zipfile.ZIP_STORED if name == "values.bin" else compress
                zf.writestr(name, data, method)
    return out.getvalue()


def replaced(data: bytes, name: str, new: bytes | None) -> bytes:
    items = members(data)
    return build([(n, new if n == name else d) for n, d in items if n != name or new is not None])


def patch_sizes(data: bytes, index: int, size: int) -> bytes:
    """Make the central directory declare ``size`` uncompressed bytes for member ``index``."""
    data = bytearray(data)
    end = data.rfind(b"PK\x05\x06")
    count, _, start = struct.unpack_from("<HII", data, end + 10)
    for i in range(count):
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, start + 28)
        if i == index % count:
            struct.pack_into("<I", data, start + 24, size)
        start += 46 + name_len + extra_len + comment_len
    return bytes(data)


def set_flag(data: bytes, index: int, mask: int, method: int | None = None) -> bytes:
    data = bytearray(data)
    start = struct.unpack_from("<I", data, data.rfind(b"PK\x05\x06") + 16)[0]
    for _ in range(index):
        lens = struct.unpack_from("<HHH", data, start + 28)
        start += 46 + sum(lens)
    flags = struct.unpack_from("<H", data, start + 8)[0] | mask
    struct.pack_into("<H", data, start + 8, flags)
    if method is not None:
        struct.pack_into("<H", data, start + 10, method)
    return bytes(data)


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=allow_pickle)
    return out.getvalue()


def bad_arrays() -> list[bytes]:
    lying = bytearray(npy(np.zeros(3, np.float32)))
    lying[lying.index(b"(3,)") : lying.index(b"(3,)") + 4] = b"(9,)"
    v3 = bytearray(npy(np.zeros(2)))
    v3[6] = 3
    return [
        npy(np.array([Evil(), 1], dtype=object), allow_pickle=True),
        pickle.dumps(Evil()),
        npy(np.zeros(2, dtype=[("a", "f4"), ("b", "i4")])),
        npy(np.zeros(2, dtype="V4")),
        npy(np.zeros(2, dtype="datetime64[s]")),
        npy(np.array(["abc"])),
        bytes(lying),
        npy(np.zeros(5))[:-3],
        bytes(v3),
        b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    \n",
        npy(np.arange(4, dtype=np.int16).reshape(2, 2)),  # valid: another array
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=16,
)


def corruptions(base: bytes) -> st.SearchStrategy:
    items = members(base)
    names = [n for n, _ in items]
    lines = dict(items)["events.jsonl"].decode().splitlines()
    meta = json.loads(dict(items)["meta.json"])
    arrays = bad_arrays()
    keys = sorted({k for line in lines for k in json.loads(line)} | {"type", "t", "zzz"})

    def event_line(args):
        i, key, value, drop = args
        obj = json.loads(lines[i % len(lines)])
        if drop:
            obj.pop(key, None)
        else:
            obj[key] = value
        new = lines[:]
        new[i % len(lines)] = json.dumps(obj)
        return replaced(base, "events.jsonl", "".join(f"{x}\n" for x in new).encode())

    def meta_key(args):
        key, value, drop = args
        obj = dict(meta)
        if drop:
            obj.pop(key, None)
        else:
            obj[key] = value
        return replaced(base, "meta.json", json.dumps(obj).encode())

    type_names = st.sampled_from(sorted(EVENT_TYPES)) | json_values
    deep = [b"[" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000, b"[" * 30 + b"]" * 30]
    return st.one_of(
        st.integers(0, len(base) - 1).map(lambda n: base[:n]),
        st.lists(
            st.tuples(st.integers(0, len(base) - 1), st.integers(1, 255)), min_size=1, max_size=6
        ).map(lambda flips: _flip(base, flips)),
        st.sampled_from(names).map(lambda n: replaced(base, n, None)),
        st.tuples(st.sampled_from(["meta.json", "events.jsonl"]), json_values).map(
            lambda a: replaced(base, a[0], json.dumps(a[1]).encode())
        ),
        st.tuples(st.sampled_from(["meta.json", "events.jsonl"]), st.sampled_from(deep)).map(
            lambda a: replaced(base, a[0], a[1] + b"\n")
        ),
        st.tuples(
            st.integers(0, len(lines) - 1), st.sampled_from(keys), json_values, st.booleans()
        ).map(event_line),
        st.tuples(st.integers(0, len(lines) - 1), st.just("type"), type_names, st.just(False)).map(
            event_line
        ),
        st.tuples(st.sampled_from(sorted(meta) + ["zzz"]), json_values, st.booleans()).map(
            meta_key
        ),
        st.tuples(st.sampled_from(names[2:]), st.sampled_from(arrays)).map(
            lambda a: replaced(base, a[0], a[1])
        ),
        st.tuples(st.integers(0, len(names) - 1), st.integers(0, 2**32 - 2)).map(
            lambda a: patch_sizes(base, *a)
        ),
        st.tuples(
            st.integers(0, len(names) - 1),
            st.sampled_from([(1, None), (0, 12), (0, 14), (1 << 11, None)]),
        ).map(lambda a: set_flag(base, a[0], *a[1])),
        st.sampled_from(
            [
                b"",
                b"PK\x05\x06" + bytes(18),
                b'{"format": "gradstep-recording"}',
                build(items + [("extra.txt", b"x")]),
                build(items + items[:1]),
                build(items + [("values/", b"")]),
                build(items, zipfile.ZIP_LZMA),
            ]
        ),
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b),
        st.none(),  # a folder
        surrogates(base),
        lying_sizes(base),
    )


def surrogates(base: bytes) -> st.SearchStrategy:
    """A lone surrogate escape (\\ud800) in a string of an event, of meta or of a key."""
    items = members(base)
    lines = dict(items)["events.jsonl"].decode().splitlines()
    meta = json.loads(dict(items)["meta.json"])
    lone = st.sampled_from(["\ud800", "\udfff", "a\udc80b", "\ud83d"])

    def in_line(args):
        i, text = args
        obj = json.loads(lines[i % len(lines)])
        key = next((k for k, v in obj.items() if isinstance(v, str) and k != "type"), None)
        obj[key or "zzz"] = text
        new = lines[:]
        new[i % len(lines)] = json.dumps(obj)  # ensure_ascii: the escape stays an escape
        return replaced(base, "events.jsonl", "".join(f"{x}\n" for x in new).encode())

    def in_meta(args):
        text, as_key = args
        obj = json.loads(json.dumps(meta))
        obj["meta"] = {text: 1} if as_key else {"program": text}
        return replaced(base, "meta.json", json.dumps(obj).encode())

    return st.one_of(
        st.tuples(st.integers(0, len(lines) - 1), lone).map(in_line),
        st.tuples(lone, st.booleans()).map(in_meta),
    )


def lying_sizes(base: bytes) -> st.SearchStrategy:
    """Index rows of values.bin that lie (shape, dtype, offset, crc), and lying ZIP sizes."""
    items = members(base)
    meta = json.loads(dict(items)["meta.json"])
    fields = st.one_of(
        json_values,
        st.integers(-(2**70), 2**70),
        st.sampled_from(["|O", "<U4", "V8", "<f4", ">i8", "|b1", "<M8[s]", "f4"]),
        st.lists(st.integers(-1, 2**40), max_size=40),
    )

    def row(args):
        i, field, value = args
        obj = json.loads(json.dumps(meta))
        if not obj.get("arrays"):  # a version 1 file has none: the key is then unknown
            obj["arrays"] = [[1, "<f4", [1], 0, 0]]
        obj["arrays"][i % len(obj["arrays"])][field] = value
        return replaced(base, "meta.json", json.dumps(obj).encode())

    def compressed(args):
        index, size = args
        data = bytearray(base)
        end = data.rfind(b"PK\x05\x06")
        count, _, start = struct.unpack_from("<HII", data, end + 10)
        for i in range(count):
            lens = struct.unpack_from("<HHH", data, start + 28)
            if i == index % count:
                struct.pack_into("<I", data, start + 20, size)
            start += 46 + sum(lens)
        return bytes(data)

    return st.one_of(
        st.tuples(st.integers(0, 50), st.integers(0, 4), fields).map(row),
        st.tuples(st.integers(0, 2), st.integers(0, 2**32 - 1)).map(compressed),
    )


def many_members(base_v1: bytes) -> st.SearchStrategy:
    """A version 1 file with hundreds of small members, listed in meta.json or not."""
    items = members(base_v1)
    meta = json.loads(dict(items)["meta.json"])

    def make(args):
        count, size, listed, valid = args
        body = npy(np.zeros(size // 8)) if valid else bytes(size)
        extra = [(f"values/{10**6 + k}.npy", body) for k in range(count)]
        obj = dict(meta)
        if listed:
            obj["values"] = meta["values"] + [10**6 + k for k in range(count)]
        head = [("meta.json", json.dumps(obj).encode()), *items[1:]]
        return build(head + extra)

    return st.tuples(
        st.integers(50, 300), st.sampled_from([0, 8, 4096, 16384]), st.booleans(), st.booleans()
    ).map(make)


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for offset, mask in flips:
        out[offset] ^= mask
    return bytes(out)


def _small_recording() -> Recording:
    core.manual_seed(1)
    rec = Recording()
    with rec.attach():
        model = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
        loss = F.mse_loss(model(core.randn(2, 2)), core.zeros(2, 2))
        loss.backward()
        optim.SGD(model.parameters(), lr=0.1).step()
    return rec


@pytest.fixture(scope="module")
def corrupt(scratch):
    path = os.path.join(scratch, "base.gsrec")
    save(_small_recording(), path)
    with open(path, "rb") as fh:
        base = fh.read()
    return base, corruptions(base)


@pytest.fixture(scope="module")
def corrupt_v1(scratch):
    path = os.path.join(scratch, "base_v1.gsrec")
    save_v1(_small_recording(), path)
    with open(path, "rb") as fh:
        base = fh.read()
    return base, st.one_of(corruptions(base), many_members(base))


def expect_refusal_or_recording(path: str) -> None:
    try:
        result = load(path)
    except RecordingFileError as exc:
        assert str(path) in str(exc) and exc.path == str(path)
        assert isinstance(exc, GradstepError)
        reason = str(exc)[len(str(path)) + 2 :]
        event(re.sub(r"\d+", "N", reason)[:40])  # --hypothesis-show-statistics
    else:
        assert isinstance(result, Recording)
        try:
            for tid in result.values:  # values are read when asked: ask for each
                result.values[tid]
        except RecordingFileError as exc:
            assert exc.path == str(path) and "corrupt" in str(exc)
            event("a value is corrupt")
        else:
            event("still a valid recording")


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzzed_files_are_refused_cleanly(scratch, corrupt, data):
    base, corruption = corrupt
    content = data.draw(corruption)
    if content is None:
        expect_refusal_or_recording(scratch)
        return
    path = os.path.join(scratch, "fuzz.gsrec")
    with open(path, "wb") as fh:
        fh.write(content)
    expect_refusal_or_recording(path)
    assert not UNPICKLED


@pytest.mark.slow
@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzzed_version_1_files_and_many_members_are_refused_cleanly(scratch, corrupt_v1, data):
    """With the test above, 3,000 cases: version 1 files, hundreds of small members,
    lying sizes and lone surrogates, each refused with a reason or loaded whole."""
    _base, corruption = corrupt_v1
    content = data.draw(corruption)
    if content is None:
        expect_refusal_or_recording(scratch)
        return
    path = os.path.join(scratch, "fuzz_v1.gsrec")
    with open(path, "wb") as fh:
        fh.write(content)
    expect_refusal_or_recording(path)
    assert not UNPICKLED


def test_missing_file_and_folder_and_empty_file(tmp_path):
    missing = tmp_path / "nope.gsrec"
    with pytest.raises(RecordingFileError, match=r"nope\.gsrec: no such file"):
        load(missing)
    with pytest.raises(RecordingFileError, match="is a folder"):
        load(tmp_path)
    (tmp_path / "empty.gsrec").write_bytes(b"")
    with pytest.raises(RecordingFileError, match=r"empty\.gsrec: not a recording file"):
        load(tmp_path / "empty.gsrec")


@pytest.mark.parametrize("payload", [0, 1])
def test_pickle_in_an_array_is_never_unpickled(corrupt_v1, tmp_path, payload):
    base, _ = corrupt_v1
    name = next(n for n, _ in members(base) if n.startswith("values/"))
    path = tmp_path / "evil.gsrec"
    path.write_bytes(replaced(base, name, bad_arrays()[payload]))
    with pytest.raises(
        RecordingFileError, match=rf"evil\.gsrec: {name}: (dtype object|not a .npy)"
    ):
        load(path)
    assert not UNPICKLED


# -- strictness, one reason at a time ---------------------------------------------------


def _edit_line(base: bytes, pick: str, edit) -> bytes:
    lines = dict(members(base))["events.jsonl"].decode().splitlines()
    i = next(i for i, line in enumerate(lines) if json.loads(line)["type"] == pick)
    obj = json.loads(lines[i])
    lines[i] = edit(obj) if callable(edit) else edit
    lines[i] = lines[i] if isinstance(lines[i], str) else json.dumps(obj)
    return replaced(base, "events.jsonl", "".join(f"{x}\n" for x in lines).encode())


def _set(key, value):
    return lambda obj: obj.__setitem__(key, value)


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _edit_array(base: bytes, field: int, value) -> bytes:
    obj = json.loads(dict(members(base))["meta.json"])
    obj["arrays"][0][field] = value
    return replaced(base, "meta.json", json.dumps(obj).encode())


def _deflated_values(base: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members(base):
            zf.writestr(name, data)
    return out.getvalue()


def _edit_meta(base: bytes, key: str, value) -> bytes:
    obj = json.loads(dict(members(base))["meta.json"])
    obj[key] = value
    return replaced(base, "meta.json", json.dumps(obj).encode())


STRICT = {
    "bool for int": (
        lambda b: _edit_line(b, "OpForward", _set("node_id", True)),
        r"line \d+: OpForward\.node_id: expected an integer, got a boolean",
    ),
    "float for int": (
        lambda b: _edit_line(b, "OpForward", _set("output", 3.0)),
        "OpForward.output: expected an integer, got a number",
    ),
    "int for str": (lambda b: _edit_line(b, "OpForward", _set("op", 3)), "op: expected a string"),
    "unknown type": (
        lambda b: _edit_line(b, "OpForward", _set("type", "Evil")),
        "unknown event type 'Evil'",
    ),
    "unknown field": (
        lambda b: _edit_line(b, "OpForward", _set("extra", 1)),
        "unknown field 'extra'",
    ),
    "missing field": (
        lambda b: _edit_line(b, "OpForward", lambda o: o.pop("shape")),
        "missing field 'shape'",
    ),
    "NaN token": (
        lambda b: _edit_line(b, "OpForward", '{"type": "OpForward", "t": NaN}'),
        "non-standard JSON constant NaN",
    ),
    "duplicate key": (
        lambda b: _edit_line(b, "OpForward", '{"type":"StepStarted","t":1,"step":1,"step":2}'),
        "duplicate key 'step'",
    ),
    "bad nan text": (
        lambda b: _edit_line(b, "OpForward", lambda o: o["stats"].update(min="NaN")),
        r"stats\.min: expected a number",
    ),
    "object for tuple": (
        lambda b: _edit_line(b, "OpForward", _set("shape", {"a": 1})),
        "shape: expected a list",
    ),
    "untagged attr": (
        lambda b: _edit_line(b, "OpForward", _set("attrs", [["k", {"x": 1}]])),
        "not a plain value",
    ),
    "negative duration": (
        lambda b: _edit_line(b, "OpForward", _set("duration_ns", -5)),
        "duration_ns: must not be negative",
    ),
    "time out of range": (
        lambda b: _edit_line(b, "OpForward", _set("t", 2**64)),
        "out of the 64-bit range",
    ),
    "not an object": (lambda b: _edit_line(b, "OpForward", "[1, 2]"), "expected an object"),
    "cut off": (
        lambda b: replaced(b, "events.jsonl", dict(members(b))["events.jsonl"][:-1]),
        "last line is cut off",
    ),
    "newer version": (lambda b: _edit_meta(b, "version", 3), "newer Gradstep .format version 3"),
    "bool version": (lambda b: _edit_meta(b, "version", True), "bad format version"),
    "wrong format": (lambda b: _edit_meta(b, "format", "zip"), "not a Gradstep recording"),
    "count": (lambda b: _edit_meta(b, "event_count", 1), "meta.json says 1"),
    "kept and dropped": (
        lambda b: _edit_meta(
            b, "dropped", [json.loads(dict(members(b))["meta.json"])["arrays"][0][0]]
        ),
        "both kept and dropped",
    ),
    "meta key": (lambda b: _edit_meta(b, "owner", "me"), "unknown key 'owner'"),
    "extra member": (
        lambda b: build(members(b) + [("notes.txt", b"hi")]),
        "unexpected member 'notes.txt'",
    ),
    "twice": (lambda b: build(members(b) + members(b)[:1]), "'meta.json' appears twice"),
    "no values": (lambda b: replaced(b, "values.bin", None), r"values\.bin is missing"),
    "no events": (lambda b: replaced(b, "events.jsonl", None), "events.jsonl is missing"),
    "object dtype": (lambda b: _edit_array(b, 1, "|O"), "is not a numeric dtype"),
    "lying shape": (lambda b: _edit_array(b, 2, [10**6]), "lie past the end of values.bin"),
    "negative offset": (lambda b: _edit_array(b, 3, -8), "offset must not be negative"),
    "deflated values": (
        _deflated_values,
        "values.bin must be stored",
    ),
    "lone surrogate": (
        lambda b: _edit_line(b, "OpForward", _set("op", "\ud800")),
        r"line \d+: .*lone surrogate \(\\ud800\)",
    ),
    "over its cap": (lambda b: _edit_meta(b, "cap_bytes", 1), "more than the recording's cap"),
    "bomb": (lambda b: patch_sizes(b, 1, 2**32 - 16), "expands .* times its size"),
    "encrypted": (lambda b: set_flag(b, 0, 1), "meta.json is encrypted"),
    "bzip2": (lambda b: set_flag(b, 1, 0, 12), "unsupported compression"),
    "deep": (lambda b: replaced(b, "meta.json", b"[" * 100_000), "nested too deeply"),
    "deep attrs": (
        lambda b: _edit_line(b, "OpForward", _set("attrs", [["k", _nested(40)]])),
        "nested deeper than 32",
    ),
    "not utf8": (lambda b: replaced(b, "meta.json", b"\xff\xfe"), "not UTF-8"),
}


STRICT_V1 = {
    "missing value": (lambda b: replaced(b, members(b)[2][0], None), r"values/\d+\.npy is missing"),
    "structured": (lambda b: replaced(b, members(b)[2][0], bad_arrays()[2]), "is not numeric"),
    "lying header": (
        lambda b: replaced(b, members(b)[2][0], bad_arrays()[6]),
        "its header says 36",
    ),
    "over its cap": (lambda b: _edit_meta(b, "cap_bytes", 1), "more than the recording's cap"),
}


@pytest.fixture(params=["orjson", "stdlib"])
def parser(request, monkeypatch):
    """Each line parsed by orjson (the dependency) or by the standard library's
    scanner (the path without it): the same events, the same errors."""
    from core.debug import recfile_events

    if request.param == "stdlib":
        monkeypatch.setattr(recfile_events, "_ORJSON", None)
        monkeypatch.setattr(recfile_events, "_ORJSON_DUMPS", None)
    else:
        assert recfile_events._ORJSON is not None, "orjson is a dependency"
    return request.param


def test_orjson_and_the_standard_library_write_and_read_the_same_events(mlp, tmp_path, monkeypatch):
    from core.debug import recfile_events

    fast_path, slow_path = tmp_path / "orjson.gsrec", tmp_path / "stdlib.gsrec"
    save(mlp, fast_path)
    fast = load(fast_path)
    monkeypatch.setattr(recfile_events, "_ORJSON", None)
    monkeypatch.setattr(recfile_events, "_ORJSON_DUMPS", None)
    save(mlp, slow_path)
    for path in (fast_path, slow_path):  # each file read by the standard library
        assert_same(mlp, load(path))
    assert_same(mlp, fast)


@pytest.mark.parametrize("case", sorted(STRICT) + [f"v1 {c}" for c in sorted(STRICT_V1)])
def test_each_problem_is_named(corrupt, corrupt_v1, tmp_path, case, parser):
    if case.startswith("v1 "):
        base, _ = corrupt_v1
        make, message = STRICT_V1[case[3:]]
    else:
        base, _ = corrupt
        make, message = STRICT[case]
    path = tmp_path / "bad.gsrec"
    path.write_bytes(make(base))
    with pytest.raises(RecordingFileError, match=r"bad\.gsrec: .*" + message) as info:
        load(path)
    assert info.value.path == str(path)
    if message.startswith("line"):
        assert isinstance(info.value.line, int)


def test_total_size_limit(corrupt, tmp_path):
    base, _ = corrupt
    path = tmp_path / "big.gsrec"
    path.write_bytes(base)
    with pytest.raises(RecordingFileError, match="more than 1000 bytes"):
        load(path, max_bytes=1000)
    assert isinstance(load(path), Recording)


# -- Chrome trace ------------------------------------------------------------------------


def validate_chrome_trace(trace: dict) -> dict[int, list[dict]]:
    """Check the structure Perfetto and chrome://tracing read; returns slices per track."""
    assert set(trace) == {"traceEvents", "displayTimeUnit"}
    assert trace["displayTimeUnit"] == "ms"
    assert json.loads(json.dumps(trace, allow_nan=False)) == trace
    names: dict[int, str] = {}
    tracks: dict[int, list[dict]] = {}
    for e in trace["traceEvents"]:
        assert isinstance(e["name"], str) and e["ph"] in ("X", "M")
        assert type(e["pid"]) is int and type(e["tid"]) is int and isinstance(e["args"], dict)
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "thread_name", "thread_sort_index")
            if e["name"] == "thread_name":
                names[e["tid"]] = e["args"]["name"]
            continue
        assert e["tid"] in names, "a track is named before its first slice"
        assert isinstance(e["cat"], str)
        for key in ("ts", "dur"):
            assert type(e[key]) in (int, float) and math.isfinite(e[key]) and e[key] >= 0
        track = tracks.setdefault(e["tid"], [])
        assert not track or track[-1]["ts"] <= e["ts"], "ts goes back on a track"
        track.append(e)
    assert names == {1: "forward", 2: "backward", 3: "update", 4: "steps", 5: "modules"}
    for slices in tracks.values():  # slices on one track nest or follow each other
        open_ends: list[float] = []
        for s in slices:
            while open_ends and open_ends[-1] <= s["ts"] + 1e-6:
                open_ends.pop()
            end = s["ts"] + s["dur"]
            assert not open_ends or end <= open_ends[-1] + 1e-6, f"overlap at {s}"
            open_ends.append(end)
    return tracks


def test_chrome_trace_of_a_training_run(mlp, tmp_path):
    tracks = validate_chrome_trace(chrome_trace(mlp))
    forward = [e for e in mlp.events if type(e) is ev.OpForward]
    assert len(tracks[1]) == sum(e.phase == "forward" for e in forward)
    assert len(tracks[3]) == sum(e.phase == "update" for e in forward) > 0
    assert len(tracks[2]) == mlp.counts()["OpBackward"]
    steps = [s["name"] for s in tracks[4] if s["cat"] == "step"]
    assert steps == ["step 0", "step 1", "step 2"]
    assert sum(s["name"] == "backward pass" for s in tracks[4]) == 3
    assert {s["name"] for s in tracks[5]} >= {"model", "model.0", "model.1", "model.2"}
    op = next(s for s in tracks[1] if s["name"] == "relu")
    event = mlp.events[op["args"]["index"]]
    assert op["dur"] == event.duration_ns / 1000
    assert op["args"]["node"] == event.node_id and op["args"]["shape"] == list(event.shape)
    assert op["args"]["dtype"] == event.dtype and op["args"]["scope"] == event.scope
    assert op["args"]["source"] == f"{event.source.file}:{event.source.line}"
    assert any(s["args"].get("loss") == "nan" for s in tracks[4])
    path = tmp_path / "trace.json"
    save_chrome_trace(mlp, path)
    assert json.loads(path.read_text()) == chrome_trace(mlp)


def test_chrome_trace_of_empty_and_unfinished_recordings():
    validate_chrome_trace(chrome_trace(Recording()))
    rec = Recording()
    rec.add(StepStarted(step=0), None, 1000)
    rec.add(ev.ModuleEnter(path="m", kind="Linear"), None, 2000)
    rec.add(ev.RunFinished(status="stopped"), None, 5000)
    tracks = validate_chrome_trace(chrome_trace(rec))
    assert [(s["name"], s["ts"], s["dur"]) for s in tracks[4]] == [("step 0", 0.0, 4.0)]
    assert tracks[5][0]["args"]["unfinished"] is True


SAMPLES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "samples", "*.py")))


@pytest.mark.parametrize("sample", SAMPLES, ids=os.path.basename)
def test_sample_runs_round_trip(sample, tmp_path):
    session = Session.from_file(sample, steps=2)
    session.start()
    assert session.wait(60) and session.state == "finished", session.error
    path = tmp_path / "sample.gsrec"
    save(session.recording, path)
    back = load(path)
    assert_same(session.recording, back)
    assert os.path.samefile(back.meta["program"], sample)
    validate_chrome_trace(chrome_trace(back))


# -- the fast paths say exactly what the full codecs say ---------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=any_event)
def test_fast_codecs_agree_with_the_full_ones(item):
    from core.debug import recfile_fast as fast
    from core.debug.recfile_schema import _decoder, _dumps, _encoder

    full = _encoder(type(item))(item)
    try:
        quick = fast.encode(item)
    except fast.Slow:
        event("encode: full codec")
    else:
        assert _dumps(quick) == _dumps(full)
        event("encode: fast")
    line = json.loads(_dumps({"type": type(item).__name__, "t": 5} | full))
    try:
        back, t, keys = fast.decode(dict(line))
    except fast.Slow:
        event("decode: full codec")
        return
    event("decode: fast")
    slow = _decoder(type(item))({k: v for k, v in line.items() if k not in ("type", "t")})
    assert _norm(back) == _norm(slow) and t == 5
    assert keys == _keys_in(line)  # what the loader compares with the keys in the text


def _keys_in(value: typing.Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_keys_in(v) for v in value.values())
    if isinstance(value, list):
        return sum(_keys_in(v) for v in value)
    return 0


def test_a_line_with_a_repeated_key_takes_the_full_codec_and_is_refused(mlp, tmp_path, parser):
    path = tmp_path / "run.gsrec"
    save(mlp, path)
    with zipfile.ZipFile(path) as zf:
        items = [(i.filename, zf.read(i)) for i in zf.infolist()]
    lines = dict(items)["events.jsonl"].decode().splitlines()
    i = next(n for n, line in enumerate(lines) if '"type":"OpForward"' in line)
    lines[i] = lines[i].replace('"op":', '"op":"x","op":', 1)
    body = "".join(f"{line}\n" for line in lines).encode()
    path.write_bytes(build([(n, body if n == "events.jsonl" else d) for n, d in items]))
    with pytest.raises(RecordingFileError, match=rf"line {i + 1}: .*duplicate key 'op'"):
        load(path)
