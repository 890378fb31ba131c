"""The drop-ins and sessions under the real frameworks: ``panel serve --dev``, Streamlit's
``AppTest``, a Dash server and Flask sessions (the examples: ``test_examples.py``).

CI sets ``TIERED_TEST_FRAMEWORKS=1`` with panel, streamlit and dash installed: then a missing
framework fails. Servers run as child processes on free ports; every wait is bounded and says
what it waited for.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

import tiered
from conftest import run_python

FRAMEWORKS = os.environ.get("TIERED_TEST_FRAMEWORKS") == "1"
pytestmark = pytest.mark.skipif(
    not FRAMEWORKS, reason="set TIERED_TEST_FRAMEWORKS=1 with panel, streamlit and dash installed"
)

BIN = Path(sys.executable).parent
WAIT = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


class Server:
    """A server in a child process, stopped with Ctrl-C (SIGINT) as a developer stops it."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], port: int) -> None:
        self.port = port
        self.log = cwd / f"server-{port}.log"
        full = dict(os.environ, **env)
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=full, stdout=out, stderr=subprocess.STDOUT)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited ({self.proc.returncode}):\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url(path), timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        pytest.fail(f"no answer from {self.url(path)} within {WAIT} s:\n{self.log.read_text()}")

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url(path), timeout=WAIT) as r:
            assert r.status == 200, f"GET {path}: {r.status}"
            return r.read().decode()

    def post_json(self, path: str, payload: object) -> object:
        req = urllib.request.Request(
            self.url(path),
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=WAIT) as r:
            assert r.status == 200, f"POST {path}: {r.status}"
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for s in started:
        s.stop()


def _wait_for(what: str, check, timeout: float = WAIT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"waited {timeout} s for {what}")


# ---- Panel ----

PANEL_APP = """
import os, time
import panel as pn
import tiered.panel

@tiered.panel.cache(to_disk=True)
def query(value):
    time.sleep(1)  # a slow database query
    with open(os.environ["RUNS"], "a") as f:
        f.write("computed\\n")
    return value * 2

result = query(21)
with open(os.environ["SERVED"], "a") as f:
    f.write(f"{result}\\n")
pn.pane.Markdown(f"result={result}").servable()
"""


def test_panel_serve_dev_reuses_a_query_across_sessions_reloads_and_restarts(
    tmp_path: Path, servers: list[Server]
) -> None:
    app, runs, served = tmp_path / "app.py", tmp_path / "runs.log", tmp_path / "served.log"
    app.write_text(PANEL_APP)
    env = {"TIERED_DIR": str(tmp_path / "cache"), "RUNS": str(runs), "SERVED": str(served)}

    def serve() -> Server:
        port = _free_port()
        argv = [str(BIN / "panel"), "serve", "app.py", "--dev", "--port", str(port)]
        argv += ["--address", "127.0.0.1", "--allow-websocket-origin", f"127.0.0.1:{port}"]
        s = Server(argv, tmp_path, env, port)
        servers.append(s)
        s.wait_ready("/app")
        return s

    server = serve()
    # The first page (or --dev's warm-up before it) runs the query, once.
    assert _lines(runs) == ["computed"]
    server.get("/app")  # a second session: a hit
    assert _lines(runs) == ["computed"]
    # A touch of the app file (what an editor's save does, and --dev's reload): still a hit.
    os.utime(app)
    server.get("/app")
    assert _lines(runs) == ["computed"]
    # An edit of the function's body: computed once, then hits again.
    app.write_text(PANEL_APP.replace("value * 2", "value * 3"))
    server.get("/app")
    server.get("/app")
    assert _lines(runs) == ["computed", "computed"]
    assert _lines(served)[-2:] == ["63", "63"]
    assert set(_lines(served)[:-2]) == {"42"}
    # A restart of the server: the query comes from the disk.
    server.stop()
    server = serve()
    server.get("/app")
    assert _lines(runs) == ["computed", "computed"]
    assert _lines(served)[-1] == "63"


def test_panel_drops_a_session_s_entries_when_the_session_is_destroyed(
    tmp_path: Path, servers: list[Server]
) -> None:
    (tmp_path / "probe.py").write_text(
        textwrap.dedent(
            """
            import os
            import tiered._sessions

            def ended(sid):
                with open(os.environ["ENDED"], "a") as f:
                    f.write(sid + "\\n")

            tiered._sessions.on_end(ended)
            """
        )
    )
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import os
            import panel as pn
            import probe
            import tiered, tiered.panel, tiered._sessions

            @tiered.panel.cache(per_session=True)
            def plot(x):
                return object()

            plot(1)
            with open(os.environ["STARTED"], "a") as f:
                f.write(tiered._sessions.current(tiered.default_cache()) + "\\n")
            pn.pane.Markdown("ok").servable()
            """
        )
    )
    started, ended = tmp_path / "started.log", tmp_path / "ended.log"
    port = _free_port()
    argv = [str(BIN / "panel"), "serve", "app.py", "--port", str(port), "--address", "127.0.0.1"]
    # A page whose browser never connects: Bokeh destroys its session after a second.
    argv += ["--unused-session-lifetime", "1000", "--check-unused-sessions", "300"]
    env = {"TIERED_DIR": str(tmp_path / "cache"), "STARTED": str(started), "ENDED": str(ended)}
    server = Server(argv, tmp_path, env, port)
    servers.append(server)
    server.wait_ready("/app")
    server.get("/app")
    _wait_for("two Panel sessions to end", lambda: len(set(_lines(ended))) >= 2)
    ids = set(_lines(started))
    assert all(i.startswith("panel:") for i in ids), ids
    assert set(_lines(ended)) <= ids and len(set(_lines(ended))) >= 2


def test_a_param_depends_method_is_keyed_by_the_parameters_it_depends_on(folder: Path) -> None:
    import param

    import tiered.panel

    runs: list[str] = []

    class Explorer(param.Parameterized):
        dataset = param.String(default="penguins")
        other = param.Integer(default=0)

        @tiered.panel.cache
        @param.depends("dataset")
        def fetch(self) -> str:
            runs.append(self.dataset)
            return self.dataset.upper()

    a, b = Explorer(), Explorer()
    assert a.fetch() == "PENGUINS"
    b.other = 5  # not a dependency
    assert b.fetch() == "PENGUINS"
    assert runs == ["penguins"]
    b.dataset = "titanic"
    assert b.fetch() == "TITANIC"
    assert runs == ["penguins", "titanic"]
    # Panel still sees the method's dependencies through the cache.
    assert Explorer.param.method_dependencies("fetch")


# ---- Streamlit ----

STREAMLIT_SCRIPT = """
import os
import streamlit as st
import tiered.streamlit as tst

@tst.cache_data
def load(n):
    with open(os.environ["RUNS"], "a") as f:
        f.write("computed\\n")
    return {"rows": list(range(n))}

st.write(len(load(5)["rows"]))
"""

APPTEST_RUN = """
import json, os, tiered
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("app.py", default_timeout=60)
at.run()
assert not at.exception, at.exception
at.run()
assert not at.exception, at.exception
stats = tiered.default_cache().stats()
print(json.dumps({"markdown": [m.value for m in at.markdown], "stats": stats}))
"""


def test_streamlit_cache_data_hits_from_disk_after_a_restart(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(STREAMLIT_SCRIPT)
    runs = tmp_path / "runs.log"
    env = {"TIERED_DIR": str(tmp_path / "cache"), "RUNS": str(runs)}
    first = json.loads(run_python(APPTEST_RUN, tmp_path, env).splitlines()[-1])
    assert _lines(runs) == ["computed"]
    assert first["stats"]["memory_hits"] >= 1  # the second run of the script
    # A restart: a new process, whose memory tier starts empty, reads the entry from disk:
    # itself, or through the warm restart, which loads recent entries into memory at open.
    second = json.loads(run_python(APPTEST_RUN, tmp_path, env).splitlines()[-1])
    assert _lines(runs) == ["computed"]
    stats = second["stats"]
    assert stats["disk_hits"] >= 1 or (stats["warm_loaded"] >= 1 and stats["memory_hits"] >= 1)
    assert stats["misses"] == 0
    assert second["markdown"] == first["markdown"] == ["`5`"]


def test_streamlit_drops_a_session_s_entries_when_the_session_disconnects(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        textwrap.dedent(
            """
            import os
            import streamlit as st
            import tiered.streamlit as tst

            @tst.cache_data(scope="session")
            def mine(n):
                with open(os.environ["RUNS"], "a") as f:
                    f.write("computed\\n")
                return n

            st.write(mine(1))
            """
        )
    )
    runs = tmp_path / "runs.log"
    code = """
        from streamlit.runtime import caching
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file("app.py", default_timeout=60)
        at.run(); at.run()
        assert not at.exception, at.exception
        print(open("runs.log").read().count("computed"))
        # What Streamlit does when a session's browser disconnects
        # (AppSession.clear_session_caches): release the session's scoped caches.
        caching.clear_session_resource_cache("test session id")
        at.run()
        print(open("runs.log").read().count("computed"))
    """
    out = run_python(code, tmp_path, {"TIERED_DIR": str(tmp_path / "cache"), "RUNS": str(runs)})
    assert out.split()[-2:] == ["1", "2"]


# ---- Dash and Flask ----

DASH_APP = """
import os, time
from dash import Dash, Input, Output, dcc, html
import tiered

@tiered.memoize
def slow(value):
    time.sleep(1)
    with open(os.environ["RUNS"], "a") as f:
        f.write(f"computed {value}\\n")
    return f"data for {value}"

app = Dash(__name__)
app.layout = html.Div([dcc.Input(id="inp", value="a"), html.Div(id="out")])

@app.callback(Output("out", "children"), Input("inp", "value"))
def update(value):
    return slow(value)

app.run(port=int(os.environ["PORT"]), debug=False)
"""

DASH_CALL = {
    "output": "out.children",
    "outputs": {"id": "out", "property": "children"},
    "inputs": [{"id": "inp", "property": "value", "value": "q"}],
    "changedPropIds": ["inp.value"],
    "state": [],
}


def test_a_dash_callback_hits_after_the_server_restarts(tmp_path: Path, servers: list[Server]) -> None:
    (tmp_path / "app.py").write_text(DASH_APP)
    runs = tmp_path / "runs.log"
    answers = []
    for _ in range(2):
        port = _free_port()
        env = {"TIERED_DIR": str(tmp_path / "cache"), "RUNS": str(runs), "PORT": str(port)}
        server = Server([sys.executable, "app.py"], tmp_path, env, port)
        servers.append(server)
        server.wait_ready("/")
        answers.append(server.post_json("/_dash-update-component", DASH_CALL))
        server.stop()
    assert _lines(runs) == ["computed q"]
    assert answers[0] == answers[1]
    assert answers[0]["response"]["out"]["children"] == "data for q"  # type: ignore[index]


def _flask_app(cache: tiered.Cache, runs: list[str], secret: str | None):  # type: ignore[no-untyped-def]
    import dash
    from dash import Input, Output, html

    @cache.memoize(scope="session")
    def mine(value: str) -> str:
        runs.append(value)
        return value.upper()

    app = dash.Dash(__name__)
    if secret:
        app.server.secret_key = secret
    app.layout = html.Div([html.Div(id="inp"), html.Div(id="out")])

    @app.callback(Output("out", "children"), Input("inp", "children"))
    def update(value: str) -> str:
        return mine(value)

    return app


def _call(client, value: str) -> dict:  # type: ignore[no-untyped-def]
    payload = dict(DASH_CALL, inputs=[{"id": "inp", "property": "children", "value": value}])
    payload["changedPropIds"] = ["inp.children"]
    r = client.post("/_dash-update-component", json=payload)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def test_dash_sessions_are_browser_cookies_and_end_after_an_idle_time(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tiered import _sessions

    runs: list[str] = []
    app = _flask_app(tiered.Cache(folder), runs, secret="s3cret")
    alice, bob = app.server.test_client(), app.server.test_client()
    _call(alice, "x")
    _call(alice, "x")
    assert runs == ["x"]
    _call(bob, "x")  # another browser, another session
    assert runs == ["x", "x"]
    # Bob keeps calling; Alice is idle past the limit: her session ends, her entries go.
    monkeypatch.setattr(_sessions, "FLASK_IDLE", 0.5)
    monkeypatch.setattr(_sessions, "_flask_swept", 0.0)
    time.sleep(0.6)
    _call(bob, "x")
    assert runs == ["x", "x"]
    _call(alice, "x")
    assert runs == ["x", "x", "x"]


def test_session_scope_in_dash_without_a_secret_key_says_what_to_do(folder: Path) -> None:
    app = _flask_app(tiered.Cache(folder), [], secret=None)
    r = app.server.test_client().post(
        "/_dash-update-component",
        json=dict(DASH_CALL, inputs=[{"id": "inp", "property": "children", "value": "x"}]),
    )
    assert r.status_code == 500
    with pytest.raises(RuntimeError, match="secret_key"):
        with app.server.test_request_context():
            from tiered import _sessions

            _sessions.current(tiered.Cache(folder))
