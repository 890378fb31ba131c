"""The async front: memory hits answered on the event loop, everything else on worker threads.

A call that may touch the disk, wait for another process or for another caller's computation
runs on a thread of :data:`EXECUTOR`, so the event loop never blocks on the cache. A computation
that is a coroutine runs on the caller's event loop; the worker thread waits for it. Threads are
made as needed (up to 256), so that a computation that itself awaits a cached call never waits
for a free thread held by its own caller.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable

from ._tiered import Memoized, Store

EXECUTOR = ThreadPoolExecutor(max_workers=256, thread_name_prefix="tiered")


async def _ensure_open(store: Store) -> None:
    """Opens the cache on a worker thread, so that the event loop never waits for it. A cache
    that cannot open says so in the call that follows (a memoized function then computes)."""
    if not store.is_open:
        try:
            await asyncio.get_running_loop().run_in_executor(EXECUTOR, store.open)
        except Exception:  # noqa: BLE001 - reported by the call that follows
            pass


def _on_loop(fn: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> Callable[[], Any]:
    """A blocking callable that gives ``fn()``'s value, awaiting it on ``loop`` if it is a
    coroutine function's result."""

    def compute() -> Any:
        result = fn()
        if inspect.isawaitable(result):
            return asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
        return result

    return compute


async def _awaited(aw: Awaitable[Any]) -> Any:
    return await aw


async def get(store: Store, key: Any, default: Any) -> Any:
    await _ensure_open(store)
    found, value = store.get_from_memory(key)
    if found:
        return value
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(EXECUTOR, store.get, key, default)


async def call(store: Store, method: str, *args: Any) -> Any:
    await _ensure_open(store)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(EXECUTOR, functools.partial(getattr(store, method), *args))


async def get_or_set(store: Store, key: Any, compute: Callable[[], Any], *options: Any) -> Any:
    await _ensure_open(store)
    found, value = store.get_from_memory(key)
    if found:
        return value
    loop = asyncio.get_running_loop()
    blocking = _on_loop(compute, loop)
    return await loop.run_in_executor(
        EXECUTOR, functools.partial(store.get_or_set, key, blocking, *options)
    )


def memoize_async(m: Memoized, store: Store, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """An ``async def`` wrapper around the memoized ``m`` of the coroutine function ``fn``."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        await _ensure_open(store)
        found, pending = m.lookup_memory(args, kwargs)
        if found:
            return pending
        if pending is None:
            return await fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        compute = _on_loop(functools.partial(fn, *args, **kwargs), loop)
        return await loop.run_in_executor(EXECUTOR, m.through, pending, compute)

    wrapper.identity = m.identity  # type: ignore[attr-defined]
    wrapper.clear = m.clear  # type: ignore[attr-defined]
    wrapper.stats = m.stats  # type: ignore[attr-defined]
    wrapper.explain = m.explain  # type: ignore[attr-defined]
    wrapper.memoized = m  # type: ignore[attr-defined]

    async def refresh(*args: Any, **kwargs: Any) -> Any:
        await call(store, "open")
        await asyncio.get_running_loop().run_in_executor(
            EXECUTOR, functools.partial(m.clear, *args, **kwargs)
        )
        return await wrapper(*args, **kwargs)

    wrapper.refresh = refresh  # type: ignore[attr-defined]
    return wrapper
