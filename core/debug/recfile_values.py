"""Tensor values in a recording file: packed in one member, read back on demand.

Internal to ``core.debug.recfile``. Format version 2 keeps every value in one
stored (uncompressed) member, ``values.bin``: the raw bytes of each array, in C
order and its own byte order, each starting on a 64-byte boundary. ``meta.json``
indexes them, one ``[tensor id, dtype, shape, offset, crc32]`` row per array. A step of 100,000
ops used to need 300,000 ZIP members (one per scalar); now it needs one.

Since the member is stored, an array's bytes lie at a known place in the file:
``LazyValues`` reads one array when asked (checking its CRC), so opening a big
recording reads its index, not its values.

>>> import json, os, tempfile, zipfile
>>> arrays = {3: np.arange(4.0), 7: np.ones((2, 2), np.float32)}
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = os.path.join(tmp, "v.zip")
...     index = index_values(arrays)
...     with zipfile.ZipFile(path, "w") as zf:
...         write_values(zf, arrays)
...     with zipfile.ZipFile(path) as zf:
...         start = data_start(zf, zf.getinfo(MEMBER), os.path.getsize(path))
...     rows = json.loads(index)  # as meta.json holds them
...     lazy = LazyValues(path, start, check_index(rows, 2**20, 2**20))
...     lazy[7].tolist(), 3 in lazy, len(lazy)
([[1.0, 1.0], [1.0, 1.0]], True, 2)
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import threading
import weakref
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from core.debug.recfile_schema import RecordingFileError, _int_in, _Invalid, _numeric, _short

MEMBER = "values.bin"
ALIGN = 64
CACHE_BYTES = 64 * 2**20  # arrays read back that LazyValues keeps at hand
CHUNK = 2**20  # small arrays are written to the file together, about this much at once
_LO, _HI = -(2**63), 2**63 - 1
_DTYPE = re.compile(r"[<>|=][biufc][1-9][0-9]?")


def index_values(values: Mapping[int, np.ndarray]) -> str:
    """The index ``write_values`` follows, as JSON text: ``[[tid, dtype, shape, offset,
    crc32], ...]``. Written row by row into one buffer: a recording of a million small
    values would need a hundred MiB more as rows of Python objects."""
    out = io.StringIO()
    out.write("[")
    offset = 0
    names: dict[np.dtype, str] = {}  # dtype.str is computed anew on every access
    for n, tid in enumerate(sorted(values)):
        array = values[tid]
        raw = _raw(array)
        dtype = array.dtype
        name = names.get(dtype)
        if name is None:
            name = names[dtype] = json.dumps(dtype.str)
        shape = ",".join(map(str, array.shape))
        out.write(f"{',' if n else ''}[{tid},{name},[{shape}],{offset},{zlib.crc32(raw)}]")
        offset += -(-len(raw) // ALIGN) * ALIGN
    out.write("]")
    return out.getvalue()


def write_values(zf: zipfile.ZipFile, values: Mapping[int, np.ndarray]) -> None:
    """Write ``values`` as the ``values.bin`` member of ``zf``, as ``index_values`` says
    (by id, each padded to ``ALIGN``). Small arrays are gathered into chunks of about
    ``CHUNK`` bytes before each write."""
    lazy = getattr(values, "nbytes_of", None)  # a LazyValues knows sizes without reading
    size = sum(_padded(lazy(tid) if lazy else values[tid].nbytes) for tid in values)
    info = zipfile.ZipInfo(MEMBER, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    with zf.open(info, "w", force_zip64=size > 2**31) as out:
        chunk = bytearray()
        for tid in sorted(values):
            raw = _raw(values[tid])
            if len(raw) >= CHUNK:
                out.write(chunk)
                chunk.clear()
                out.write(raw)
            else:
                chunk += raw
            chunk += bytes(_padded(len(raw)) - len(raw))
            if len(chunk) >= CHUNK:
                out.write(chunk)
                chunk.clear()
        out.write(chunk)


def _raw(array: np.ndarray) -> bytes | memoryview:
    """The array's bytes, in C order and its own byte order (a copy only when small)."""
    if array.nbytes < CHUNK:
        return array.tobytes()
    return memoryview(np.ascontiguousarray(array).reshape(-1)).cast("B")


def _padded(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


class _Odd(Exception):
    """A row the quick check does not vouch for; the full check decides."""


def check_index(rows: Any, member_size: int, cap: int) -> dict[int, tuple]:
    """``{tid: (dtype, shape, offset, nbytes, crc)}`` from meta.json's ``arrays``.

    Every row is checked: a numeric dtype, a shape of non-negative sizes, the bytes
    inside the member, ids unique, and all values together within ``cap`` bytes.
    A quick check passes the rows ``save`` writes; any other row gets the full one,
    which accepts it or names the problem.
    """
    if type(rows) is not list:
        raise _Invalid("meta.json: arrays: expected a list")
    out: dict[int, tuple] = {}
    dtypes: dict[str, np.dtype] = {}
    total = 0
    for i, row in enumerate(rows):
        try:
            entry = _quick_row(row, out, dtypes, member_size)
        except _Odd:
            entry = _full_row(i, row, out, member_size)
            dtypes[entry[0].str] = entry[0]
        total += entry[3]
        if total > cap:
            raise _Invalid(f"meta.json: the values hold more than the recording's cap ({cap} B)")
        out[row[0]] = entry
    return out


def _quick_row(row: Any, seen: dict, dtypes: dict, member_size: int) -> tuple:
    if type(row) is not list or len(row) != 5:
        raise _Odd
    tid, dtype, shape, offset, crc = row
    if type(tid) is not int or not _LO <= tid <= _HI or tid in seen:
        raise _Odd
    dt = dtypes.get(dtype) if type(dtype) is str else None
    if dt is None or type(shape) is not list or len(shape) > 32:
        raise _Odd
    nbytes = dt.itemsize
    for n in shape:
        if type(n) is not int or not 0 < n <= _HI:  # a 0 in a shape: the full check
            raise _Odd
        nbytes *= n
    if type(offset) is not int or not 0 <= offset <= _HI or type(crc) is not int or crc < 0:
        raise _Odd
    if crc > _HI or offset + nbytes > member_size:
        raise _Odd
    return (dt, tuple(shape), offset, nbytes, crc)


def _full_row(i: int, row: Any, seen: dict, member_size: int) -> tuple:
    where = f"meta.json: arrays[{i}]"
    if type(row) is not list or len(row) != 5:
        raise _Invalid(f"{where}: expected [id, dtype, shape, offset, crc32]")
    tid, dtype, shape, offset, crc = row
    tid = _checked_int(tid, where, "id", signed=True)
    if tid in seen:
        raise _Invalid(f"{where}: tensor {tid} appears twice")
    if type(dtype) is not str or not _DTYPE.fullmatch(dtype):
        raise _Invalid(f"{where}: dtype {_short(dtype)} is not a numeric dtype: refused")
    dt = np.dtype(dtype)
    if not _numeric(dt):
        raise _Invalid(f"{where}: dtype {dtype} is not numeric: refused")
    if type(shape) is not list or len(shape) > 32:
        raise _Invalid(f"{where}: bad shape {_short(shape)}")
    dims = tuple(_checked_int(n, where, "shape") for n in shape)
    if math.prod(n for n in dims if n) * dt.itemsize > _HI:  # NumPy could not make it
        raise _Invalid(f"{where}: shape {_short(shape)} is too large for an array")
    offset = _checked_int(offset, where, "offset")
    crc = _checked_int(crc, where, "crc32")
    nbytes = math.prod(dims) * dt.itemsize
    if offset + nbytes > member_size:
        raise _Invalid(f"{where}: its {nbytes} bytes lie past the end of {MEMBER}")
    return (dt, dims, offset, nbytes, crc)


def _checked_int(value: Any, where: str, what: str, signed: bool = False) -> int:
    try:
        number = _int_in(value)
    except _Invalid as exc:
        raise _Invalid(f"{where}: {what}{exc}") from None
    if number < 0 and not signed:
        raise _Invalid(f"{where}: {what} must not be negative")
    return number


def data_start(zf: zipfile.ZipFile, info: zipfile.ZipInfo, file_size: int) -> int:
    """Where the bytes of stored member ``info`` begin in the file."""
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise _Invalid(f"member {MEMBER} must be stored uncompressed")
    fp = zf.fp
    fp.seek(info.header_offset)
    header = fp.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise _Invalid(f"member {MEMBER}: bad local header")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    if start + info.file_size > file_size:
        raise _Invalid(f"member {MEMBER} is truncated")
    return start


class LazyValues(Mapping):
    """Tensor id -> array, read from the file when first asked (a Mapping).

    The file stays open while the Mapping lives (``close()`` ends that), so a file
    replaced or deleted since still reads as it was opened. A value whose bytes do
    not match their CRC (the file was changed in place) raises RecordingFileError
    naming the tensor.
    """

    def __init__(self, path: str, start: int, index: dict[int, tuple]) -> None:
        self.path = path
        self._start = start
        self._index = index
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        self._closer = weakref.finalize(self, os.close, self._fd)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        self.nbytes = sum(entry[3] for entry in index.values())

    def __contains__(self, tid: object) -> bool:
        return tid in self._index

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[int]:
        return iter(self._index)

    def __getitem__(self, tid: int) -> np.ndarray:
        entry = self._index[tid]
        with self._lock:
            array = self._cache.get(tid)
            if array is not None:
                self._cache.move_to_end(tid)
                return array
        array = self._read(tid, *entry)
        with self._lock:
            self._cache[tid] = array
            self._cached += array.nbytes
            while self._cached > CACHE_BYTES and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.nbytes
        return array

    def close(self) -> None:
        """Close the file; values not read yet cannot be read after this."""
        self._closer()

    def _read(self, tid: int, dtype: np.dtype, shape: tuple, offset: int, nbytes: int, crc: int):
        array = np.empty(shape, dtype)
        flat = memoryview(array.reshape(-1)).cast("B")
        got = 0
        try:
            while got < nbytes:
                n = os.preadv(self._fd, [flat[got:]], self._start + offset + got)
                if n == 0:
                    break
                got += n
        except OSError as exc:
            raise RecordingFileError(
                f"{self.path}: cannot read the value of tensor {tid}: {exc.strerror}", self.path
            ) from None
        if got != nbytes or zlib.crc32(flat) != crc:
            raise RecordingFileError(
                f"{self.path}: the value of tensor {tid} is corrupt (its CRC does not match)",
                self.path,
            )
        return array

    def nbytes_of(self, tid: int) -> int:
        return self._index[tid][3]


def available_memory() -> int:
    """Bytes this machine can still give (MemAvailable on Linux; physical memory else)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 2**40
