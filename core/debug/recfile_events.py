"""events.jsonl: the events of a recording file, one JSON object per line.

Internal to ``core.debug.recfile``. ``encode`` writes the lines in chunks, so a big
recording is never held twice over as text; ``decode`` reads them back. Both take
the fast path of ``recfile_fast`` for each event it vouches for and the full codecs
of ``recfile_schema`` for the rest, which accept the event or name the problem
(with the line number). An event whose detail the memory cap dropped is the line
``{"type": "Dropped", "t": ...}``.

>>> from core.observe.events import StepEnded
>>> data = b"".join(encode([StepEnded(step=1, loss=0.5)], [7]))
>>> data
b'{"type":"StepEnded","t":7,"step":1,"loss":0.5}\\n'
>>> decode(data, 1)
[(StepEnded(step=1, loss=0.5), 7)]
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from core.debug import recfile_fast as fast
from core.debug.recfile_schema import (
    EVENT_TYPES,
    _at,
    _decoder,
    _dumps,
    _encoder,
    _int_in,
    _int_out,
    _Invalid,
    _json,
    _json_name,
    _short,
)
from core.debug.recording import DROPPED

DROPPED_TYPE = "Dropped"
CHUNK = 2**20  # events.jsonl is written this much text at a time


def encode(events: list, times: list) -> Iterator[bytes]:
    """events.jsonl, in chunks of about ``CHUNK`` bytes: a big recording is never
    held twice over as text. What the fast path vouches for (plain scalars, finite
    floats, 64-bit integers) is written by orjson where installed, five times
    faster than the standard library's encoder; the rest by the full codec."""
    lines: list[bytes] = []
    size = 0
    for i, (event, t) in enumerate(zip(events, times, strict=False)):
        plain = type(t) is int and fast.LO <= t <= fast.HI
        stamp = t if plain else _at(f"event {i} time", _int_out, t)
        if event is DROPPED:
            line = _dumps({"type": DROPPED_TYPE, "t": stamp}).encode("utf-8")
        else:
            cls = type(event)
            name = cls.__name__
            obj = {"type": name, "t": stamp}
            try:
                obj.update(fast.encode(event))
                line = _ORJSON_DUMPS(obj) if _ORJSON_DUMPS is not None else None
            except fast.Slow:
                if EVENT_TYPES.get(name) is not cls:
                    why = f"event {i}: {name} is not an event type of core.observe.events"
                    raise _Invalid(why) from None
                obj.update(_at(f"event {i} ({name})", _encoder(cls), event))
                line = None
            except TypeError:  # what orjson will not write (a str subclass...): the codec
                line = None
            if line is None:
                line = _dumps(obj).encode("utf-8")
        lines.append(line)
        size += len(line)
        if size >= CHUNK:
            yield b"\n".join(lines) + b"\n"
            lines.clear()
            size = 0
    if lines:
        yield b"\n".join(lines) + b"\n"


def decode(data: bytes, count: int) -> list[tuple[Any, int]]:
    if data and not data.endswith(b"\n"):
        raise _Invalid("events.jsonl: the last line is cut off")
    lines = data.count(b"\n")
    if lines != count:
        raise _Invalid(f"events.jsonl has {lines} events, meta.json says {count}")
    if _ORJSON is not None:
        return _decode_bytes(data, count)
    return _decode_text(data, count)


def _decode_bytes(data: bytes, count: int) -> list[tuple[Any, int]]:
    """Each line parsed from the bytes by orjson (it checks the UTF-8 itself):
    a quarter of the time of the standard library's scanner on a big file."""
    odd = _SURROGATE_BYTES.search(data) is not None
    out = []
    start = 0
    for number in range(1, count + 1):
        end = data.index(b"\n", start)
        line = data[start:end]
        item = None if odd and _SURROGATE_BYTES.search(line) else _fast_bytes(line)
        if item is None:
            item = _strict_line(line, number)
        out.append(item)
        start = end + 1
    return out


def _decode_text(data: bytes, count: int) -> list[tuple[Any, int]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # each line is then read on its own, so the bad one is named
    odd = text is None or _SURROGATE_TEXT.search(text) is not None
    out = []
    start = 0
    for number in range(1, count + 1):  # one line at a time: no list of all lines
        end = data.index(b"\n", start) if text is None else text.index("\n", start)
        item = None if odd and _odd_line(text, start, end) else _fast_event(text, start, end)
        if item is None:
            line = data[start:end] if text is None else text[start:end].encode("utf-8")
            item = _strict_line(line, number)
        out.append(item)
        start = end + 1
    return out


def _strict_line(line: bytes, number: int) -> tuple[Any, int]:
    try:
        return _strict_event(line)
    except Exception as exc:
        why = str(exc) if isinstance(exc, _Invalid) else f"{type(exc).__name__}: {exc}"
        raise _Invalid(f"events.jsonl line {number}: {why}", number) from None


try:  # a faster JSON parser and writer (a dependency; the standard library's else)
    from orjson import dumps as _ORJSON_DUMPS
    from orjson import loads as _ORJSON
except ImportError:  # pragma: no cover - orjson is a dependency
    _ORJSON = _ORJSON_DUMPS = None

_SCAN = json.JSONDecoder().scan_once  # the C scanner: one JSON value from a position
_SURROGATE_TEXT = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def _odd_line(text: str | None, start: int, end: int) -> bool:
    return text is None or _SURROGATE_TEXT.search(text, start, end) is not None


def _fast_bytes(line: bytes) -> tuple[Any, int] | None:
    """``_fast_event`` for a line as bytes, parsed by orjson."""
    try:
        obj = _ORJSON(line)
        return _vouched(obj, lambda: line.count(b'":') - line.count(b'\\":'))
    except Exception:
        return None


def _fast_event(text: str, start: int, end: int) -> tuple[Any, int] | None:
    """The event of ``text[start:end]`` when the fast path (``recfile_fast``) vouches
    for it; None when the full codec must decide (and, if need be, name the problem)."""
    try:
        obj, stop = _SCAN(text, start)
        if stop != end:
            return None
        return _vouched(obj, lambda: text.count('":', start, end) - text.count('\\":', start, end))
    except Exception:
        return None


def _vouched(obj: Any, keys_in_line: Callable[[], int]) -> tuple[Any, int] | None:
    """(event, time) of a parsed line the fast path accepts, else None (may raise).
    The parse keeps one of two equal keys, so the keys it saw must be all the keys
    in the line (a key is a string before a colon; a quote in a string is escaped)."""
    if type(obj) is not dict:
        return None
    if obj.get("type") == DROPPED_TYPE and len(obj) == 2:
        t = obj["t"]
        return (DROPPED, t) if type(t) is int and fast.LO <= t <= fast.HI else None
    event, t, keys = fast.decode(obj)
    return (event, t) if keys == keys_in_line() else None


def _strict_event(line: bytes) -> tuple[Any, int]:
    obj = _json(line, "event")
    if type(obj) is not dict:
        raise _Invalid(f"expected an object, got {_json_name(obj)}")
    name = obj.pop("type", None)
    if name == DROPPED_TYPE:
        if set(obj) != {"t"}:
            raise _Invalid(f"{DROPPED_TYPE}: holds only its time 't'")
        return DROPPED, _at(f"{name}.t", _int_in, obj["t"])
    if type(name) is not str or name not in EVENT_TYPES:
        raise _Invalid(f"unknown event type {_short(name)}" if name else "no event type")
    if "t" not in obj:
        raise _Invalid(f"{name}: no time 't'")
    t = _at(f"{name}.t", _int_in, obj.pop("t"))
    return _at(name, _decoder(EVENT_TYPES[name]), obj), t
