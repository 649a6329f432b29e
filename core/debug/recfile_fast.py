"""Fast paths for the event codecs of recording files: straight-line code per event type.

Internal to ``core.debug.recfile``. The codecs of ``recfile_schema`` check every
field through nested closures and name the exact place of any problem; a step of
100,000 ops (300,000 events) took 11 s to save and 15 s to load through them. The
functions here are generated from the same schemas, one per event type, with the
checks inlined. They accept only what those codecs accept (a field of the exact
type, an integer in the 64-bit range, a finite float, attributes of plain
scalars), return the same values, and raise ``Slow`` on anything else: the caller
then runs the full codec, which accepts the value or names the problem. So a
valid file goes fast and a broken one is still refused with a precise reason.

>>> from core.observe.events import StepEnded
>>> encode(StepEnded(step=3, loss=0.5))
{'step': 3, 'loss': 0.5}
>>> decode({"type": "StepEnded", "t": 7, "step": 3, "loss": 0.5})
(StepEnded(step=3, loss=0.5), 7, 4)
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Union

from core.debug.recfile_schema import _NON_NEGATIVE, _SCHEMAS, EVENT_TYPES
from core.observe import events as ev

LO, HI = -(2**63), 2**63 - 1
_SCALARS = (int, float, str, bool, type(None))


class Slow(Exception):
    """This value needs the full codec (it may be fine, or it may be refused)."""


def _finite(x: float) -> bool:
    return x - x == 0.0


def _attrs_out(attrs: Any) -> Any:
    if type(attrs) is not tuple:
        raise Slow
    for pair in attrs:
        if type(pair) is not tuple or len(pair) != 2 or type(pair[0]) is not str:
            raise Slow
        _plain(pair[1], tuple)  # a list would need the {"list": ...} tag: the full codec
    return attrs


def _attrs_in(attrs: Any) -> tuple:
    if type(attrs) is not list:
        raise Slow
    out = []
    for pair in attrs:
        if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str:
            raise Slow
        out.append((pair[0], _plain(pair[1], list)))
    return tuple(out)


def _plain(value: Any, sequence: type | None) -> Any:
    """A plain scalar, or a flat ``sequence`` of them (a tuple in an event, a list in
    JSON); a tag object, a deeper nesting or a non-finite float needs the full codec."""
    kind = type(value)
    if kind is float:
        if not _finite(value):
            raise Slow
        return value
    if kind is int:
        if not LO <= value <= HI:  # the full codec takes any int; let it decide
            raise Slow
        return value
    if kind is str or kind is bool or value is None:
        return value
    if kind is sequence:
        return tuple(_plain(v, None) for v in value)
    raise Slow


# -- code generation -------------------------------------------------------------------


class _Gen:
    """Writes the body of one encoder or decoder, a field at a time."""

    def __init__(self, decode: bool) -> None:
        self.decode = decode
        self.lines: list[str] = []
        self.scope: dict[str, Any] = {"Slow": Slow, "LO": LO, "HI": HI, "_finite": _finite}
        self.scope |= {"_attrs_in": _attrs_in, "_attrs_out": _attrs_out}

    def check(self, var: str, tp: Any, counted: bool, indent: str) -> None:
        """Lines that check ``var`` against ``tp`` and leave its value in ``var``."""
        add = self.lines.append
        args = typing.get_args(tp)
        origin = typing.get_origin(tp)
        if tp is int:
            low = "0" if counted else "LO"
            add(f"{indent}if type({var}) is not int or not {low} <= {var} <= HI: raise Slow")
        elif tp is float:
            # finite: inf - inf and nan - nan are nan, which equals nothing
            add(f"{indent}if type({var}) is not float or {var} - {var} != 0.0: raise Slow")
        elif tp is str:
            add(f"{indent}if type({var}) is not str: raise Slow")
        elif tp is bool:
            add(f"{indent}if type({var}) is not bool: raise Slow")
        elif tp in (ev.Stats, ev.Source):
            fn = self.nested(tp)
            add(f"{indent}{var} = {fn}({var})")
            if self.decode:
                add(f"{indent}keys += {len(_SCHEMAS[tp])}")
        elif origin in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
            inner = args[0] if args[1] is type(None) else args[1]
            add(f"{indent}if {var} is not None:")
            self.check(var, inner, counted, indent + "    ")
        elif tp == ev.Attrs:
            fn = "_attrs_in" if self.decode else "_attrs_out"
            add(f"{indent}{var} = {fn}({var})")
        elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            seq = "list" if self.decode else "tuple"
            item = f"{var}_item"
            add(f"{indent}if type({var}) is not {seq}: raise Slow")
            add(f"{indent}{var}_out = []")
            add(f"{indent}for {item} in {var}:")
            self.check(item, args[0], counted, indent + "    ")
            add(f"{indent}    {var}_out.append({item})")
            add(
                f"{indent}{var} = tuple({var}_out)" if self.decode else f"{indent}{var} = {var}_out"
            )
        else:
            add(f"{indent}raise Slow  # a field type the fast path does not know: {tp!r}")

    def nested(self, cls: type) -> str:
        name = f"_{'dec' if self.decode else 'enc'}_{cls.__name__}"
        if name not in self.scope:
            self.scope[name] = _build(cls, self.decode, nested=True)
        return name


def _build(cls: type, decode: bool, nested: bool = False) -> Callable[..., Any]:
    """The encoder (event -> dict) or decoder (dict -> event; at the top level with the
    number of keys it read, nested objects included) of ``cls``."""
    fields = _SCHEMAS[cls]
    gen = _Gen(decode)
    params = "obj" if decode else "e"
    body = gen.lines
    if decode:
        size = len(fields) + (0 if nested else 2)  # a line also holds its type and time
        body.append(f"    if type(obj) is not dict or len(obj) != {size}:")
        body.append("        raise Slow")
        body.append(f"    keys = {size}")
    for i, (name, tp, _default) in enumerate(fields):
        var = f"v{i}"
        body.append(f"    {var} = obj[{name!r}]" if decode else f"    {var} = e.{name}")
        gen.check(var, tp, name in _NON_NEGATIVE, "    ")
    names = [f"v{i}" for i in range(len(fields))]
    if decode:
        gen.scope["cls"] = cls
        made = f"cls({', '.join(names)})"
        body.append(f"    return {made}" if nested else f"    return {made}, keys")
    else:
        pairs = ", ".join(f"{name!r}: v{i}" for i, (name, _tp, _d) in enumerate(fields))
        body.append(f"    return {{{pairs}}}")
    source = f"def codec({params}):\n" + "\n".join(body) + "\n"
    exec(source, gen.scope)  # noqa: S102  (generated from the event schemas above)
    return gen.scope["codec"]


_ENCODERS = {cls: _build(cls, False) for cls in EVENT_TYPES.values()}
_DECODERS = {name: _build(cls, True) for name, cls in EVENT_TYPES.items()}


def encode(event: Any) -> dict[str, Any]:
    """The event's fields as JSON data, as the full codec writes them; or Slow."""
    try:
        return _ENCODERS[type(event)](event)
    except Slow:
        raise
    except Exception:
        raise Slow from None


def decode(obj: Any) -> tuple[Any, int, int]:
    """(event, arrival time, keys it holds, nested ones included) from a parsed line; or
    Slow. The key count lets the caller see duplicate keys the parse folded away."""
    try:
        name = obj["type"]
        t = obj["t"]
        if type(t) is not int or not LO <= t <= HI:
            raise Slow
        event, keys = _DECODERS[name](obj)
    except Slow:
        raise
    except Exception:
        raise Slow from None
    return event, t, keys
