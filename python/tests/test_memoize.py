"""@cache.memoize: keys from bound arguments, code-aware versions, identity by file and name."""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import threading
import types
import uuid
from pathlib import Path
from typing import Callable

import pytest

import tiered
from conftest import run_python


def test_a_call_computes_once_and_hits_after(cache: tiered.Cache) -> None:
    calls = []

    @cache.memoize
    def f(x, y=2):
        calls.append((x, y))
        return x + y

    assert f(1) == 3
    assert f(1) == 3
    assert f(1, 2) == 3  # the default, given explicitly: the same call
    assert f(x=1, y=2) == 3
    assert calls == [(1, 2)]
    assert f.stats() == {"hits": 3, "misses": 1}


def test_one_int_float_and_bool_arguments_are_three_calls(cache: tiered.Cache) -> None:
    @cache.memoize
    def kind(x):
        return type(x).__name__

    assert [kind(1), kind(1.0), kind(True)] == ["int", "float", "bool"]


def test_underscore_and_ignored_parameters_are_left_out_of_the_key(cache: tiered.Cache) -> None:
    calls = []

    @cache.memoize(ignore=["verbose"])
    def load(day, _conn=None, verbose=False):
        calls.append(day)
        return day

    load("mon", _conn=threading.Lock(), verbose=True)
    load("mon", _conn=object(), verbose=False)
    assert calls == ["mon"]


def test_ignore_with_a_name_that_is_no_parameter_is_an_error(cache: tiered.Cache) -> None:
    with pytest.raises(ValueError, match="names no parameter"):

        @cache.memoize(ignore=["nope"])
        def f(x):
            return x


def test_an_unhashable_argument_names_itself_and_says_what_to_do(cache: tiered.Cache) -> None:
    @cache.memoize
    def query(sql, conn):
        return sql

    with pytest.raises(TypeError, match=r"argument `conn` of .*query.*rename it `_conn`.*hash_funcs"):
        query("select 1", threading.Lock())


def test_hash_funcs_say_what_identifies_a_type(cache: tiered.Cache) -> None:
    class Conn:
        def __init__(self, dsn: str) -> None:
            self.dsn = dsn

    calls = []

    @cache.memoize(hash_funcs={Conn: lambda c: c.dsn})
    def query(conn):
        calls.append(conn.dsn)
        return conn.dsn

    query(Conn("a"))
    query(Conn("a"))
    query(Conn("b"))
    assert calls == ["a", "b"]


def test_values_hashed_by_content(cache: tiered.Cache) -> None:
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    calls = []

    @cache.memoize
    def f(v):
        calls.append(v)
        return 1

    u = uuid.uuid4()
    for v in (Point(1, 2), Point(1, 2), Point(2, 1), Path("/a"), Path("/a"), u, uuid.UUID(str(u))):
        f(v)
    assert len(calls) == 4


def test_mutating_a_hit_changes_the_cache_unless_copy(cache: tiered.Cache) -> None:
    @cache.memoize
    def shared():
        return [1]

    @cache.memoize(copy=True)
    def copied():
        return [1]

    shared().append(2)
    assert shared() == [1, 2]
    copied().append(2)
    assert copied() == [1]


def test_clear_one_call_all_calls_and_refresh(cache: tiered.Cache) -> None:
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return x

    f(1), f(2)
    assert f.clear(1) is True
    f(1), f(2)
    assert calls == [1, 2, 1]
    f.clear()
    f(1), f(2)
    assert calls == [1, 2, 1, 1, 2]
    f.refresh(2)
    assert calls == [1, 2, 1, 1, 2, 2]


def test_an_exception_is_not_cached(cache: tiered.Cache) -> None:
    calls = []

    @cache.memoize
    def flaky(x):
        calls.append(x)
        if len(calls) == 1:
            raise RuntimeError("first")
        return x

    with pytest.raises(RuntimeError):
        flaky(1)
    assert flaky(1) == 1
    assert flaky(1) == 1
    assert len(calls) == 2


def test_wrong_arguments_raise_the_functions_own_type_error(cache: tiered.Cache) -> None:
    @cache.memoize
    def f(x):
        return x

    with pytest.raises(TypeError, match="positional argument"):
        f(1, 2)


def test_methods_bind_self(cache: tiered.Cache) -> None:
    @dataclasses.dataclass(frozen=True)
    class Model:
        scale: int

        @cache.memoize
        def times(self, x):
            return self.scale * x

    assert Model(2).times(3) == 6
    assert Model(3).times(3) == 9


def test_a_scope_callable_keys_entries_by_its_result(cache: tiered.Cache) -> None:
    user = {"id": "ann"}
    calls = []

    @cache.memoize(scope=lambda: user["id"])
    def dashboard(x):
        calls.append((user["id"], x))
        return x

    dashboard(1)
    user["id"] = "bob"
    dashboard(1)
    dashboard(1)
    assert calls == [("ann", 1), ("bob", 1)]


def test_session_scope_keeps_entries_in_memory_only(folder: Path, tmp_path: Path) -> None:
    code = f"""
        import tiered
        c = tiered.Cache({str(folder)!r})
        calls = []
        @c.memoize(scope="session")
        def plot(x):
            calls.append(x)
            return x
        plot(1); plot(1)
        print(len(calls))
    """
    assert run_python(code, tmp_path).strip() == "1"
    assert run_python(code, tmp_path).strip() == "1"


def test_tiered_disable_makes_every_call_compute(tmp_path: Path, folder: Path) -> None:
    code = f"""
        import tiered
        c = tiered.Cache({str(folder)!r})
        calls = []
        @c.memoize
        def f(x):
            calls.append(x)
            return x
        f(1); f(1)
        print(len(calls))
    """
    assert run_python(code, tmp_path, env={"TIERED_DISABLE": "1"}).strip() == "2"
    assert run_python(code, tmp_path, env={"TIERED_DISABLE": "0"}).strip() == "1"


APP = """
import tiered
cache = tiered.Cache({folder!r})
{helper}
@cache.memoize
def load(region):
    # a comment
    with open({log!r}, "a") as f:
        f.write("ran\\n")
    return scale(region)
"""

CALL = """
import runpy, sys
ns = runpy.run_path({app!r}, run_name="bokeh_app_{n}")
print(ns["load"]("eu"))
"""


def _runs(log: Path) -> int:
    return log.read_text().count("ran") if log.exists() else 0


def _write_app(path: Path, folder: Path, log: Path, helper: str, extra: str = "") -> None:
    path.write_text(APP.format(folder=str(folder), log=str(log), helper=helper) + extra)


def test_code_changes_recompute_and_comments_do_not(tmp_path: Path, folder: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    app, log = tmp_path / "app.py", tmp_path / "runs.log"
    helper = "def scale(r):\n    return r * 2\n"
    _write_app(app, folder, log, helper)
    run = lambda n: run_python(CALL.format(app=str(app), n=n), tmp_path).strip()  # noqa: E731
    assert run(1) == "eueu"
    assert run(2) == "eueu"  # a restart, as a new module: a disk hit
    assert _runs(log) == 1
    # A comment, a blank line and a docstring change nothing.
    app.write_text("\n\n# edited\n" + app.read_text().replace("# a comment", "# another comment"))
    assert run(3) == "eueu"
    assert _runs(log) == 1
    # An edited helper recomputes, once.
    _write_app(app, folder, log, "def scale(r):\n    return r * 3\n")
    assert run(4) == "eueueu"
    assert run(5) == "eueueu"
    assert _runs(log) == 2
    # So does a changed constant in the body.
    _write_app(app, folder, log, "def scale(r):\n    return r * 3 + '!'\n")
    assert run(6) == "eueueu!"
    assert _runs(log) == 3


def test_a_panel_style_session_loop_leaves_one_entry_per_argument(tmp_path: Path, folder: Path) -> None:
    # `panel serve` runs the app file as a fresh module `bokeh_app_<uuid>` in every session.
    (tmp_path / "pyproject.toml").write_text("")
    app, log = tmp_path / "app.py", tmp_path / "runs.log"
    _write_app(app, folder, log, "def scale(r):\n    return r\n")
    code = f"""
        import runpy, uuid, tiered
        for i in range(20):
            ns = runpy.run_path({str(app)!r}, run_name="bokeh_app_" + uuid.uuid4().hex)
            ns["load"]("eu")
            ns["load"]("us")
        c = tiered.Cache({str(folder)!r})
        c.flush()
        print(c.stats()["entries"])
    """
    out = run_python(code, tmp_path).strip()
    assert _runs(log) == 2
    # Two entries of `load`, and the note of its code version.
    assert int(out) == 3


def test_identity_is_the_path_in_the_project_and_the_qualified_name(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    sub = tmp_path / "pkg"
    sub.mkdir()
    mod = sub / "views.py"
    mod.write_text("def f():\n    return 1\n")
    ns: dict = {}
    exec(compile(mod.read_text(), str(mod), "exec"), ns)
    from tiered import _memoize

    assert _memoize.identity(ns["f"]) == "pkg/views.py:f"


def test_version_and_deps_are_escape_hatches(cache: tiered.Cache) -> None:
    def f(x):
        return x

    a = cache.memoize(f, version=1).version
    b = cache.memoize(f, version=2).version
    c = cache.memoize(f, deps=["data-v1"]).version
    assert len({a, b, c}) == 3


def test_explain_says_why_a_call_would_recompute(tmp_path: Path, folder: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    app = tmp_path / "app.py"
    body = "import tiered\ncache = tiered.Cache({f!r})\n@cache.memoize(tags=['t'])\ndef f(x):\n    return x * {k}\n"
    app.write_text(body.format(f=str(folder), k=2))

    def run(first: int, calls: bool) -> list[str]:
        code = f"""
            import runpy
            ns = runpy.run_path({str(app)!r})
            f, cache = ns["f"], ns["cache"]
            print(f.explain({first}))
            if {calls}:
                f(1); f(2)
                print(f.explain(1))
                cache.invalidate_tag("t")
                print(f.explain(2))
                f(2)
        """
        return run_python(code, tmp_path).splitlines()

    out = run(1, True)
    assert out[0].startswith("never written")
    assert out[1].startswith("a live value")
    assert out[2] == 'invalidated by invalidate_tag("t")'
    app.write_text(body.format(f=str(folder), k=3))
    # The code changed: f(2) was stored by the older version (f(1) was invalidated since).
    assert run(2, False)[0].startswith("the function's code changed")
    assert run(1, False)[0].startswith("invalidated") or run(1, False)[0].startswith("never")
    assert run(99, False)[0].startswith("never written")
    # After the first call of the new version dropped the older entries: still said.
    out = run(2, True)
    assert out[0].startswith("the function's code changed"), out
    assert out[1].startswith("a live value")


def _project(tmp_path: Path, files: dict[str, str]) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _version(tmp_path: Path, folder: Path, module: str, func: str, env: dict | None = None) -> int:
    out = run_python(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        import {module} as m
        print(m.{func}.version)
        """,
        tmp_path,
        env=env,
    )
    return int(out.strip())


def test_a_version_is_the_same_under_every_hash_seed(tmp_path: Path, folder: Path) -> None:
    # A set literal's repr order depends on the hash seed: versions must not.
    _project(tmp_path, {"app.py": f"""
        import tiered
        cache = tiered.Cache({str(folder)!r})
        KINDS = frozenset({{"alpha", "beta", "gamma", "delta"}})
        @cache.memoize
        def known(x, tags=frozenset({{"a", "b", "c", "d", "e"}})):
            return x in {{"alpha", "beta", "gamma", "delta"}} or x in KINDS
    """})
    versions = {_version(tmp_path, folder, "app", "known", {"PYTHONHASHSEED": str(s)}) for s in (1, 2, 3, 4)}
    assert len(versions) == 1


def test_helpers_and_constants_defined_below_the_function_count_in_its_version(
    tmp_path: Path, folder: Path
) -> None:
    body = """
        import tiered
        cache = tiered.Cache({folder!r})
        @cache.memoize
        def load(x):
            return scale(x) + OFFSET
        def scale(x):
            return x * {factor}
        OFFSET = {offset}
    """
    _project(tmp_path, {"app.py": body.format(folder=str(folder), factor=2, offset=0)})
    v1 = _version(tmp_path, folder, "app", "load")
    _project(tmp_path, {"app.py": body.format(folder=str(folder), factor=3, offset=0)})
    v2 = _version(tmp_path, folder, "app", "load")
    _project(tmp_path, {"app.py": body.format(folder=str(folder), factor=3, offset=5)})
    v3 = _version(tmp_path, folder, "app", "load")
    assert len({v1, v2, v3}) == 3


def test_dotted_module_helpers_and_sibling_methods_count_in_the_version(
    tmp_path: Path, folder: Path
) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "",
        "pkg/sub/deep.py": "def f(x):\n    return x * {k}\n",
        "app.py": f"""
            import tiered, pkg.sub.deep
            cache = tiered.Cache({str(folder)!r})
            @cache.memoize
            def c(x):
                return pkg.sub.deep.f(x)
            class Svc:
                def helper(self, x):
                    return x + {{h}}
                @cache.memoize(hash_funcs={{object: lambda s: 1}})
                def run(self, x):
                    return self.helper(x)
        """,
    }
    def write(k: int, h: int) -> None:
        _project(tmp_path, {n: t.replace("{k}", str(k)).replace("{h}", str(h))
                            for n, t in files.items()})

    write(2, 1)
    base = (_version(tmp_path, folder, "app", "c"), _version(tmp_path, folder, "app", "Svc.run"))
    write(3, 1)
    deep = (_version(tmp_path, folder, "app", "c"), _version(tmp_path, folder, "app", "Svc.run"))
    write(3, 7)
    method = (_version(tmp_path, folder, "app", "c"), _version(tmp_path, folder, "app", "Svc.run"))
    assert deep[0] != base[0] and deep[1] == base[1]
    assert method[0] == deep[0] and method[1] != deep[1]


SCRIPT_APP = """
import dataclasses, enum, tiered
cache = tiered.Cache({folder!r})

class Region(enum.Enum):
    EU = 1
    US = 2

@dataclasses.dataclass
class Result:
    total: int

@cache.memoize
def load(region):
    with open({log!r}, "a") as f:
        f.write("ran\\n")
    return Result(len(region.name))

# Called as the app runs (as a Panel app's layout code does), while its module is importable.
VALUE = load(Region.EU)
"""


def test_a_panel_apps_own_types_key_alike_in_every_session_and_their_values_load_or_recompute(
    tmp_path: Path, folder: Path
) -> None:
    # Panel runs the app file as a fresh module `bokeh_app_<uuid>` per session: a type defined
    # there must key the same in every session, and a value pickled by another session's
    # module (gone after a restart) is a miss that computes again, not an error.
    (tmp_path / "pyproject.toml").write_text("")
    app, log = tmp_path / "app.py", tmp_path / "runs.log"
    app.write_text(SCRIPT_APP.format(folder=str(folder), log=str(log)))
    code = f"""
        import runpy, uuid, warnings
        warnings.simplefilter("ignore")
        for _ in range(5):
            ns = runpy.run_path({str(app)!r}, run_name="bokeh_app_" + uuid.uuid4().hex)
            assert ns["VALUE"].total == 2
    """
    run_python(code, tmp_path)
    assert _runs(log) == 1, "one computation across sessions of one process"
    run_python(code, tmp_path)
    assert _runs(log) == 2, "after a restart: the stored value's module is gone, computed once more"


def test_closures_made_by_one_factory_are_keyed_by_what_they_captured(cache: tiered.Cache) -> None:
    def make_loader(table):
        @cache.memoize
        def load(day):
            return f"{table}:{day}"

        return load

    users, orders = make_loader("users"), make_loader("orders")
    assert (users("mon"), orders("mon"), users("mon")) == ("users:mon", "orders:mon", "users:mon")


def test_what_memoize_cannot_tell_apart_is_refused(cache: tiered.Cache) -> None:
    import functools

    def add(a, b):
        return a + b

    class Scaler:
        def __call__(self, x):
            return x

        def method(self, x):
            return x

    for bad, hint in [
        (functools.partial(add, 10), "partial"),
        (Scaler(), "__call__"),
        (Scaler().method, "class body"),
        (staticmethod(add), "below"),
    ]:
        with pytest.raises(TypeError, match=hint):
            cache.memoize(bad)


def test_two_lambdas_of_one_file_are_two_functions(cache: tiered.Cache) -> None:
    square = cache.memoize(lambda x: x * x)
    cube = cache.memoize(lambda x: x * x * x)
    assert square.identity != cube.identity
    assert (square(3), cube(3)) == (9, 27)


def test_functions_as_arguments_and_captured_values_are_keyed_by_what_they_captured(
    cache: tiered.Cache,
) -> None:
    import functools

    def adder(n):
        return lambda x: x + n

    @cache.memoize
    def apply(fn, x):
        return fn(x)

    assert (apply(adder(1), 1), apply(adder(2), 1)) == (2, 3)
    assert (apply(functools.partial(pow, 2), 3), apply(functools.partial(pow, 3), 3)) == (8, 27)

    def make(fn):
        @cache.memoize
        def run(x):
            return fn(x)

        return run

    assert (make(adder(1))(1), make(adder(2))(1)) == (2, 3)


def test_an_inherited_method_and_a_property_count_in_a_methods_version(
    tmp_path: Path, folder: Path
) -> None:
    body = f"""
        import tiered
        cache = tiered.Cache({str(folder)!r})
        class Base:
            def inherited(self, x):
                return x + {{a}}
            @property
            def prop(self):
                return {{b}}
        class Svc(Base):
            @cache.memoize(hash_funcs={{object: lambda s: 1}})
            def run(self, x):
                return self.inherited(x) + self.prop
    """
    versions = []
    for a, b in [(1, 1), (2, 1), (2, 2)]:
        _project(tmp_path, {"svc.py": body.replace("{a}", str(a)).replace("{b}", str(b))})
        versions.append(_version(tmp_path, folder, "svc", "Svc.run"))
    assert len(set(versions)) == 3, versions


def _eventually(check: Callable[[], bool], within: float = 10.0) -> bool:
    import time

    until = time.monotonic() + within
    while time.monotonic() < until:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_refresh_returns_the_old_value_at_once_and_recomputes_it_in_the_background(
    cache: tiered.Cache,
) -> None:
    import time

    source = {"value": 1, "runs": 0}
    gate = threading.Event()
    gate.set()

    @cache.memoize(ttl=600, refresh=0.2, name="tests.refresh.price")
    def price(region: str) -> int:
        source["runs"] += 1
        gate.wait(10)
        return source["value"]

    assert price("eu") == 1
    time.sleep(0.3)  # older than refresh: due
    source["value"] = 2
    gate.clear()  # the recomputation waits here
    started = time.monotonic()
    assert price("eu") == 1, "the value at hand"
    assert price("eu") == 1
    assert time.monotonic() - started < 5, "a due call waited for its recomputation"
    assert _eventually(lambda: source["runs"] == 2), "no recomputation started"
    gate.set()
    assert _eventually(lambda: price("eu") == 2), "the recomputed value never came"
    assert source["runs"] == 2, "one recomputation"
    assert cache.stats()["refreshes"] == 1


def test_a_failing_refresh_keeps_the_old_value_and_is_counted(cache: tiered.Cache) -> None:
    import time

    state = {"fail": False}

    @cache.memoize(ttl=600, refresh=0.1, name="tests.refresh.rate")
    def rate(pair: str) -> float:
        if state["fail"]:
            raise RuntimeError("the source is down")
        return 1.5

    assert rate("eur") == 1.5
    state["fail"] = True
    time.sleep(0.2)
    assert rate("eur") == 1.5
    assert _eventually(lambda: cache.stats()["refresh_failures"] == 1)
    assert rate("eur") == 1.5


def test_refresh_options_are_checked_at_decoration(cache: tiered.Cache) -> None:
    with pytest.raises(ValueError, match="refresh=0"):
        cache.memoize(refresh=0)(lambda x: x)
    with pytest.raises(ValueError, match="goes with refresh="):
        cache.memoize(refresh_early=5)(lambda x: x)
    with pytest.raises(TypeError, match="async def"):

        @cache.memoize(refresh=5)
        async def later(x: int) -> int:
            return x
