"""The async front: async memoize and aget/aset/aget_or_set, never blocking the event loop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import tiered
from conftest import run_python


def test_an_async_function_memoizes_and_stays_async(cache: tiered.Cache) -> None:
    calls = []

    @cache.memoize(ttl="5m")
    async def fetch(x, y=1):
        calls.append(x)
        await asyncio.sleep(0.01)
        return x + y

    async def main() -> list[int]:
        return [await fetch(1), await fetch(1), await fetch(x=1, y=1), await fetch(2)]

    assert asyncio.run(main()) == [2, 2, 2, 3]
    assert calls == [1, 2]
    assert fetch.stats() == {"hits": 2, "misses": 2}
    assert asyncio.iscoroutinefunction(fetch)


def test_concurrent_tasks_run_an_async_computation_once(cache: tiered.Cache) -> None:
    runs = []

    @cache.memoize
    async def slow(x):
        runs.append(x)
        await asyncio.sleep(0.3)
        return x * 10

    async def main() -> list[int]:
        return await asyncio.gather(*(slow(4) for _ in range(10)))

    assert asyncio.run(main()) == [40] * 10
    assert runs == [4]


def test_the_event_loop_keeps_running_while_a_miss_is_computed(cache: tiered.Cache) -> None:
    ticks = []

    @cache.memoize
    async def slow(x):
        await asyncio.sleep(0.3)
        return x

    async def ticker() -> None:
        for _ in range(5):
            ticks.append(1)
            await asyncio.sleep(0.02)

    async def main() -> None:
        await asyncio.gather(slow(1), ticker())

    asyncio.run(main())
    assert len(ticks) == 5


def test_an_async_computation_that_awaits_other_memoized_calls_does_not_deadlock(
    cache: tiered.Cache,
) -> None:
    @cache.memoize
    async def leaf(i):
        await asyncio.sleep(0.05)
        return i

    @cache.memoize
    async def parent(i):
        return sum(await asyncio.gather(*(leaf(i * 100 + j) for j in range(10))))

    async def main() -> list[int]:
        return await asyncio.wait_for(asyncio.gather(*(parent(i) for i in range(20))), 60)

    assert asyncio.run(main()) == [sum(i * 100 + j for j in range(10)) for i in range(20)]


def test_an_exception_in_an_async_function_is_not_cached(cache: tiered.Cache) -> None:
    n = []

    @cache.memoize
    async def flaky():
        n.append(1)
        if len(n) == 1:
            raise ValueError("first")
        return 5

    async def main() -> int:
        with pytest.raises(ValueError):
            await flaky()
        return await flaky()

    assert asyncio.run(main()) == 5


def test_aget_aset_adelete_and_aget_or_set(cache: tiered.Cache) -> None:
    async def compute() -> str:
        await asyncio.sleep(0.01)
        return "computed"

    async def main() -> list:
        await cache.aset("k", [1], ttl="1m")
        a = await cache.aget("k")
        b = await cache.aget("missing", "dflt")
        c = await cache.aget_or_set("g", compute)
        d = await cache.aget_or_set("g", lambda: "not again")
        e = await cache.aget_or_set("s", lambda: "sync compute")
        f = await cache.adelete("k")
        return [a, b, c, d, e, f, await cache.aget("k")]

    assert asyncio.run(main()) == [[1], "dflt", "computed", "computed", "sync compute", True, None]


def test_async_memoized_values_survive_a_restart(folder: Path, tmp_path: Path) -> None:
    code = f"""
        import asyncio, tiered
        c = tiered.Cache({str(folder)!r})
        runs = []
        @c.memoize(name="fetch")
        async def fetch(x):
            runs.append(x)
            return {{"x": x}}
        print(asyncio.run(fetch(3)), len(runs))
    """
    assert run_python(code, tmp_path).split("}")[1].strip() == "1"
    assert run_python(code, tmp_path).split("}")[1].strip() == "0"


def test_an_async_function_runs_without_a_cache_that_cannot_open(tmp_path: Path) -> None:
    folder = tmp_path / "strict"
    run_python(f"import tiered; tiered.Cache({str(folder)!r}).set('k', 1)", tmp_path)
    (folder / "tiered.redb").write_bytes(os.urandom(4096))  # damaged beyond repair
    cache = tiered.Cache(folder, on_damaged_file="fail")

    @cache.memoize
    async def double(x):
        return x * 2

    with pytest.warns(RuntimeWarning, match="runs without its cache"):
        assert asyncio.run(double(21)) == 42
