"""``tiered.streamlit.cache_data`` and ``cache_resource``: Streamlit's decorators, signatures
and options, over a tiered cache.

>>> import tiered.streamlit as tst
>>> @tst.cache_data(ttl="1h")
... def load(url):
...     ...
>>> @tst.cache_resource
... def connect(dsn):
...     ...

Importing this module does not import Streamlit; the spinner and ``scope="session"`` use it
when the script runs under Streamlit.

As Streamlit's: ``cache_data`` hands each call a fresh copy (decoded from the stored bytes),
``cache_resource`` the one shared object; arguments whose names start with ``_`` are left out
of the key; ``hash_funcs`` keys may be types or their fully qualified names; ``ttl`` is
seconds, a ``timedelta`` or text; ``max_entries`` drops the oldest entry past that many;
``show_spinner`` shows ``st.spinner`` while the function computes; ``scope="session"`` keeps a
session's entries apart and drops them when it disconnects; ``.clear()`` on a function or on
the decorator. What differs (``docs/python.md`` says the same):

- ``cache_data`` persists by default: entries are kept in the folder
  (:func:`tiered.default_cache`'s) and outlive a restart. ``persist=False`` keeps them in this
  process's memory only; ``persist="disk"`` or ``True`` is the default behaviour. A ``ttl``
  holds on disk too (Streamlit ignores it with ``persist``).
- A function is known by its file, qualified name and code version: an edit of its body
  recomputes, a comment does not.
- ``cache_resource`` entries are kept in this process's memory only (resources cannot be
  saved); the memory tier may evict them under memory pressure, which builds them again.
- ``max_size`` is accepted and not applied per function: the memory tier's size bounds every
  function together (``tiered.Cache(memory=...)``).
- ``refresh_mode="background"``, ``validate`` and ``on_release`` are refused with a
  ``ValueError``: the engine has no stale-while-refresh, and does not tell which entries it
  drops.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from typing import Any, Callable, Iterator, Mapping

from . import _dropin, default_cache

__all__ = ["cache_data", "cache_resource"]


@contextlib.contextmanager
def _spinner(text: str, show_time: bool) -> Iterator[None]:
    st = sys.modules.get("streamlit")
    ctx = None
    if st is not None:
        try:
            from streamlit.runtime.scriptrunner import get_script_run_ctx

            ctx = get_script_run_ctx(suppress_warning=True)
        except Exception:  # noqa: BLE001 - not under Streamlit's runtime
            ctx = None
    if ctx is None or st is None:
        yield
        return
    try:
        spinner = st.spinner(text, show_time=show_time)
    except TypeError:  # a Streamlit without show_time
        spinner = st.spinner(text)
    with spinner:
        yield


def _with_spinner(fn: Callable[..., Any], show_spinner: bool | str, show_time: bool) -> Callable[..., Any]:
    if show_spinner is False or inspect.iscoroutinefunction(fn):
        return fn
    text = show_spinner if isinstance(show_spinner, str) else f"Running `{fn.__qualname__}(...)`."

    @functools.wraps(fn)
    def computing(*args: Any, **kwargs: Any) -> Any:
        with _spinner(text, show_time):
            return fn(*args, **kwargs)

    return computing


def _check(refresh_mode: str, scope: str) -> None:
    if refresh_mode != "foreground":
        raise ValueError(
            f'refresh_mode={refresh_mode!r}: tiered computes again in the foreground only '
            '(refresh_mode="foreground")'
        )
    if scope not in ("global", "session"):
        raise ValueError(f'scope={scope!r}: use "global" or "session"')


class _Decorator:
    """One of the two decorators: call it on a function, or with options; ``.clear()`` drops
    the entries of every function it decorated in this process."""

    _copy: bool

    def __init__(self) -> None:
        self._registry = _dropin.Registry()

    def clear(self) -> None:
        """Drops the entries of every function this decorator decorated in this process."""
        self._registry.clear()

    def _memoize(
        self,
        func: Callable[..., Any],
        *,
        ttl: Any,
        max_entries: int | None,
        show_spinner: bool | str,
        show_time: bool,
        hash_funcs: Mapping[Any, Callable[[Any], Any]] | None,
        scope: str,
        memory_only: bool,
    ) -> Any:
        from . import _memoize

        return _dropin.memoize(
            default_cache(),
            _with_spinner(func, show_spinner, show_time),
            max_items=max_entries,
            scope=scope,
            registry=self._registry,
            name=_memoize.identity(func),
            ttl=ttl,
            memory_only=memory_only,
            copy=self._copy,
            hash_funcs=_dropin.hash_funcs(hash_funcs) or None,
        )


class CacheDataAPI(_Decorator):
    """``tiered.streamlit.cache_data``: results returned by value (a fresh copy per call)."""

    _copy = True

    def __call__(
        self,
        func: Callable[..., Any] | None = None,
        *,
        ttl: Any = None,
        max_entries: int | None = None,
        max_size: int | str | None = None,
        show_spinner: bool | str = True,
        show_time: bool = False,
        persist: str | bool | None = None,
        hash_funcs: Mapping[Any, Callable[[Any], Any]] | None = None,
        scope: str = "global",
        refresh_mode: str = "foreground",
    ) -> Any:
        """Caches a function that returns data, as ``st.cache_data`` does; see the module's
        docs for what differs.

        Raises:
            ValueError: ``persist`` other than ``None``, ``True``, ``False`` or ``"disk"``;
                ``refresh_mode="background"``; an unknown ``scope``.
        """
        del max_size  # the memory tier's size bounds every function together
        if persist not in (None, True, False, "disk"):
            raise ValueError(f'persist={persist!r}: use "disk", True, False or None')
        _check(refresh_mode, scope)
        options = dict(
            ttl=ttl,
            max_entries=max_entries,
            show_spinner=show_spinner,
            show_time=show_time,
            hash_funcs=hash_funcs,
            scope=scope,
            memory_only=persist is False,
        )
        if func is None:
            return lambda f: self._memoize(f, **options)
        return self._memoize(func, **options)


class CacheResourceAPI(_Decorator):
    """``tiered.streamlit.cache_resource``: one shared object per call, in memory only."""

    _copy = False

    def __call__(
        self,
        func: Callable[..., Any] | None = None,
        *,
        ttl: Any = None,
        max_entries: int | None = None,
        show_spinner: bool | str = True,
        show_time: bool = False,
        validate: Callable[[Any], bool] | None = None,
        hash_funcs: Mapping[Any, Callable[[Any], Any]] | None = None,
        on_release: Callable[[Any], None] | None = None,
        scope: str = "global",
        refresh_mode: str = "foreground",
    ) -> Any:
        """Caches a function that returns a shared resource, as ``st.cache_resource`` does;
        see the module's docs for what differs.

        Raises:
            ValueError: ``validate`` or ``on_release`` given; ``refresh_mode="background"``;
                an unknown ``scope``.
        """
        if validate is not None or on_release is not None:
            raise ValueError(
                "validate and on_release are not supported by tiered.streamlit.cache_resource "
                "(the engine does not say which entries it drops): use st.cache_resource for "
                "resources that need them"
            )
        _check(refresh_mode, scope)
        options = dict(
            ttl=ttl,
            max_entries=max_entries,
            show_spinner=show_spinner,
            show_time=show_time,
            hash_funcs=hash_funcs,
            scope=scope,
            memory_only=True,
        )
        if func is None:
            return lambda f: self._memoize(f, **options)
        return self._memoize(func, **options)


#: ``@tiered.streamlit.cache_data``: ``st.cache_data`` over a tiered cache.
cache_data = CacheDataAPI()
#: ``@tiered.streamlit.cache_resource``: ``st.cache_resource`` over a tiered cache.
cache_resource = CacheResourceAPI()
