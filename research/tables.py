"""Tidy tables of a batch (one observation per row, one variable per column, fixed column types),
written as CSV always and as Parquet when pyarrow is installed; each file whole or not at all."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from research.files import write_bytes_atomically

# Column types: "str", "int", "float", "bool".
RECORDING_COLUMNS: tuple[tuple[str, str], ...] = (
    ("recording", "str"),
    ("combination", "str"),
    ("channel", "str"),
    ("status", "str"),
    ("error", "str"),
    ("format", "str"),
    ("fs", "float"),
    ("start", "str"),
    ("hours", "float"),
    ("good_signal_hours", "float"),
    ("cramps", "int"),
    ("cramp_minutes", "float"),
    ("movements", "int"),
    ("plm", "int"),
    ("plm_per_hour", "float"),
    ("signal_lost_minutes", "float"),
    ("settings_hash", "str"),
    ("source_id", "str"),
    ("events_file", "str"),
    ("plot_file", "str"),
    ("task", "str"),
)
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("recording", "str"),
    ("combination", "str"),
    ("channel", "str"),
    ("kind", "str"),
    ("event_id", "str"),
    ("start", "str"),
    ("end", "str"),
    ("start_s", "float"),
    ("end_s", "float"),
    ("duration_s", "float"),
    ("peak_uv", "float"),
    ("mean_uv", "float"),
    ("floor_uv", "float"),
    ("area_uvs", "float"),
    ("median_freq_hz", "float"),
    ("quality", "str"),
    ("settings_hash", "str"),
)
SCORE_FIGURES: tuple[tuple[str, str], ...] = (
    ("n_truth", "int"),
    ("n_detected", "int"),
    ("tp", "int"),
    ("fp", "int"),
    ("fn", "int"),
    ("precision", "float"),
    ("recall", "float"),
    ("f1", "float"),
    ("median_abs_onset_error_s", "float"),
    ("median_abs_offset_error_s", "float"),
    ("false_per_hour", "float"),
)
SCORE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("recording", "str"),
    ("combination", "str"),
    ("kind", "str"),
    ("truth", "str"),
    ("hours", "float"),
    *SCORE_FIGURES,
)
POOLED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank", "int"),
    ("combination", "str"),
    ("settings", "str"),
    ("kind", "str"),
    ("recordings", "int"),
    ("failed", "int"),
    ("hours", "float"),
    ("good_signal_hours", "float"),
    ("cramps", "int"),
    ("cramp_minutes", "float"),
    ("movements", "int"),
    ("scored_recordings", "int"),
    ("scored_hours", "float"),
    *SCORE_FIGURES,
)


@dataclass(frozen=True)
class Table:
    """Rows under fixed, typed columns; `extra` columns (e.g. swept settings) come after `name`."""

    name: str
    columns: tuple[tuple[str, str], ...]
    rows: list[dict[str, Any]]

    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def typed_rows(self) -> list[dict[str, Any]]:
        """Each row with exactly the table's columns, values in the column's type (None if empty)."""
        return [
            {name: _typed(row.get(name), kind, name) for name, kind in self.columns}
            for row in self.rows
        ]


def _typed(value: Any, kind: str, name: str) -> Any:
    if value is None or value == "":
        return None
    if kind == "str":
        return str(value)
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"column {name}: {value!r} is not a finite number")
    return number


def with_columns(
    base: Sequence[tuple[str, str]], after: str, extra: Iterable[tuple[str, str]]
) -> tuple[tuple[str, str], ...]:
    """`base` with the `extra` columns inserted after the column `after`."""
    names = [name for name, _ in base]
    cut = names.index(after) + 1
    return (*base[:cut], *extra, *base[cut:])


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_table(table: Table, folder: Path, *, parquet: bool | None = None) -> list[Path]:
    """`NAME.csv` (and `NAME.parquet` when pyarrow is installed); returns the paths written."""
    rows = table.typed_rows()
    written = [folder / f"{table.name}.csv"]
    write_bytes_atomically(written[0], _csv_bytes(table.column_names(), rows))
    if parquet if parquet is not None else parquet_available():
        written.append(folder / f"{table.name}.parquet")
        write_bytes_atomically(written[1], _parquet_bytes(table.columns, rows))
    return written


def _csv_bytes(names: list[str], rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buffer.getvalue().encode("utf-8")


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # the exact value: read back bit for bit
    return value


def _parquet_bytes(columns: Sequence[tuple[str, str]], rows: list[dict[str, Any]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    schema = pa.schema([(name, types[kind]) for name, kind in columns])
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def read_csv_table(
    path: Path, columns: Mapping[str, str] | Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """A table written by `write_table` read back with its column types."""
    kinds = dict(columns)
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return [
            {name: _typed(value, kinds.get(name, "str"), name) for name, value in row.items()}
            for row in csv.DictReader(handle)
        ]
