"""The framework drop-ins' options, without the frameworks: ``tiered.panel.cache``,
``tiered.streamlit.cache_data`` / ``cache_resource``, and the end of a session."""

from __future__ import annotations

from pathlib import Path

import pytest

import tiered
import tiered.panel
import tiered.streamlit as tst
from tiered import _sessions

from conftest import run_python


def _counting_script(decorator: str, body: str = "return {'x': [x]}") -> str:
    return f"""
        import tiered, tiered.panel, tiered.streamlit
        runs = []
        @{decorator}
        def load(x):
            runs.append(x)
            {body}
        load(1); load(1)
        tiered.default_cache().flush()
        print(len(runs))
    """


@pytest.mark.parametrize(
    ("decorator", "second_process_runs"),
    [
        ("tiered.panel.cache", 1),  # pn.cache's default: memory only
        ("tiered.panel.cache(to_disk=True)", 0),
        ("tiered.streamlit.cache_data", 0),  # tiered persists by default
        ("tiered.streamlit.cache_data(persist='disk')", 0),
        ("tiered.streamlit.cache_data(persist=False)", 1),
        ("tiered.streamlit.cache_resource", 1),  # resources stay in their process
    ],
)
def test_what_outlives_a_restart_follows_the_persistence_options(
    tmp_path: Path, decorator: str, second_process_runs: int
) -> None:
    env = {"TIERED_DIR": str(tmp_path / "c")}
    script = _counting_script(decorator)
    assert run_python(script, tmp_path, env).strip() == "1"
    assert run_python(script, tmp_path, env).strip() == str(second_process_runs)


def test_tiered_disable_makes_every_call_of_a_drop_in_compute(tmp_path: Path) -> None:
    env = {"TIERED_DIR": str(tmp_path / "c"), "TIERED_DISABLE": "1"}
    for decorator in ("tiered.panel.cache(to_disk=True)", "tiered.streamlit.cache_data"):
        assert run_python(_counting_script(decorator), tmp_path, env).strip() == "2"


def test_panel_cache_works_bare_and_with_options_and_clears() -> None:
    runs: list[int] = []

    @tiered.panel.cache
    def bare(x: int) -> int:
        runs.append(x)
        return x

    @tiered.panel.cache(ttl=60, to_disk=True, policy="LFU")
    def optioned(x: int) -> int:
        runs.append(-x)
        return -x

    assert [bare(1), bare(1), optioned(2), optioned(2)] == [1, 1, -2, -2]
    assert runs == [1, -2]
    bare.clear()
    optioned.clear()
    bare(1)
    optioned(2)
    assert runs == [1, -2, 1, -2]


def test_panel_cache_refuses_an_unknown_policy_as_panel_does() -> None:
    with pytest.raises(ValueError, match="Cache policy must be one of 'FIFO', 'LRU' or 'LFU'"):
        tiered.panel.cache(policy="MRU")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_max_items_must_be_a_whole_number_of_one_or_more(bad: object) -> None:
    with pytest.raises(ValueError, match="max_items"):
        tiered.panel.cache(max_items=bad)(lambda x: x)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "decorate",
    [
        lambda f: tiered.panel.cache(max_items=2)(f),
        lambda f: tst.cache_data(max_entries=2)(f),
    ],
)
def test_past_max_items_the_entry_computed_first_is_dropped(decorate) -> None:  # type: ignore[no-untyped-def]
    runs: list[int] = []

    def load(x: int) -> int:
        runs.append(x)
        return x

    f = decorate(load)
    for x in (1, 2, 3):
        f(x)
    f(3)
    f(2)
    assert runs == [1, 2, 3]
    f(1)  # dropped when 3 came in
    assert runs == [1, 2, 3, 1]


def test_max_items_counts_across_executions_of_the_script() -> None:
    # A Streamlit rerun or a Panel session executes the script, and so the decorator, again.
    runs: list[int] = []
    src = "def load(x):\n    runs.append(x)\n    return x\n"
    for x in (1, 2, 3):
        ns: dict = {"runs": runs}
        exec(compile(src, "/tmp/tiered-rerun-app.py", "exec"), ns)
        tst.cache_data(max_entries=2)(ns["load"])(x)
    ns = {"runs": runs}
    exec(compile(src, "/tmp/tiered-rerun-app.py", "exec"), ns)
    again = tst.cache_data(max_entries=2)(ns["load"])
    again(3)
    again(1)
    assert runs == [1, 2, 3, 1]


def test_cache_data_hands_out_copies_and_cache_resource_shares() -> None:
    @tst.cache_data
    def data(x: int) -> dict:
        return {"rows": [x]}

    @tst.cache_resource
    def resource(x: int) -> dict:
        return {"rows": [x]}

    first = data(1)
    first["rows"].append(99)
    assert data(1) == {"rows": [1]}
    assert resource(1) is resource(1)
    shared = resource(1)
    shared["rows"].append(99)
    assert resource(1) == {"rows": [1, 99]}


def test_streamlit_leaves_underscore_arguments_out_and_takes_hash_funcs_by_type_name() -> None:
    runs: list[object] = []

    class Conn:
        def __init__(self, dsn: str) -> None:
            self.dsn = dsn

    @tst.cache_data
    def by_underscore(_conn: Conn, n: int) -> int:
        runs.append(n)
        return n

    by_underscore(Conn("a"), 1)
    by_underscore(Conn("b"), 1)
    assert runs == [1]

    @tst.cache_data(hash_funcs={"pathlib.PurePath": lambda p: p.name})
    def by_name(p: Path) -> str:
        runs.append(p)
        return p.name

    by_name(Path("/a/x.csv"))
    by_name(Path("/b/x.csv"))  # the same name: the same key
    assert runs == [1, Path("/a/x.csv")]
    with pytest.raises(ValueError, match="names no type"):
        tst.cache_data(hash_funcs={"no.such.Type": str})(lambda x: x)


def test_what_tiered_cannot_do_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="foreground"):
        tst.cache_data(ttl=5, refresh_mode="background")
    with pytest.raises(ValueError, match="on_release"):
        tst.cache_resource(on_release=lambda r: None)
    with pytest.raises(ValueError, match="validate"):
        tst.cache_resource(validate=lambda r: True)
    with pytest.raises(ValueError, match="persist"):
        tst.cache_data(persist="s3")
    with pytest.raises(ValueError, match="scope"):
        tst.cache_data(scope="user")


def test_clear_on_a_decorator_drops_every_function_it_decorated() -> None:
    runs: list[str] = []

    @tst.cache_data
    def a() -> str:
        runs.append("a")
        return "a"

    @tst.cache_resource
    def r() -> str:
        runs.append("r")
        return "r"

    @tiered.panel.cache(to_disk=True)
    def p() -> str:
        runs.append("p")
        return "p"

    a(), r(), p()
    tst.cache_data.clear()
    a(), r(), p()
    assert runs == ["a", "r", "p", "a"]
    tst.cache_resource.clear()
    tiered.panel.clear_caches()
    a(), r(), p()
    assert runs == ["a", "r", "p", "a", "r", "p"]


def test_the_end_of_a_session_drops_its_entries_in_every_cache(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = {"id": "s1"}

    def fake_current(cache: object) -> str:
        sid = f"test:{session['id']}"
        _sessions._register(sid, cache, lambda: None)
        return sid

    monkeypatch.setattr(_sessions, "current", fake_current)
    runs: list[int] = []
    funcs = []
    for i, c in enumerate([tiered.Cache(folder), tiered.Cache.in_memory()]):

        @c.memoize(scope="session")
        def f(x: int, i: int = i) -> int:
            runs.append(i)
            return x

        funcs.append(f)
    for f in funcs:
        f(1)
        f(1)
    assert runs == [0, 1]
    _sessions.ended("test:s1")
    for f in funcs:
        f(1)
    assert runs == [0, 1, 0, 1]
