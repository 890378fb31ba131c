"""Keys of values that are not built-in: a type tag and a reduced value, by content and in full.

The Rust side handles ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``tuple``,
``list``, ``dict``, ``set`` and ``frozenset`` itself and calls :func:`reduce` for anything else.
Frames and arrays are hashed in full (every row, every column), never sampled: two frames that
differ anywhere get two keys.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import functools
import hashlib
import pathlib
import sys
import types
import uuid
from typing import Any


def _qualified(tp: type) -> str:
    """A type's name that means the same in every process: ``module.QualName``; for a type
    defined in a script (``__main__``, or the fresh module ``bokeh_app_<uuid>`` that Panel runs
    an app file as, in every session), ``script:QualName`` (the module's name would make every
    session's keys new)."""
    module = tp.__module__
    if module == "__main__" or module.startswith("bokeh_app_") or module not in sys.modules:
        return f"script:{tp.__qualname__}"
    return f"{module}.{tp.__qualname__}"


def _digest(*parts: Any) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        if isinstance(p, str):
            p = p.encode()
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return h.digest()


def _numpy_key(a: Any) -> tuple[str, Any]:
    import numpy as np

    if a.dtype.hasobject:
        return "numpy.ndarray[object]", (a.shape, [x for x in a.ravel().tolist()])
    c: Any = np.ascontiguousarray(a)
    # `descr` names a structured dtype's fields and their types (`dtype.str` is `|V8`).
    dtype = repr(a.dtype.descr) if a.dtype.names else a.dtype.str
    return "numpy.ndarray", (dtype, tuple(a.shape), _digest(memoryview(c).cast("B")))


def _pandas_key(obj: Any) -> tuple[str, Any]:
    import pandas as pd

    hashed = pd.util.hash_pandas_object(obj, index=True, categorize=False).to_numpy()
    digest = _digest(memoryview(hashed).cast("B"))
    # `repr` of a dtype names a categorical's categories and order (`str` says "category").
    attrs = repr(sorted(obj.attrs.items(), key=repr)) if getattr(obj, "attrs", None) else ""
    if isinstance(obj, pd.DataFrame):
        cols = tuple((repr(c), repr(t)) for c, t in obj.dtypes.items())
        index = (repr(obj.index.dtype), tuple(repr(n) for n in obj.index.names))
        return "pandas.DataFrame", (cols, repr(obj.columns.names), index, attrs, digest)
    if isinstance(obj, pd.Series):
        return "pandas.Series", (repr(obj.name), repr(obj.dtype), repr(obj.index.dtype), attrs, digest)
    return f"pandas.{type(obj).__name__}", (repr(obj.dtype), tuple(repr(n) for n in obj.names), digest)


def _arrow_ipc_digest(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return _digest(memoryview(sink.getvalue()))


def reduce(obj: Any) -> tuple[str, Any]:
    """``(tag, reduced)`` for ``obj``: ``reduced`` is built of values the Rust side keys itself.

    Raises ``TypeError`` for an object with no content to key it by.
    """
    tp = type(obj)
    if isinstance(obj, types.FunctionType):
        # A function (an argument, or what a closure captured): by its identity and what it
        # captured (two closures of one factory are two functions).
        from ._memoize import captured, identity

        return "function", identity(obj) + captured(obj)
    if isinstance(obj, functools.partial):
        return "partial", (obj.func, obj.args, obj.keywords)
    if isinstance(obj, types.MethodType):
        return "method", (obj.__func__, obj.__self__)
    if isinstance(obj, types.BuiltinFunctionType):
        return "builtin", f"{getattr(obj, '__module__', None)}.{obj.__qualname__}"
    if isinstance(obj, type):
        return "type", _qualified(obj)
    if isinstance(obj, types.ModuleType):
        return "module", obj.__name__
    identity_of = getattr(obj, "identity", None)
    if tp.__name__ == "Memoized" and tp.__module__ == "tiered._tiered" and identity_of:
        return "function", identity_of
    if tp.__module__ == "tiered" and tp.__name__ in ("Cache", "Namespace"):
        return "tiered.Cache", (obj.path, getattr(obj, "name", None))
    if isinstance(obj, enum.Enum):
        return f"enum:{_qualified(tp)}", obj.name
    if isinstance(obj, _dt.datetime):
        # A subclass (pandas' Timestamp) keys apart; `fold` tells the two readings of a clock
        # that goes back apart.
        tag = "datetime" if tp is _dt.datetime else f"datetime:{_qualified(tp)}"
        return tag, (obj.isoformat(), str(obj.tzinfo) if obj.tzinfo else None, obj.fold)
    if isinstance(obj, _dt.date):
        return "date", obj.isoformat()
    if isinstance(obj, _dt.time):
        return "time", obj.isoformat()
    if isinstance(obj, _dt.timedelta):
        return "timedelta", (obj.days, obj.seconds, obj.microseconds)
    if isinstance(obj, decimal.Decimal):
        return "decimal", str(obj)
    if isinstance(obj, uuid.UUID):
        return "uuid", obj.bytes
    if isinstance(obj, pathlib.PurePath):
        return f"path:{tp.__name__}", str(obj)
    if isinstance(obj, (int, float, str, bytes, tuple)):
        # A subclass of a built-in (a NamedTuple, a str subclass): its type and its value.
        base: Any = next(b for b in (bool, int, float, str, bytes, tuple) if isinstance(obj, b))
        return f"{_qualified(tp)}", base(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = tuple((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))
        return f"dataclass:{_qualified(tp)}", fields
    module = tp.__module__.split(".")[0]
    if module == "numpy" and "numpy" in sys.modules:
        import numpy as np

        if isinstance(obj, np.ndarray):
            return _numpy_key(obj)
        if isinstance(obj, np.generic):
            return f"numpy.{obj.dtype.str}", obj.tobytes()
    if module == "pandas" and "pandas" in sys.modules:
        import pandas as pd

        if isinstance(obj, (pd.DataFrame, pd.Series, pd.Index)):
            return _pandas_key(obj)
    if module == "polars" and "polars" in sys.modules:
        import polars as pl

        if isinstance(obj, pl.Series):
            obj = obj.to_frame()
            return "polars.Series", _arrow_ipc_digest(obj.to_arrow())
        if isinstance(obj, pl.DataFrame):
            return "polars.DataFrame", _arrow_ipc_digest(obj.to_arrow())
    if module == "pyarrow" and "pyarrow" in sys.modules:
        import pyarrow as pa

        if isinstance(obj, pa.Table):
            return "pyarrow.Table", _arrow_ipc_digest(obj)
        if isinstance(obj, pa.RecordBatch):
            return "pyarrow.RecordBatch", _arrow_ipc_digest(pa.Table.from_batches([obj]))
    raise TypeError(f"no content to key a {_qualified(tp)} by")
