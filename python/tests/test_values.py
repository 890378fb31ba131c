"""Values: pickle from private folders only, data-only caches, frames and arrays as keys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tiered
from tiered import _values
from conftest import run_python


class Custom:
    def __init__(self, v: int) -> None:
        self.v = v


def test_a_data_only_cache_refuses_objects_that_would_run_code(folder: Path) -> None:
    c = tiered.Cache(folder, pickle=False)
    c.set("data", {"a": [1, 2.5, "x", b"y", None, (1, 2), {3}]})
    assert c.get("data") == {"a": [1, 2.5, "x", b"y", None, (1, 2), {3}]}
    with pytest.raises(tiered.UnpicklableError, match="pickle=False"):
        c.set("obj", Custom(1))


def test_a_data_only_cache_loads_no_code_even_from_a_pickle_written_by_another(
    folder: Path, tmp_path: Path
) -> None:
    run_python(
        f"""
        import tiered
        class Custom:
            pass
        tiered.Cache({str(folder)!r}).set("obj", Custom())
        """,
        tmp_path,
    )
    c = tiered.Cache(folder, pickle=False)
    with pytest.raises(tiered.UnsafeValueError, match="data only"):
        c.get("obj")


def test_pickles_are_not_loaded_from_a_folder_others_can_write(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    ok, why = _values.folder_is_private(str(shared))
    assert not ok and "other users" in why
    decode = _values.decoder_for(str(shared), allow_pickle=True)
    fmt, data = _values.encode(Custom(3))
    with pytest.raises(tiered.UnsafeValueError, match="chmod 700"):
        decode(fmt, data)
    os.chmod(shared, 0o700)
    assert _values.folder_is_private(str(shared)) == (True, "")
    assert _values.decoder_for(str(shared), allow_pickle=True)(fmt, data).v == 3


def test_the_engine_makes_the_folder_private(folder: Path, cache: tiered.Cache) -> None:
    cache.set("k", 1)
    assert folder.stat().st_mode & 0o077 == 0


# CI sets it, with numpy, pandas, pyarrow and polars installed: then a missing one fails.
FRAMES = os.environ.get("TIERED_TEST_FRAMES") == "1"
needs_frames = pytest.mark.skipif(
    not FRAMES, reason="set TIERED_TEST_FRAMES=1 with numpy, pandas, pyarrow and polars installed"
)


@needs_frames
def test_arrays_and_frames_are_keyed_by_their_whole_content(cache: tiered.Cache) -> None:
    import numpy
    import pandas as pd

    calls = []

    @cache.memoize
    def total(data):
        calls.append(1)
        return float(numpy.asarray(data).sum())

    a = numpy.zeros(1_000_000)
    total(a)
    total(a.copy())
    b = a.copy()
    b[777_777] = 1.0  # one element in the middle: a sampled hash would miss it
    total(b)
    assert len(calls) == 2
    df = pd.DataFrame({"x": range(100_000), "y": 0.0})
    total(df)
    total(df.copy())
    df2 = df.copy()
    df2.loc[54_321, "y"] = 1.0
    total(df2)
    total(df.rename(columns={"y": "z"}))
    assert len(calls) == 5


@needs_frames
def test_arrays_load_in_a_data_only_cache(folder: Path) -> None:
    import numpy

    c = tiered.Cache(folder, pickle=False)
    c.set("a", numpy.arange(10))
    assert (c.get("a") == numpy.arange(10)).all()
