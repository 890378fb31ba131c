"""``tiered.panel.cache``: Panel's ``pn.cache``, signature and options, over a tiered cache.

>>> import tiered.panel
>>> @tiered.panel.cache(to_disk=True, ttl=300)
... def load(region):
...     ...

Importing this module does not import Panel; Panel is needed only for ``per_session=True``
inside a served app, and for ``Parameterized`` methods under ``param.depends``.

How the options map (``docs/python.md`` says the same):

- ``to_disk=False`` (Panel's default): entries are kept in this process's memory only, as with
  ``pn.cache``; ``to_disk=True``: in memory and in the folder, so they outlive a restart of the
  server (a ``--dev`` reload keeps them in memory already).
- ``cache_path``: the folder (a :class:`tiered.Cache` there); by default
  :func:`tiered.default_cache`'s (``$TIERED_DIR`` or ``./.cache/tiered``). ``pn.config.cache_path``
  is not read: that folder holds ``diskcache``'s files.
- ``ttl``: seconds from the computation, as Panel's.
- ``per_session=True``: ``scope="session"``: memory only, one set per Bokeh session, dropped
  when the session is destroyed.
- ``max_items``: at most that many entries of the function (per session with
  ``per_session``); past it, the entry computed first in this process is dropped. ``policy``
  is checked as Panel checks it, but the order is always that of computation (FIFO): the engine
  does not say which entry a hit read, so LRU and LFU are not followed. Besides, the memory
  tier evicts by size across all functions (TinyLFU), whatever ``max_items`` says.
- ``hash_funcs``: ``{type: fn}``; ``fn(value)`` is keyed in place of the value (Panel's return
  bytes, which key as well).
- A ``param.Parameterized`` argument is keyed by its parameters' values (its ``name``
  excepted); for a method decorated with ``param.depends``, by the values of the parameters it
  depends on, as Panel does.

Unlike ``pn.cache``, a function is known by its file and qualified name and its code version:
an edit of its body recomputes, a comment does not. ``TIERED_DISABLE=1`` turns caching off.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from typing import Any, Callable, Mapping

from . import Cache, _dropin, default_cache

__all__ = ["cache", "clear_caches"]

_registry = _dropin.Registry()
_caches: dict[str, Cache] = {}
_caches_lock = threading.Lock()


def _cache_at(path: str | os.PathLike[str] | None) -> Cache:
    if path is None:
        return default_cache()
    folder = os.path.abspath(os.fspath(path))
    with _caches_lock:
        c = _caches.get(folder)
        if c is None:
            c = _caches[folder] = Cache(folder)
        return c


def _dependencies(func: Callable[..., Any]) -> tuple[str, ...]:
    dinfo = getattr(func, "_dinfo", None) or {}
    deps = dinfo.get("dependencies", ())
    return tuple(d for d in deps if isinstance(d, str))


def _parameterized_key(deps: tuple[str, ...]) -> Callable[[Any], Any]:
    def key(obj: Any) -> Any:
        cls = f"{type(obj).__module__}.{type(obj).__qualname__}"
        if deps:
            values = []
            for d in deps:
                target = obj
                for part in d.split("."):
                    target = getattr(target, part)
                values.append(target)
            return (cls, tuple(deps), tuple(values))
        params = obj.param.values()
        params.pop("name", None)
        return (cls, params)

    return key


def cache(
    func: Callable[..., Any] | None = None,
    hash_funcs: Mapping[type, Callable[[Any], Any]] | None = None,
    max_items: int | None = None,
    policy: str = "LRU",
    ttl: float | None = None,
    to_disk: bool = False,
    cache_path: str | os.PathLike[str] | None = None,
    per_session: bool = False,
) -> Any:
    """Memoizes ``func`` as ``pn.cache`` does, in a tiered cache. Use bare (``@cache``) or with
    options.

    Args:
        func: the function (when used bare or called directly).
        hash_funcs: ``{type: fn}``: ``fn(value)`` identifies an argument of that type.
        max_items: the most entries the function keeps (per session with ``per_session``).
        policy: ``"FIFO"``, ``"LRU"`` or ``"LFU"``: checked; eviction is in order of
            computation (see the module's docs).
        ttl: seconds an entry lives.
        to_disk: keep entries in the folder as well as in memory (they outlive a restart).
        cache_path: the folder (default: :func:`tiered.default_cache`'s).
        per_session: one set of entries per session, in memory only, dropped at its end.

    The decorated function has ``.clear()`` (every entry), ``.clear(*args)`` (one call's),
    ``.refresh(*args)`` and ``.stats()``.

    Raises:
        ValueError: an unknown ``policy`` or a ``max_items`` below 1.
    """
    if not isinstance(policy, str) or policy.lower() not in ("fifo", "lru", "lfu"):
        raise ValueError(f"Cache policy must be one of 'FIFO', 'LRU' or 'LFU', not {policy}.")
    options: dict[str, Any] = dict(
        hash_funcs=hash_funcs,
        max_items=max_items,
        policy=policy,
        ttl=ttl,
        to_disk=to_disk,
        cache_path=cache_path,
        per_session=per_session,
    )
    if func is None:
        return functools.partial(_decorate, **options)
    return _decorate(func, **options)


def _decorate(
    func: Callable[..., Any],
    *,
    hash_funcs: Mapping[type, Callable[[Any], Any]] | None,
    max_items: int | None,
    policy: str,
    ttl: float | None,
    to_disk: bool,
    cache_path: str | os.PathLike[str] | None,
    per_session: bool,
) -> Any:
    del policy  # checked by cache(); eviction is in order of computation
    funcs = _dropin.hash_funcs(hash_funcs)
    param = sys.modules.get("param")
    if param is not None and hasattr(param, "Parameterized"):
        funcs.setdefault(param.Parameterized, _parameterized_key(_dependencies(func)))
    return _dropin.memoize(
        _cache_at(cache_path),
        func,
        max_items=max_items,
        scope="session" if per_session else "global",
        registry=_registry,
        ttl=ttl,
        memory_only=not to_disk,
        hash_funcs=funcs or None,
    )


def clear_caches() -> None:
    """Drops the entries of every function decorated with :func:`cache` in this process (in
    memory and on disk), then clears Panel's own ``pn.cache`` caches if Panel is imported:
    ``pn.state.clear_caches()`` for both."""
    _registry.clear()
    pn = sys.modules.get("panel")
    if pn is not None:
        pn.state.clear_caches()
