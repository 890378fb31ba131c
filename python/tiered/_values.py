"""How values are stored: a format byte and bytes.

- ``PICKLE``: pickle protocol 5, for anything picklable.
- ``SAFE``: pickle protocol 5 of data only (built-in containers and scalars, NumPy arrays), loaded
  by an unpickler that refuses every other global, so loading runs no code. Used when the cache
  is opened with ``pickle=False``.

Pickle runs code when it loads: ``decode`` refuses pickles from a folder that another user can
write (see :func:`folder_is_private`).
"""

from __future__ import annotations

import io
import os
import pickle
import sys
from typing import Any, Callable

PICKLE = 0
SAFE = 1

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


class UnpicklableError(TypeError):
    """A value given to a persisted entry cannot be pickled."""


class UnsafeValueError(ValueError):
    """A stored value would run code when loaded, and this cache does not load such values."""


class _DataOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeValueError(
            f"the stored value names {module}.{name}; this cache loads data only "
            "(pickle=False, or a folder that is not yours alone), so it was not loaded"
        )


def encode(obj: Any) -> tuple[int, bytes]:
    """The format and bytes of ``obj`` for a persisted entry."""
    try:
        return PICKLE, pickle.dumps(obj, protocol=5)
    except Exception as e:  # noqa: BLE001 - pickle raises many types for one cause
        raise UnpicklableError(
            f"a {type(obj).__qualname__} cannot be saved to disk ({e}); keep it in memory "
            "only: memoize(memory_only=True), set(..., memory_only=True), or "
            "cache.resource(name, factory) for a connection or a model"
        ) from e


def encode_safe(obj: Any) -> tuple[int, bytes]:
    """Like :func:`encode`, for a data-only cache: refuses what would run code when loaded."""
    fmt, data = encode(obj)
    try:
        _DataOnly(io.BytesIO(data)).load()
    except UnsafeValueError as e:
        raise UnpicklableError(
            f"a {type(obj).__qualname__} is not plain data, and this cache was opened with "
            "pickle=False: store built-in values and NumPy arrays, or keep it in memory only "
            "(memory_only=True)"
        ) from e
    return SAFE, data


def decode(fmt: int, data: bytes) -> Any:
    """The object stored as ``(fmt, data)``."""
    if fmt == PICKLE:
        return pickle.loads(data)
    if fmt == SAFE:
        return _DataOnly(io.BytesIO(data)).load()
    raise ValueError(f"unknown value format {fmt}: written by a newer tiered?")


def decode_safe(fmt: int, data: bytes) -> Any:
    """Like :func:`decode`, running no code: every value loads as data only."""
    if fmt in (PICKLE, SAFE):
        return _DataOnly(io.BytesIO(data)).load()
    raise ValueError(f"unknown value format {fmt}: written by a newer tiered?")


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


def decoder_for(path: str | None, allow_pickle: bool) -> Callable[[int, bytes], Any]:
    """The decoder a cache in ``path`` uses: full pickle only if allowed and the folder is
    private, checked at the first decode (the folder may not exist before)."""
    if not allow_pickle:
        return decode_safe
    if path is None:
        return decode
    state: dict[str, Any] = {}

    def checked(fmt: int, data: bytes) -> Any:
        verdict = state.get("private")
        if verdict is None:
            ok, why = folder_is_private(path)
            verdict = state["private"] = (ok, why)
        ok, why = verdict
        if fmt == PICKLE and not ok:
            raise UnsafeValueError(
                f"not loading a pickled value: {why}, and a pickle runs code when loaded. "
                "Make the folder yours alone (chmod 700), or open the cache with pickle=False"
            )
        return decode(fmt, data)

    return checked


def size_of(obj: Any) -> int:
    """About how many bytes ``obj`` holds: what a memory-only entry weighs."""
    for attr in ("nbytes",):
        n = getattr(obj, attr, None)
        if isinstance(n, int):
            return n + sys.getsizeof(obj)
    usage = getattr(obj, "memory_usage", None)
    if callable(usage):
        try:
            total = usage(deep=True)
            total = total.sum() if hasattr(total, "sum") else total
            return int(total)
        except Exception:  # noqa: BLE001 - any frame-like object; fall back to getsizeof
            pass
    estimated = getattr(obj, "estimated_size", None)
    if callable(estimated):
        try:
            return int(estimated())
        except Exception:  # noqa: BLE001
            pass
    try:
        return max(sys.getsizeof(obj), 64)
    except TypeError:
        return 64
