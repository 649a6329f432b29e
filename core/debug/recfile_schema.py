"""What a recording file may hold: field codecs, plain values, strict JSON, errors.

Internal to ``core.debug.recfile`` (save and load) and ``core.debug.trace`` (the Chrome trace
export). Each field type of an event gets an encoder (value -> JSON data) and a
decoder (JSON data -> value); both check the type and raise ``_Invalid``, which
the callers turn into a ``RecordingFileError`` naming the file.

>>> _decoder(tuple[int, ...])([1, 2])
(1, 2)
>>> _at("shape", _decoder(tuple[int, ...]), [1, "2"])
Traceback (most recent call last):
  ...
core.debug.recfile_schema._Invalid: shape[1]: expected an integer, got a string
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import json.encoder
import math
import os
import re
import types
import typing
from array import array
from collections.abc import Callable
from typing import Any, Union

import numpy as np

from core.debug.recording import Recording
from core.errors import GradstepError
from core.observe import events as ev

MAX_DEPTH = 32  # nesting of plain values (op attributes, meta)
_INT64 = (-(2**63), 2**63 - 1)
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_NON_NEGATIVE = {"duration_ns", "nan", "inf", "size"}  # fields that count
_NUMERIC_KINDS = "biufc"


class RecordingFileError(GradstepError):
    """A recording file could not be read or written; the message names file and reason."""

    def __init__(
        self,
        message: str,
        path: str | None = None,
        line: int | None = None,
        *,
        read_only: bool = False,
    ):
        super().__init__(message)
        self.path = path
        self.line = line
        self.read_only = read_only  # save refused a read-only file: --force, or ask


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


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _json(data: bytes, where: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Invalid(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        obj = _STRICT.decode(text)
        if _SURROGATE_ESCAPE.search(data):  # \ud800 decodes to a str UTF-8 cannot hold
            _no_lone_surrogates(obj, 0)
        return obj
    except json.JSONDecodeError as exc:
        raise _Invalid(f"{where}: invalid JSON ({exc.msg}, column {exc.colno})") from None
    except _Invalid as exc:
        raise _Invalid(f"{where}: {exc}") from None
    except RecursionError:
        raise _Invalid(f"{where}: JSON nested too deeply") from None


def _no_lone_surrogates(value: Any, depth: int) -> None:
    if type(value) is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = value[exc.start]
            raise _Invalid(f"a string holds a lone surrogate (\\u{ord(bad):04x})") from None
    elif type(value) is list:
        for item in value:
            _no_lone_surrogates(item, depth + 1)
    elif type(value) is dict:
        for key, item in value.items():
            _no_lone_surrogates(key, depth + 1)
            _no_lone_surrogates(item, depth + 1)


_STRICT = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
_WRITER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _c_writer() -> Callable[[Any, int], list[str]] | None:
    """The C encoder ``_WRITER.encode`` builds anew on every call, built once (a
    quarter of the time of a save's 300,000 lines); None where CPython has none."""
    make = getattr(json.encoder, "c_make_encoder", None)
    basestring = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or basestring is None:
        return None
    try:
        return make(None, _WRITER.default, basestring, None, ":", ",", False, False, False)
    except TypeError:  # another signature: use the public path
        return None


_C_WRITER = _c_writer()


def _dumps(obj: Any) -> str:
    """Compact JSON, non-ASCII kept, no NaN, as ``json.dumps`` would write it.

    >>> _dumps({"a": [1, 2.5, "é", None]}) == json.dumps(
    ...     {"a": [1, 2.5, "é", None]}, ensure_ascii=False, separators=(",", ":"))
    True
    """
    if _C_WRITER is not None and type(obj) is dict:
        return "".join(_C_WRITER(obj, 0))
    return _WRITER.encode(obj)


def _count_out(value: Any) -> int:
    number = _int_out(value)
    if number < 0:
        raise _Invalid(f": must not be negative, got {number}")
    return number


def _numeric(dtype: np.dtype) -> bool:
    plain = dtype.fields is None and dtype.subdtype is None and not dtype.hasobject
    return plain and dtype.kind in _NUMERIC_KINDS


# -- shared by save, load and the trace export -----------------------------------------


def _display(path: Any) -> str:
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        return repr(path)


def _snapshot(recording: Recording) -> tuple[list, list, Any, set]:
    # the Recording may still be growing in a Session's thread; values read from a
    # file (a Mapping that never changes) are read one at a time as they are saved
    with getattr(recording, "_lock", None) or contextlib.nullcontext():
        values = recording.values
        times = recording.times
        return (
            list(recording.events),
            copy.copy(times) if isinstance(times, array) else list(times),  # no int objects
            dict(values) if type(values) is dict else values,
            set(recording.dropped),
        )
