"""Bar charts of the baseline table (docs/anomaly/*.png): per source, statecast float32 / int8 /
persistence next to NAB's reference detectors, standard profile; one chart per way.

Reads the table rows that `python bench/anomaly_eval.py --json FILE` wrote.

    python bench/anomaly_plots.py --table /tmp/statecast-anomaly/baseline.json [--out docs/anomaly]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402  (matplotlib's own dependency)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anomaly_report  # noqa: E402

COLUMNS = anomaly_report.COLUMNS
SERIES = {"float32": "#1f77b4", "int8": "#6baed6", "persistence": "#bdbdbd", "contextOSE": "#d62728",
          "numenta": "#ff9896"}
WAYS = {"nab": "NAB's way: θ optimised per source (pooled: one θ over 147 files)",
        "user": "The user's way: detections = the daemon's alert events"}


def published(table, detector: str, way: str, profile: str = "standard") -> list[bool]:
    """Which bars of values() are CAD OSE's published numbers (hatched in the chart)."""
    return [detector == "contextOSE" and not any(
        r["detector"] == detector and r["way"] == way and r["profile"] == profile and r["source"] == c
        for r in table) and c in anomaly_report.CAD_OSE_PUBLISHED[profile].get(way, {}) for c in COLUMNS]


def values(table, detector: str, way: str, profile: str = "standard") -> list[float]:
    """Score per column; CAD OSE's published numbers where its rows are not stored; NaN if none."""
    out = []
    for column in COLUMNS:
        rows = [r for r in table if r["detector"] == detector and r["way"] == way and r["profile"] == profile
                and r["source"] == column and r["config"] in (0, None)]
        if rows:
            out.append(rows[0]["score"])
        elif detector == "contextOSE":
            out.append(anomaly_report.CAD_OSE_PUBLISHED[profile].get(way, {}).get(column, np.nan))
        else:
            out.append(np.nan)
    return out


def bar_chart(table, way: str, path: Path) -> None:
    detectors = [d for d in SERIES if not np.all(np.isnan(values(table, d, way)))]
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    width = 0.8 / len(detectors)
    x = np.arange(len(COLUMNS))
    for i, d in enumerate(detectors):
        v = values(table, d, way)
        bars = ax.bar(x + (i - (len(detectors) - 1) / 2) * width, np.nan_to_num(v), width,
                      label=d, color=SERIES[d])
        for bar, value, from_table in zip(bars, v, published(table, d, way)):
            if from_table:
                bar.set_hatch("//")
                bar.set_edgecolor("white")
            if np.isfinite(value):
                ax.annotate(f"{value:.0f}", (bar.get_x() + bar.get_width() / 2, max(value, 0)),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, COLUMNS)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("NAB score, standard profile")
    ax.set_title(WAYS[way] + ("\nhatched: CAD OSE's published number (reference-scores.md)"
                              if any(any(published(table, d, way)) for d in detectors) else ""), fontsize=10)
    ax.legend(fontsize=8, ncol=len(detectors), loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)   # keeps the repository light


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default="/tmp/statecast-anomaly/baseline.json")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "anomaly"))
    args = parser.parse_args(argv)
    table = json.loads(Path(args.table).read_text(encoding="utf-8"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for way in WAYS:
        bar_chart(table, way, out / f"per_source_{way}.png")
        print(out / f"per_source_{way}.png")


if __name__ == "__main__":
    main()
