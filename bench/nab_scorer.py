"""NAB v1.1 scoring (data/nab/README.md), pure numpy/stdlib.

Per row: a weight (scaled sigmoid inside/after windows, -A_FP before the first window) and a
group (a window, or "false positive"); rows in probation are dropped. One threshold per detector
and profile is chosen over the pooled corpus by sweeping every distinct score value in
descending order: a window's contribution only changes when a row beats its best weight so far,
so the total at every threshold is one cumulative sum over the sorted rows.

    python bench/nab_scorer.py [--nab-dir data/nab] [detector ...]
    python bench/nab_scorer.py --windows W.json --results DIR [--files '^skab/']
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

PROFILES = {  # name -> (A_TP, A_FP, A_FN)
    "standard": (1.0, 0.11, 1.0),
    "reward_low_FP_rate": (1.0, 0.22, 1.0),
    "reward_low_FN_rate": (1.0, 0.11, 2.0),
}
PROBATION_FRACTION = 0.15
PROBATION_MAX_ROWS = 750
FP_GROUP = -1  # group id of rows outside every window

Results = dict[str, tuple[list[str], np.ndarray]]
Windows = dict[str, list[tuple[str, str]]]


def scaled_sigmoid(x: float) -> float:
    """NAB's sigma: 2/(1+e^(5x)) - 1 in (-1, 1), and exactly -1 for x > 3."""
    return -1.0 if x > 3.0 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_rows(n_rows: int) -> int:
    return min(int(math.floor(PROBATION_FRACTION * n_rows)), PROBATION_MAX_ROWS)


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.strip())


def sigmoid_array(x: np.ndarray) -> np.ndarray:
    """scaled_sigmoid over an array."""
    with np.errstate(over="ignore"):
        return np.where(x > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * np.minimum(x, 3.0))) - 1.0)


def parse_times(timestamps) -> np.ndarray:
    """NAB timestamps ("2014-04-10 07:15:00[.000000]") -> datetime64[us]."""
    try:
        return np.array([t.strip() for t in timestamps], dtype="datetime64[us]")
    except ValueError:  # a form numpy does not read: the slow, general parser
        return np.array([_parse_time(t) for t in timestamps], dtype="datetime64[us]")


def window_rows(timestamps, windows: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """Each window [start, end] -> inclusive row range (L, R) of rows with start <= ts <= end.
    timestamps: strings, or datetime64 from parse_times()."""
    times = timestamps if isinstance(timestamps, np.ndarray) else parse_times(timestamps)
    spans = []
    for start, end in windows:
        lo, hi = np.datetime64(_parse_time(start), "us"), np.datetime64(_parse_time(end), "us")
        inside = np.flatnonzero((times >= lo) & (times <= hi))
        if len(inside):
            spans.append((int(inside[0]), int(inside[-1])))
    return spans


@dataclass
class FileRows:
    """One file's scorable (post-probation) rows: score, weight and group, plus its windows."""
    scores: np.ndarray   # (rows,)
    weights: np.ndarray  # (rows,) reward if this row detects (negative outside windows)
    groups: np.ndarray   # (rows,) window index within the file, or FP_GROUP
    n_windows: int       # windows with at least one row after probation
    start: int = 0       # rows of the file in probation (dropped): scores of the file are [start:]

    def with_scores(self, file_scores: np.ndarray) -> "FileRows":
        """The same rows and weights with another detector's per-row scores of the whole file."""
        file_scores = np.asarray(file_scores, np.float64)
        if file_scores.shape != (self.start + len(self.weights),):
            raise ValueError(f"{self.start + len(self.weights)} rows but scores of shape {file_scores.shape}")
        return FileRows(file_scores[self.start:], self.weights, self.groups, self.n_windows, self.start)


def file_rows(timestamps, scores: np.ndarray | None, windows: list[tuple[str, str]],
              profile: str) -> FileRows:
    """Weights and groups of one file (scores None: zeros, to be set with with_scores())."""
    a_tp, a_fp, _ = PROFILES[profile]
    n_rows = len(timestamps)
    scores = np.zeros(n_rows) if scores is None else np.asarray(scores, np.float64)
    if scores.shape != (n_rows,):
        raise ValueError(f"{n_rows} timestamps but scores of shape {scores.shape}")
    weights = np.full(n_rows, -a_fp)
    groups = np.full(n_rows, FP_GROUP, np.int64)
    spans = window_rows(timestamps, windows)
    max_tp = scaled_sigmoid(-1.0)
    for k, (left, right) in enumerate(spans):
        width = right - left + 1
        inside = np.arange(left, right + 1)
        weights[left:right + 1] = a_tp * sigmoid_array(-(right - inside + 1) / width) / max_tp
        groups[left:right + 1] = k
        following = spans[k + 1][0] if k + 1 < len(spans) else n_rows
        after = np.arange(right + 1, following)
        # A one-row window has R' - L' = 0: NAB's division would fail; treat as far past.
        distance = np.abs(right - after) / (right - left) if right > left else np.full(len(after), np.inf)
        weights[right + 1:following] = a_fp * sigmoid_array(distance)
    start = probation_rows(n_rows)
    kept_groups = groups[start:]
    n_windows = len(np.unique(kept_groups[kept_groups != FP_GROUP]))
    return FileRows(scores[start:], weights[start:], kept_groups, n_windows, start)


def pooled_rows(rows: list[FileRows]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, weights, groups) of all rows, window ids made unique across files."""
    groups, offset = [], 0
    for r in rows:
        groups.append(np.where(r.groups == FP_GROUP, FP_GROUP, r.groups + offset))
        offset += int(r.groups.max(initial=-1)) + 1
    return (np.concatenate([r.scores for r in rows]), np.concatenate([r.weights for r in rows]),
            np.concatenate(groups))


def _sweep(rows: list[FileRows], a_fn: float) -> tuple[float, float]:
    """Best (threshold, raw total) over every distinct score, detection being score >= threshold."""
    scores, weights, group = pooled_rows(rows)
    inside = group != FP_GROUP
    null_total = -a_fn * len(np.unique(group[inside]))
    order = np.argsort(-scores, kind="stable")
    scores, weights, group = scores[order], weights[order], group[order]
    delta = np.where(group == FP_GROUP, weights, 0.0)
    # Window rows grouped by window, in descending score order within each window (stable sort).
    at_window = np.flatnonzero(group != FP_GROUP)
    at_window = at_window[np.argsort(group[at_window], kind="stable")]
    window_of = group[at_window]
    bounds = np.flatnonzero(np.diff(window_of)) + 1
    for at in np.split(at_window, bounds) if len(at_window) else []:
        best = np.maximum.accumulate(np.maximum(weights[at], -a_fn))
        delta[at] = np.diff(np.concatenate([[-a_fn], best]))
    totals = null_total + np.cumsum(delta)
    # A threshold equal to scores[k] detects every row up to the last tie of scores[k].
    last_of_tie = np.flatnonzero(np.append(scores[1:] != scores[:-1], True))
    if len(last_of_tie) == 0:
        return math.inf, null_total
    best = last_of_tie[int(np.argmax(totals[last_of_tie]))]  # first max = highest threshold
    if totals[best] <= null_total:
        return math.inf, null_total
    return float(scores[best]), float(totals[best])


def _file_score(r: FileRows, threshold: float, a_fn: float) -> dict:
    detects = r.scores >= threshold
    fp = detects & (r.groups == FP_GROUP)
    score = float(r.weights[fp].sum())
    tp = 0
    for g in np.unique(r.groups[r.groups != FP_GROUP]):
        hit = detects & (r.groups == g)
        if hit.any():
            tp += 1
            score += float(r.weights[hit].max())
        else:
            score -= a_fn
    return {"score": score, "tp": tp, "fp": int(fp.sum()), "fn": r.n_windows - tp}


def score_rows(rows: dict[str, FileRows], profile: str, threshold: float | None = None) -> dict:
    """score_corpus() on prepared rows {key: FileRows} (see file_rows, FileRows.with_scores)."""
    a_tp, _, a_fn = PROFILES[profile]
    keys = sorted(rows)
    if threshold is None:
        threshold, _ = _sweep([rows[k] for k in keys], a_fn)
    per_file = {k: _file_score(rows[k], threshold, a_fn) for k in keys}
    raw = sum(f["score"] for f in per_file.values())
    n_windows = sum(rows[k].n_windows for k in keys)
    perfect, null = a_tp * n_windows, -a_fn * n_windows
    normalised = 100.0 * (raw - null) / (perfect - null) if n_windows else 0.0
    return {"score": normalised, "threshold": threshold, "raw": raw, "per_file": per_file,
            "n_windows": n_windows,
            "tp": sum(f["tp"] for f in per_file.values()),
            "fp": sum(f["fp"] for f in per_file.values()),
            "fn": sum(f["fn"] for f in per_file.values())}


def score_corpus(results: Results, windows: Windows, profile: str,
                 threshold: float | None = None) -> dict:
    """Normalised score and its parts at one threshold for all files: the best one over the
    pooled corpus (NAB's rule) unless a fixed `threshold` is given."""
    rows = {k: file_rows(*results[k], windows.get(k, []), profile) for k in results}
    return score_rows(rows, profile, threshold)


def load_windows(nab_dir, name: str = "windows.json") -> Windows:
    """A NAB windows file (nab_dir/name; or nab_dir itself when it is a .json file)."""
    path = Path(nab_dir) if str(nab_dir).endswith(".json") else Path(nab_dir) / name
    with open(path) as f:
        return {k: [(w[0], w[1]) for w in v] for k, v in json.load(f).items()}


def read_scored_csv(path) -> tuple[list[str], np.ndarray]:
    """timestamp,anomaly_score CSV, plain or .gz."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        reader = csv.DictReader(f)
        rows = [(row["timestamp"], float(row["anomaly_score"])) for row in reader]
    return [t for t, _ in rows], np.array([s for _, s in rows], np.float64)


def load_reference(nab_dir, detector: str) -> Results:
    """reference-results/<detector>/<folder>/<detector>_<file>.csv -> {"<folder>/<file>": ...}"""
    root = Path(nab_dir) / "reference-results" / detector
    results = {}
    for path in sorted(root.glob("*/*.csv")):
        name = path.name.removeprefix(f"{detector}_")
        results[f"{path.parent.name}/{name}"] = read_scored_csv(path)
    return results


def load_results(results_dir, files_pattern: str = "") -> Results:
    """<results_dir>/<folder>/<anything>_<file>.csv[.gz] -> {"<folder>/<file>.csv": ...} (NAB's
    results layout, and the development corpus's reference-results), keys matching the regex."""
    results = {}
    for path in sorted(Path(results_dir).glob("*/*.csv*")):
        name = path.name.removesuffix(".gz").split("_", 1)[1]
        key = f"{path.parent.name}/{name}"
        if re.search(files_pattern, key):
            results[key] = read_scored_csv(path)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = Path(__file__).resolve().parent.parent / "data" / "nab"
    parser.add_argument("--nab-dir", default=str(default_dir))
    parser.add_argument("--windows", help="a windows JSON file (default <nab-dir>/windows.json)")
    parser.add_argument("--results", help="score this results directory (<folder>/<detector>_<file>.csv[.gz]) "
                        "instead of <nab-dir>/reference-results/<detector>")
    parser.add_argument("--files", default="", help="regex on '<folder>/<file>.csv' keys (with --results)")
    parser.add_argument("detectors", nargs="*", default=["numenta", "windowedGaussian"])
    args = parser.parse_args(argv)
    windows = load_windows(args.windows or args.nab_dir)
    runs = ({args.results: load_results(args.results, args.files)} if args.results else
            {d: load_reference(args.nab_dir, d) for d in args.detectors})
    for detector, results in runs.items():
        for profile in PROFILES:
            out = score_corpus(results, windows, profile)
            print(f"{detector:18s} {profile:20s} score={out['score']:6.2f} "
                  f"threshold={out['threshold']:.6g} tp={out['tp']} fp={out['fp']} fn={out['fn']}")


if __name__ == "__main__":
    main()
