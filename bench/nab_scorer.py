"""NAB v1.1 scoring (data/nab/README.md), pure numpy/stdlib.

Per row: a weight (scaled sigmoid inside/after windows, -A_FP before the first window) and a
group (a window, or "false positive"); rows in probation are dropped. One threshold per detector
and profile is chosen over the pooled corpus by sweeping every distinct score value in
descending order: a window's contribution only changes when a row beats its best weight so far,
so the total at every threshold is one cumulative sum over the sorted rows.

    python bench/nab_scorer.py [--nab-dir data/nab] [detector ...]
"""
from __future__ import annotations

import argparse
import csv
import json
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


def window_rows(timestamps: list[str], windows: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """Each window [start, end] -> inclusive row range (L, R) of rows with start <= ts <= end."""
    times = [_parse_time(t) for t in timestamps]
    spans = []
    for start, end in windows:
        lo, hi = _parse_time(start), _parse_time(end)
        inside = [i for i, t in enumerate(times) if lo <= t <= hi]
        if inside:
            spans.append((inside[0], inside[-1]))
    return spans


@dataclass
class FileRows:
    """One file's scorable (post-probation) rows: score, weight and group, plus its windows."""
    scores: np.ndarray   # (rows,)
    weights: np.ndarray  # (rows,) reward if this row detects (negative outside windows)
    groups: np.ndarray   # (rows,) window index within the file, or FP_GROUP
    n_windows: int       # windows with at least one row after probation


def file_rows(timestamps: list[str], scores: np.ndarray, windows: list[tuple[str, str]],
              profile: str) -> FileRows:
    a_tp, a_fp, _ = PROFILES[profile]
    n_rows = len(timestamps)
    scores = np.asarray(scores, np.float64)
    if scores.shape != (n_rows,):
        raise ValueError(f"{n_rows} timestamps but scores of shape {scores.shape}")
    weights = np.full(n_rows, -a_fp)
    groups = np.full(n_rows, FP_GROUP, np.int64)
    spans = window_rows(timestamps, windows)
    max_tp = scaled_sigmoid(-1.0)
    for k, (left, right) in enumerate(spans):
        width = right - left + 1
        for i in range(left, right + 1):
            weights[i] = a_tp * scaled_sigmoid(-(right - i + 1) / width) / max_tp
            groups[i] = k
        following = spans[k + 1][0] if k + 1 < len(spans) else n_rows
        for i in range(right + 1, following):
            # A one-row window has R' - L' = 0: NAB's division would fail; treat as far past.
            distance = abs(right - i) / (right - left) if right > left else math.inf
            weights[i] = a_fp * scaled_sigmoid(distance)
    start = probation_rows(n_rows)
    kept_groups = groups[start:]
    n_windows = len({int(g) for g in kept_groups if g != FP_GROUP})
    return FileRows(scores[start:], weights[start:], kept_groups, n_windows)


def _sweep(rows: list[FileRows], a_fn: float) -> tuple[float, float]:
    """Best (threshold, raw total) over every distinct score, detection being score >= threshold."""
    scores = np.concatenate([r.scores for r in rows])
    weights = np.concatenate([r.weights for r in rows])
    groups, offset = [], 0
    for r in rows:  # make window ids unique across files
        groups.append(np.where(r.groups == FP_GROUP, FP_GROUP, r.groups + offset))
        offset += int(r.groups.max(initial=-1)) + 1
    group = np.concatenate(groups)
    null_total = -a_fn * len(np.unique(group[group != FP_GROUP]))
    order = np.argsort(-scores, kind="stable")
    scores, weights, group = scores[order], weights[order], group[order]
    delta = np.where(group == FP_GROUP, weights, 0.0)
    for g in np.unique(group[group != FP_GROUP]):
        at = np.flatnonzero(group == g)
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


def score_corpus(results: Results, windows: Windows, profile: str,
                 threshold: float | None = None) -> dict:
    """Normalised score and its parts at one threshold for all files: the best one over the
    pooled corpus (NAB's rule) unless a fixed `threshold` is given."""
    a_tp, _, a_fn = PROFILES[profile]
    keys = sorted(results)
    rows = [file_rows(*results[k], windows.get(k, []), profile) for k in keys]
    if threshold is None:
        threshold, _ = _sweep(rows, a_fn)
    per_file = {k: _file_score(r, threshold, a_fn) for k, r in zip(keys, rows)}
    raw = sum(f["score"] for f in per_file.values())
    n_windows = sum(r.n_windows for r in rows)
    perfect, null = a_tp * n_windows, -a_fn * n_windows
    normalised = 100.0 * (raw - null) / (perfect - null) if n_windows else 0.0
    return {"score": normalised, "threshold": threshold, "raw": raw, "per_file": per_file,
            "tp": sum(f["tp"] for f in per_file.values()),
            "fp": sum(f["fp"] for f in per_file.values()),
            "fn": sum(f["fn"] for f in per_file.values())}


def load_windows(nab_dir) -> Windows:
    with open(Path(nab_dir) / "windows.json") as f:
        return {k: [(w[0], w[1]) for w in v] for k, v in json.load(f).items()}


def read_scored_csv(path) -> tuple[list[str], np.ndarray]:
    with open(path, newline="") as f:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = Path(__file__).resolve().parent.parent / "data" / "nab"
    parser.add_argument("--nab-dir", default=str(default_dir))
    parser.add_argument("detectors", nargs="*", default=["numenta", "windowedGaussian"])
    args = parser.parse_args(argv)
    windows = load_windows(args.nab_dir)
    for detector in args.detectors:
        results = load_reference(args.nab_dir, detector)
        for profile in PROFILES:
            out = score_corpus(results, windows, profile)
            print(f"{detector:18s} {profile:20s} score={out['score']:6.2f} "
                  f"threshold={out['threshold']:.6g} tp={out['tp']} fp={out['fp']} fn={out['fn']}")


if __name__ == "__main__":
    main()
