"""Recording files (``.gsrec``): save a Recording, load it back (Chrome trace: core.trace).

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
>>> from core.debug.recording import Recording
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
import io
import math
import os
import re
import stat
import tempfile
import zipfile
import zlib
from typing import Any

import numpy as np

from core.debug.recfile_schema import (
    EVENT_TYPES,
    MAX_DEPTH,
    RecordingFileError,
    _at,
    _count_out,
    _decoder,
    _display,
    _dumps,
    _encoder,
    _int_in,
    _int_out,
    _Invalid,
    _json,
    _json_name,
    _numeric,
    _plain_dict_in,
    _plain_dict_out,
    _short,
    _snapshot,
)
from core.debug.recording import Recording
from core.debug.trace import TRACKS, chrome_trace, save_chrome_trace

__all__ = [
    "EVENT_TYPES",
    "FORMAT",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_META_BYTES",
    "MAX_RATIO",
    "TRACKS",
    "VERSION",
    "RecordingFileError",
    "chrome_trace",
    "load",
    "save",
    "save_chrome_trace",
]

FORMAT = "gradstep-recording"
VERSION = 1
MAX_BYTES = 4 * 2**30  # total uncompressed size load() accepts
MAX_META_BYTES = 256 * 2**20  # meta.json lists every kept and dropped tensor id
MAX_RATIO = 200  # uncompressed / compressed size of a member over 1 MiB
_META_KEYS = {"format", "version", "meta", "cap_bytes", "dropped", "values", "event_count"}
_VALUE_NAME = re.compile(r"values/(0|-?[1-9][0-9]{0,18})\.npy")


# -- save --------------------------------------------------------------------------------


def _encode(recording: Recording) -> tuple[bytes, bytes, dict[int, np.ndarray]]:
    events, times, values, dropped = _snapshot(recording)
    lines = []
    for i, (event, t) in enumerate(zip(events, times, strict=False)):
        cls = type(event)
        name = cls.__name__
        if EVENT_TYPES.get(name) is not cls:
            raise _Invalid(f"event {i}: {name} is not an event type of core.observe.events")
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


def _checked_meta(meta: Any) -> dict:
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise _Invalid("meta must be a dict with string keys")
    return meta


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
