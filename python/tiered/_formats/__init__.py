"""The formats of stored values: one byte, then bytes that only that format reads.

===  ==============  =========================================================================
 #   name            bytes
===  ==============  =========================================================================
 0   PICKLE          a pickle (protocol 5), buffers in-band
 1   SAFE            a pickle (protocol 5) of data only: built-in values and NumPy arrays
 2   PICKLE_OOB      a pickle (protocol 5) and its out-of-band buffers, framed (see ``pickled``)
 3   NDARRAY         a NumPy ``.npy`` header (format 2.0), then the array's bytes (``arrays``)
 4   PANDAS_FRAME    an Arrow IPC stream of a pandas DataFrame (``arrow``)
 5   PANDAS_SERIES   an Arrow IPC stream of a pandas Series as a one-column frame
 6   ARROW_TABLE     an Arrow IPC stream of a ``pyarrow.Table``
 7   ARROW_BATCH     an Arrow IPC stream of one ``pyarrow.RecordBatch``
 8   POLARS_FRAME    a polars IPC stream of a ``polars.DataFrame``
 9   POLARS_SERIES   a polars IPC stream of a ``polars.Series`` as a one-column frame
===  ==============  =========================================================================

Formats 1 and 3 to 9 run no code when they load (no pickle): a data-only cache reads them, from
any folder. Formats 0 and 2 load only from a folder that is the user's alone.
"""

from __future__ import annotations

PICKLE = 0
SAFE = 1
PICKLE_OOB = 2
NDARRAY = 3
PANDAS_FRAME = 4
PANDAS_SERIES = 5
ARROW_TABLE = 6
ARROW_BATCH = 7
POLARS_FRAME = 8
POLARS_SERIES = 9

#: Formats that run code when they load.
PICKLED = frozenset({PICKLE, PICKLE_OOB})


class UnpicklableError(TypeError):
    """A value given to a persisted entry cannot be pickled."""


class UnsafeValueError(ValueError):
    """A stored value would run code when loaded, and this cache does not load such values."""


def align(n: int, to: int = 64) -> int:
    """``n`` rounded up to a multiple of ``to``: where the next piece of a framed value starts,
    so that arrays read in place are aligned."""
    return -(-n // to) * to
