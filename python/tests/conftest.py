"""Shared fixtures: a fresh cache folder per test, and a runner for child interpreters."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tiered


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
