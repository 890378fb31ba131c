"""The plain API: get, set, delete, get_or_set, tags, namespaces, expiry, resources."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

import pytest

import tiered
from conftest import run_python


def test_set_get_delete_and_the_mapping_protocol(cache: tiered.Cache) -> None:
    cache.set("k", {"a": [1, 2]})
    assert cache.get("k") == {"a": [1, 2]}
    assert cache["k"] == {"a": [1, 2]}
    assert "k" in cache
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert "k" not in cache
    assert cache.get("k") is None
    assert cache.get("k", "fallback") == "fallback"
    with pytest.raises(KeyError):
        cache["k"]
    with pytest.raises(KeyError):
        del cache["k"]
    cache["x"] = 5
    del cache["x"]
    assert "x" not in cache


def test_one_int_float_and_bool_are_three_keys(cache: tiered.Cache) -> None:
    cache.set(1, "int")
    cache.set(1.0, "float")
    cache.set(True, "bool")
    assert (cache.get(1), cache.get(1.0), cache.get(True)) == ("int", "float", "bool")


def test_dict_and_set_keys_ignore_order_but_list_and_tuple_differ(cache: tiered.Cache) -> None:
    cache.set({"a": 1, "b": 2}, "dict")
    assert cache.get({"b": 2, "a": 1}) == "dict"
    cache.set(frozenset({3, 1, 2}), "set")
    assert cache.get(frozenset({1, 2, 3})) == "set"
    cache.set((1, 2), "tuple")
    assert cache.get([1, 2]) is None


def test_values_survive_a_restart(folder: Path, tmp_path: Path) -> None:
    run_python(
        f"""
        import tiered
        c = tiered.Cache({str(folder)!r})
        c.set("kept", [1, 2, 3])
        c.set("plot", object(), memory_only=True)
        """,
        tmp_path,
    )
    out = run_python(
        f"""
        import tiered
        c = tiered.Cache({str(folder)!r})
        # From the file: read now, or loaded by the warm restart moments ago.
        print(c.get("kept"), c.get("plot"), c.stats()["disk_hits"] + c.stats()["memory_hits"])
        """,
        tmp_path,
    )
    assert out.split() == ["[1,", "2,", "3]", "None", "1"]


def test_memory_only_values_need_not_be_picklable(cache: tiered.Cache) -> None:
    lock = threading.Lock()
    with pytest.raises(tiered.UnpicklableError, match="memory_only=True"):
        cache.set("lock", lock)
    cache.set("lock", lock, memory_only=True)
    assert cache.get("lock") is lock


def test_hits_share_the_stored_object(cache: tiered.Cache) -> None:
    value = {"rows": [1, 2]}
    cache.set("v", value)
    assert cache.get("v") is value
    assert cache.get("v") is cache.get("v")


def test_ttl_expires_an_entry(cache: tiered.Cache) -> None:
    cache.set("short", 1, ttl=0.2)
    cache.set("long", 1, ttl="1h")
    time.sleep(0.5)
    assert cache.get("short") is None
    assert cache.get("long") == 1


def test_at_in_the_past_stores_nothing_and_bad_times_say_how_to_write_them(
    cache: tiered.Cache,
) -> None:
    cache.set("k", 1, at=dt.datetime(2000, 1, 1))
    assert cache.get("k") is None
    cache.set("k", 1, at="23:59")
    assert cache.get("k") == 1
    with pytest.raises(ValueError, match="16:00"):
        cache.set("k", 1, at="tea time")
    with pytest.raises(ValueError, match="5m"):
        cache.set("k", 1, ttl="five minutes-ish")
    with pytest.raises(ValueError):
        cache.set("k", 1, ttl=-1)


def test_invalidate_tag_drops_tagged_entries_only(cache: tiered.Cache) -> None:
    cache.set("p1", 1, tags=["prices"])
    cache.set("p2", 2, tags=["prices", "eu"])
    cache.set("other", 3)
    cache.invalidate_tag("prices")
    assert (cache.get("p1"), cache.get("p2"), cache.get("other")) == (None, None, 3)


def test_namespace_clear_drops_its_entries_only(cache: tiered.Cache) -> None:
    user = cache.namespace("user/42")
    user.set("k", "mine")
    cache.set("k", "root")
    assert user.get("k") == "mine"
    user.clear()
    assert user.get("k") is None
    assert cache.get("k") == "root"
    assert user.name == "user/42"


def test_get_or_set_computes_once_for_many_threads(cache: tiered.Cache) -> None:
    runs = []

    def compute() -> int:
        runs.append(1)
        time.sleep(0.3)
        return 7

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_set("k", compute)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [7] * 8
    assert len(runs) == 1


def test_get_or_set_does_not_store_an_exception(cache: tiered.Cache) -> None:
    def boom() -> int:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        cache.get_or_set("k", boom)
    assert cache.get_or_set("k", lambda: 3) == 3


def test_get_or_set_computes_once_across_processes(folder: Path, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    code = f"""
        import time, tiered
        c = tiered.Cache({str(folder)!r}, durability="immediate")
        def compute():
            with open({str(log)!r}, "a") as f:
                f.write("ran\\n")
            time.sleep(1.0)
            return 99
        print(c.get_or_set("shared", compute))
    """
    import subprocess
    import sys
    import textwrap

    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert outs == ["99"] * 3
    assert log.read_text().count("ran") == 1


def test_resource_is_built_once_per_process(cache: tiered.Cache) -> None:
    built = []

    def factory() -> object:
        built.append(1)
        return object()

    a = cache.resource("db", factory)
    b = cache.resource("db", factory)
    assert a is b
    assert len(built) == 1


def test_in_memory_cache_touches_no_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    c = tiered.Cache.in_memory()
    c.set("k", 1)
    assert c.get("k") == 1
    assert c.path is None
    assert list(tmp_path.iterdir()) == []


def test_default_folder_is_tiered_dir_or_dot_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TIERED_DIR", raising=False)
    assert tiered.Cache().path == str(tmp_path / ".cache" / "tiered")
    monkeypatch.setenv("TIERED_DIR", str(tmp_path / "elsewhere"))
    assert tiered.Cache().path == str(tmp_path / "elsewhere")


def test_nothing_is_opened_before_the_first_use(folder: Path) -> None:
    c = tiered.Cache(folder)
    assert not folder.exists()
    c.set("k", 1)
    assert folder.exists()


def test_bad_settings_say_what_to_write(folder: Path) -> None:
    with pytest.raises(ValueError, match="512MB"):
        tiered.Cache(folder, memory="lots")
    with pytest.raises(ValueError, match="immediate"):
        tiered.Cache(folder, durability="sometimes")


def test_context_manager_and_close_keep_what_was_set(folder: Path, tmp_path: Path) -> None:
    with tiered.Cache(folder) as c:
        c.set("k", "v")
    out = run_python(
        f"import tiered; print(tiered.Cache({str(folder)!r}).get('k'))", tmp_path
    )
    assert out.strip() == "v"


def test_stats_count_hits_by_tier_and_misses(cache: tiered.Cache) -> None:
    cache.set("k", 1)
    cache.get("k")
    cache.get("absent")
    s = cache.stats()
    assert s["memory_hits"] == 1
    assert s["misses"] == 1
    assert s["hit_ratio"] == 0.5
    assert cache.health() == "healthy"


def test_stats_by_process_shows_a_worker_that_shares_the_folder(folder: Path, tmp_path: Path) -> None:
    import subprocess
    import sys
    import textwrap

    cache = tiered.Cache(folder)
    cache.set("k", 1)
    assert cache.get("k") == 1
    # A second process (a worker) misses twice and hits once, then waits to be told to go.
    code = f"""
        import sys, tiered
        c = tiered.Cache({str(folder)!r})
        c.get("a"); c.get("b"); c.get("k")
        print("done", flush=True)
        sys.stdin.read()
    """
    worker = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "done"
        deadline = time.monotonic() + 20
        while True:
            by_pid = {p["pid"]: p for p in cache.stats_by_process()}
            other = by_pid.get(worker.pid)
            if other is not None and other["misses"] == 2:
                break
            assert time.monotonic() < deadline, f"the worker's figures never came: {by_pid}"
            time.sleep(0.1)
        me = by_pid[os.getpid()]
        assert me["this_process"] and me["holds_folder"] and me["memory_hits"] == 1
        assert not other["this_process"] and not other["holds_folder"]
        assert other["hits"] == 1 and other["hit_ratio"] == pytest.approx(1 / 3)
    finally:
        assert worker.stdin is not None
        worker.stdin.close()
        worker.wait(timeout=60)


def test_at_keeps_the_date_and_the_seconds(cache: tiered.Cache) -> None:
    cache.set("future", 1, at="2099-01-01 00:00")
    cache.set("future-iso", 1, at="2099-01-01T00:00:00+00:00")
    cache.set("past", 1, at="2020-01-01 00:00")
    cache.set("past-iso", 1, at="2020-01-01T00:00:00+00:00")
    assert (cache.get("future"), cache.get("future-iso")) == (1, 1)
    assert (cache.get("past"), cache.get("past-iso")) == (None, None)
    soon = dt.datetime.now() + dt.timedelta(seconds=2)
    if soon.date() != dt.date.today():
        pytest.skip("too close to midnight for a time of day two seconds ahead")
    cache.set("soon", 1, at=soon.strftime("%H:%M:%S"))
    cache.set("soon-time", 1, at=soon.time())
    assert cache.get("soon") == 1
    time.sleep(3)
    assert (cache.get("soon"), cache.get("soon-time")) == (None, None)


def test_durations_in_days(cache: tiered.Cache) -> None:
    cache.set("a", 1, ttl="1d")
    cache.set("b", 1, ttl="2 days")
    assert (cache.get("a"), cache.get("b")) == (1, 1)


class _Figure:
    """A plot-like object: not picklable (it holds a callback), big in memory."""

    def __init__(self) -> None:
        self.data = [bytes(1024) for _ in range(5 * 1024)]  # 5 MB in 5,120 objects
        self.on_click = lambda: None


def test_memory_only_objects_are_weighed_by_what_they_hold() -> None:
    import gc
    import weakref

    c = tiered.Cache.in_memory(memory="32MB")
    alive = []
    for i in range(40):
        fig = _Figure()
        alive.append(weakref.ref(fig))
        c.set(("fig", i), fig, memory_only=True)
        del fig
    for _ in range(2):  # the memory tier evicts at its housekeeping (stats runs it)
        c.stats()
    gc.collect()
    kept = sum(r() is not None for r in alive)
    assert 1 <= kept <= 8, f"{kept} figures of 5 MB kept by a 32 MB memory tier"


def test_an_invalidation_frees_the_memory_only_objects_it_covers_at_once() -> None:
    import gc
    import weakref

    c = tiered.Cache.in_memory()
    fig = _Figure()
    ref = weakref.ref(fig)
    c.set("plot", fig, memory_only=True, tags=["tiered/scope/session-1"])
    del fig
    gc.collect()
    assert ref() is not None
    c.invalidate_tag("tiered/scope/session-1")  # what the end of a session does
    gc.collect()
    assert ref() is None, "the ended session's plot is still held"


def test_a_damaged_database_is_set_aside_and_memoize_never_fails(folder: Path, tmp_path: Path) -> None:
    run_python(f"import tiered; tiered.Cache({str(folder)!r}).set('k', 1)", tmp_path)
    db = folder / "tiered.redb"
    db.write_bytes(os.urandom(4096))  # damaged beyond repair
    # The default sets the file aside and starts empty.
    c = tiered.Cache(folder)
    assert c.get("k") is None
    c.set("k", 2)
    assert c.get("k") == 2
    assert any(p.name.startswith("tiered.redb.damaged-") for p in folder.iterdir())
    db2 = tmp_path / "strict"
    run_python(f"import tiered; tiered.Cache({str(db2)!r}).set('k', 1)", tmp_path)
    (db2 / "tiered.redb").write_bytes(os.urandom(4096))
    strict = tiered.Cache(db2, on_damaged_file="fail")
    with pytest.raises(tiered.CacheError, match="damaged"):
        strict.get("k")
    assert strict.health().startswith("cannot open")
    calls = []

    @strict.memoize
    def f(x):
        calls.append(x)
        return x * 2

    with pytest.warns(RuntimeWarning, match="runs without its cache"):
        assert f(21) == 42
    assert f(21) == 42 and calls == [21, 21]
