"""`statecast score --plot P.png`: a picture of a scored CSV: the value with the forecasts made for
it (1 and H steps earlier), the anomaly score, and alerts where the CSV has an `alert` column.

Workstation only: matplotlib is the optional `plot` extra and is imported here, never by serve."""
from __future__ import annotations

import csv

import numpy as np


class PlotError(Exception):
    """A scored CSV that cannot be plotted, or matplotlib missing (one-line reason)."""


def _column(rows: list[dict], name: str) -> np.ndarray:
    return np.array([float(r[name]) if r.get(name) not in ("", None) else np.nan for r in rows])


def _read(path: str) -> tuple[list[str], list[dict]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except OSError as error:
        raise PlotError(f"{path}: {error.strerror}") from None


def plot_scored(scored_csv: str, out_png: str) -> str:
    try:
        import matplotlib
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install 'statecast[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields, rows = _read(scored_csv)
    horizons = [f for f in fields if f.startswith("forecast_")]
    if not rows or not horizons or "anomaly_score" not in fields:
        raise PlotError(f"{scored_csv}: not a scored CSV (needs value, forecast_1.., anomaly_score columns)")
    value_name = fields[1]
    index = np.arange(len(rows))
    value = _column(rows, value_name)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True, height_ratios=[2, 1])
    top.plot(index, value, color="black", lw=1, label=value_name)
    for name in sorted({horizons[0], horizons[-1]}):
        step = int(name.split("_")[1])
        # forecast_k at row t is for row t+k: draw it at the time it is for.
        top.plot(index + step, _column(rows, name), lw=0.8, label=f"forecast made {step} row(s) earlier")
    top.legend(loc="upper left", fontsize=7)
    bottom.plot(index, _column(rows, "anomaly_score"), color="tab:red", lw=0.8, label="anomaly score")
    if "alert" in fields:
        alerts = index[np.array([r["alert"] not in ("", "0", "false", "False", None) for r in rows])]
        for axis in (top, bottom):
            axis.vlines(alerts, 0, 1, transform=axis.get_xaxis_transform(), color="tab:orange", alpha=0.4, lw=1)
        bottom.plot([], [], color="tab:orange", label="alert")
    bottom.set_ylim(0, 1.05)
    bottom.set_xlabel("row")
    bottom.legend(loc="upper left", fontsize=7)
    figure.tight_layout()
    figure.savefig(out_png, dpi=90)
    plt.close(figure)
    return out_png
