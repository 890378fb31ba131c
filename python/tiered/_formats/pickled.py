"""Pickle 5: in-band (format 0), with out-of-band buffers (format 2), and data only (format 1).

Format 2 frames a pickle and the buffers its objects handed out (NumPy arrays, Arrow buffers)
so that they are copied once into the stored bytes and, on load, read in place::

    u64 count of buffers n | u64 length of the pickle | n x u64 length of buffer i
    | zeros to offset 64k | the pickle | zeros to 64k | buffer 0 | zeros to 64k | ... buffer n-1

(all integers little-endian; every piece starts at a multiple of 64 bytes).
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any

from . import PICKLE, PICKLE_OOB, UnsafeValueError, align

#: Globals a data-only value may name: NumPy's array reconstruction, nothing that runs user code.
_SAFE_GLOBALS = {
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("builtins", "complex"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "slice"),
    ("builtins", "range"),
    ("collections", "OrderedDict"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("decimal", "Decimal"),
    ("uuid", "UUID"),
}

_U64 = struct.Struct("<Q")


class DataOnly(pickle.Unpickler):
    """An unpickler that refuses every global but plain data and NumPy's array rebuilding."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeValueError(
            f"the stored value names {module}.{name}; this cache loads data only "
            "(pickle=False, or a folder that is not yours alone), so it was not loaded"
        )


def dumps(obj: Any) -> tuple[int, bytes | bytearray]:
    """``obj`` pickled: format 0 if it handed out no buffer, else format 2 (one copy of each
    buffer, straight into the returned bytes). Raises what pickle raises."""
    buffers: list[pickle.PickleBuffer] = []
    stream = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    if not buffers:
        return PICKLE, stream
    raws = [b.raw() for b in buffers]
    pieces = [memoryview(stream), *raws]
    head = _U64.size * (2 + len(raws))
    offsets = []
    end = head
    for p in pieces:
        start = align(end)
        offsets.append(start)
        end = start + p.nbytes
    out = bytearray(end)
    out[: _U64.size * 2] = _U64.pack(len(raws)) + _U64.pack(len(stream))
    for i, r in enumerate(raws):
        at = _U64.size * (2 + i)
        out[at : at + _U64.size] = _U64.pack(r.nbytes)
    for start, p in zip(offsets, pieces):
        out[start : start + p.nbytes] = p
    for b in buffers:
        b.release()
    return PICKLE_OOB, out


def _frame(data: bytes | bytearray | memoryview) -> tuple[memoryview, list[memoryview]]:
    """The pickle and buffers of a format-2 value, as views into ``data`` (no copies)."""
    view = memoryview(data)
    try:
        (n,) = _U64.unpack_from(view, 0)
        (stream_len,) = _U64.unpack_from(view, _U64.size)
        lengths = [_U64.unpack_from(view, _U64.size * (2 + i))[0] for i in range(n)]
    except struct.error as e:
        raise ValueError("a damaged value: its framing is cut short") from e
    pieces = []
    end = _U64.size * (2 + n)
    for length in [stream_len, *lengths]:
        start = align(end)
        end = start + length
        if end > len(view):
            raise ValueError("a damaged value: a buffer runs past its end")
        pieces.append(view[start:end])
    return pieces[0], pieces[1:]


def loads(fmt: int, data: bytes | bytearray | memoryview) -> Any:
    """The object pickled in ``data`` (format 0 or 2); runs whatever code the pickle names."""
    if fmt == PICKLE:
        return pickle.loads(data)
    stream, buffers = _frame(data)
    return pickle.loads(stream, buffers=buffers)


def loads_data_only(fmt: int, data: bytes | bytearray | memoryview) -> Any:
    """Like :func:`loads` (formats 0, 1 and 2), refusing any global but plain data."""
    if fmt == PICKLE_OOB:
        stream, buffers = _frame(data)
        return DataOnly(io.BytesIO(stream), buffers=buffers).load()
    return DataOnly(io.BytesIO(data)).load()
