"""tiered: a two-tier cache for Python, memory in front of disk.

Results survive restarts (a ``panel serve --dev`` reload, a Streamlit rerun, a deploy), expire
when they should, are dropped when the function's code changes, and can be invalidated by tag or
namespace, from code, the ``tiered`` command or a script, while the app runs. One folder serves
every process of a machine.

>>> import tiered
>>> cache = tiered.Cache.in_memory()
>>> @cache.memoize
... def square(x):
...     return x * x
>>> square(12), square(12)
(144, 144)
>>> square.stats()["hits"]
1

See ``docs/python.md`` in the repository for the whole guide.
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing.util
import os
import signal
import threading
import types

from typing import Any, Callable, Iterable, Mapping, TypeVar, overload

from . import _async, _keys, _memoize, _sessions, _values
from . import _tiered
from ._tiered import CacheError, Memoized, Store
from ._values import UnpicklableError, UnsafeValueError

__all__ = [
    "Cache",
    "CacheError",
    "Memoized",
    "UnpicklableError",
    "UnsafeValueError",
    "default_cache",
    "memoize",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_MISSING = object()


def _disabled() -> bool:
    return os.environ.get("TIERED_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


def default_path() -> str:
    """``$TIERED_DIR`` if set, else ``./.cache/tiered``."""
    return os.environ.get("TIERED_DIR") or os.path.join(".", ".cache", "tiered")


class Cache:
    """A cache: a memory tier in front of a folder on disk (or memory only).

    Nothing starts (no thread, no file) until the first use, so a cache made at import survives a
    fork that comes before its use. A normal interpreter exit keeps everything set, without
    ``close()``.

    Args:
        path: the folder. Default: ``$TIERED_DIR``, else ``./.cache/tiered``.
        memory: the memory tier's size: bytes, or text such as ``"512MB"``.
        disk: the folder's size, likewise (``"8GB"``).
        ttl: the default lifetime of an entry: seconds, a ``timedelta`` or text (``"5m"``).
        durability: ``"batched"`` (writes are committed together within 50 ms; a crash may lose
            that window) or ``"immediate"`` (each write is on disk when it returns).
        pickle: ``False`` for a data-only cache: values are built-in data and NumPy arrays, and
            loading one never runs code.
        request_timeout: seconds a call waits for the process that holds the folder (default 5).
        on_damaged_file: ``"set_aside"`` (a database file damaged beyond repair is renamed
            beside it, ``tiered.redb.damaged-<ms>``, and the cache starts empty) or ``"fail"``
            (every use raises :class:`CacheError` naming the file; nothing is deleted). A
            memoized function runs without its cache meanwhile, with one warning.

    Raises:
        ValueError, TypeError: for a setting that cannot be understood (the message says which).
    """

    _store: Store

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        memory: int | str = "512MB",
        disk: int | str = "8GB",
        ttl: float | str | Any | None = None,
        durability: str = "batched",
        *,
        pickle: bool = True,
        request_timeout: float | None = None,
        on_damaged_file: str = "set_aside",
    ) -> None:
        folder = os.path.abspath(os.fspath(path)) if path is not None else os.path.abspath(default_path())
        self._init(folder, memory, disk, ttl, durability, pickle, request_timeout, on_damaged_file)

    def _init(
        self,
        folder: str | None,
        memory: int | str,
        disk: int | str,
        ttl: Any,
        durability: str,
        allow_pickle: bool,
        request_timeout: float | None,
        on_damaged_file: str = "set_aside",
    ) -> None:
        encode = _values.encode if allow_pickle else _values.encode_safe
        decode = _values.decoder_for(folder, allow_pickle)
        check = functools.partial(_before_open, folder if allow_pickle else None)
        self._store = Store(
            folder, memory, disk, durability, ttl, encode, decode, _keys.reduce, request_timeout,
            check, on_damaged_file,
        )
        self._resources: dict[str, tuple[int, Any]] = {}
        self._resource_lock = threading.Lock()

    @classmethod
    def in_memory(cls, memory: int | str = "512MB", ttl: Any = None) -> "Cache":
        """A cache with a memory tier only: nothing touches the disk."""
        self = cls.__new__(cls)
        self._init(None, memory, "8GB", ttl, "batched", True, None)
        return self

    # ---- plain keys ----

    @property
    def path(self) -> str | None:
        """The cache's folder, or ``None`` for a cache in memory."""
        return self._store.path

    def get(self, key: Any, default: Any = None) -> Any:
        """The value stored for ``key``, or ``default``."""
        return self._store.get(key, default)

    def set(
        self,
        key: Any,
        value: Any,
        ttl: Any = None,
        at: Any = None,
        idle: Any = None,
        tags: Iterable[str] | None = None,
        memory_only: bool = False,
    ) -> None:
        """Stores ``value`` under ``key``.

        Args:
            ttl: expires this long after now (seconds, ``timedelta``, or ``"5m"``).
            at: expires at this time: ``"16:00"`` (its next occurrence, local time), a
                ``datetime``, or seconds since the epoch. With ``ttl``, the earlier wins.
            idle: expires when not read for this long.
            tags: for :meth:`invalidate_tag`.
            memory_only: keep it in this process's memory only (objects that cannot be saved).

        Raises:
            UnpicklableError: the value cannot be saved and ``memory_only`` is not set.
            CacheError: the cache could not store it (the message says why).
        """
        self._store.set(key, value, ttl, at, idle, list(tags) if tags is not None else None, memory_only)

    def delete(self, key: Any) -> bool:
        """Removes ``key``; returns whether there was an entry."""
        return self._store.delete(key)

    def get_or_set(
        self,
        key: Any,
        compute: Callable[[], T],
        ttl: Any = None,
        at: Any = None,
        idle: Any = None,
        tags: Iterable[str] | None = None,
        memory_only: bool = False,
    ) -> T:
        """The value for ``key``, computed by ``compute()`` and stored if missing.

        Concurrent callers with one key, in this process and in others on the same folder, run
        ``compute`` once; the others wait for its value. An exception from ``compute`` reaches its
        caller and is not stored.
        """
        return self._store.get_or_set(
            key, compute, ttl, at, idle, list(tags) if tags is not None else None, memory_only
        )

    # ---- async ----

    async def aget(self, key: Any, default: Any = None) -> Any:
        """:meth:`get` for async code: a memory hit answers on the event loop, a disk read runs
        on a worker thread."""
        return await _async.get(self._store, key, default)

    async def aset(
        self,
        key: Any,
        value: Any,
        ttl: Any = None,
        at: Any = None,
        idle: Any = None,
        tags: Iterable[str] | None = None,
        memory_only: bool = False,
    ) -> None:
        """:meth:`set` for async code, on a worker thread."""
        await _async.call(
            self._store, "set", key, value, ttl, at, idle,
            list(tags) if tags is not None else None, memory_only,
        )

    async def adelete(self, key: Any) -> bool:
        """:meth:`delete` for async code, on a worker thread."""
        return await _async.call(self._store, "delete", key)

    async def aget_or_set(
        self,
        key: Any,
        compute: Callable[[], Any],
        ttl: Any = None,
        at: Any = None,
        idle: Any = None,
        tags: Iterable[str] | None = None,
        memory_only: bool = False,
    ) -> Any:
        """:meth:`get_or_set` for async code. ``compute`` may be a plain function or an ``async
        def`` one (its coroutine runs on the caller's event loop). One computation per missing
        key across tasks, threads and processes."""
        return await _async.get_or_set(
            self._store, key, compute, ttl, at, idle,
            list(tags) if tags is not None else None, memory_only,
        )

    def __getitem__(self, key: Any) -> Any:
        return self._store.getitem(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._store.set(key, value)

    def __delitem__(self, key: Any) -> None:
        if not self._store.delete(key):
            raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return self._store.contains(key)

    # ---- groups ----

    def invalidate_tag(self, tag: str) -> None:
        """Drops every entry tagged ``tag``, in both tiers and every process, at once."""
        self._store.invalidate_tag(tag)

    def namespace(self, name: str) -> "Namespace":
        """The entries under ``name`` (``"user/42"``): the same API, cleared with ``clear()``."""
        ns = Namespace.__new__(Namespace)
        ns._store = self._store.namespace(name)
        ns._resources = self._resources
        ns._resource_lock = self._resource_lock
        ns._parent = self
        return ns

    def clear(self) -> None:
        """Drops every entry (at once; the space is reclaimed in the background)."""
        self._store.clear()

    # ---- objects kept in memory ----

    def resource(self, name: str, factory: Callable[[], T]) -> T:
        """The object ``factory()`` builds, built once per process and kept in memory only: a
        database connection, a model, a client. A forked child builds its own."""
        pid = os.getpid()
        entry = self._resources.get(name)
        if entry is not None and entry[0] == pid:
            return entry[1]
        with self._resource_lock:
            entry = self._resources.get(name)
            if entry is not None and entry[0] == pid:
                return entry[1]
            obj = factory()
            self._resources[name] = (pid, obj)
            return obj

    # ---- memoize ----

    @overload
    def memoize(self, func: F) -> F: ...

    @overload
    def memoize(
        self,
        func: None = None,
        *,
        ttl: Any = None,
        at: Any = None,
        idle: Any = None,
        tags: Iterable[str] | None = None,
        memory_only: bool = False,
        scope: str | Callable[[], Any] = "global",
        version: Any = None,
        deps: Iterable[Any] = (),
        ignore: Iterable[str] = (),
        hash_funcs: Mapping[type, Callable[[Any], Any]] | None = None,
        copy: bool = False,
        name: str | None = None,
        refresh: Any = None,
        refresh_early: Any = None,
    ) -> Callable[[F], F]: ...

    def memoize(
        self,
        func: Callable[..., Any] | None = None,
        *,
        ttl: Any = None,
        at: Any = None,
        idle: Any = None,
        tags: Iterable[str] | None = None,
        memory_only: bool = False,
        scope: str | Callable[[], Any] = "global",
        version: Any = None,
        deps: Iterable[Any] = (),
        ignore: Iterable[str] = (),
        hash_funcs: Mapping[type, Callable[[Any], Any]] | None = None,
        copy: bool = False,
        name: str | None = None,
        refresh: Any = None,
        refresh_early: Any = None,
    ) -> Any:
        """Caches a function's results by its arguments, across restarts.

        Use bare (``@cache.memoize``) or with options. The key is built from the bound arguments
        (defaults applied); parameters whose names start with ``_`` and those in ``ignore`` are left
        out. When the function's code changes (its body, a constant, a default, a project function
        it calls), older entries are dropped at the first call.

        A hit returns the stored object itself: mutating it changes what later hits get. Pass
        ``copy=True`` for a fresh copy per hit.

        Args:
            ttl, at, idle, tags, memory_only: as for :meth:`set`.
            scope: ``"global"`` (one entry per arguments), ``"session"`` (one per Panel,
                Streamlit or Dash session, kept in memory and dropped when the session ends), or a
                callable whose result (say a user id) is part of the key.
            version, deps: escape hatches: anything whose change must recompute.
            hash_funcs: ``{type: function}`` giving what identifies an argument of that type.
            copy: hand each hit a fresh copy.
            name: the function's identity, instead of its file and qualified name.
            refresh: refresh ahead (``"5m"``, seconds, ``timedelta``): a call that finds its value
                older than this, not expired, returns it at once and recomputes it in a background
                thread (once per key across threads and processes); the new value replaces it when
                ready. A failed recomputation (an exception) keeps the older value until its
                deadline and counts in ``stats()["refresh_failures"]``. Give a ``ttl`` longer than
                ``refresh``. Not for ``async def`` functions.
            refresh_early: with ``refresh``: a call in this last stretch before the refresh age
                may start the recomputation early, more likely the nearer it is, so that entries
                written together are not all recomputed at once.

        The decorated function gets ``.clear()`` (all its entries), ``.clear(*args)`` (one
        call's), ``.refresh(*args)`` (recompute one call), ``.explain(*args)`` (why that call
        would recompute, or that it would hit) and ``.stats()``.

        An ``async def`` function stays one: a memory hit answers on the event loop, anything
        else runs on a worker thread while the function's coroutine runs on the caller's loop
        (its ``.refresh`` is async too; ``.clear`` blocks briefly).
        """

        def decorate(fn: Callable[..., Any]) -> Any:
            _check_function(fn)
            scope_fn: Callable[[], Any] | None
            keep_in_memory = memory_only
            if scope == "global":
                scope_fn = None
            elif scope == "session":
                scope_fn = functools.partial(_sessions.current, self)
                keep_in_memory = True
            elif callable(scope):
                scope_fn = scope
            else:
                raise ValueError(f'scope={scope!r}: use "global", "session" or a callable')
            m = Memoized(
                self._store,
                fn,
                name or _memoize.identity(fn) + _memoize.captured(fn),
                # At the first call: the module has run to its end by then.
                functools.partial(_memoize.fingerprint, fn, tuple(deps), version),
                _memoize.parameters(fn, ignore),
                ttl=ttl,
                at=at,
                idle=idle,
                tags=list(tags) if tags is not None else None,
                memory_only=keep_in_memory,
                copy=copy,
                hash_funcs=dict(hash_funcs) if hash_funcs else None,
                scope=scope_fn,
                disabled=_disabled(),
                label=getattr(fn, "__qualname__", repr(fn)),
                refresh=refresh,
                refresh_early=refresh_early,
            )
            if inspect.iscoroutinefunction(fn):
                if refresh is not None:
                    raise TypeError(
                        "refresh= is not available for async def functions yet: memoize a "
                        "blocking function and call it with asyncio.to_thread"
                    )
                return _async.memoize_async(m, self._store, fn)
            functools.update_wrapper(m, fn)
            return m

        if func is not None:
            return decorate(func)
        return decorate

    # ---- housekeeping ----

    def flush(self) -> None:
        """Waits until every write so far is on disk."""
        self._store.flush()

    def compact(self) -> None:
        """Gives the disk space of dropped entries back to the file system."""
        self._store.compact()

    def stats(self) -> dict[str, float]:
        """Hits (by tier), misses, hit ratio, inserts, evictions, sizes: since the cache opened."""
        return self._store.stats()

    def stats_by_process(self) -> list[dict[str, Any]]:
        """One dict per process that has the folder open (this one included): ``pid``,
        ``holds_folder``, ``this_process`` and the counters of :meth:`stats` (``entries`` and
        the disk sizes are 0 there: they are the folder's). Another process's figures are at
        most about a second old; sum them for a whole app of several workers.

        Raises:
            CacheError: the process that holds the folder did not answer in time.
        """
        return self._store.stats_by_process()

    def health(self) -> str:
        """``"healthy"``, or what is wrong (the disk tier out of service, a folder owner that
        does not answer)."""
        return self._store.health()

    def owner_pid(self) -> int | None:
        """The process that holds the folder, when it is another one (this process is then its
        client); ``None`` when this process holds it or the cache is in memory."""
        return self._store.owner_pid()

    def close(self) -> None:
        """Commits pending writes (nothing to do for a cache never used). The cache stays
        usable; the folder is released when the last handle on it is gone."""
        if self._store.is_open:
            self._store.flush()

    def __enter__(self) -> "Cache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"tiered.Cache({self.path!r})" if self.path else "tiered.Cache.in_memory()"


class Namespace(Cache):
    """The entries of a cache under one name: the cache's API; ``clear()`` drops them alone."""

    _parent: Cache

    def __init__(self) -> None:  # pragma: no cover - made by Cache.namespace
        raise TypeError("use cache.namespace(name)")

    @property
    def name(self) -> str:
        """The namespace's name."""
        return self._store.name or ""

    def __repr__(self) -> str:
        return f"{self._parent!r}.namespace({self.name!r})"


def _check_function(fn: Any) -> None:
    """Refuses what memoize cannot tell apart by its identity and arguments."""
    if isinstance(fn, types.FunctionType):
        return
    if isinstance(fn, (staticmethod, classmethod)):
        raise TypeError(
            f"memoize goes below @{type(fn).__name__}, on the function itself: "
            f"@{type(fn).__name__} then @cache.memoize"
        )
    if isinstance(fn, functools.partial):
        raise TypeError(
            "memoize a function defined with def, not a functools.partial: memoize the function "
            "it wraps and pass the bound arguments at each call (they are then part of the key)"
        )
    if isinstance(fn, types.MethodType):
        raise TypeError(
            "memoize the method in its class body, not a bound method: its object is then an "
            "argument of the key"
        )
    raise TypeError(
        f"memoize needs a function defined with def or lambda, not a {type(fn).__qualname__}: "
        "for a callable object, memoize its __call__ method in its class body"
    )


def _before_open(private_folder: str | None) -> None:
    """Just before a cache's first use opens its folder: refuses a folder others could write
    (for a cache that loads pickles), and in a multiprocessing child whose SIGTERM still ends
    it at once, has the engine flush on SIGTERM (a spawned child runs no after-fork hooks)."""
    if private_folder is not None:
        _values.refuse_shared_folder(private_folder)
    if (
        multiprocessing.parent_process() is not None
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):
        try:
            _tiered.flush_on_terminate()
        except CacheError:  # no handler: the child's writes are as safe as without it
            pass


class _ExitFlush:
    """multiprocessing ends a child with ``os._exit``, which skips the engine's exit hook (and
    so a child that holds a folder would lose its last batched writes): after a fork or spawn,
    multiprocessing's own finalizers flush every cache at the child's exit. A ``Pool`` left by
    its ``with`` block (``terminate()``) ends its workers with SIGTERM instead: unless the
    child handles SIGTERM itself, the engine flushes on it, then lets it end the child."""

    def after_fork(self) -> None:
        # As a normal exit would: commit, and stop serving the folder this child may hold
        # only once its clients' acknowledged writes are committed (a flush alone would let
        # a client's write acknowledged after it be lost at os._exit).
        multiprocessing.util.Finalize(None, _tiered.leave_before_exit, exitpriority=10)
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            try:
                _tiered.flush_on_terminate()
            except CacheError:  # no handler: the child's writes are as safe as without it
                pass


_exit_flush = _ExitFlush()
multiprocessing.util.register_after_fork(_exit_flush, _ExitFlush.after_fork)


_default: Cache | None = None
_default_lock = threading.Lock()


def default_cache() -> Cache:
    """The cache that :func:`memoize` uses: in :func:`default_path`, made at first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Cache()
    return _default


def memoize(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """:meth:`Cache.memoize` on :func:`default_cache`."""
    return default_cache().memoize(func, **options)
