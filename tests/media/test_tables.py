"""Tables: every accepted form logged through a real run and read back cell for cell;
bad tables refused with the argument named, and nothing recorded."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polytrack.errors import InvalidInputError
from polytrack.media.tables import Table, decode, prepare_table

from ._logged import logged


def test_a_dataframe_reads_back_cell_for_cell_with_its_dtypes(home: Path) -> None:
    """A DataFrame of int, float, str and bool columns comes back equal, dtypes and all."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, -4],
            "score": [0.5, 1e-300, -2.25, 3.0],
            "label": ["cat", "dog", "naïve 🚀", ""],
            "ok": [True, False, True, False],
        }
    )
    view = logged(home, lambda run: run.log_table("predictions", frame, step=2))
    [item] = view.media("predictions")
    assert (item.kind, item.step, item.shape) == ("table", 2, (4, 4))
    table = item.value
    assert table.columns == ["id", "score", "label", "ok"]
    assert table.rows[2] == [3, -2.25, "naïve 🚀", True]
    pd.testing.assert_frame_equal(table.to_frame(), frame)
    assert view.media_keys() == {"predictions": ("table", 1)}


def test_the_blob_is_mlflows_split_json_with_dtypes(home: Path) -> None:
    """The file holds {"columns", "data", "dtypes"}: what MLflow's log_table writes, plus
    the dtypes."""
    view = logged(home, lambda run: run.log_table("t", [[1, "a"], [2, "b"]], columns=["n", "s"]))
    [item] = view.media("t")
    assert item.media_type == "application/json"
    assert json.loads(item.data()) == {
        "columns": ["n", "s"],
        "data": [[1, "a"], [2, "b"]],
        "dtypes": ["int64", "str"],
    }


def test_rows_dicts_columns_and_arrays_read_back(home: Path) -> None:
    """Lists of rows, lists of dicts, dicts of columns and 2-D arrays all become the
    same kind of table."""

    def log(run: Any) -> None:
        run.log_table("rows", [(1, 2.5, "x"), [2, None, "y"]], columns=["a", "b", "c"])
        run.log_table("dicts", [{"a": 1, "b": "x"}, {"b": "y", "c": True}])
        run.log_table("cols", {"a": np.arange(3), "b": ["x", "y", "z"]})
        run.log_table("array", np.array([[1.0, np.nan], [np.inf, -0.5]]))

    view = logged(home, log)
    assert view.media("rows")[0].value == Table(
        ["a", "b", "c"], [[1, 2.5, "x"], [2, None, "y"]], ["int64", "float64", "str"]
    )
    # A key a row lacks is a missing value, as pandas reads a list of dicts.
    assert view.media("dicts")[0].value == Table(
        ["a", "b", "c"], [[1, "x", None], [None, "y", True]], ["Int64", "str", "boolean"]
    )
    assert view.media("cols")[0].value.rows == [[0, "x"], [1, "y"], [2, "z"]]
    # NaN and infinity are stored as null: JSON has neither.
    array = view.media("array")[0].value
    assert array == Table(["0", "1"], [[1.0, None], [None, -0.5]], ["float64", "float64"])


def test_numpy_scalars_and_times_become_json(home: Path) -> None:
    """numpy scalars are plain numbers; datetimes are ISO strings that to_frame() turns
    back into datetime columns."""
    pd = pytest.importorskip("pandas")
    when = dt.datetime(2024, 5, 6, 7, 8, 9)
    frame = pd.DataFrame(
        {
            "t": pd.to_datetime([when, None]),
            "n": [np.int32(3), np.int32(4)],
            "d": [dt.date(2024, 1, 2), None],
        }
    )
    view = logged(home, lambda run: run.log_table("times", frame))
    table = view.media("times")[0].value
    assert table.rows == [["2024-05-06T07:08:09", 3, "2024-01-02"], [None, 4, None]]
    rebuilt = table.to_frame()
    assert rebuilt["t"].dtype == frame["t"].dtype
    assert rebuilt["t"][0] == pd.Timestamp(when) and rebuilt["t"].isna()[1]
    assert rebuilt["d"].tolist() == [dt.date(2024, 1, 2), None]
    rows = [[np.float32(0.5), np.bool_(True), np.int64(7), when]]
    assert prepare_table(rows) == (
        ["0", "1", "2", "3"],
        [[0.5, True, 7, "2024-05-06T07:08:09"]],
        ["float64", "bool", "int64", "datetime64[ns]"],
    )


def test_a_meaningful_index_is_kept_as_columns() -> None:
    """A DataFrame indexed by something other than 0..n-1 keeps its index as a column."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"v": [1, 2]}, index=pd.Index(["a", "b"], name="key"))
    names, rows, _ = prepare_table(frame)
    assert (names, rows) == (["key", "v"], [["a", 1], ["b", 2]])


@pytest.mark.parametrize(
    ("data", "columns", "words"),
    [
        ([[1, 2], [3]], None, "data row 1 has 1 cells but row 0 has 2"),
        ([[1, {"nested": 1}]], None, "data row 0, column '1' holds dict"),
        ([[1, b"raw"]], ["a", "b"], "column 'b' holds bytes"),
        ([[1, 2]], ["only"], "columns has 1 names but data rows have 2 cells"),
        (np.zeros((2, 2, 2)), None, "data has shape (2, 2, 2)"),
        (np.zeros((2, 3)), ["a", "b"], "data has shape (2, 3) (3 columns)"),
        ({"a": [1, 2], "b": [1]}, None, "data['b'] has 1 cells but data['a'] has 2"),
        ([1, 2, 3], None, "data row 0 is int"),
        ([{"a": 1, "z": 2}], ["a"], "data row 0 has key 'z'"),
        ("text", None, "data must be a pandas DataFrame"),
        ({"a": [1]}, ["b"], "columns names 'b'"),
    ],
)
def test_bad_tables_are_refused_and_nothing_is_recorded(
    home: Path, data: Any, columns: Any, words: str
) -> None:
    """Ragged rows, object cells, columns that do not fit: InvalidInputError naming the
    argument and where; the run records no table."""

    def log(run: Any) -> None:
        with pytest.raises(InvalidInputError) as caught:
            run.log_table("bad", data, columns=columns)
        assert words in str(caught.value)

    view = logged(home, log)
    assert view.media("bad") == []


def test_to_frame_reads_a_file_without_dtypes() -> None:
    """A table JSON with no dtypes (MLflow's own) is read, its dtypes left to pandas."""
    pd = pytest.importorskip("pandas")
    table = decode(b'{"columns": ["a", "b"], "data": [[1, 0.5], [2, null]]}')
    assert table.dtypes == ["object", "object"]
    frame = table.to_frame()
    assert frame["a"].tolist() == [1, 2] and math.isnan(frame["b"][1])
    assert isinstance(frame, pd.DataFrame)
