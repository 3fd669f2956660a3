"""Per-file diagnostic of one configuration: TP / FP rows / FN per file, and the labelled windows
that the reference detector catches and statecast misses (where a signal fails).

The reference is CAD OSE (contextOSE) on smap/msl/skab and numenta (HTM) on nab-dev (CAD OSE's
nab-dev rows are not stored), each at its own NAB-optimal θ per source (standard profile).
statecast is taken either NAB's way (its own per-source θ) or the user's way (its alert rows).

    python bench/anomaly_diagnose.py [--settings JSON] [--detector float32] [--way user]
                                     [--source msl ...] [--only-misses]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anomaly_eval  # noqa: E402
import anomaly_runs  # noqa: E402
import anomaly_scoring  # noqa: E402
import anomaly_sources  # noqa: E402


def _reference_name(source: str) -> str:
    return "numenta" if source == "nab-dev" else anomaly_sources.CAD_OSE


def diagnose(settings: dict, detector: str = "float32", way: str = "user", profile: str = "standard",
             sources=anomaly_sources.SOURCES, devcorpus=anomaly_sources.DEFAULT_DEVCORPUS,
             work_dir=anomaly_runs.DEFAULT_WORK_DIR, jobs: int = 2) -> list[dict]:
    """[{file, tp, fp, fn, ref_tp, ref_fp, we_miss_ref_catches: [window start], we_catch_ref_misses: [...]}]"""
    corpus = anomaly_eval.corpus_for(sources, devcorpus)
    model = anomaly_eval.PERSISTENCE_MODEL if detector == anomaly_eval.PERSISTENCE else detector
    npz = anomaly_eval.scored_files(corpus, work_dir, {model: anomaly_eval.MODELS[model]}, jobs)
    scores, alerts = anomaly_eval.replay_all([settings], corpus, npz, (detector,), jobs=jobs)[(0, detector)]
    ours_rows = anomaly_scoring.score_detector(corpus, scores, alerts, keep_per_file=True)
    ours = {r["source"]: r for r in ours_rows if r["way"] == way and r["profile"] == profile}
    per_row = {k: v.astype(np.float64) for k, v in alerts.items()} if way == "user" else scores
    our_theta = {s: (0.5 if way == "user" else ours[s]["threshold"]) for s in corpus.sources}
    our_hits = anomaly_scoring.window_hits(corpus, per_row, our_theta)
    report = []
    for source in corpus.sources:
        sub = corpus.subset((source,))
        ref_scores = anomaly_scoring.reference_scores(sub, _reference_name(source), devcorpus)
        ref = next(r for r in anomaly_scoring.score_detector(sub, ref_scores, None, keep_per_file=True)
                   if r["way"] == "nab" and r["profile"] == profile and r["source"] == source)
        ref_hits = anomaly_scoring.window_hits(sub, ref_scores, {source: ref["threshold"]})
        for f in sub.files:
            mine, theirs = our_hits[f.key], ref_hits[f.key]
            starts = [w[0] for w in f.windows][len(f.windows) - len(mine):]  # windows in probation come first
            report.append({"file": f.key, **{k: ours[source]["per_file"][f.key][k] for k in ("tp", "fp", "fn")},
                           "ref": _reference_name(source), "ref_tp": ref["per_file"][f.key]["tp"],
                           "ref_fp": ref["per_file"][f.key]["fp"],
                           "we_miss_ref_catches": [s for s, a, b in zip(starts, mine, theirs) if b and not a],
                           "we_catch_ref_misses": [s for s, a, b in zip(starts, mine, theirs) if a and not b]})
    return report


def markdown(report: list[dict], only_misses: bool = False) -> str:
    lines = ["| file | TP | FP rows | FN | reference TP / FP rows | windows the reference catches and we miss (start) | we catch, it misses |",
             "|---|---:|---:|---:|---|---|---|"]
    for r in report:
        if only_misses and not r["we_miss_ref_catches"]:
            continue
        lines.append(f"| {r['file']} | {r['tp']} | {r['fp']} | {r['fn']} | {r['ref']} {r['ref_tp']} / {r['ref_fp']} | "
                     f"{', '.join(r['we_miss_ref_catches'])} | {', '.join(r['we_catch_ref_misses'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="{}")
    parser.add_argument("--detector", default="float32", choices=anomaly_eval.DETECTORS)
    parser.add_argument("--way", default="user", choices=("user", "nab"))
    parser.add_argument("--source", action="append", choices=anomaly_sources.SOURCES)
    parser.add_argument("--devcorpus", default=str(anomaly_sources.DEFAULT_DEVCORPUS))
    parser.add_argument("--only-misses", action="store_true")
    args = parser.parse_args(argv)
    report = diagnose(json.loads(args.settings), args.detector, args.way,
                      sources=tuple(args.source or anomaly_sources.SOURCES), devcorpus=args.devcorpus)
    print(markdown(report, args.only_misses))


if __name__ == "__main__":
    main()
