"""The model recipe chosen by leave-one-source-out (issue 15): models/build_default.sh's recipe
and variants of it, each trained in one or more draws, scored through the anomaly stage with the
shipped settings (user's way, standard profile, float32).

    python bench/recipe_selection.py [--work-dir /tmp/statecast-recipes]   # ~8 min a draw, 2 cores

A candidate is a set of build_default.sh knobs (cell, calendar inputs, training data); a draw
is one SEED (it seeds the training and the synthetic series). Every draw is built float-only
(INTEGER_MODES="") into <work-dir>/<candidate>-seed<k>, once: a draw already built there is
reused. Seed 0 of the shipped recipe is models/default itself.

Per left-out source, the candidate whose mean over its draws has the best worst score on the
other three sources (ties by their mean; nested_selection.merit) is chosen, and its mean on the
left-out source is the left-out score. The same rule over single draws is reported too: choosing
a draw is choosing a seed. Results: bench/results/recipe_selection.json; docs/anomaly.md
("The model recipe, chosen by leave-one-source-out").
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anomaly_eval  # noqa: E402
import anomaly_sources  # noqa: E402
import nested_selection  # noqa: E402

ROOT = anomaly_sources.ROOT
SOURCES = anomaly_sources.SOURCES
CANDIDATES = {
    "shipped": {},                       # GRU 32 with time-of-day and day-of-week inputs
    "no-calendar": {"CALENDAR": "0"},    # SMAP's and MSL's timestamps carry no calendar meaning
    "lstm": {"CELL": "lstm"},
    "synthetic-x2": {"SYNTHETIC_SERIES": "72"},   # training data: twice the synthetic series
}
SEEDS = {candidate: (0, 1) for candidate in CANDIDATES}
SHIPPED_DRAW = ("shipped", 0)            # models/default
RESULTS = Path(__file__).resolve().parent / "results" / "recipe_selection.json"


def build(candidate: str, seed: int, work_dir: Path) -> Path:
    """The draw's float model directory, built with build_default.sh unless it is there already."""
    if (candidate, seed) == SHIPPED_DRAW:
        return ROOT / "models" / "default"
    out = work_dir / f"{candidate}-seed{seed}"
    if not (out / "default" / "manifest.json").exists():
        out.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **CANDIDATES[candidate], "SEED": str(seed), "OUT": str(out), "INTEGER_MODES": ""}
        with open(out / "build.log", "w", encoding="utf-8") as log:
            built = subprocess.run(["bash", "models/build_default.sh"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        if built.returncode != 0:
            sys.exit(f"recipe_selection: building {candidate} seed {seed} failed; see {out / 'build.log'}")
    return out / "default"


def draw_scores(model_dir: Path, settings: dict, work_dir: Path) -> dict[str, float]:
    """{source: user's-way standard score} of one float model over the four sources."""
    table = anomaly_eval.evaluate([settings], detectors=("float32",), models={"float32": model_dir},
                                  work_dir=str(work_dir / "runs"))
    return {s: anomaly_eval.pick(table, config=0, detector="float32", way="user", profile="standard",
                                 source=s)["score"] for s in (*SOURCES, "pooled")}


def select(scores: dict[str, dict[str, float]], sources=SOURCES) -> dict:
    """Leave-one-source-out over candidates {name: {source: score}}: per fold the chosen name and
    its left-out score, and the choice on all the sources ("none")."""
    folds = {}
    for fold in (*sources, nested_selection.ALL):
        chosen = max(sorted(scores), key=lambda name: nested_selection.merit(scores[name], fold, sources))
        folds[fold] = {"chosen": chosen, "left_out": scores[chosen].get(fold)}
    return folds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", default="/tmp/statecast-recipes")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    work_dir = Path(args.work_dir)
    settings = json.loads((ROOT / "models" / "default-anomaly.json").read_text(encoding="utf-8"))

    draws = {}
    for candidate, seeds in SEEDS.items():
        for seed in seeds:
            draws[f"{candidate}-seed{seed}"] = scores = draw_scores(build(candidate, seed, work_dir), settings, work_dir)
            print(f"{candidate} seed {seed}: " + " / ".join(f"{scores[s]:.1f}" for s in (*SOURCES, "pooled")), flush=True)
    means = {c: {s: sum(draws[f"{c}-seed{k}"][s] for k in seeds) / len(seeds) for s in (*SOURCES, "pooled")}
             for c, seeds in SEEDS.items()}
    report = {"draws": draws, "recipe_means": means, "by_recipe": select(means), "by_draw": select(draws)}
    for name, folds in (("recipe means", report["by_recipe"]), ("single draws", report["by_draw"])):
        left = " / ".join(f"{folds[s]['chosen']} {folds[s]['left_out']:.1f}" for s in SOURCES)
        print(f"{name}: left out {left}; on all four {folds[nested_selection.ALL]['chosen']}")
    Path(args.out).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
