"""Recording files (``.gsrec``): save a Recording, load it back (Chrome trace: core.trace).

A recording file is a ZIP archive with three members (format version 2):

- ``meta.json``: ``{"format": "gradstep-recording", "version": 2, "meta": {...},
  "cap_bytes": ..., "dropped": [ids], "arrays": [[id, dtype, shape, offset,
  crc32], ...], "event_count": ...}``;
- ``events.jsonl``: one JSON object per event, in order, ``{"type": "OpForward",
  "t": arrival time in ns, ...its fields}``. Stats and Source are nested objects,
  tuples are lists, and a non-finite float is the string ``"nan"``, ``"inf"`` or
  ``"-inf"``. Op attributes and ``meta`` hold any plain value, so there a
  non-finite float is ``{"float": "nan"}``, a list ``{"list": [...]}`` and a
  dict ``{"dict": {...}}``, while a JSON list is a tuple. An event whose detail
  the memory cap dropped is ``{"type": "Dropped", "t": ...}``;
- ``values.bin``: every kept host array, packed and stored uncompressed
  (``core.debug.recfile_values``), so that ``load`` reads the index and each
  value only when it is asked for.

Version 1 files (one ``values/<tensor id>.npy`` member per array) still load.

No pickle anywhere. ``load`` checks the archive, every member, field and type
before it builds anything, and bounds what it decompresses by what the members
declare, the file's size (at most ``MAX_RATIO`` times it), ``max_bytes`` and the
memory the machine has free; any problem raises ``RecordingFileError`` naming the
file and the reason (and the events.jsonl line). ``save`` writes through
``core.debug.safe_write``: regular files only, atomically, the user's umask.

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
import gc
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from core.debug import recfile_events, recfile_v1
from core.debug import recfile_values as packed
from core.debug.recfile_schema import (
    EVENT_TYPES,
    MAX_DEPTH,
    RecordingFileError,
    _at,
    _count_out,
    _display,
    _dumps,
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
from core.debug.recording import DROPPED, Recording
from core.debug.safe_write import TargetError, atomic_write, check_target
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
    "check_target",
    "load",
    "save",
    "save_chrome_trace",
]

FORMAT = "gradstep-recording"
VERSION = 2
MAX_BYTES = 4 * 2**30  # total uncompressed size load() accepts
MAX_META_BYTES = 256 * 2**20  # meta.json lists every kept and dropped tensor id
MAX_RATIO = 200  # uncompressed / compressed size, of a member over 1 MiB and of the file
RATIO_SLACK = 2**20  # a tiny file may expand to this much whatever its ratio
EVENTS_LEVEL = 1  # zlib level of events.jsonl: a third of level 6's time, 10% larger
_KEYS = {"format", "version", "meta", "cap_bytes", "dropped", "event_count"}
_META_KEYS = {1: _KEYS | {"values"}, 2: _KEYS | {"arrays"}}
_VALUE_NAME = re.compile(r"values/(0|-?[1-9][0-9]{0,18})\.npy")


# -- save --------------------------------------------------------------------------------


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No garbage collection while hundreds of thousands of events are made or read:
    each collection would rescan all of them (it tripled the time of a big load)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _header(recording: Recording, count: int, values: Any, dropped: set) -> dict:
    """meta.json's object but the values' index, checked before anything is written."""
    for tid in values:
        _at("value id", _int_out, tid)
        if type(values) is dict:
            array = values[tid]
            if not isinstance(array, np.ndarray) or not _numeric(array.dtype):
                raise _Invalid(f"the value of tensor {tid} is not a numeric NumPy array")
    return {
        "format": FORMAT,
        "version": VERSION,
        "meta": _at("meta", _plain_dict_out, _checked_meta(recording.meta)),
        "cap_bytes": _at("cap_bytes", _count_out, recording.cap_bytes),
        "dropped": [_at("dropped id", _int_out, tid) for tid in sorted(dropped)],
        "event_count": count,
    }


def _checked_meta(meta: Any) -> dict:
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise _Invalid("meta must be a dict with string keys")
    return meta


def _member(name: str, compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress
    info.external_attr = 0o644 << 16
    return info


def save(recording: Recording, path: str | os.PathLike, *, force: bool = False) -> None:
    """Write ``recording`` to ``path`` (a ``.gsrec`` file), replacing it atomically.

    Raises RecordingFileError, naming the file, when an event holds something a
    recording file cannot store, or the file cannot be written: the target is not
    a regular file, or is read-only and ``force`` is not given (``read_only`` is
    then true on the error, so an app can ask and try again).
    """
    name = _display(path)
    try:
        events, times, values, dropped = _snapshot(recording)
        head = _dumps(_header(recording, len(events), values, dropped))
        text = f'{head[:-1]},"arrays":{packed.index_values(values)}}}\n'.encode()

        def write(fh: Any) -> None:
            with zipfile.ZipFile(fh, "w", compresslevel=EVENTS_LEVEL) as zf:
                zf.writestr(_member("meta.json", zipfile.ZIP_DEFLATED), text)
                member = _member("events.jsonl", zipfile.ZIP_DEFLATED)
                member._compresslevel = EVENTS_LEVEL  # open() does not apply the archive's
                big = len(events) * 1000 > 2**31  # lines are well under 1000 bytes
                with zf.open(member, "w", force_zip64=big) as out:
                    for chunk in recfile_events.encode(events, times):
                        out.write(chunk)
                packed.write_values(zf, values)

        with _no_gc():
            atomic_write(name, write, force=force)
    except TargetError as exc:
        raise RecordingFileError(str(exc), name, read_only=exc.read_only) from None
    except _Invalid as exc:
        raise RecordingFileError(f"{name}: cannot save the recording: {exc}", name) from None
    except UnicodeEncodeError as exc:
        bad = f"\\u{ord(exc.object[exc.start]):04x}"
        raise RecordingFileError(
            f"{name}: cannot save the recording: a text holds a lone surrogate ({bad}), "
            "which UTF-8 cannot store",
            name,
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RecordingFileError(f"{name}: cannot write the file: {reason}", name) from None
    except RecordingFileError:
        raise
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise RecordingFileError(f"{name}: cannot save the recording ({reason})", name) from exc


# -- load --------------------------------------------------------------------------------


def load(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> Recording:
    """Read a recording file written by ``save``; its indexes are rebuilt.

    The values of a version 2 file are read when first asked for
    (``Recording.values`` is then a read-only Mapping over the file). Anything
    wrong with the file (missing, not a ZIP, cut short, a member missing or
    unexpected, bad JSON, a wrong field type, an unknown event, a non-numeric
    array, sizes over ``max_bytes``, over the file's own cap or over the memory
    the machine has free...) raises RecordingFileError naming the file and the
    reason; nothing in the file is ever unpickled.
    """
    name = _display(path)
    try:
        with _no_gc():
            return _load(name, max_bytes)
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
    except MemoryError:
        raise RecordingFileError(f"{name}: not enough memory to open it", name) from None
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")[:200]
        raise RecordingFileError(f"{name}: not a valid recording file ({reason})", name) from exc


def _load(path: str, max_bytes: int) -> Recording:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise _Invalid("is a folder, not a recording file")
        if not stat.S_ISREG(st.st_mode):
            raise _Invalid("is not a regular file")
        with _zip(fh, st.st_size) as zf:
            infos = _check_members(zf.infolist(), max_bytes, st.st_size)
            for required in ("meta.json", "events.jsonl"):
                if required not in infos:
                    raise _Invalid(f"member {required} is missing: not a recording file")
            meta = _meta(_read(zf, infos["meta.json"]))
            if meta["version"] == 1:
                _unexpected(infos, {f"values/{tid}.npy" for tid in meta["values"]})
                values = recfile_v1.read_values(zf, infos, meta)
            else:
                values = _values_v2(zf, infos, meta, path, st.st_size)
            parsed = recfile_events.decode(_read(zf, infos["events.jsonl"]), meta["event_count"])
    rec = Recording(cap_bytes=meta["cap_bytes"], meta=meta["meta"], bounded=False)
    rec.extend(parsed)
    rec.values = values
    rec.bytes = values.nbytes if isinstance(values, packed.LazyValues) else _nbytes(values)
    rec.dropped = set(meta["dropped"])
    rec._detail_from = _steps_without_detail(rec)
    return rec


def _zip(fh: Any, size: int) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fh)
    except zipfile.BadZipFile:
        fh.seek(0)
        if size >= 4 and fh.read(4) == b"PK\x03\x04":
            raise _Invalid(
                "the file is truncated (its ZIP directory is missing): cut short while "
                "written or copied, or not a recording file"
            ) from None
        raise _Invalid("not a recording file (not a ZIP archive)") from None


def _nbytes(values: dict) -> int:
    return sum(int(a.nbytes) for a in values.values())


def _steps_without_detail(rec: Recording) -> int:
    count = 0
    for start in rec.steps:
        if start + 1 < len(rec.events) and rec.events[start + 1] is DROPPED:
            count += 1
        else:
            break
    return count


def _check_members(
    infos: list[zipfile.ZipInfo], max_bytes: int, file_size: int
) -> dict[str, zipfile.ZipInfo]:
    by_name: dict[str, zipfile.ZipInfo] = {}
    total = 0
    eager = 0  # what load decompresses into memory (all but values.bin)
    for info in infos:
        name = info.filename
        if name in by_name:
            raise _Invalid(f"member {_short(name)} appears twice")
        known = name in ("meta.json", "events.jsonl", packed.MEMBER)
        if not known and not _VALUE_NAME.fullmatch(name):
            raise _Invalid(f"unexpected member {_short(name)}")
        if info.flag_bits & 0x1:
            raise _Invalid(f"member {name} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Invalid(f"member {name} uses an unsupported compression")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise _Invalid(f"member {name} is stored, yet declares two different sizes")
        big = info.file_size > 2**20
        if big and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            ratio = info.file_size // max(info.compress_size, 1)
            raise _Invalid(f"member {name} expands {ratio} times its size: refused")
        if name == "meta.json" and info.file_size > MAX_META_BYTES:
            raise _Invalid(f"member meta.json declares {info.file_size} bytes: refused")
        total += info.file_size
        if name != packed.MEMBER:
            eager += info.file_size
        if total > max_bytes:
            raise _Invalid(f"members declare more than {max_bytes} bytes in all (limit)")
        by_name[name] = info
    if total > MAX_RATIO * file_size + RATIO_SLACK:
        raise _Invalid(
            f"members declare {total} bytes, over {MAX_RATIO} times the file's size: refused"
        )
    free = packed.available_memory()
    if 2 * eager > free:
        raise _Invalid(
            f"opening it needs about {2 * eager / 2**20:.0f} MiB, more than this machine "
            f"has free ({free / 2**20:.0f} MiB)"
        )
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
            f"versions up to {VERSION}"
        )
    keys = _META_KEYS[version]
    if set(obj) != keys:
        odd = sorted(set(obj) ^ keys)[0]
        which = "unknown" if odd in obj else "missing"
        raise _Invalid(f"meta.json: {which} key {_short(odd)}")
    if type(obj["meta"]) is not dict:
        raise _Invalid("meta.json: meta: expected an object")
    out = {
        "version": version,
        "meta": _at("meta.json: meta", _plain_dict_in, obj["meta"]),
        "cap_bytes": _count(obj["cap_bytes"], "cap_bytes"),
        "event_count": _count(obj["event_count"], "event_count"),
        "dropped": _ids(obj["dropped"], "dropped"),
    }
    if version == 1:
        out["values"] = _ids(obj["values"], "values")
        kept = set(out["values"])
    else:
        out["arrays"] = obj["arrays"]
        rows = obj["arrays"] if type(obj["arrays"]) is list else []
        kept = {row[0] for row in rows if type(row) is list and row and type(row[0]) is int}
    both = set(out["dropped"]) & kept
    if both:
        raise _Invalid(f"meta.json: tensor {min(both, key=repr)} is both kept and dropped")
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


def _unexpected(infos: dict, allowed: set[str]) -> None:
    extra = sorted(set(infos) - allowed - {"meta.json", "events.jsonl"})
    if extra:
        raise _Invalid(f"unexpected member {_short(extra[0])}")


def _values_v2(
    zf: zipfile.ZipFile, infos: dict, meta: dict, path: str, file_size: int
) -> packed.LazyValues:
    _unexpected(infos, {packed.MEMBER})
    info = infos.get(packed.MEMBER)
    if info is None:
        raise _Invalid(f"member {packed.MEMBER} is missing: not a recording file")
    index = packed.check_index(meta["arrays"], info.file_size, meta["cap_bytes"])
    start = packed.data_start(zf, info, file_size)
    return packed.LazyValues(path, start, index)
