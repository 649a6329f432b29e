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
from collections.abc import Iterator
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
    held twice over as text."""
    lines: list[str] = []
    size = 0
    for i, (event, t) in enumerate(zip(events, times, strict=False)):
        plain = type(t) is int and fast.LO <= t <= fast.HI
        stamp = t if plain else _at(f"event {i} time", _int_out, t)
        if event is DROPPED:
            line = _dumps({"type": DROPPED_TYPE, "t": stamp})
        else:
            cls = type(event)
            name = cls.__name__
            obj = {"type": name, "t": stamp}
            try:
                obj.update(fast.encode(event))
            except fast.Slow:
                if EVENT_TYPES.get(name) is not cls:
                    why = f"event {i}: {name} is not an event type of core.observe.events"
                    raise _Invalid(why) from None
                obj.update(_at(f"event {i} ({name})", _encoder(cls), event))
            line = _dumps(obj)
        lines.append(line)
        size += len(line)
        if size >= CHUNK:
            yield ("\n".join(lines) + "\n").encode("utf-8")
            lines.clear()
            size = 0
    if lines:
        yield ("\n".join(lines) + "\n").encode("utf-8")


def decode(data: bytes, count: int) -> list[tuple[Any, int]]:
    if data and not data.endswith(b"\n"):
        raise _Invalid("events.jsonl: the last line is cut off")
    lines = data.count(b"\n")
    if lines != count:
        raise _Invalid(f"events.jsonl has {lines} events, meta.json says {count}")
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
            try:
                item = _strict_event(line)
            except Exception as exc:
                why = str(exc) if isinstance(exc, _Invalid) else f"{type(exc).__name__}: {exc}"
                raise _Invalid(f"events.jsonl line {number}: {why}", number) from None
        out.append(item)
        start = end + 1
    return out


_SCAN = json.JSONDecoder().scan_once  # the C scanner: one JSON value from a position
_SURROGATE_TEXT = re.compile(r"\\u[dD][89a-fA-F]")


def _odd_line(text: str | None, start: int, end: int) -> bool:
    return text is None or _SURROGATE_TEXT.search(text, start, end) is not None


def _fast_event(text: str, start: int, end: int) -> tuple[Any, int] | None:
    """The event of ``text[start:end]`` when the fast path (``recfile_fast``) vouches
    for it; None when the full codec must decide (and, if need be, name the problem)."""
    try:
        obj, stop = _SCAN(text, start)
        if stop != end:
            return None
        if obj.get("type") == DROPPED_TYPE and len(obj) == 2:
            t = obj["t"]
            return (DROPPED, t) if type(t) is int and fast.LO <= t <= fast.HI else None
        event, t, keys = fast.decode(obj)
    except Exception:
        return None
    # the parse keeps one of two equal keys: count the keys in the text (a key is a
    # string before a colon; a quote inside a string is escaped)
    if keys != text.count('":', start, end) - text.count('\\":', start, end):
        return None
    return event, t


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
