"""Recording files (``.gsrec``): save a Recording, load it back, export a Chrome trace.

A recording file is a ZIP archive with three kinds of members:

- ``meta.json``: ``{"format": "gradstep-recording", "version": 1, "meta": {...},
  "cap_bytes": ..., "dropped": [ids], "values": [ids], "event_count": ...}``;
- ``events.jsonl``: one JSON object per event, in order, ``{"type": "OpForward",
  "t": arrival time in ns, ...its fields}``. Stats and Source are nested objects,
  tuples are lists, and a non-finite float is the string ``"nan"``, ``"inf"`` or
  ``"-inf"``. Op attributes and ``meta`` hold any plain value, so there a
  non-finite float is ``{"float": "nan"}``, a list ``{"list": [...]}`` and a
  dict ``{"dict": {...}}``, while a JSON list is a tuple;
- ``values/<tensor id>.npy``: each kept host array, in NumPy's .npy format.

No pickle anywhere. ``load`` checks the archive, every member, field and type
before it builds anything; any problem raises ``RecordingFileError`` naming the
file and the reason (and the events.jsonl line).

>>> import os, tempfile
>>> import core
>>> from core.recording import Recording
>>> rec = Recording(meta={"program": "demo"})
>>> with rec.attach():
...     x = core.tensor([1.0, -2.0], requires_grad=True)
...     (x * x).sum().backward()
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = os.path.join(tmp, "demo.gsrec")
...     save(rec, path)
...     again = load(path)
>>> again.events == rec.events, again.grad_of(x.id).tolist()
(True, [2.0, -4.0])
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import re
import stat
import tempfile
import types
import typing
import zipfile
import zlib
from collections.abc import Callable
from typing import Any, Union

import numpy as np

from core import events as ev
from core.errors import GradstepError
from core.recording import Recording

FORMAT = "gradstep-recording"
VERSION = 1
MAX_BYTES = 4 * 2**30  # total uncompressed size load() accepts
MAX_META_BYTES = 256 * 2**20  # meta.json lists every kept and dropped tensor id
MAX_RATIO = 200  # uncompressed / compressed size of a member over 1 MiB
MAX_DEPTH = 32  # nesting of plain values (op attributes, meta)
_INT64 = (-(2**63), 2**63 - 1)
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_NON_NEGATIVE = {"duration_ns", "nan", "inf", "size"}  # fields that count
_META_KEYS = {"format", "version", "meta", "cap_bytes", "dropped", "values", "event_count"}
_VALUE_NAME = re.compile(r"values/(0|-?[1-9][0-9]{0,18})\.npy")
_NUMERIC_KINDS = "biufc"


class RecordingFileError(GradstepError):
    """A recording file could not be read or written; the message names file and reason."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        super().__init__(message)
        self.path = path
        self.line = line


class _Invalid(Exception):
    """A problem found while reading or writing; becomes a RecordingFileError."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


# -- schemas: each event type's fields and their types, from core/events.py ------------
#
# Each field type gets an encoder (value -> JSON data) and a decoder (JSON data ->
# value), built once. They raise _Invalid with a message relative to the value
# (": expected an integer", ".stats.min: ..."), which callers prefix with where it was.

EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in typing.get_args(ev.Event)}
_NONE = type(None)


def _fields(cls: type) -> list[tuple[str, Any, Any]]:
    hints = typing.get_type_hints(cls, vars(ev))
    return [(f.name, hints[f.name], f.default) for f in dataclasses.fields(cls)]


_SCHEMAS = {cls: _fields(cls) for cls in [*EVENT_TYPES.values(), ev.Stats, ev.Source]}
_ENCODERS: dict[Any, Callable[[Any], Any]] = {}
_DECODERS: dict[Any, Callable[[Any], Any]] = {}


def _codec(table: dict, make: Callable, tp: Any) -> Callable[[Any], Any]:
    fn = table.get(tp)
    if fn is None:
        fn = table[tp] = make(tp)
    return fn


def _encoder(tp: Any) -> Callable[[Any], Any]:
    return _codec(_ENCODERS, _make_encoder, tp)


def _decoder(tp: Any) -> Callable[[Any], Any]:
    return _codec(_DECODERS, _make_decoder, tp)


def _make_encoder(tp: Any) -> Callable[[Any], Any]:
    simple = {Any: _plain_out, int: _int_out, float: _float_out, str: _str_out}
    simple |= {bool: _bool_out, _NONE: _none_out}
    if tp in simple:
        return simple[tp]
    if tp in _SCHEMAS:
        return _dataclass_codec(tp, _encoder, _dataclass_out)
    return _composite(tp, _encoder, lambda v: isinstance(v, tuple), list)


def _make_decoder(tp: Any) -> Callable[[Any], Any]:
    simple = {Any: _plain_in, int: _int_in, float: _float_in, str: _str_in}
    simple |= {bool: _bool_in, _NONE: _none_in}
    if tp in simple:
        return simple[tp]
    if tp in _SCHEMAS:
        return _dataclass_codec(tp, _decoder, _dataclass_in)
    return _composite(tp, _decoder, lambda v: type(v) is list, tuple)


def _composite(tp: Any, codec: Callable, is_seq: Callable, seq: type) -> Callable[[Any], Any]:
    """Codec of a union (``X | None``) or a tuple type, from the codecs of its parts."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (Union, types.UnionType):
        options = [codec(a) for a in args if a is not _NONE]
        nullable = _NONE in args

        def union(value: Any) -> Any:
            if value is None and nullable:
                return None
            for option in options[:-1]:
                try:
                    return option(value)
                except _Invalid:
                    continue
            return options[-1](value)

        return union
    if typing.get_origin(tp) is tuple:
        variadic = len(args) == 2 and args[1] is Ellipsis
        items = [codec(args[0])] if variadic else [codec(a) for a in args]

        def sequence(value: Any) -> Any:
            if not is_seq(value):
                raise _Invalid(f": expected a list, got {_json_name(value)}")
            if not variadic and len(value) != len(items):
                raise _Invalid(f": expected {len(items)} items, got {len(value)}")
            fns = items * len(value) if variadic else items
            try:
                return seq(map(_call, fns, value))
            except _Invalid:
                pass
            for i, (fn, v) in enumerate(zip(fns, value, strict=True)):
                try:
                    fn(v)
                except _Invalid as exc:
                    raise _Invalid(f"[{i}]{exc}") from None
            raise AssertionError("unreachable")

        return sequence

    def unsupported(value: Any) -> Any:
        raise _Invalid(f": a field of type {tp} cannot be stored in a recording file")

    return unsupported


def _call(fn: Callable[[Any], Any], value: Any) -> Any:
    return fn(value)


def _dataclass_codec(cls: type, codec: Callable, run: Callable) -> Callable[[Any], Any]:
    fields = [
        (name, codec(tp), default, name in _NON_NEGATIVE) for name, tp, default in _SCHEMAS[cls]
    ]
    return lambda value: run(value, cls, fields)


def _field(fn: Callable[[Any], Any], value: Any, name: str, counted: bool) -> Any:
    try:
        out = fn(value)
    except _Invalid as exc:
        raise _Invalid(f".{name}{exc}") from None
    if counted and type(out) is int and out < 0:
        raise _Invalid(f".{name}: must not be negative, got {out}")
    return out


def _dataclass_out(value: Any, cls: type, fields: list) -> dict[str, Any]:
    if type(value) is not cls:
        raise _Invalid(f": expected {cls.__name__}, got {type(value).__name__}")
    return {
        name: _field(fn, getattr(value, name), name, counted) for name, fn, _, counted in fields
    }


def _dataclass_in(obj: Any, cls: type, fields: list) -> Any:
    if type(obj) is not dict:
        raise _Invalid(f": expected an object, got {_json_name(obj)}")
    kwargs = {}
    for name, fn, default, counted in fields:
        if name in obj:
            kwargs[name] = _field(fn, obj[name], name, counted)
        elif default is dataclasses.MISSING:
            raise _Invalid(f": missing field {name!r}")
    if len(kwargs) != len(obj):
        unknown = sorted(set(obj) - set(kwargs))
        raise _Invalid(f": unknown field {_short(unknown[0])}")
    return cls(**kwargs)


def _int_out(value: Any) -> int:
    if type(value) is not int:
        integer = isinstance(value, int | np.integer)
        if not integer or isinstance(value, bool | np.bool_):
            raise _Invalid(f": expected an integer, got {type(value).__name__}")
        value = int(value)
    return _int_in(value)


def _float_out(value: Any) -> float | str:
    if type(value) is not float:
        number = isinstance(value, int | float | np.integer | np.floating)
        if not number or isinstance(value, bool | np.bool_):
            raise _Invalid(f": expected a float, got {type(value).__name__}")
        value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"


def _str_out(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f": expected a string, got {type(value).__name__}")
    return str(value)


def _bool_out(value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise _Invalid(f": expected a bool, got {type(value).__name__}")
    return bool(value)


def _none_out(value: Any) -> None:
    if value is not None:
        raise _Invalid(f": expected None, got {type(value).__name__}")


def _int_in(value: Any) -> int:
    if type(value) is not int:
        raise _Invalid(f": expected an integer, got {_json_name(value)}")
    if not _INT64[0] <= value <= _INT64[1]:
        raise _Invalid(f": {_short(value)} is out of the 64-bit range")
    return value


def _float_in(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value
    if kind is int and abs(value) < 2**1000:
        return float(value)
    if kind is str and value in _NONFINITE:
        return _NONFINITE[value]
    raise _Invalid(f": expected a number, got {_json_name(value)}")


def _str_in(value: Any) -> str:
    if type(value) is not str:
        raise _Invalid(f": expected a string, got {_json_name(value)}")
    return value


def _bool_in(value: Any) -> bool:
    if type(value) is not bool:
        raise _Invalid(f": expected a boolean, got {_json_name(value)}")
    return value


def _none_in(value: Any) -> None:
    if value is not None:
        raise _Invalid(f": expected null, got {_json_name(value)}")


def _json_name(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "an object", _NONE: "null"}
    return names.get(type(value), type(value).__name__)


# -- plain values: op attributes and meta ---------------------------------------------------


def _plain_out(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise _Invalid(f": nested deeper than {MAX_DEPTH}")
    if isinstance(value, np.generic) and value.dtype.kind in _NUMERIC_KINDS:
        value = value.item()
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        text = _float_out(float(value))
        return {"float": text} if isinstance(text, str) else text
    if isinstance(value, str):
        return str(value)
    if isinstance(value, tuple):
        return _plain_items(_plain_out, value, depth)
    if isinstance(value, list):
        return {"list": _plain_items(_plain_out, value, depth)}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": _plain_dict_out(value, depth + 1)}
    raise _Invalid(f": cannot store a {type(value).__name__} value")


def _plain_items(fn: Callable, values: Any, depth: int) -> list[Any]:
    out = []
    for i, v in enumerate(values):
        try:
            out.append(fn(v, depth + 1))
        except _Invalid as exc:
            raise _Invalid(f"[{i}]{exc}") from None
    return out


def _plain_dict_out(value: dict, depth: int = 0) -> dict[str, Any]:
    return {str(k): _plain_key(_plain_out, k, v, depth) for k, v in value.items()}


def _plain_key(fn: Callable, key: str, value: Any, depth: int) -> Any:
    try:
        return fn(value, depth)
    except _Invalid as exc:
        raise _Invalid(f".{key}{exc}") from None


def _plain_in(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise _Invalid(f": nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is list:
        return tuple(_plain_items(_plain_in, value, depth))
    if kind is dict and len(value) == 1:
        ((tag, inner),) = value.items()
        if tag == "float" and type(inner) is str and inner in _NONFINITE:
            return _NONFINITE[inner]
        if tag == "list" and type(inner) is list:
            return _plain_items(_plain_in, inner, depth)
        if tag == "dict" and type(inner) is dict:
            return _plain_dict_in(inner, depth + 1)
    raise _Invalid(": not a plain value (an object must be one 'float', 'list' or 'dict' tag)")


def _plain_dict_in(value: dict, depth: int = 0) -> dict[str, Any]:
    return {k: _plain_key(_plain_in, k, v, depth) for k, v in value.items()}


def _at(where: str, fn: Callable[[Any], Any], value: Any) -> Any:
    """``fn(value)``, its errors prefixed with ``where``."""
    try:
        return fn(value)
    except _Invalid as exc:
        raise _Invalid(f"{where}{exc}") from None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> Any:
    raise _Invalid(f"non-standard JSON constant {name}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Invalid(f"duplicate key {key!r}")
        out[key] = value
    return out


def _json(data: bytes, where: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Invalid(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise _Invalid(f"{where}: invalid JSON ({exc.msg}, column {exc.colno})") from None
    except _Invalid as exc:
        raise _Invalid(f"{where}: {exc}") from None
    except RecursionError:
        raise _Invalid(f"{where}: JSON nested too deeply") from None


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


# -- save --------------------------------------------------------------------------------


def _display(path: Any) -> str:
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        return repr(path)


def _snapshot(recording: Recording) -> tuple[list, list, dict, set]:
    # the Recording may still be growing in a Session's thread
    with getattr(recording, "_lock", None) or contextlib.nullcontext():
        return (
            list(recording.events),
            list(recording.times),
            dict(recording.values),
            set(recording.dropped),
        )


def _encode(recording: Recording) -> tuple[bytes, bytes, dict[int, np.ndarray]]:
    events, times, values, dropped = _snapshot(recording)
    lines = []
    for i, (event, t) in enumerate(zip(events, times, strict=False)):
        cls = type(event)
        name = cls.__name__
        if EVENT_TYPES.get(name) is not cls:
            raise _Invalid(f"event {i}: {name} is not an event type of core.events")
        where = f"event {i} ({name})"
        obj = {"type": name, "t": _at(f"{where} time", _int_out, t)}
        obj.update(_at(where, _encoder(cls), event))
        lines.append(_dumps(obj) + "\n")
    for tid, array in values.items():
        _at("value id", _int_out, tid)
        if not isinstance(array, np.ndarray) or not _numeric(array.dtype):
            raise _Invalid(f"the value of tensor {tid} is not a numeric NumPy array")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "meta": _at("meta", _plain_dict_out, _checked_meta(recording.meta)),
        "cap_bytes": _at("cap_bytes", _count_out, recording.cap_bytes),
        "dropped": [_at("dropped id", _int_out, tid) for tid in sorted(dropped)],
        "values": sorted(values),
        "event_count": len(lines),
    }
    text = (_dumps(meta) + "\n").encode("utf-8")
    return text, "".join(lines).encode("utf-8"), values


def _count_out(value: Any) -> int:
    number = _int_out(value)
    if number < 0:
        raise _Invalid(f": must not be negative, got {number}")
    return number


def _checked_meta(meta: Any) -> dict:
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise _Invalid("meta must be a dict with string keys")
    return meta


def _numeric(dtype: np.dtype) -> bool:
    plain = dtype.fields is None and dtype.subdtype is None and not dtype.hasobject
    return plain and dtype.kind in _NUMERIC_KINDS


def _member(name: str, compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress
    info.external_attr = 0o644 << 16
    return info


def save(recording: Recording, path: str | os.PathLike) -> None:
    """Write ``recording`` to ``path`` (a ``.gsrec`` file), replacing it atomically.

    Raises RecordingFileError, naming the file, when an event holds something
    a recording file cannot store or the file cannot be written.
    """
    name = _display(path)
    tmp = None
    try:
        meta, lines, values = _encode(recording)
        folder = os.path.dirname(os.path.abspath(name))
        fd, tmp = tempfile.mkstemp(prefix=".gsrec-", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
            zf.writestr(_member("meta.json", zipfile.ZIP_DEFLATED), meta)
            zf.writestr(_member("events.jsonl", zipfile.ZIP_DEFLATED), lines)
            for tid in sorted(values):
                array = values[tid]
                info = _member(f"values/{tid}.npy", zipfile.ZIP_STORED)
                with zf.open(info, "w", force_zip64=array.nbytes > 2**30) as out:
                    np.save(out, array, allow_pickle=False)
        os.replace(tmp, name)
        tmp = None
    except _Invalid as exc:
        raise RecordingFileError(f"{name}: cannot save the recording: {exc}", name) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RecordingFileError(f"{name}: cannot write the file: {reason}", name) from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise RecordingFileError(f"{name}: cannot save the recording ({reason})", name) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)


# -- load --------------------------------------------------------------------------------


def load(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> Recording:
    """Read a recording file written by ``save``; its indexes are rebuilt.

    Anything wrong with the file (missing, not a ZIP, a member missing or
    unexpected, bad JSON, a wrong field type, an unknown event, a non-numeric
    array, sizes over ``max_bytes``...) raises RecordingFileError naming the
    file and the reason; nothing in the file is ever unpickled.
    """
    name = _display(path)
    try:
        return _load(path, max_bytes)
    except RecordingFileError:
        raise
    except _Invalid as exc:
        raise RecordingFileError(f"{name}: {exc}", name, exc.line) from None
    except FileNotFoundError:
        raise RecordingFileError(f"{name}: no such file", name) from None
    except IsADirectoryError:
        raise RecordingFileError(f"{name}: is a folder, not a recording file", name) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RecordingFileError(f"{name}: cannot read the file: {reason}", name) from None
    except zipfile.BadZipFile as exc:
        raise RecordingFileError(f"{name}: not a valid recording file ({exc})", name) from None
    except zlib.error as exc:
        raise RecordingFileError(f"{name}: corrupt compressed data ({exc})", name) from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")[:200]
        raise RecordingFileError(f"{name}: not a valid recording file ({reason})", name) from exc


def _load(path: Any, max_bytes: int) -> Recording:
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
        raise _Invalid("is a folder, not a recording file")
    if not stat.S_ISREG(mode):
        raise _Invalid("is not a regular file")
    with open(path, "rb") as fh, zipfile.ZipFile(fh) as zf:
        infos = _check_members(zf.infolist(), max_bytes)
        for required in ("meta.json", "events.jsonl"):
            if required not in infos:
                raise _Invalid(f"member {required} is missing: not a recording file")
        meta = _meta(_read(zf, infos["meta.json"]))
        names = {f"values/{tid}.npy" for tid in meta["values"]}
        extra = sorted(set(infos) - names - {"meta.json", "events.jsonl"})
        if extra:
            raise _Invalid(f"unexpected member {extra[0]}")
        missing = sorted(names - set(infos))
        if missing:
            raise _Invalid(f"member {missing[0]} is missing (meta.json lists it)")
        headers: dict[bytes, tuple] = {}
        values = {}
        for tid in meta["values"]:
            values[tid] = _array(_read(zf, infos[f"values/{tid}.npy"]), tid, headers)
        parsed = _events(_read(zf, infos["events.jsonl"]), meta["event_count"])
    rec = Recording(cap_bytes=meta["cap_bytes"], meta=meta["meta"])
    for event, t in parsed:
        rec.add(event, None, time_ns=t)
    rec.values = values
    rec.bytes = sum(int(a.nbytes) for a in values.values())
    rec.dropped = set(meta["dropped"])
    return rec


def _check_members(infos: list[zipfile.ZipInfo], max_bytes: int) -> dict[str, zipfile.ZipInfo]:
    by_name: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        if name in by_name:
            raise _Invalid(f"member {_short(name)} appears twice")
        if name not in ("meta.json", "events.jsonl") and not _VALUE_NAME.fullmatch(name):
            raise _Invalid(f"unexpected member {_short(name)}")
        if info.flag_bits & 0x1:
            raise _Invalid(f"member {name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Invalid(f"member {name} uses an unsupported compression")
        big = info.file_size > 2**20
        if big and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            raise _Invalid(f"member {name} expands {ratio} times its size: refused")
        if name == "meta.json" and info.file_size > MAX_META_BYTES:
            raise _Invalid(f"member meta.json declares {info.file_size} bytes: refused")
        total += info.file_size
        if total > max_bytes:
            raise _Invalid(f"members declare more than {max_bytes} bytes in all (limit)")
        by_name[name] = info
    return by_name


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with zf.open(info) as fh:
        data = fh.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise _Invalid(f"member {info.filename} is truncated")
    return data


def _meta(data: bytes) -> dict[str, Any]:
    obj = _json(data, "meta.json")
    if type(obj) is not dict:
        raise _Invalid(f"meta.json: expected an object, got {_json_name(obj)}")
    if obj.get("format") != FORMAT:
        raise _Invalid(f"meta.json: not a Gradstep recording (format is not {FORMAT!r})")
    version = obj.get("version")
    if type(version) is not int or version < 1:
        raise _Invalid(f"meta.json: bad format version {_short(version)}")
    if version > VERSION:
        raise _Invalid(
            f"written by a newer Gradstep (format version {version}); this one reads "
            f"version {VERSION}"
        )
    if set(obj) != _META_KEYS:
        odd = sorted(set(obj) ^ _META_KEYS)[0]
        which = "unknown" if odd in obj else "missing"
        raise _Invalid(f"meta.json: {which} key {_short(odd)}")
    if type(obj["meta"]) is not dict:
        raise _Invalid("meta.json: meta: expected an object")
    out = {
        "meta": _at("meta.json: meta", _plain_dict_in, obj["meta"]),
        "cap_bytes": _count(obj["cap_bytes"], "cap_bytes"),
        "event_count": _count(obj["event_count"], "event_count"),
        "dropped": _ids(obj["dropped"], "dropped"),
        "values": _ids(obj["values"], "values"),
    }
    both = set(out["dropped"]) & set(out["values"])
    if both:
        raise _Invalid(f"meta.json: tensor {min(both)} is both kept and dropped")
    return out


def _count(value: Any, key: str) -> int:
    number = _at(f"meta.json: {key}", _int_in, value)
    if number < 0:
        raise _Invalid(f"meta.json: {key} must not be negative")
    return number


def _ids(value: Any, key: str) -> list[int]:
    if type(value) is not list:
        raise _Invalid(f"meta.json: {key}: expected a list of tensor ids")
    ids = [_at(f"meta.json: {key}[{i}]", _int_in, v) for i, v in enumerate(value)]
    if len(set(ids)) != len(ids):
        raise _Invalid(f"meta.json: {key}: a tensor id appears twice")
    return ids


def _array(data: bytes, tid: int, headers: dict[bytes, tuple]) -> np.ndarray:
    """A numeric array from .npy bytes; the header is checked before any data is read."""
    where = f"values/{tid}.npy"
    if len(data) < 12 or not data.startswith(b"\x93NUMPY"):
        raise _Invalid(f"{where}: not a .npy array")
    if data[6:8] == b"\x01\x00":
        start = 10 + int.from_bytes(data[8:10], "little")
    elif data[6:8] == b"\x02\x00":
        start = 12 + int.from_bytes(data[8:12], "little")
    else:
        raise _Invalid(f"{where}: unsupported .npy version {tuple(data[6:8])}")
    header = data[:start]
    if header not in headers:  # arrays of one shape and dtype share their header
        headers[header] = _header(header, where)
    shape, fortran, dtype = headers[header]
    count = math.prod(shape)
    if len(data) - start != count * dtype.itemsize:
        found = len(data) - start
        raise _Invalid(
            f"{where}: holds {found} data bytes, its header says {count * dtype.itemsize}"
        )
    flat = np.frombuffer(data, dtype, count, start) if count else np.empty(0, dtype)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


def _header(header: bytes, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    fh = io.BytesIO(header)
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, TypeError, SyntaxError) as exc:
        raise _Invalid(f"{where}: bad .npy header ({exc})") from None
    if not _numeric(dtype):
        raise _Invalid(f"{where}: dtype {dtype} is not numeric: refused")
    if any(type(n) is not int or n < 0 for n in shape) or type(fortran) is not bool:
        raise _Invalid(f"{where}: bad shape {_short(shape)}")
    return shape, fortran, dtype


def _events(data: bytes, count: int) -> list[tuple[Any, int]]:
    if data and not data.endswith(b"\n"):
        raise _Invalid("events.jsonl: the last line is cut off")
    lines = data.count(b"\n")
    if lines != count:
        raise _Invalid(f"events.jsonl has {lines} events, meta.json says {count}")
    out = []
    start = 0
    for number in range(1, count + 1):  # one line at a time: no list of all lines
        end = data.index(b"\n", start)
        try:
            out.append(_event(data[start:end]))
        except Exception as exc:
            reason = str(exc) if isinstance(exc, _Invalid) else f"{type(exc).__name__}: {exc}"
            raise _Invalid(f"events.jsonl line {number}: {reason}", number) from None
        start = end + 1
    return out


def _event(line: bytes) -> tuple[Any, int]:
    obj = _json(line, "event")
    if type(obj) is not dict:
        raise _Invalid(f"expected an object, got {_json_name(obj)}")
    name = obj.pop("type", None)
    if type(name) is not str or name not in EVENT_TYPES:
        raise _Invalid(f"unknown event type {_short(name)}" if name else "no event type")
    if "t" not in obj:
        raise _Invalid(f"{name}: no time 't'")
    t = _at(f"{name}.t", _int_in, obj.pop("t"))
    return _at(name, _decoder(EVENT_TYPES[name]), obj), t


# -- Chrome trace -------------------------------------------------------------------------

TRACKS = {"forward": 1, "backward": 2, "update": 3, "steps": 4, "modules": 5}
_OP_TRACKS = ("forward", "backward", "update")


def chrome_trace(recording: Recording) -> dict[str, Any]:
    """The recording as a Chrome trace (for Perfetto or chrome://tracing).

    Ops are complete events ("X") on the forward, backward and update tracks,
    each ending when its event arrived and lasting its ``duration_ns``; steps,
    backward passes and module scopes are spans on their own tracks. Times are
    microseconds from the earliest instant in the recording.

    >>> from core.recording import Recording
    >>> sorted(chrome_trace(Recording()))
    ['displayTimeUnit', 'traceEvents']
    """
    events, times, _, _ = _snapshot(recording)
    spans = _spans(events, times)
    starts = [s[1] for s in spans] + times[:1]
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
