"""Values of version 1 recording files: one ``values/<tensor id>.npy`` member each.

Internal to ``core.debug.recfile``, which still loads files Gradstep wrote before
format version 2 packed values into one member. Each .npy header is checked
before its data is read, and the data is read straight into the array, a chunk at
a time, so a big compressed member costs its array and no second copy.
"""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np

from core.debug.recfile_schema import _Invalid, _numeric, _short

_CHUNK = 2**20  # bytes read at a time into an array being loaded


def read_values(zf: zipfile.ZipFile, infos: dict, meta: dict) -> dict[int, np.ndarray]:
    """Every value a version 1 file lists, each checked before its data is read."""
    names = {f"values/{tid}.npy" for tid in meta["values"]}
    missing = sorted(names - set(infos))
    if missing:
        raise _Invalid(f"member {missing[0]} is missing (meta.json lists it)")
    headers: dict[bytes, tuple] = {}
    values = {}
    total = 0
    for tid in meta["values"]:
        values[tid] = _array(zf, infos[f"values/{tid}.npy"], tid, headers)
        total += values[tid].nbytes
        if total > meta["cap_bytes"]:
            raise _Invalid(f"the values hold more than the recording's cap ({meta['cap_bytes']} B)")
    return values


def _array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, tid: int, headers: dict) -> np.ndarray:
    """A numeric array from a .npy member, read straight into place (no second copy);
    the header is checked before any data is read."""
    where = f"values/{tid}.npy"
    with zf.open(info) as fh:
        head = fh.read(12)
        if len(head) < 12 or not head.startswith(b"\x93NUMPY"):
            raise _Invalid(f"{where}: not a .npy array")
        if head[6:8] == b"\x01\x00":
            start = 10 + int.from_bytes(head[8:10], "little")
        elif head[6:8] == b"\x02\x00":
            start = 12 + int.from_bytes(head[8:12], "little")
        else:
            raise _Invalid(f"{where}: unsupported .npy version {tuple(head[6:8])}")
        if start > min(info.file_size, 2**20):
            raise _Invalid(f"{where}: bad .npy header (longer than the member)")
        header = head + fh.read(start - len(head)) if start > len(head) else head[:start]
        if header not in headers:  # arrays of one shape and dtype share their header
            headers[header] = _header(header, where)
        shape, fortran, dtype = headers[header]
        count = math.prod(shape)
        if info.file_size - start != count * dtype.itemsize:
            found = info.file_size - start
            raise _Invalid(
                f"{where}: holds {found} data bytes, its header says {count * dtype.itemsize}"
            )
        array = np.empty(shape, dtype, order="F" if fortran else "C")
        flat = memoryview(array.reshape(-1, order="A")).cast("B")
        rest = head[start:] if start < len(head) else b""
        flat[: len(rest)] = rest
        filled = len(rest)
        while filled < len(flat):  # in chunks: a read of it all would be a second copy
            chunk = fh.read(min(_CHUNK, len(flat) - filled))
            if not chunk:
                raise _Invalid(f"member {info.filename} is truncated")
            flat[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        if fh.read(1):
            raise _Invalid(f"member {info.filename} holds more than it declares")
    return array


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
