"""The examples under ``examples/python/`` start: each serves its first page (Streamlit's
runs under ``AppTest``), then is stopped. Gated like ``test_frameworks.py``; CI runs this file
as its own step."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import run_python
from test_frameworks import BIN, FRAMEWORKS, Server, _free_port, servers  # noqa: F401

pytestmark = pytest.mark.skipif(
    not FRAMEWORKS, reason="set TIERED_TEST_FRAMEWORKS=1 with panel, streamlit and dash installed"
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "python"


def test_the_panel_example_serves_its_first_page(tmp_path: Path, servers: list[Server]) -> None:
    port = _free_port()
    argv = [str(BIN / "panel"), "serve", str(EXAMPLES / "panel_app.py")]
    argv += ["--port", str(port), "--address", "127.0.0.1"]
    server = Server(argv, tmp_path, {"TIERED_DIR": str(tmp_path / "cache")}, port)
    servers.append(server)
    server.wait_ready("/panel_app")
    server.stop()
    assert "Error running application handler" not in server.log.read_text(), server.log.read_text()


def test_the_streamlit_example_runs(tmp_path: Path) -> None:
    code = f"""
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({str(EXAMPLES / "streamlit_app.py")!r}, default_timeout=60)
        at.run()
        assert not at.exception, at.exception
        at.button[0].click().run()
        assert not at.exception, at.exception
        print(at.markdown[-1].value)
    """
    out = run_python(code, tmp_path, {"TIERED_DIR": str(tmp_path / "cache")})
    assert "Cache cleared" in out


def test_the_dash_example_serves_its_first_page_and_a_callback(
    tmp_path: Path, servers: list[Server]
) -> None:
    port = _free_port()
    env = {"TIERED_DIR": str(tmp_path / "cache"), "PORT": str(port)}
    server = Server([sys.executable, str(EXAMPLES / "dash_app.py")], tmp_path, env, port)
    servers.append(server)
    server.wait_ready("/")
    answer = server.post_json(
        "/_dash-update-component",
        {
            "output": "plot.figure",
            "outputs": {"id": "plot", "property": "figure"},
            "inputs": [{"id": "value", "property": "value", "value": 3}],
            "changedPropIds": ["value.value"],
            "state": [],
        },
    )
    assert answer["response"]["plot"]["figure"]["layout"]["title"] == "value 3"  # type: ignore[index]
