"""Strict CSV reader for sensor series: timestamps + named numeric columns.

Used by `statecast score`, `replay`, `train` and int8 calibration. Any missing or non-numeric
cell is an error that names the file, line and column; nothing is silently skipped.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass

import numpy as np

from statecast.daemon.timestamps import parse_timestamp
from statecast.daemon.value_range import out_of_range


class SeriesError(Exception):
    """A CSV that cannot be used as a sensor series (one-line reason)."""


@dataclass(frozen=True)
class Series:
    timestamps: np.ndarray        # (rows,) float seconds since the epoch, UTC
    values: np.ndarray            # (rows, columns) float64
    columns: tuple[str, ...]
    raw_timestamps: tuple[str, ...]


def _parse_rows(spec: str | None, total: int) -> slice:
    """--rows syntax: ":N", "A:B", "A:" (python slice of data rows)."""
    if not spec:
        return slice(None)
    try:
        start, _, stop = spec.partition(":")
        return slice(int(start) if start else None, int(stop) if stop else None)
    except ValueError:
        raise SeriesError(f"--rows '{spec}': expected START:STOP, e.g. :5000") from None


def read_series(path: str, time_column: str = "timestamp", value_columns: tuple[str, ...] = ("value",),
                rows: str | None = None) -> Series:
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as error:
        raise SeriesError(f"{path}: {error.strerror}") from None
    with handle:
        try:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header:
                raise SeriesError(f"{path}: empty file")
            header = [name.strip() for name in header]
            missing = [c for c in (time_column, *value_columns) if c not in header]
            if missing:
                raise SeriesError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(header)})")
            t_at = header.index(time_column)
            v_at = [header.index(c) for c in value_columns]
            stamps, raw, values = [], [], []
            for line_number, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) < len(header):
                    raise SeriesError(f"{path}:{line_number}: expected {len(header)} fields, got {len(row)}")
                try:
                    stamps.append(parse_timestamp(row[t_at]))
                except ValueError:
                    raise SeriesError(f"{path}:{line_number}: bad timestamp '{row[t_at][:40]}'") from None
                raw.append(row[t_at].strip())
                parsed = []
                for column, at in zip(value_columns, v_at):
                    try:
                        number = float(row[at])
                    except ValueError:
                        number = math.nan
                    why = out_of_range(number)
                    if why is not None:
                        raise SeriesError(f"{path}:{line_number}: column '{column}' {why} ('{row[at][:40]}')")
                    parsed.append(number)
                values.append(parsed)
        except UnicodeDecodeError:
            raise SeriesError(f"{path}: not a UTF-8 text CSV") from None
        except csv.Error as error:
            raise SeriesError(f"{path}: malformed CSV ({error})") from None
    if not values:
        raise SeriesError(f"{path}: no data rows")
    window = _parse_rows(rows, len(values))
    return Series(np.asarray(stamps, np.float64)[window], np.asarray(values, np.float64)[window],
                  tuple(value_columns), tuple(raw[window]))
