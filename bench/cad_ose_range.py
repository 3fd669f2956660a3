"""NAB's CAD OSE fed the way a stream can be fed: how much of its score is the whole file's range?

NAB's runner hands every detector the min and max of the *whole* file before its first row
(nab/detectors/base.py: inputMin, inputMax; NAB issue #350 calls this a bias for streaming data).
CAD OSE cuts that range into 8 bins and learns contexts of bins, so an excursion that the labels
call anomalous already has bins of its own. A daemon cannot know a stream's future range. This
script runs NAB's own CAD OSE, imported from a NAB checkout (--nab-code; nothing of NAB is copied
into statecast), with these ranges:

    whole-file      the whole file's min and max, as NAB does (reproduces the stored scores)
    probation       min and max of the file's probationary rows (the rows NAB does not score),
                    later values clipped into it: only what a stream has shown
    probation-x3    that range widened by its own width on each side (headroom), values clipped
    probation-x11   widened by five widths on each side, values clipped

and scores each with NAB's rules per source, standard profile (and the two others): θ tuned on
the source itself (NAB's way, as reference-scores.md reports), and θ chosen on the other three
sources (left out, as statecast's alert threshold is judged).

    git clone https://github.com/numenta/NAB /tmp/nab && git -C /tmp/nab checkout ea702d7
    python bench/cad_ose_range.py --nab-code /tmp/nab                    # ~13 min on 2 cores
    python bench/cad_ose_range.py --nab-code /tmp/nab --rules whole-file --check

--check compares the whole-file scores row by row with the per-row CAD OSE results stored in the
development corpus. Results: bench/results/cad_ose_range.json; docs/anomaly.md ("What CAD OSE's
figures assume").
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anomaly_eval  # noqa: E402
import anomaly_scoring  # noqa: E402
import anomaly_sources  # noqa: E402
import nab_scorer  # noqa: E402

RULES = ("whole-file", "probation", "probation-x3", "probation-x11")
HEADROOM = {"probation": 0, "probation-x3": 1, "probation-x11": 5}   # range widths added on each side
RESULTS = Path(__file__).resolve().parent / "results" / "cad_ose_range.json"


def value_range(values: np.ndarray, rule: str) -> tuple[float, float, bool]:
    """(min, max, clip later values into it?) that CAD OSE is built with under a rule. Values
    outside a probationary range are clipped to its edge: NAB's CAD OSE bins (value - min) / step
    into 3 bits and has no meaning for a bin below 0 or above 7."""
    if rule not in RULES:
        raise ValueError(f"unknown range rule {rule!r} (one of {', '.join(RULES)})")
    if rule == "whole-file":
        return float(values.min()), float(values.max()), False
    head = values[:nab_scorer.probation_rows(len(values))]
    low, high = float(head.min()), float(head.max())
    width = high - low
    return low - HEADROOM[rule] * width, high + HEADROOM[rule] * width, True


def _values(path) -> np.ndarray:
    with open(path, newline="", encoding="utf-8") as handle:
        return np.array([float(row["value"]) for row in csv.DictReader(handle)], np.float64)


def _detector_class(nab_code: str):
    if nab_code not in sys.path:
        sys.path.insert(0, nab_code)
    from nab.detectors.context_ose.cad_ose import ContextualAnomalyDetectorOSE
    return ContextualAnomalyDetectorOSE


def _run_file(task: tuple) -> tuple[str, np.ndarray]:
    """Worker: one file under one rule, fed row by row as NAB's ContextOSEDetector feeds it."""
    nab_code, rule, key, path = task
    detector_class = _detector_class(nab_code)
    values = _values(path)
    low, high, clip = value_range(values, rule)
    # NAB's ContextOSEDetector: restPeriod = probationary period / 5.
    cad = detector_class(minValue=low, maxValue=high, restPeriod=nab_scorer.probation_rows(len(values)) / 5.0)
    scores = np.empty(len(values))
    for i, value in enumerate(values):
        scores[i] = cad.getAnomalyScore({"value": min(max(value, low), high) if clip else value})
    return key, scores


def run_rule(nab_code: str, rule: str, files, work_dir: Path, jobs: int) -> dict[str, np.ndarray]:
    """Per-row scores {file key: scores} under a rule, cached in work_dir (the detector is deterministic)."""
    cache = work_dir / f"cad_ose_{rule}.npz"
    if cache.exists():
        with np.load(cache) as stored:
            if set(stored.files) == {f.key for f in files}:
                return {key: stored[key] for key in stored.files}
    tasks = [(nab_code, rule, f.key, str(f.path)) for f in files]
    with Pool(jobs) as pool:
        scores = dict(pool.imap_unordered(_run_file, tasks))
    work_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, **scores)
    return scores


def check_against_stored(files, scores: dict[str, np.ndarray], devcorpus) -> tuple[int, int, float]:
    """(files compared, files that differ, largest |difference|) against the stored CAD OSE rows."""
    compared = differ = 0
    largest = 0.0
    for f in files:
        path = anomaly_sources.reference_path(f, anomaly_sources.CAD_OSE, devcorpus)
        if path is None or not path.exists():
            continue
        _, stored = anomaly_sources.read_score_csv(path)
        gap = float(np.max(np.abs(stored - scores[f.key])))
        compared, differ, largest = compared + 1, differ + (gap > 0), max(largest, gap)
    return compared, differ, largest


def scores_table(corpus, scores: dict[str, np.ndarray]) -> dict:
    """{profile: {way: {source: score}}} for ways "own" (θ per source), "pooled" (θ over all the
    files, its score and each source at it) and "left_out" (θ chosen on the other sources)."""
    rows = anomaly_scoring.score_detector(corpus, scores, None)
    table = {}
    for profile in anomaly_scoring.PROFILES:
        def score(source, way):
            return next(r["score"] for r in rows if r["source"] == source and r["way"] == way and r["profile"] == profile)
        left_out = anomaly_scoring.at_theta_chosen_without(corpus, scores, profile)
        table[profile] = {
            "own": {**{s: score(s, "nab") for s in corpus.sources}, "pooled": score("pooled", "nab")},
            "pooled": {s: score(s, "nab_pooled_theta") for s in corpus.sources},
            "left_out": {s: left_out[s]["score"] for s in corpus.sources},
            "left_out_theta": {s: left_out[s]["threshold"] for s in corpus.sources},
        }
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nab-code", required=True, help="a NAB checkout (holds nab/detectors/context_ose)")
    parser.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    parser.add_argument("--devcorpus", default=str(anomaly_sources.DEFAULT_DEVCORPUS))
    parser.add_argument("--work-dir", default="/tmp/statecast-cad-ose")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="compare whole-file scores with the stored ones")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if not Path(args.nab_code, "nab", "detectors", "context_ose", "cad_ose.py").exists():
        parser.error(f"--nab-code {args.nab_code}: no nab/detectors/context_ose/cad_ose.py there")

    files = anomaly_sources.all_files(devcorpus=args.devcorpus)
    corpus = anomaly_eval.corpus_for(devcorpus=args.devcorpus)
    report = {"sources": list(corpus.sources), "rules": {}}
    for rule in args.rules:
        started = time.time()
        scores = run_rule(args.nab_code, rule, files, Path(args.work_dir), args.jobs)
        entry = {"seconds": round(time.time() - started), **scores_table(corpus, scores)}
        if args.check and rule == "whole-file":
            compared, differ, largest = check_against_stored(files, scores, args.devcorpus)
            entry["check"] = {"files_compared": compared, "files_differing": differ, "largest_difference": largest}
            print(f"whole-file against the stored CAD OSE rows: {compared} files, {differ} differ, "
                  f"largest difference {largest:g}")
        report["rules"][rule] = entry
        standard = entry["standard"]
        cells = lambda d: " / ".join(f"{d[s]:.1f}" for s in corpus.sources)
        print(f"{rule:15s} standard: own θ {cells(standard['own'])} (pooled {standard['own']['pooled']:.1f}); "
              f"left out {cells(standard['left_out'])}")
    Path(args.out).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
