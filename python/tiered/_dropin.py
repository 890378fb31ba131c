"""What the framework drop-ins (``tiered.panel``, ``tiered.streamlit``) share: a bound on a
function's entry count, the registry behind their ``clear()``, and ``hash_funcs`` conversion."""

from __future__ import annotations

import collections
import functools
import importlib
import inspect
import threading
from typing import Any, Callable, Mapping

from . import Cache, _memoize


class Bounded:
    """Keeps at most ``max_items`` entries of one memoized function, per scope: past that, the
    entry computed first (in this process) is dropped.

    The engine reports neither which entry a hit read nor the key of a call, so the order is
    the order of computation; the arguments of each counted call are kept to drop it later.
    """

    def __init__(self, max_items: int, scope: Callable[[], str] | None) -> None:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise ValueError(f"max_items={max_items!r}: give a whole number of entries, 1 or more")
        self.max_items = max_items
        self.scope = scope
        self.calls: dict[str, collections.deque[tuple[tuple[Any, ...], dict[str, Any]]]] = {}
        self.lock = threading.Lock()
        self.memoized: Any = None

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn``, counting each computation (a memoized function calls it on a miss only)."""
        if inspect.iscoroutinefunction(fn):
            return fn  # memoize says what it does with async functions

        @functools.wraps(fn)
        def computing(*args: Any, **kwargs: Any) -> Any:
            value = fn(*args, **kwargs)
            self.computed(args, kwargs)
            return value

        return computing

    def computed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        sid = self.scope() if self.scope is not None else ""
        with self.lock:
            calls = self.calls.setdefault(sid, collections.deque())
            calls.append((args, kwargs))
            victims = []
            while len(calls) > self.max_items:
                victims.append(calls.popleft())
        for a, k in victims:
            try:
                self.memoized.clear(*a, **k)
            except Exception:  # noqa: BLE001 - an entry that cannot be dropped just stays
                pass

    def forget(self, sid: str) -> None:
        """Drops the counted calls of an ended session."""
        with self.lock:
            self.calls.pop(sid, None)



_bounds: dict[str, Bounded] = {}
_bounds_lock = threading.Lock()


def _session_ended(sid: str) -> None:
    with _bounds_lock:
        bounds = list(_bounds.values())
    for b in bounds:
        b.forget(sid)


class Registry:
    """The functions one drop-in decorated in this process, one per identity (an app script
    executed again for each session decorates its functions again)."""

    def __init__(self) -> None:
        self._funcs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def add(self, memoized: Any) -> None:
        with self._lock:
            self._funcs[memoized.identity] = memoized

    def clear(self) -> None:
        with self._lock:
            funcs = list(self._funcs.values())
        for f in funcs:
            f.clear()


def memoize(
    cache: Cache,
    fn: Callable[..., Any],
    *,
    max_items: int | None,
    scope: str,
    registry: Registry,
    **options: Any,
) -> Any:
    """``cache.memoize(fn, **options)``, bounded to ``max_items`` entries if given."""
    if max_items is None:
        m = cache.memoize(fn, scope=scope, **options)  # type: ignore[call-overload]
    else:
        from . import _sessions

        scope_fn = (lambda: _sessions.current(cache)) if scope == "session" else None
        name = options.setdefault("name", _memoize.identity(fn))
        # One count per function, whatever the number of times its script is executed (a
        # Streamlit rerun, a Panel session).
        fresh = Bounded(max_items, scope_fn)  # checks max_items
        with _bounds_lock:
            bound = _bounds.get(name)
            if bound is None:
                bound = _bounds[name] = fresh
                _sessions.on_end(_session_ended)
            bound.max_items = max_items
            bound.scope = scope_fn
        m = cache.memoize(bound.wrap(fn), scope=scope, **options)  # type: ignore[call-overload]
        bound.memoized = m
    registry.add(m)
    return m


def hash_funcs(given: Mapping[Any, Callable[[Any], Any]] | None) -> dict[type, Callable[[Any], Any]]:
    """``hash_funcs`` keyed by types; a key given as a fully qualified type name
    (``"pandas.core.frame.DataFrame"``, as Streamlit allows) is imported."""
    out: dict[type, Callable[[Any], Any]] = {}
    for key, fn in (given or {}).items():
        if isinstance(key, str):
            module, _, name = key.rpartition(".")
            try:
                obj: Any = importlib.import_module(module)
                for part in name.split("."):
                    obj = getattr(obj, part)
            except (ImportError, AttributeError, ValueError):
                raise ValueError(
                    f"hash_funcs key {key!r} names no type that can be imported: "
                    "give the type itself"
                ) from None
            key = obj
        if not isinstance(key, type):
            raise TypeError(f"hash_funcs key {key!r} is not a type")
        out[key] = fn
    return out
