"""Frames and tables as Arrow IPC streams (formats 4 to 9): no pickle, so loading runs no code.

pandas frames go through ``pyarrow.Table.from_pandas`` (its ``pandas`` schema metadata carries
the index, column labels and dtypes) and back through ``Table.to_pandas``, plus a ``tiered``
metadata entry (JSON) for what that pair drops: a Series' name, a RangeIndex or object dtype of
the column labels, an index's ``freq``, object columns of text. A frame goes this way only if a
structural check (:func:`pandas_unfit`, no pass over the data but for object columns) says it
comes back exactly; otherwise, or if pyarrow raises, it is pickled.

polars frames and series use polars' own IPC writer and reader (exact for every polars dtype
but ``Object``, which it writes as pointers: such frames go to pickle, which refuses them).
"""

from __future__ import annotations

import io
import json
import re
import sys
from typing import Any

from . import (
    ARROW_BATCH,
    ARROW_TABLE,
    PANDAS_FRAME,
    PANDAS_SERIES,
    POLARS_FRAME,
    POLARS_SERIES,
    UnsafeValueError,
)

_META = b"tiered"
#: pyarrow before 14.0.1 unpickles extension types named in a stream (CVE-2023-47248).
_MIN_PYARROW = (14, 0, 1)


def _pyarrow() -> Any:
    """pyarrow, if it is installed and recent enough to read a stream without running code."""
    import pyarrow

    m = re.match(r"(\d+)\.(\d+)\.(\d+)", pyarrow.__version__)
    if m is None or tuple(int(g) for g in m.groups()) < _MIN_PYARROW:
        raise UnsafeValueError(
            f"pyarrow {pyarrow.__version__} can run code while it reads a stream "
            "(CVE-2023-47248): install pyarrow 14.0.1 or later"
        )
    return pyarrow


def _write(pa: Any, data: Any) -> bytearray:
    """An IPC stream of a Table or RecordBatch, written straight into the returned bytes."""
    mock = pa.MockOutputStream()
    with pa.ipc.new_stream(mock, data.schema) as w:
        w.write(data)
    out = bytearray(mock.size())
    with pa.ipc.new_stream(pa.FixedSizeBufferWriter(pa.py_buffer(out)), data.schema) as w:
        w.write(data)
    return out


def _reader(pa: Any, data: bytes | bytearray | memoryview) -> Any:
    return pa.ipc.open_stream(pa.py_buffer(data))


# --- pyarrow -------------------------------------------------------------------------------


def arrow_dumps(obj: Any) -> tuple[int, bytearray]:
    """A ``pyarrow.Table`` or ``RecordBatch`` as a stream."""
    pa = _pyarrow()
    return (ARROW_TABLE if isinstance(obj, pa.Table) else ARROW_BATCH), _write(pa, obj)


def arrow_loads(fmt: int, data: bytes | bytearray | memoryview) -> Any:
    """The Table or RecordBatch in ``data``; its buffers are views into ``data``."""
    reader = _reader(_pyarrow(), data)
    return reader.read_all() if fmt == ARROW_TABLE else reader.read_next_batch()


# --- pandas --------------------------------------------------------------------------------


def _is_arrow_str(pd: Any, dtype: Any) -> bool:
    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


def _dtype_unfit(pd: Any, dtype: Any) -> str | None:
    """Why a column or index of ``dtype`` may not come back from Arrow with the same dtype."""
    import numpy

    if isinstance(dtype, numpy.dtype):
        return None if dtype.kind in "biufmM" else f"NumPy dtype {dtype}"
    if isinstance(dtype, pd.CategoricalDtype):
        inner = dtype.categories.dtype
        return None if inner != object and _dtype_unfit(pd, inner) is None else f"{dtype}"
    if isinstance(dtype, pd.IntervalDtype):
        return _dtype_unfit(pd, dtype.subtype)
    if isinstance(dtype, pd.StringDtype):
        return None if _is_arrow_str(pd, dtype) else f"{dtype} (Arrow reads back pyarrow storage)"
    masked = tuple(
        getattr(pd, f"{n}Dtype")
        for n in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64")
        + ("Float32", "Float64", "Boolean")
    )
    if isinstance(dtype, (pd.DatetimeTZDtype, pd.PeriodDtype, pd.ArrowDtype, *masked)):
        return None
    return f"dtype {dtype}"


def _text_column(pd: Any, col: Any) -> bool:
    """An object column of str (or bytes) and None only: Arrow text, then object again."""
    kind = pd.api.types.infer_dtype(col, skipna=True)
    if kind not in ("string", "bytes", "empty"):
        return False
    missing = col.isna().to_numpy()
    return not missing.any() or all(v is None for v in col.to_numpy()[missing])


def _labels_unfit(pd: Any, labels: Any) -> str | None:
    if not labels.is_unique:
        return "duplicate column labels"
    if any(n is not None and not isinstance(n, str) for n in labels.names):
        return "a column index name that is not a string"
    if isinstance(labels, pd.MultiIndex):
        return None if all(_is_arrow_str(pd, lv.dtype) for lv in labels.levels) else (
            "column levels that are not all text"
        )
    if isinstance(labels, pd.RangeIndex) or labels.dtype == "int64" or _is_arrow_str(
        pd, labels.dtype
    ):
        return None
    if labels.dtype == object and pd.api.types.infer_dtype(labels) in ("string", "empty"):
        return None
    return f"column labels of dtype {labels.dtype}"


def pandas_unfit(frame: Any, pd: Any) -> str | None:
    """Why ``frame`` (a DataFrame) may not come back exactly from Arrow, or None if it will.

    The labels must be unique text or integers, the names text, every dtype one Arrow maps back
    to itself (NumPy bool, int, float, datetime, timedelta; pandas' nullable, categorical,
    tz-aware, period, interval and pyarrow-backed dtypes), object columns text with ``None``
    for missing, index levels not object, ``attrs`` JSON."""
    if not frame.flags.allows_duplicate_labels:
        return "allows_duplicate_labels=False"
    why = _labels_unfit(pd, frame.columns)
    if why:
        return why
    for name, dtype in frame.dtypes.items():
        if dtype == object:
            if not _text_column(pd, frame[name]):
                return f"column {name!r} holds Python objects other than text"
        elif (why := _dtype_unfit(pd, dtype)) is not None:
            return f"column {name!r}: {why}"
    index = frame.index
    if not isinstance(index, pd.RangeIndex):
        levels = index.levels if isinstance(index, pd.MultiIndex) else [index]
        for n in index.names:
            if n is not None and not isinstance(n, str):
                return f"index name {n!r} is not a string"
        for level in levels:
            if level.dtype == object or _dtype_unfit(pd, level.dtype) is not None:
                return f"an index of dtype {level.dtype}"
    if frame.attrs:
        try:
            if json.loads(json.dumps(frame.attrs)) != frame.attrs:
                return "attrs that JSON does not carry exactly"
        except (TypeError, ValueError):
            return "attrs that are not JSON"
    return None


def pandas_dumps(obj: Any) -> tuple[int, bytearray] | str:
    """A pandas DataFrame or Series as a stream, or why it must be pickled instead."""
    pd = sys.modules["pandas"]
    try:
        pa = _pyarrow()
    except (ImportError, UnsafeValueError) as e:
        return f"pyarrow is needed ({e})"
    meta: dict[str, Any] = {}
    if isinstance(obj, pd.Series):
        name = obj.name
        if name is not None and type(name) not in (str, int):
            return f"a Series name of type {type(name).__name__}"
        if not obj.flags.allows_duplicate_labels:
            return "allows_duplicate_labels=False"
        frame = obj.to_frame(name=name if isinstance(name, str) else "0")
        frame.attrs = obj.attrs
        meta["series_name"] = name
        fmt = PANDAS_SERIES
    else:
        frame, fmt = obj, PANDAS_FRAME
    why = pandas_unfit(frame, pd)
    if why:
        return why
    cols = frame.columns
    if isinstance(cols, pd.RangeIndex):
        meta["columns_range"] = [cols.start, cols.stop, cols.step]
    elif not isinstance(cols, pd.MultiIndex) and cols.dtype == object:
        meta["columns_object"] = True
    text = [i for i, dtype in enumerate(frame.dtypes) if dtype == object]
    if text:
        meta["object_columns"] = text
    freq = getattr(frame.index, "freqstr", None)
    if freq is not None and not isinstance(frame.index, pd.PeriodIndex):
        meta["freq"] = freq
    try:
        table = pa.Table.from_pandas(frame, preserve_index=None)
    except (pa.ArrowException, ValueError, TypeError) as e:
        return f"pyarrow cannot convert it ({e})"
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _META: json.dumps(meta).encode()}
    )
    return fmt, _write(pa, table)


def _check_pandas_metadata(pa: Any, pd: Any, table: Any) -> None:
    """Refuses a stream whose metadata would have ``to_pandas`` build dtypes from outside
    NumPy, pandas and pyarrow (``__from_arrow__`` of another library's dtype)."""
    for field in table.schema:
        if isinstance(field.type, pa.BaseExtensionType):
            module = type(field.type).__module__
            if not module.startswith(("pyarrow", "pandas")):
                raise UnsafeValueError(
                    f"the stored frame's column {field.name!r} has Arrow extension type "
                    f"{module}.{type(field.type).__name__}; only pandas' and pyarrow's are read"
                )
    described = table.schema.pandas_metadata or {}
    for col in [*described.get("columns", []), *described.get("column_indexes", [])]:
        name = col.get("numpy_type")
        if not isinstance(name, str):
            raise ValueError("a damaged value: its pandas metadata names no dtype")
        try:
            dtype = pd.api.types.pandas_dtype(name)
        except TypeError as e:
            raise ValueError(f"a damaged value: its pandas metadata names dtype {name!r}") from e
        if not type(dtype).__module__.startswith(("numpy", "pandas")):
            raise UnsafeValueError(
                f"the stored frame names dtype {name!r} "
                f"({type(dtype).__module__}.{type(dtype).__name__}); only NumPy's and pandas' "
                "dtypes are read from Arrow"
            )


def _in_place(pd: Any, table: Any, data: memoryview) -> Any:
    """``table`` as a frame whose columns are views into ``data`` (a private, copy-on-write
    mapping of a side file: writable, and a write never reaches the file), or ``None`` when a
    column would not be a plain NumPy array in it (then ``to_pandas`` copies, as usual)."""
    try:
        import numpy as np
        from pandas.api.internals import create_dataframe_from_blocks
    except ImportError:  # pandas < 3: no public way to build a frame from its blocks
        return None
    whole = np.frombuffer(data, dtype=np.uint8)
    start = whole.__array_interface__["data"][0]
    split = table.to_pandas(split_blocks=True)  # zero-copy, read-only views where it can
    blocks = []
    for block in split._mgr.blocks:
        values = block.values
        if not isinstance(values, np.ndarray) or values.dtype.hasobject:
            return None
        at = values.__array_interface__["data"][0]
        if values.flags.writeable:
            pass  # made by the conversion: its own memory
        elif start <= at and at + values.nbytes <= start + len(whole) and values.flags.c_contiguous:
            values = np.frombuffer(
                data, dtype=values.dtype, count=values.size, offset=at - start
            ).reshape(values.shape)
        else:
            return None
        blocks.append((values, block.mgr_locs.as_array))
    return create_dataframe_from_blocks(blocks, index=split.index, columns=split.columns)


def pandas_loads(fmt: int, data: bytes | bytearray | memoryview) -> Any:
    """The DataFrame or Series in ``data``: its own memory (``to_pandas`` copies), or, when
    ``data`` is a writable mapping of a side file and every column is a plain NumPy array,
    views into it (no copy)."""
    import pandas as pd

    pa = _pyarrow()
    table = _reader(pa, data).read_all()
    _check_pandas_metadata(pa, pd, table)
    meta = json.loads((table.schema.metadata or {}).get(_META, b"{}"))
    frame = None
    if isinstance(data, memoryview) and not data.readonly:
        frame = _in_place(pd, table, data)
    if frame is None:
        frame = table.to_pandas()
    for i in meta.get("object_columns", []):
        col = frame.iloc[:, i]
        if col.dtype != object:
            values = col.to_numpy(dtype=object, na_value=None)
            frame.isetitem(i, pd.Series(values, index=frame.index, dtype=object))
    if "columns_range" in meta:
        start, stop, step = meta["columns_range"]
        frame.columns = pd.RangeIndex(start, stop, step, name=frame.columns.name)
    elif meta.get("columns_object"):
        frame.columns = frame.columns.astype(object)
    if "freq" in meta:
        frame.index = type(frame.index)(frame.index, freq=meta["freq"])
    if fmt == PANDAS_SERIES:
        series = frame.iloc[:, 0]
        series.name = meta.get("series_name")
        series.attrs = frame.attrs
        return series
    return frame


# --- polars --------------------------------------------------------------------------------


def _holds_objects(pl: Any, dtype: Any) -> bool:
    if dtype == pl.Object:
        return True
    inner = getattr(dtype, "inner", None)
    if inner is not None and _holds_objects(pl, inner):
        return True
    return any(_holds_objects(pl, f.dtype) for f in getattr(dtype, "fields", None) or [])


def polars_dumps(obj: Any) -> tuple[int, bytes] | str:
    """A polars DataFrame or Series as a polars IPC stream, or why it must be pickled."""
    pl = sys.modules["polars"]
    is_series = isinstance(obj, pl.Series)
    frame = obj.to_frame() if is_series else obj
    for name, dtype in frame.schema.items():
        if _holds_objects(pl, dtype):
            # polars writes an Object column as its pointers, without an error
            return f"column {name!r} holds Python objects ({dtype})"
    buf = io.BytesIO()
    try:
        frame.write_ipc_stream(buf)
    except Exception as e:  # noqa: BLE001 - polars raises several types (Object columns...)
        return f"polars cannot write it ({e})"
    return (POLARS_SERIES if is_series else POLARS_FRAME), buf.getvalue()


def polars_loads(fmt: int, data: bytes | bytearray | memoryview) -> Any:
    """The polars DataFrame or Series in ``data``."""
    import polars as pl

    frame = pl.read_ipc_stream(io.BytesIO(data))
    return frame.to_series(0) if fmt == POLARS_SERIES else frame
