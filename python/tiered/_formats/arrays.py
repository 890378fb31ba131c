"""NumPy arrays (format 3) as a ``.npy`` header and the array's bytes, read in place.

The layout is NumPy's own ``.npy`` format, version 2.0: magic ``\\x93NUMPY\\x02\\x00``, a
little-endian u32 header length, a header ``{'descr': ..., 'fortran_order': ..., 'shape': ...}``
(read with ``ast.literal_eval``, which runs no code) padded so the data starts at a multiple of
64 bytes, then the elements in C order, or Fortran order when the array is Fortran-contiguous.
Loading is ``numpy.frombuffer`` over the stored bytes: no copy, and no pickle.
"""

from __future__ import annotations

import io
import math
from typing import Any

#: Longest header read back: a shape and a dtype, even a structured one, fit many times over.
_MAX_HEADER = 100_000


def fits(arr: Any) -> bool:
    """Whether this format holds ``arr`` exactly: a plain ``ndarray`` (not a subclass) of
    elements that are bytes, not Python objects."""
    import numpy

    return type(arr) is numpy.ndarray and not arr.dtype.hasobject and arr.dtype.itemsize > 0


def dumps(arr: Any) -> bytearray:
    """The stored bytes of ``arr`` (which :func:`fits`): one copy of its elements."""
    import numpy
    from numpy.lib import format as npy

    head = io.BytesIO()
    meta = npy.header_data_from_array_1_0(arr)
    npy.write_array_header_2_0(head, meta)
    start = head.tell()
    out = bytearray(start + arr.nbytes)
    out[:start] = head.getbuffer()
    order = "F" if meta["fortran_order"] else "C"
    view = numpy.frombuffer(out, dtype=arr.dtype, count=arr.size, offset=start)
    view.reshape(tuple(arr.shape), order=order)[...] = arr  # type: ignore[call-overload]
    del view
    return out


def loads(data: bytes | bytearray | memoryview) -> Any:
    """The array in ``data``, a view into it (writable when ``data`` is a ``bytearray``)."""
    import numpy
    from numpy.lib import format as npy

    f = io.BytesIO(memoryview(data)[:_MAX_HEADER + 16])
    version = npy.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = npy.read_array_header_1_0(f, max_header_size=_MAX_HEADER)
    elif version == (2, 0):
        shape, fortran, dtype = npy.read_array_header_2_0(f, max_header_size=_MAX_HEADER)
    else:
        raise ValueError(f"an array stored in .npy version {version}: written by a newer tiered?")
    if dtype.hasobject:
        raise ValueError("a damaged value: an array of Python objects cannot be stored raw")
    count = math.prod(shape)
    arr = numpy.frombuffer(data, dtype=dtype, count=count, offset=f.tell())
    return arr.reshape(shape, order="F" if fortran else "C")
