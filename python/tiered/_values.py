"""How values are stored: a format byte and bytes (the formats: :mod:`tiered._formats`).

NumPy arrays, pandas and polars frames and series, and pyarrow tables go in formats that load
without pickle; everything else is pickled (protocol 5, buffers out-of-band). A frame that Arrow
would not give back exactly is pickled too (see :func:`tiered._formats.arrow.pandas_unfit`).

Pickle runs code when it loads: a pickle is loaded only from a folder that no other user can
write (see :func:`folder_is_private`), and never by a cache opened with ``pickle=False``, which
stores the other formats and pickles of plain data only.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any, Callable

from ._formats import (
    ARROW_BATCH,
    ARROW_TABLE,
    NDARRAY,
    PANDAS_FRAME,
    PANDAS_SERIES,
    PICKLED,
    POLARS_FRAME,
    POLARS_SERIES,
    SAFE,
    UnpicklableError,
    UnsafeValueError,
    arrays,
    arrow,
    pickled,
)

Encoded = tuple[int, "bytes | bytearray"]


def _typed(obj: Any) -> Encoded | str | None:
    """``obj`` in a format without pickle; or why not, if it is an array or frame that such
    a format cannot hold exactly; or None for any other object."""
    kind = type(obj)
    module = kind.__module__.split(".", 1)[0]
    if module == "numpy":
        np = sys.modules["numpy"]
        if kind is not np.ndarray:
            return None
        if not arrays.fits(obj):
            return f"an array of dtype {obj.dtype}"
        return NDARRAY, arrays.dumps(obj)
    if module == "pandas":
        pd = sys.modules["pandas"]
        if kind is not pd.DataFrame and kind is not pd.Series:
            return None
        return arrow.pandas_dumps(obj)
    if module == "polars":
        pl = sys.modules["polars"]
        if kind is not pl.DataFrame and kind is not pl.Series:
            return None
        return arrow.polars_dumps(obj)
    if module == "pyarrow":
        pa = sys.modules["pyarrow"]
        if kind is not pa.Table and kind is not pa.RecordBatch:
            return None
        try:
            return arrow.arrow_dumps(obj)
        except UnsafeValueError as e:
            return str(e)
    return None


def _unpicklable(obj: Any, e: Exception) -> UnpicklableError:
    err = UnpicklableError(
        f"a {type(obj).__qualname__} cannot be saved to disk ({e}); keep it in memory "
        "only: memoize(memory_only=True), set(..., memory_only=True), or "
        "cache.resource(name, factory) for a connection or a model"
    )
    err.__cause__ = e
    return err


def encode(obj: Any) -> Encoded:
    """The format and bytes of ``obj`` for a persisted entry."""
    typed = _typed(obj)
    if typed is not None and not isinstance(typed, str):
        return typed
    try:
        return pickled.dumps(obj)
    except Exception as e:  # noqa: BLE001 - pickle raises many types for one cause
        raise _unpicklable(obj, e) from e


def encode_safe(obj: Any) -> Encoded:
    """Like :func:`encode`, for a data-only cache: refuses what would run code when loaded."""
    typed = _typed(obj)
    if isinstance(typed, str):
        raise UnpicklableError(
            f"a {type(obj).__qualname__} with {typed} would need pickle, and this cache was "
            "opened with pickle=False: convert it, or keep it in memory only (memory_only=True)"
        )
    if typed is not None:
        return typed
    try:
        data = pickle.dumps(obj, protocol=5)
    except Exception as e:  # noqa: BLE001 - pickle raises many types for one cause
        raise _unpicklable(obj, e) from e
    try:
        pickled.loads_data_only(SAFE, data)
    except UnsafeValueError as e:
        raise UnpicklableError(
            f"a {type(obj).__qualname__} is not plain data, and this cache was opened with "
            "pickle=False: store built-in values, NumPy arrays, frames and Arrow tables, or "
            "keep it in memory only (memory_only=True)"
        ) from e
    return SAFE, data


def _decode_typed(fmt: int, data: bytes | bytearray | memoryview) -> Any:
    if fmt == NDARRAY:
        return arrays.loads(data)
    if fmt in (PANDAS_FRAME, PANDAS_SERIES):
        return arrow.pandas_loads(fmt, data)
    if fmt in (ARROW_TABLE, ARROW_BATCH):
        return arrow.arrow_loads(fmt, data)
    if fmt in (POLARS_FRAME, POLARS_SERIES):
        return arrow.polars_loads(fmt, data)
    raise ValueError(f"unknown value format {fmt}: written by a newer tiered?")


def decode(fmt: int, data: bytes | bytearray | memoryview) -> Any:
    """The object stored as ``(fmt, data)``."""
    if fmt in PICKLED:
        return pickled.loads(fmt, data)
    if fmt == SAFE:
        return pickled.loads_data_only(fmt, data)
    return _decode_typed(fmt, data)


def decode_safe(fmt: int, data: bytes | bytearray | memoryview) -> Any:
    """Like :func:`decode`, running no code: pickles load as data only."""
    if fmt in PICKLED or fmt == SAFE:
        return pickled.loads_data_only(fmt, data)
    return _decode_typed(fmt, data)


def folder_is_private(path: str) -> tuple[bool, str]:
    """Whether ``path`` (or the folder it will be made in) is the user's alone: owned by this
    user and writable by nobody else. The reason when it is not."""
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            return True, ""
        p = parent
    st = os.stat(p)
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return False, f"{p} belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return False, f"{p} can be written by other users (mode {st.st_mode & 0o777:o})"
    return True, ""


def refuse_shared_folder(path: str) -> None:
    """Raises :class:`UnsafeValueError` if the folder ``path`` exists and is not the user's
    alone: anyone who could write it could have planted a pickle that runs code when loaded.
    Called just before the engine opens the folder (which then makes it private, hiding that it
    was not)."""
    if not os.path.exists(path):
        return
    ok, why = folder_is_private(path)
    if not ok:
        raise UnsafeValueError(
            f"not opening the cache folder: {why}, so anyone who could write it could have "
            "planted a value that runs code when loaded. Check its contents and make it yours "
            "alone (chmod 700), or delete it, or open the cache with pickle=False"
        )


class Decoder:
    """The decoder a cache uses: :func:`decode`, or :func:`decode_safe` for a data-only cache.

    A cache that loads pickles from a folder loads them only if the folder is the user's alone,
    checked at the first decode (the folder may not exist before). ``plain_pickle`` is
    ``pickle.loads`` once plain pickles (format 0) may load, else None: the extension calls it
    directly for those, the most common small values, past this class's checks (which would
    give the same answer)."""

    __slots__ = ("_path", "_allow_pickle", "_verdict", "plain_pickle")

    def __init__(self, path: str | None, allow_pickle: bool) -> None:
        self._path = path
        self._allow_pickle = allow_pickle
        self._verdict: tuple[bool, str] | None = (True, "") if path is None else None
        self.plain_pickle: Callable[[Any], Any] | None = (
            pickle.loads if allow_pickle and path is None else None
        )

    def __call__(self, fmt: int, data: bytes | bytearray | memoryview) -> Any:
        if not self._allow_pickle:
            return decode_safe(fmt, data)
        if fmt in PICKLED:
            verdict = self._verdict
            if verdict is None:
                verdict = self._verdict = folder_is_private(self._path or "")
                if verdict[0]:
                    self.plain_pickle = pickle.loads
            ok, why = verdict
            if not ok:
                raise UnsafeValueError(
                    f"not loading a pickled value: {why}, and a pickle runs code when loaded. "
                    "Make the folder yours alone (chmod 700), or open the cache with "
                    "pickle=False"
                )
        return decode(fmt, data)


def decoder_for(path: str | None, allow_pickle: bool) -> Decoder:
    """The decoder a cache in ``path`` uses (None: a cache without a folder)."""
    return Decoder(path, allow_pickle)


def _own_size(obj: Any) -> int | None:
    """What a frame-like or array-like object says it holds, if it says."""
    n = getattr(obj, "nbytes", None)
    if isinstance(n, int) and not isinstance(obj, type):
        return n + sys.getsizeof(obj, 64)
    usage = getattr(obj, "memory_usage", None)
    if callable(usage) and not isinstance(obj, type):
        try:
            total = usage(deep=True)
            return int(total.sum() if hasattr(total, "sum") else total)
        except Exception:  # noqa: BLE001 - any frame-like object: walk it instead
            pass
    estimated = getattr(obj, "estimated_size", None)
    if callable(estimated) and not isinstance(obj, type):
        try:
            return int(estimated())
        except Exception:  # noqa: BLE001
            pass
    return None


#: How many objects a size estimate visits at most (a figure or a model can reach the whole
#: interpreter through its references).
_SIZE_WALK = 20_000


def size_of(obj: Any) -> int:
    """About how many bytes ``obj`` holds, what a memory-only entry weighs: what a frame or an
    array says, else the sizes of the objects it refers to, walked (up to 20,000 of them;
    modules, classes and functions are shared, not counted)."""
    import gc
    import types

    shared = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)
    total, stack = 0, [obj]
    seen: set[int] = set()
    while stack and len(seen) < _SIZE_WALK:
        o = stack.pop()
        if id(o) in seen or isinstance(o, shared):
            continue
        seen.add(id(o))
        own = _own_size(o)
        if own is not None:
            total += own
            continue
        try:
            total += sys.getsizeof(o, 64)
        except TypeError:
            total += 64
        stack.extend(gc.get_referents(o))
    return max(total, 64)


def map_file(path: str, offset: int, length: int) -> memoryview | None:
    """A view of ``length`` bytes at ``offset`` in the file at ``path``, memory-mapped (the
    cache's side file of a large value: never modified while it has its name), private and
    copy-on-write: writable, and a write never reaches the file. ``None`` if the file is gone
    (the entry was replaced meanwhile) or shorter than that."""
    import mmap

    try:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return None
    if len(mapped) < offset + length:
        mapped.close()
        return None
    if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_WILLNEED"):
        mapped.madvise(mmap.MADV_WILLNEED)
    return memoryview(mapped)[offset : offset + length]
