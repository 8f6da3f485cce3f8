"""Tables: what `log_table` takes, the JSON it is kept as, and the `Table` read back.

Accepted on the caller's thread, where the cells are copied into JSON values: a pandas
DataFrame (pandas is imported only when the value is one), a list of rows (lists or
tuples, or dicts keyed by column), a dict of columns, or a 2-D numpy array. `columns`
names the columns of positional data (rows as lists, arrays) and picks and orders those
of keyed data (dicts, DataFrames). A DataFrame's index is kept as leading column(s) when
it says something, i.e. when it is not the default 0..n-1.

Cells are JSON scalars: numpy scalars become Python numbers; NaN, infinity, None, NaT and
pandas' NA are stored as null (JSON has no NaN), so a float column reads back with NaN
where either was; datetimes, dates and timedeltas become ISO strings, and the column's
dtype (pandas' name for it: "int64", "datetime64[ns, UTC]", "category", ...) is kept
beside them so that `Table.to_frame()` rebuilds a DataFrame with the same dtypes where
pandas can. Lists, dicts, bytes and other objects in a cell are refused.

The blob is MLflow's `log_table` JSON (`{"columns", "data"}`, pandas' "split" form) plus
`"dtypes"`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
from attrs import frozen

from polytrack._text import safe_repr
from polytrack.errors import InvalidInputError
from polytrack.media.encoder import Encoded, MediaJob

__all__ = ["Table", "decode", "encode", "prepare_table", "table_job"]

# A table is something to look at: past this many cells it is a data set (log_artifact).
MAX_CELLS: Final = 10_000_000

_JSON: Final = "application/json"


@frozen
class Table:
    """A table read back: `rows[i][j]` is the cell of row i in `columns[j]`, a JSON value
    (None where NaN, infinity or a missing value was logged; ISO strings for times).

    `dtypes[j]` is pandas' name of the column's dtype when logged ("int64", "str",
    "datetime64[ns]"), used by `to_frame()`.
    """

    columns: list[str]
    rows: list[list[Any]]
    dtypes: list[str]

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.rows), len(self.columns))

    def to_frame(self) -> Any:
        """The table as a pandas DataFrame, each column cast back to its logged dtype
        where pandas can (a datetime column from its ISO strings, a category, ...).

        Example:
            >>> polytrack.get_run("a1b2").media("predictions")[-1].value.to_frame()
        """
        pd = _pandas()

        frame = pd.DataFrame(self.rows, columns=list(self.columns))
        for index, dtype in enumerate(self.dtypes):
            column = frame.iloc[:, index]
            try:
                converted = _cast(pd, column, dtype)
            except (ValueError, TypeError, OverflowError):
                continue  # what pandas cannot cast stays as it infers it
            if converted is not column:
                frame.isetitem(index, converted)
        return frame


def _pandas() -> Any:
    """pandas, untyped (it ships no stubs), imported only when a DataFrame is at hand."""
    try:
        return importlib.import_module("pandas")
    except ImportError as exc:
        raise ImportError("DataFrames need pandas: pip install 'polytrack[pandas]'") from exc


def _cast(pd: Any, column: Any, dtype: str) -> Any:
    """`column` cast to the logged `dtype`, or `column` itself where that says nothing."""
    if dtype in ("object", "mixed") or str(column.dtype) == dtype:
        return column
    if dtype.startswith("datetime64"):
        if "," in dtype:  # aware: the strings carry offsets; convert into the zone
            zone = dtype.split(",", 1)[1].strip(" ]")
            return pd.to_datetime(column, utc=True, format="ISO8601").dt.tz_convert(zone)
        return pd.to_datetime(column, format="ISO8601").astype(dtype)
    if dtype.startswith("timedelta64"):
        return pd.to_timedelta(column).astype(dtype)
    if dtype == "date":
        dates = [dt.date.fromisoformat(v) if isinstance(v, str) else None for v in column]
        return pd.Series(dates, index=column.index, dtype=object, name=column.name)
    if dtype == "str" and int(pd.__version__.split(".")[0]) < 3:
        return column  # pandas 2 has no "str" dtype: astype would write None as "None"
    return column.astype(dtype)


# -- the caller's thread: check and copy ------------------------------------------------


def table_job(name: str, data: Any, step: int, *, columns: Iterable[Any] | None = None) -> MediaJob:
    """The job of one `log_table` call: the cells copied now, the JSON made on the
    encoder thread.

    Raises:
        InvalidInputError: see `prepare_table`.
    """
    import time

    names, rows, dtypes = prepare_table(data, columns=columns)
    return MediaJob(
        name=name,
        kind="table",
        step=step,
        encode=lambda: (encode(names, rows, dtypes), None, {}),
        shape=(len(rows), len(names)),
        size=16 * len(rows) * max(len(names), 1),  # a rough bound of what the lists hold
        logged_at=time.time(),
    )


def prepare_table(
    data: Any, *, columns: Iterable[Any] | None = None
) -> tuple[list[str], list[list[Any]], list[str]]:
    """(column names, rows of JSON scalars, dtypes) of a table given in any accepted form.

    Raises:
        InvalidInputError: rows of different lengths, a cell that is no JSON scalar,
            `columns` that do not fit the data, a form that is no table; the message
            names the argument and the row, column or shape.

    Example:
        >>> prepare_table([[1, "a"], [2, "b"]], columns=["id", "label"])
        (['id', 'label'], [[1, 'a'], [2, 'b']], ['int64', 'str'])
    """
    wanted = _column_names(columns)
    module = type(data).__module__
    if module.startswith("pandas") and hasattr(data, "iloc") and hasattr(data, "columns"):
        names, rows, dtypes = _from_frame(data, wanted)
    elif isinstance(data, np.ndarray):
        names, rows, dtypes = _from_array(data, wanted)
    elif module.startswith("torch") and hasattr(data, "detach"):
        names, rows, dtypes = _from_array(np.asarray(data.detach().cpu().numpy()), wanted)
    elif isinstance(data, Mapping):
        names, rows, dtypes = _from_columns(data, wanted)
    elif isinstance(data, (list, tuple)):
        names, rows, dtypes = _from_rows(data, wanted)
    else:
        raise InvalidInputError(
            "data must be a pandas DataFrame, a list of rows (lists or dicts), a dict of "
            f"columns or a 2-D numpy array; got {type(data).__name__} {safe_repr(data)}"
        )
    if len(rows) * len(names) > MAX_CELLS:
        raise InvalidInputError(
            f"data has shape ({len(rows)}, {len(names)}): past {MAX_CELLS} cells a table is "
            "a data set; log it with log_artifact"
        )
    return names, rows, dtypes


def _column_names(columns: Iterable[Any] | None) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, (str, bytes)) or not isinstance(columns, Iterable):
        raise InvalidInputError(f"columns must be a list of column names; got {safe_repr(columns)}")
    names = [_name(column, "columns") for column in columns]
    return names


def _name(column: Any, arg: str) -> str:
    """A column's name as the JSON keeps it: text (a number is written as text)."""
    if isinstance(column, str):
        return column
    if isinstance(column, (bool, int, float, np.integer, np.floating)):
        return str(column.item() if isinstance(column, np.generic) else column)
    raise InvalidInputError(
        f"{arg}: a column name must be a string or a number; got {safe_repr(column)}"
    )


def _from_frame(
    frame: Any, wanted: list[str] | None
) -> tuple[list[str], list[list[Any]], list[str]]:
    pd = _pandas()

    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(
            f"data is a pandas {type(frame).__name__}, not a DataFrame: "
            "call .to_frame() on a Series"
        )
    if not (
        isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
    ):
        frame = frame.reset_index()  # the index says something: keep it as columns
    names = [_name(column, "data") for column in frame.columns]
    positions = list(range(len(names)))
    if wanted is not None:
        positions = [_position(names, column, "DataFrame") for column in wanted]
        names = list(wanted)
    cells: list[list[Any]] = []
    dtypes: list[str] = []
    for position, column_name in zip(positions, names, strict=True):
        series = frame.iloc[:, position]
        dtype = str(series.dtype)
        values, dtype = _column_cells(series, dtype, column_name)
        cells.append(values)
        dtypes.append(dtype)
    rows = (
        [list(row) for row in zip(*cells, strict=True)]
        if cells
        else [[] for _ in range(len(frame))]
    )
    return names, rows, dtypes


def _position(names: list[str], column: str, what: str) -> int:
    try:
        return names.index(column)
    except ValueError:
        raise InvalidInputError(
            f"columns names {column!r}, which the {what} does not have "
            f"(it has {', '.join(map(repr, names[:20]))})"
        ) from None


def _column_cells(series: Any, dtype: str, column: str) -> tuple[list[Any], str]:
    """A pandas column's cells as JSON scalars, and the dtype to record."""
    kind = getattr(series.dtype, "kind", "O")
    if kind in "iub" and dtype in (
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool",
    ):
        return series.to_numpy().tolist(), dtype
    if kind == "f" and dtype.startswith("float"):
        array = series.to_numpy(dtype=np.float64)
        return _floats(array), dtype
    if kind == "M" or dtype.startswith("datetime64"):
        return [None if _missing(v) else v.isoformat() for v in series.tolist()], dtype
    if kind == "m" or dtype.startswith("timedelta64"):
        return [None if _missing(v) else v.isoformat() for v in series.tolist()], dtype
    raw = series.tolist()
    values = [_cell(value, "data", column, row) for row, value in enumerate(raw)]
    return values, _infer(raw) if dtype == "object" else dtype


def _infer(raw: list[Any]) -> str:
    """An object column's dtype to record: "date" when it holds dates (pandas has no
    such dtype), else "object"."""
    present = [value for value in raw if not _missing(value)]
    if present and all(type(value) is dt.date for value in present):
        return "date"
    return "object"


def _from_array(
    array: np.ndarray, wanted: list[str] | None
) -> tuple[list[str], list[list[Any]], list[str]]:
    if array.ndim != 2:
        raise InvalidInputError(
            f"data has shape {array.shape}: a table given as an array is 2-D (rows, columns)"
        )
    names = _positional_names(array.shape[1], wanted, f"data has shape {array.shape}")
    kind = array.dtype.kind
    if kind in "iub":
        dtype = "bool" if kind == "b" else str(array.dtype)
        return names, array.tolist(), [dtype] * len(names)
    if kind == "f":
        rows = [_floats(row) for row in array.astype(np.float64, copy=False)]
        return names, rows, [str(array.dtype)] * len(names)
    if kind == "M":
        times: list[list[Any]] = [
            [None if np.isnat(v) else str(np.datetime_as_string(v)) for v in row] for row in array
        ]
        unit = np.datetime_data(array.dtype)[0]
        dtype = str(array.dtype) if unit in ("s", "ms", "us", "ns") else "datetime64[ns]"
        return names, times, [dtype] * len(names)
    if kind in "USO":
        return names, *_checked_rows(array.tolist(), names)
    raise InvalidInputError(
        f"data has dtype {array.dtype} (shape {array.shape}): table cells are numbers, "
        "text, booleans or times"
    )


def _positional_names(count: int, wanted: list[str] | None, where: str) -> list[str]:
    if wanted is None:
        return [str(i) for i in range(count)]
    if len(wanted) != count:
        raise InvalidInputError(f"columns has {len(wanted)} names but {where} ({count} columns)")
    return wanted


def _from_columns(
    data: Mapping[Any, Any], wanted: list[str] | None
) -> tuple[list[str], list[list[Any]], list[str]]:
    keyed = {_name(key, "data"): values for key, values in data.items()}
    names = list(keyed) if wanted is None else wanted
    columns: list[list[Any]] = []
    length: int | None = None
    first = ""
    for column in names:
        if column not in keyed:
            _position(list(keyed), column, "dict of columns")
        values = keyed[column]
        if isinstance(values, np.ndarray):
            values = values.tolist() if values.ndim == 1 else values
        if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
            raise InvalidInputError(
                f"data[{column!r}] must be a list or a 1-D array of cells; "
                f"got {type(values).__name__} of shape {np.shape(values)}"
            )
        if length is None:
            length, first = len(values), column
        elif len(values) != length:
            raise InvalidInputError(
                f"data[{column!r}] has {len(values)} cells but data[{first!r}] has "
                f"{length}: columns must be of one length"
            )
        columns.append(list(values))
    raw_rows = [list(row) for row in zip(*columns, strict=True)] if columns else []
    return names, *_checked_rows(raw_rows, names)


def _from_rows(
    data: Sequence[Any], wanted: list[str] | None
) -> tuple[list[str], list[list[Any]], list[str]]:
    if not data:
        return list(wanted or []), [], ["object"] * len(wanted or [])
    if all(isinstance(row, Mapping) for row in data):
        return _from_dict_rows(data, wanted)
    raw_rows: list[list[Any]] = []
    for index, row in enumerate(data):
        if isinstance(row, np.ndarray) and row.ndim == 1:
            row = row.tolist()
        if not isinstance(row, (list, tuple)):
            raise InvalidInputError(
                f"data row {index} is {type(row).__name__} {safe_repr(row)}: each row is a "
                "list or a tuple of cells (or each a dict)"
            )
        if raw_rows and len(row) != len(raw_rows[0]):
            raise InvalidInputError(
                f"data row {index} has {len(row)} cells but row 0 has {len(raw_rows[0])}: "
                "rows must be of one length"
            )
        raw_rows.append(list(row))
    names = _positional_names(len(raw_rows[0]), wanted, f"data rows have {len(raw_rows[0])} cells")
    return names, *_checked_rows(raw_rows, names)


def _from_dict_rows(
    data: Sequence[Mapping[Any, Any]], wanted: list[str] | None
) -> tuple[list[str], list[list[Any]], list[str]]:
    keyed = [{_name(key, "data"): value for key, value in row.items()} for row in data]
    if wanted is None:
        names = list(dict.fromkeys(key for row in keyed for key in row))  # first seen first
    else:
        names = wanted
        allowed = set(wanted)
        for index, row in enumerate(keyed):
            extra = [key for key in row if key not in allowed]
            if extra:
                raise InvalidInputError(
                    f"data row {index} has key {extra[0]!r}, which columns does not name"
                )
    # A key a row lacks is a missing value (null), as pandas reads a list of dicts.
    raw_rows = [[row.get(column) for column in names] for row in keyed]
    return names, *_checked_rows(raw_rows, names)


def _checked_rows(raw_rows: list[list[Any]], names: list[str]) -> tuple[list[list[Any]], list[str]]:
    """Rows of JSON scalars and each column's dtype, inferred as pandas would name it."""
    kinds: list[set[str]] = [set() for _ in names]
    rows: list[list[Any]] = []
    for index, raw in enumerate(raw_rows):
        row = []
        for position, value in enumerate(raw):
            kinds[position].add(_kind(value))
            row.append(_cell(value, "data", names[position], index))
        rows.append(row)
    return rows, [_dtype(found) for found in kinds]


def _kind(value: Any) -> str:
    if _missing(value):
        return "null" if not isinstance(value, (float, np.floating)) else "float"
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (dt.datetime, np.datetime64)):
        aware = isinstance(value, dt.datetime) and value.tzinfo is not None
        return "aware" if aware else "datetime"
    if isinstance(value, dt.date):
        return "date"
    return "other"


def _dtype(kinds: set[str]) -> str:
    nulls = "null" in kinds
    kinds = kinds - {"null"}
    if kinds == {"int"}:
        return "Int64" if nulls else "int64"  # pandas' nullable ints keep ints beside None
    if kinds == {"bool"}:
        return "boolean" if nulls else "bool"
    if kinds and kinds <= {"int", "float"}:
        return "float64"
    if kinds == {"str"}:
        return "str"
    if kinds == {"datetime"}:
        return "datetime64[ns]"
    if kinds == {"aware"}:
        return "datetime64[ns, UTC]"
    if kinds == {"date"}:
        return "date"
    return "object"


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pandas' NA: a cell with no value (null in the JSON)."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return not math.isfinite(value)
    if isinstance(value, np.datetime64):
        return bool(np.isnat(value))
    name = type(value).__name__
    return name in ("NAType", "NaTType") and type(value).__module__.startswith("pandas")


def _cell(value: Any, arg: str, column: str, row: int) -> Any:
    """One cell as a JSON scalar (see the module docstring)."""
    if _missing(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.datetime64):
        return str(np.datetime_as_string(value))
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta) or type(value).__name__ == "Timedelta":
        return value.isoformat() if hasattr(value, "isoformat") else str(value)
    raise InvalidInputError(
        f"data row {row}, column {column!r} holds {type(value).__name__} "
        f"{safe_repr(value)}: a cell must be a number, text, a boolean, a time or None"
    )


def _floats(array: np.ndarray) -> list[float | None]:
    """A float vector as JSON: NaN and infinities as null."""
    values: list[float | None] = array.tolist()
    if not np.isfinite(array).all():
        finite = np.isfinite(array).tolist()
        values = [value if ok else None for value, ok in zip(values, finite, strict=True)]
    return values


# -- the encoder thread and the reader ----------------------------------------------------


def encode(columns: list[str], rows: list[list[Any]], dtypes: list[str]) -> list[Encoded]:
    """The JSON file of a table (the encoder thread's part)."""
    payload = {"columns": columns, "data": rows, "dtypes": dtypes}
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return [Encoded(text.encode("utf-8"), _JSON)]


def decode(data: bytes) -> Table:
    """A table's JSON file read back (a file without dtypes: MLflow's, say, is read too)."""
    payload = json.loads(data)
    columns = [str(column) for column in payload["columns"]]
    dtypes = payload.get("dtypes") or ["object"] * len(columns)
    return Table(columns=columns, rows=[list(row) for row in payload["data"]], dtypes=dtypes)
