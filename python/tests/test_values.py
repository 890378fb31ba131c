"""Values: pickle from private folders only, data-only caches, frames and arrays as keys."""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
from pathlib import Path

import pytest

import tiered
from tiered import _values
from tiered._formats import (
    ARROW_BATCH,
    ARROW_TABLE,
    NDARRAY,
    PANDAS_FRAME,
    PANDAS_SERIES,
    PICKLE,
    PICKLE_OOB,
    POLARS_FRAME,
    POLARS_SERIES,
    SAFE,
)
from conftest import run_python

sys.path.insert(0, str(Path(__file__).parent))  # value_matrix, for this process and children


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


def test_the_fast_path_for_plain_pickles_opens_only_once_the_folder_is_found_private(
    tmp_path: Path,
) -> None:
    # The extension calls `plain_pickle` directly for format 0, past the decoder's checks:
    # it must stay None until those checks have passed, and for a data-only cache.
    fmt, data = _values.encode({"a": [1, 2]})
    assert fmt == PICKLE
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    refused = _values.decoder_for(str(shared), allow_pickle=True)
    assert refused.plain_pickle is None
    with pytest.raises(tiered.UnsafeValueError):
        refused(fmt, data)
    assert refused.plain_pickle is None
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    checked = _values.decoder_for(str(private), allow_pickle=True)
    assert checked.plain_pickle is None
    assert checked(fmt, data) == {"a": [1, 2]}
    assert checked.plain_pickle is pickle.loads
    assert _values.decoder_for(str(private), allow_pickle=False).plain_pickle is None
    assert _values.decoder_for(None, allow_pickle=True).plain_pickle is pickle.loads


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


# --- formats: frames, tables and arrays without pickle; pickle with out-of-band buffers ------

TESTS = str(Path(__file__).parent)


def _written_by_another_process(
    folder: Path, tmp_path: Path, builder: str, options: str = ""
) -> None:
    """Stores every value of ``value_matrix.<builder>()`` under its name, in a child process."""
    run_python(
        f"""
        import sys
        sys.path.insert(0, {TESTS!r})
        import tiered, value_matrix
        c = tiered.Cache({str(folder)!r}{options})
        for name, value in value_matrix.{builder}().items():
            c.set(name, value)
        c.close()
        """,
        tmp_path,
    )


def _read_back_exactly(c: tiered.Cache, expected: dict) -> None:
    from value_matrix import assert_same

    for name, value in expected.items():
        try:
            assert_same(value, c.get(name))
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from e


def _formats_by_name(values: dict) -> dict[str, int]:
    return {name: _values.encode(v)[0] for name, v in values.items()}


@needs_frames
def test_pandas_frames_come_back_exactly_after_a_restart(folder: Path, tmp_path: Path) -> None:
    import value_matrix

    _written_by_another_process(folder, tmp_path, "pandas_frames")
    _read_back_exactly(tiered.Cache(folder), value_matrix.pandas_frames())


@needs_frames
def test_pandas_series_come_back_exactly_after_a_restart(folder: Path, tmp_path: Path) -> None:
    import value_matrix

    _written_by_another_process(folder, tmp_path, "pandas_series")
    _read_back_exactly(tiered.Cache(folder), value_matrix.pandas_series())


@needs_frames
def test_frames_arrow_gives_back_exactly_are_stored_as_arrow_the_others_pickled() -> None:
    import value_matrix

    for builder, arrow_fmt in (
        (value_matrix.pandas_frames, PANDAS_FRAME),
        (value_matrix.pandas_series, PANDAS_SERIES),
    ):
        for name, fmt in _formats_by_name(builder()).items():
            want = {arrow_fmt} if name.startswith("arrow") else {PICKLE, PICKLE_OOB}
            assert fmt in want, f"{name}: format {fmt}, expected one of {want}"


@needs_frames
def test_numpy_arrays_come_back_exactly_and_writable_after_a_restart(
    folder: Path, tmp_path: Path
) -> None:
    import value_matrix

    assert set(_formats_by_name(value_matrix.numpy_arrays()).values()) == {NDARRAY}
    _written_by_another_process(folder, tmp_path, "numpy_arrays")
    c = tiered.Cache(folder)
    _read_back_exactly(c, value_matrix.numpy_arrays())
    c.get("float64")[0] = 42.0  # writable, like the array that was stored


@needs_frames
def test_polars_frames_and_series_come_back_exactly_after_a_restart(
    folder: Path, tmp_path: Path
) -> None:
    import value_matrix

    formats = _formats_by_name(value_matrix.polars_values())
    assert formats == {"frame": POLARS_FRAME, "empty frame": POLARS_FRAME, "series": POLARS_SERIES}
    _written_by_another_process(folder, tmp_path, "polars_values")
    _read_back_exactly(tiered.Cache(folder), value_matrix.polars_values())


@needs_frames
def test_a_polars_frame_of_python_objects_is_not_stored_as_their_addresses() -> None:
    import polars as pl

    frame = pl.DataFrame({"o": pl.Series([{1}, {2}], dtype=pl.Object), "i": [1, 2]})
    with pytest.raises(tiered.UnpicklableError, match="memory_only=True"):
        _values.encode(frame)
    with pytest.raises(tiered.UnpicklableError, match="memory_only=True"):
        _values.encode(frame["o"])


@needs_frames
def test_arrow_tables_and_batches_come_back_exactly_after_a_restart(
    folder: Path, tmp_path: Path
) -> None:
    import value_matrix

    formats = _formats_by_name(value_matrix.arrow_values())
    assert formats == {"table": ARROW_TABLE, "batch": ARROW_BATCH, "empty table": ARROW_TABLE}
    _written_by_another_process(folder, tmp_path, "arrow_values")
    _read_back_exactly(tiered.Cache(folder), value_matrix.arrow_values())


@needs_frames
def test_objects_holding_arrays_are_pickled_with_their_buffers_out_of_band(
    folder: Path, tmp_path: Path
) -> None:
    import numpy

    code = """
        import numpy, pandas
        value = {
            "a": numpy.arange(100_000, dtype="float64"),
            "f": numpy.asfortranarray(numpy.arange(12).reshape(3, 4)),
            "frame": pandas.DataFrame({"x": numpy.arange(1000)}),
            "objects": numpy.array([1, "a", None], dtype=object),
        }
    """
    scope: dict = {}
    exec(textwrap.dedent(code), scope)
    value = scope["value"]
    assert _values.encode(value)[0] == PICKLE_OOB
    assert _values.encode(value["objects"])[0] == PICKLE  # object arrays: pickle, no raw bytes
    run_python(
        code + f"""
        import tiered
        c = tiered.Cache({str(folder)!r})
        c.set("v", value)
        c.close()
        """,
        tmp_path,
    )
    got = tiered.Cache(folder).get("v")
    # 800 KB: read from its side file's private mapping, without a copy: aligned, writable,
    # and a write changes neither the file nor what the next process reads.
    a = got["a"]
    assert numpy.array_equal(a, value["a"]) and a.flags.aligned and a.flags.writeable
    a[0] = -1.0
    again = run_python(
        f"import tiered; print(tiered.Cache({str(folder)!r}).get('v')['a'][0])", tmp_path
    )
    assert float(again) == 0.0
    assert numpy.array_equal(got["f"], value["f"]) and got["f"].flags.f_contiguous
    assert got["frame"].equals(value["frame"])
    assert list(got["objects"]) == [1, "a", None]


@needs_frames
def test_a_data_only_cache_stores_frames_tables_and_arrays_without_pickle(
    folder: Path, tmp_path: Path
) -> None:
    import value_matrix

    for builder in ("numpy_arrays", "polars_values", "arrow_values"):
        _written_by_another_process(folder, tmp_path, builder, options=", pickle=False")
    c = tiered.Cache(folder, pickle=False)
    for builder in (value_matrix.numpy_arrays, value_matrix.polars_values, value_matrix.arrow_values):
        _read_back_exactly(c, builder())
    for name, frame in {**value_matrix.pandas_frames(), **value_matrix.pandas_series()}.items():
        if name.startswith("arrow"):
            c.set(name, frame)
            _read_back_exactly(c, {name: frame})
        else:
            with pytest.raises(tiered.UnpicklableError, match="pickle=False"):
                c.set(name, frame)


@needs_frames
def test_a_frame_arrow_cannot_convert_is_pickled_and_still_comes_back(
    folder: Path, tmp_path: Path
) -> None:
    import pandas as pd

    # text that is not valid UTF-8 (a lone surrogate): the structural check lets it through,
    # pyarrow refuses it
    frame = pd.DataFrame({"name": pd.Series(["ok", "\udcff"], dtype=object)})
    assert _values.encode(frame)[0] == PICKLE_OOB
    run_python(
        f"""
        import pandas as pd, tiered
        c = tiered.Cache({str(folder)!r})
        c.set("f", pd.DataFrame({{"name": pd.Series(["ok", "\\udcff"], dtype=object)}}))
        c.close()
        """,
        tmp_path,
    )
    pd.testing.assert_frame_equal(tiered.Cache(folder).get("f"), frame, check_exact=True)
    with pytest.raises(tiered.UnpicklableError, match="pyarrow cannot convert it"):
        tiered.Cache(tmp_path / "data-only", pickle=False).set("f", frame)


@needs_frames
def test_frames_and_arrays_load_from_a_folder_others_can_write_pickles_do_not(
    tmp_path: Path,
) -> None:
    import numpy
    import pandas as pd

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    decode = _values.decoder_for(str(shared), allow_pickle=True)
    frame = pd.DataFrame({"a": [1, 2]})
    assert decode(*_values.encode(frame)).equals(frame)
    assert (decode(*_values.encode(numpy.arange(3))) == numpy.arange(3)).all()
    fmt, data = _values.encode({"a": numpy.arange(3)})
    assert fmt == PICKLE_OOB
    with pytest.raises(tiered.UnsafeValueError, match="chmod 700"):
        decode(fmt, data)


@needs_frames
def test_a_stored_frame_naming_another_librarys_dtype_is_not_built(tmp_path: Path) -> None:
    import json

    import pandas as pd
    import pyarrow as pa

    from tiered._formats import arrow

    built = []

    @pd.api.extensions.register_extension_dtype
    class Planted(pd.api.extensions.ExtensionDtype):
        name = "tiered_test_planted"
        type = object

        @classmethod
        def construct_array_type(cls):  # type: ignore[no-untyped-def]
            return pd.arrays.NumpyExtensionArray

        def __from_arrow__(self, array):  # type: ignore[no-untyped-def]
            built.append(array)
            return pd.array([0] * len(array))

    table = pa.Table.from_pandas(pd.DataFrame({"a": [1, 2]}))
    described = json.loads(table.schema.metadata[b"pandas"])
    described["columns"][0]["numpy_type"] = "tiered_test_planted"
    table = table.replace_schema_metadata({b"pandas": json.dumps(described).encode()})
    table.to_pandas()
    assert built, "pyarrow alone builds the planted dtype: the check below is what stops it"
    built.clear()
    data = arrow._write(pa, table)
    with pytest.raises(tiered.UnsafeValueError, match="tiered_test_planted"):
        _values.decode(PANDAS_FRAME, data)
    with pytest.raises(tiered.UnsafeValueError, match="tiered_test_planted"):
        _values.decode_safe(PANDAS_FRAME, data)
    assert not built


@needs_frames
def test_each_hit_of_a_copying_memoized_function_gets_its_own_array(
    folder: Path, tmp_path: Path
) -> None:
    import numpy

    c = tiered.Cache(folder)

    @c.memoize(copy=True)
    def grid(n: int) -> numpy.ndarray:
        return numpy.zeros((n, n))

    first = grid(3)
    second = grid(3)
    assert not numpy.shares_memory(first, second)
    first[0, 0] = 1.0
    assert grid(3)[0, 0] == 0.0


def test_values_stored_by_earlier_versions_still_load() -> None:
    import pickle

    value = {"a": [1, 2.5, "x"], "b": (None, b"y")}
    data = pickle.dumps(value, protocol=5)
    assert _values.decode(PICKLE, data) == value
    assert _values.decode(SAFE, data) == value
    assert _values.decode_safe(PICKLE, data) == value


def test_plain_values_are_pickled_in_band() -> None:
    assert _values.encode({"a": [1, 2]})[0] == PICKLE
    assert _values.encode_safe({"a": [1, 2]})[0] == SAFE


@needs_frames
def test_a_damaged_framed_value_raises_a_clear_error() -> None:
    import numpy

    fmt, data = _values.encode({"a": numpy.arange(1000)})
    with pytest.raises(ValueError, match="damaged"):
        _values.decode(fmt, bytes(data)[:200])
    fmt, data = _values.encode(numpy.arange(1000))
    with pytest.raises(ValueError):
        _values.decode(fmt, bytes(data)[:200])
    with pytest.raises(ValueError, match="newer tiered"):
        _values.decode(200, b"")


LARGE_FRAMES = """
    import numpy, pandas as pd
    n = 200_000
    frames = {
        "numeric": pd.DataFrame(
            {"f": numpy.arange(n) / 7, "i": numpy.arange(n), "b": numpy.arange(n) % 2 == 0}
        ),
        "mixed": pd.DataFrame({
            "f": numpy.arange(n) / 7,
            "t": pd.date_range("2026-01-01", periods=n, freq="s", tz="Europe/Paris"),
            "s": ["x" + str(i % 10) for i in range(n)],
        }),
    }
"""


@needs_frames
def test_a_large_frame_is_read_in_place_writable_and_the_file_never_changes(
    folder: Path, tmp_path: Path
) -> None:
    import pandas.testing as pdt

    run_python(
        LARGE_FRAMES
        + f"""
    import tiered
    c = tiered.Cache({str(folder)!r})
    for k, v in frames.items():
        c.set(k, v)
    c.close()
    """,
        tmp_path,
    )
    scope: dict = {}
    exec(textwrap.dedent(LARGE_FRAMES), scope)
    cache = tiered.Cache(folder)
    for name, expected in scope["frames"].items():
        got = cache.get(name)
        pdt.assert_frame_equal(got, expected, check_exact=True)
        got.iloc[0, 0] = -1.0  # writable, whether read in place or copied
        got.loc[1, "f"] = -2.0
    check = run_python(
        f"""
        import tiered
        c = tiered.Cache({str(folder)!r})
        print(c.get("numeric").iloc[0, 0], c.get("mixed").loc[1, "f"])
        """,
        tmp_path,
    )
    assert [float(x) for x in check.split()] == [0.0, 1 / 7]


@needs_frames
def test_a_frame_decoded_from_a_writable_buffer_is_a_view_into_it() -> None:
    # What a large frame's read does with its side file's private mapping: its numeric
    # columns point into the buffer, with no copy.
    import numpy
    import pandas as pd
    import pandas.testing as pdt

    frame = pd.DataFrame({"f": numpy.arange(100_000) / 7, "i": numpy.arange(100_000)})
    fmt, data = _values.encode(frame)
    buf = bytearray(data)
    got = _values.decode(fmt, memoryview(buf))
    pdt.assert_frame_equal(got, frame, check_exact=True)
    start = numpy.frombuffer(buf, numpy.uint8).__array_interface__["data"][0]
    for column in ("f", "i"):
        at = got[column].to_numpy().__array_interface__["data"][0]
        assert start <= at < start + len(buf), column
    got.loc[0, "f"] = 5.0  # writable: the buffer is


def test_a_folder_others_could_write_is_refused_before_the_engine_makes_it_private(
    folder: Path, tmp_path: Path
) -> None:
    # Someone plants a pickle that runs code while the folder is 0777; the engine would make
    # the folder 0700 as it opens it, and a check made after that would trust the plant.
    marker = tmp_path / "PWNED"
    run_python(
        f"""
        import os, tiered
        class Evil:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))
        tiered.Cache({str(folder)!r}).set("report", Evil())
        """,
        tmp_path,
    )
    os.chmod(folder, 0o777)
    victim = tiered.Cache(folder)
    with pytest.raises(tiered.UnsafeValueError, match="chmod 700"):
        victim.get("report")
    assert not marker.exists()
    assert folder.stat().st_mode & 0o777 == 0o777, "the refused folder was left as it was"
    # A data-only cache may open it: nothing it loads runs code.
    with pytest.raises(tiered.UnsafeValueError):
        tiered.Cache(folder, pickle=False).get("report")
    assert not marker.exists()
