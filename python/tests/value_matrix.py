"""Values that must come back exactly, built the same way in a writer process and a reader.

Imported by tests and by the child interpreters they start (``sys.path`` gets this folder).
Needs numpy, pandas, pyarrow and polars.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any


def pandas_frames() -> dict[str, Any]:
    """DataFrames over the dtypes a user stores, by name; ``arrow_*`` ones must go as Arrow."""
    import numpy as np
    import pandas as pd

    n = 5
    dates = pd.date_range("2024-03-30", periods=n, freq="h", tz="Europe/Paris")
    base = pd.DataFrame(
        {
            "int64": np.arange(n, dtype="int64"),
            "int8": np.arange(n, dtype="int8"),
            "uint32": np.arange(n, dtype="uint32"),
            "Int64 with nulls": pd.array([1, None, 3, None, 5], dtype="Int64"),
            "float64 with NaN": [1.5, np.nan, -0.0, np.inf, 2.0],
            "float32": np.array([1, np.nan, 2, 3, 4], dtype="float32"),
            "Float64 with nulls": pd.array([1.5, None, 2, 3, 4], dtype="Float64"),
            "bool": [True, False, True, False, True],
            "boolean with nulls": pd.array([True, None, False, True, None], dtype="boolean"),
            "str": ["a", None, "ccc", "", "é"],
            "object text": pd.Series(["a", None, "b", "c", "d"], dtype=object),
            "object bytes": pd.Series([b"a", None, b"\x00", b"", b"z"], dtype=object),
            "categorical": pd.Categorical(
                ["a", "b", None, "a", "z"], categories=["b", "a", "z"], ordered=True
            ),
            "categorical ints": pd.Categorical([1, 2, 1, 3, 3]),
            "tz datetime": dates,
            "naive datetime with NaT": pd.to_datetime(
                ["2024-01-01", None, "2025-01-01", "2026-01-01", "1970-01-01"]
            ),
            "datetime64[s]": np.array([1, 2, 3, 4, 5], dtype="datetime64[s]"),
            "timedelta": pd.to_timedelta([1, None, 3, 4, 5], unit="s"),
            "timedelta64[ns]": np.array([1, 2, 3, 4, 5], dtype="timedelta64[ns]"),
            "period": pd.period_range("2024-01", periods=n, freq="M"),
            "interval": pd.interval_range(0, n),
            "int64[pyarrow]": pd.array([1, None, 3, 4, 5], dtype="int64[pyarrow]"),
        }
    )
    base.attrs = {"source": "test", "version": 2}
    multi = pd.DataFrame(
        {"v": [1.0, 2.0, 3.0], "s": ["x", "y", "z"]},
        index=pd.MultiIndex.from_tuples(
            [("a", pd.Timestamp("2024-01-01", tz="UTC")), ("a", pd.Timestamp("2024-01-02", tz="UTC")),
             ("b", pd.Timestamp("2024-01-01", tz="UTC"))],
            names=["key", "when"],
        ),
    )
    return {
        "arrow every dtype": base,
        "arrow a MultiIndex": multi,
        "arrow MultiIndex columns": pd.DataFrame(
            [[1, 2], [3, 4]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("b", "y")])
        ),
        "arrow integer column labels": pd.DataFrame(np.zeros((3, 4))),
        "arrow object column labels": pd.DataFrame(
            {"a": [1]}, columns=pd.Index(["a"], dtype=object)
        ),
        "arrow a RangeIndex with a step and a name": pd.DataFrame(
            {"a": [1, 2]}, index=pd.RangeIndex(5, 9, 2, name="r")
        ),
        "arrow a DatetimeIndex with a freq": pd.DataFrame(
            {"a": [1.0, 2.0, 3.0]}, index=pd.date_range("2024-01-01", periods=3, freq="D")
        ),
        "arrow a named column index": pd.DataFrame({"a": [1]}).rename_axis(columns="cols"),
        "arrow a categorical index": pd.DataFrame(
            {"a": [1, 2]}, index=pd.CategoricalIndex(["x", "y"], name="c")
        ),
        "arrow no rows": pd.DataFrame({"a": pd.Series([], dtype="int64"), "b": pd.Series([], dtype="str")}),
        "arrow empty": pd.DataFrame(),
        "pickled duplicate column labels": pd.DataFrame([[1, 2]], columns=["a", "a"]),
        "pickled mixed object column": pd.DataFrame({"m": pd.Series([1, "a", 2.5], dtype=object)}),
        "pickled object text with NaN": pd.DataFrame({"s": pd.Series(["a", np.nan], dtype=object)}),
        "pickled decimals": pd.DataFrame(
            {"d": pd.Series([decimal.Decimal("1.10"), decimal.Decimal("2")], dtype=object)}
        ),
        "pickled dates as objects": pd.DataFrame({"d": [dt.date(2024, 1, 1), None]}),
        "pickled lists": pd.DataFrame({"l": pd.Series([[1, 2], [3]], dtype=object)}),
        "pickled complex": pd.DataFrame({"c": np.array([1 + 2j, 3])}),
        "pickled sparse": pd.DataFrame({"s": pd.arrays.SparseArray([0, 0, 1])}),
        "pickled an index name that is not text": pd.DataFrame(
            {"a": [1, 2]}, index=pd.Index([1, 2], name=5)
        ),
        "pickled python-backed strings": pd.DataFrame(
            {"p": pd.array(["a", None], dtype="string[python]")}
        ),
    }


def pandas_series() -> dict[str, Any]:
    """Series, by name; ``arrow_*`` ones must go as Arrow."""
    import pandas as pd

    return {
        "arrow named": pd.Series([1, 2, 3], name="x", index=pd.Index(["a", "b", "c"], name="k")),
        "arrow unnamed": pd.Series([1.5, None]),
        "arrow named by an int": pd.Series(["a", None], name=3),
        "arrow categorical": pd.Series(pd.Categorical(["a", "b", "a"]), name="c"),
        "arrow tz datetime with a freq index": pd.Series(
            pd.date_range("2024-01-01", periods=3, tz="UTC"),
            index=pd.date_range("2024-01-01", periods=3, freq="h"),
        ),
        "arrow object text": pd.Series(["x", None], dtype=object, name="t"),
        "pickled named by a tuple": pd.Series([1, 2], name=("a", 1)),
        "pickled mixed objects": pd.Series([1, "a"], dtype=object),
    }


def numpy_arrays() -> dict[str, Any]:
    """Arrays, by name: all go raw."""
    import numpy as np

    grid = np.arange(24, dtype="float64").reshape(4, 6)
    return {
        "float64": np.linspace(0, 1, 11),
        "int8": np.arange(-5, 5, dtype="int8"),
        "uint64": np.array([0, 2**64 - 1], dtype="uint64"),
        "bool": np.array([True, False]),
        "complex128": np.array([1 + 2j, np.nan]),
        "float16": np.array([1.5, -2], dtype="float16"),
        "datetime64[ms]": np.array(["2024-01-01T00:00:00.001", "NaT"], dtype="datetime64[ms]"),
        "timedelta64[D]": np.array([1, -3], dtype="timedelta64[D]"),
        "fixed bytes": np.array([b"ab", b"c"], dtype="S2"),
        "fixed text": np.array(["ab", "é"], dtype="U2"),
        "structured": np.array([(1, 2.5), (3, 4.5)], dtype=[("a", "<i4"), ("b", "<f8")]),
        "big-endian int32": np.arange(6, dtype=">i4").reshape(2, 3),
        "0-d": np.array(7.25),
        "empty 2-d": np.zeros((0, 3)),
        "Fortran order": np.asfortranarray(grid),
        "non-contiguous": grid[::2, ::3],
        "3-d": np.arange(60, dtype="int16").reshape(3, 4, 5),
    }


def polars_values() -> dict[str, Any]:
    """polars frames and series, by name: all go as polars IPC."""
    import polars as pl

    frame = pl.DataFrame(
        {
            "i": [1, None, 3],
            "u8": pl.Series([1, 2, 3], dtype=pl.UInt8),
            "f": [1.5, float("nan"), None],
            "b": [True, None, False],
            "s": ["a", None, "ccc"],
            "cat": pl.Series(["a", "b", "a"], dtype=pl.Categorical),
            "enum": pl.Series(["lo", "hi", "lo"], dtype=pl.Enum(["lo", "hi"])),
            "dt": pl.Series(
                [dt.datetime(2024, 1, 1), None, dt.datetime(2025, 6, 1, 12)],
                dtype=pl.Datetime("us", "Europe/Paris"),
            ),
            "dur": pl.Series([dt.timedelta(seconds=1), None, dt.timedelta(days=2)]),
            "date": [dt.date(2024, 1, 1), None, dt.date(1969, 12, 31)],
            "list": [[1, 2], [], None],
            "struct": [{"a": 1, "b": "x"}, {"a": None, "b": "y"}, None],
            "dec": pl.Series([decimal.Decimal("1.10"), None, decimal.Decimal("-2.00")]),
        }
    )
    return {
        "frame": frame,
        "empty frame": pl.DataFrame(),
        "series": pl.Series("name", [1.0, None, 3.0]),
    }


def arrow_values() -> dict[str, Any]:
    """pyarrow tables and record batches, by name: all go as Arrow IPC."""
    import pyarrow as pa

    table = pa.table(
        {
            "i": pa.array([1, None, 3], type=pa.int32()),
            "s": pa.array(["a", None, "c"], type=pa.large_string()),
            "d": pa.array(["x", "y", "x"]).dictionary_encode(),
            "ts": pa.array([0, None, 2], type=pa.timestamp("ns", tz="Asia/Tokyo")),
            "l": pa.array([[1], [], None], type=pa.list_(pa.int64())),
        },
        metadata={"origin": "test"},
    )
    return {
        "table": table,
        "batch": table.to_batches()[0],
        "empty table": pa.table({"a": pa.array([], type=pa.int8())}),
    }


def assert_same(expected: Any, got: Any) -> None:
    """``got`` is ``expected``, exactly: type, dtypes, labels, values, memory order."""
    assert type(got) is type(expected), (type(expected), type(got))
    kind = type(expected).__module__.split(".")[0]
    if kind == "pandas":
        import pandas as pd
        import pandas.testing as pdt

        check = dict(check_exact=True, check_index_type=True, check_freq=True, check_flags=True)
        if isinstance(expected, pd.DataFrame):
            pdt.assert_frame_equal(got, expected, check_column_type=True, **check)
            columns = [expected.iloc[:, i] for i in range(expected.shape[1])]
            got_columns = [got.iloc[:, i] for i in range(got.shape[1])]
        else:
            pdt.assert_series_equal(got, expected, check_series_type=True, **check)
            assert got.name == expected.name and type(got.name) is type(expected.name)
            columns, got_columns = [expected], [got]
        assert got.attrs == expected.attrs
        for want, have in zip(columns, got_columns):
            if want.dtype == object:  # None stays None, NaN stays NaN, bytes stay bytes
                assert [type(v) for v in have] == [type(v) for v in want]
    elif kind == "numpy":
        assert got.dtype == expected.dtype and got.shape == expected.shape
        fortran = expected.flags.f_contiguous and not expected.flags.c_contiguous
        assert got.flags.f_contiguous if fortran else got.flags.c_contiguous
        assert got.tobytes() == expected.tobytes()
        # A small value is decoded from a copy of its own, a large one (a side file) from a
        # private, copy-on-write mapping of the file: writable either way, as stored.
        assert got.flags.aligned and got.flags.writeable
    elif kind == "polars":
        import polars.testing as plt

        if type(expected).__name__ == "Series":
            plt.assert_series_equal(got, expected, check_exact=True)
        else:
            plt.assert_frame_equal(got, expected, check_exact=True)
    elif kind == "pyarrow":
        assert got.equals(expected, check_metadata=True)
    else:
        raise AssertionError(f"no comparison for {type(expected)}")
