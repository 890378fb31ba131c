"""Shared fixtures: a fresh cache folder per test, and a runner for child interpreters."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tiered


@pytest.fixture(autouse=True)
def _default_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # tiered.default_cache() (the drop-ins', tiered.memoize's): a fresh one per test, in the
    # test's folder, never ./.cache/tiered in the folder pytest runs from.
    monkeypatch.setenv("TIERED_DIR", str(tmp_path / "default"))
    monkeypatch.setattr(tiered, "_default", None)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def cache(folder: Path) -> tiered.Cache:
    return tiered.Cache(folder)


def run_python(code: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Runs ``code`` in a new interpreter in ``cwd``; returns its stdout, failing on an error."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout
