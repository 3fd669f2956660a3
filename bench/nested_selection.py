"""Nested leave-one-source-out: in each fold, every tuned anomaly number and every signal chosen
together on the fold's three sources, then the fourth scored at the fold's choice.

    python bench/nested_selection.py --log /tmp/nested.jsonl            # the four folds (~40 min)
    python bench/nested_selection.py --log /tmp/nested.jsonl --folds none  # all four sources at once

The search is coordinate descent from a start (models/default's settings): one number at a time,
tried at 0.5x and 2x its current value (a threshold on its tail 1 - value), and each signal of
TOGGLES switched on or off; a move is taken when it raises the fold's criterion, the worst of
its sources' scores (user's way, standard profile, float32), ties by their mean. The folds
advance in lockstep so that a configuration two folds need is replayed once; every replay is
appended to --log (JSON lines) and read back on a rerun. docs/anomaly.md ("Every number chosen
at once, in each fold") has the results, and what the start leaks.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anomaly_eval  # noqa: E402
import anomaly_runs  # noqa: E402
import anomaly_sources  # noqa: E402

SOURCES = anomaly_sources.SOURCES
ALL = "none"                                   # the "fold" that leaves nothing out


def halve_double(value):
    return [type(value)(value / 2), type(value)(value * 2)]


def tail_halve_double(value):
    return [round(1 - (1 - value) / 2, 6), round(1 - (1 - value) * 2, 6)]


NUMBERS = {"threshold": tail_halve_double, **{name: halve_double for name in (
    "refractory_steps", "spatial_tolerance", "range_warmup_steps", "range_noise_scales",
    "novelty_noise_scales", "stuck_min_steps", "stuck_rare_decades", "stuck_margin", "drift_records",
    "drift_rate_ratio", "drift_window", "level_window", "min_steps")}}
TOGGLES = ("level", "stuck", "novel", "drift")


def key(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def merit(scores: dict, fold: str, sources=SOURCES) -> tuple[float, float]:
    """The fold's criterion: (worst, mean) of its sources' scores, rounded so that replays compare."""
    inside = [scores[s] for s in sources if s != fold]
    return round(min(inside), 9), round(sum(inside) / len(inside), 9)


def neighbours(settings: dict, coordinate: str, valid) -> list[dict]:
    """The settings one step away along `coordinate` that `valid` accepts."""
    if coordinate in NUMBERS:
        candidates = [{**settings, coordinate: v} for v in NUMBERS[coordinate](settings[coordinate])]
    else:
        signals = list(settings["signals"])
        signals = [s for s in signals if s != coordinate] if coordinate in signals else signals + [coordinate]
        candidates = [{**settings, "signals": signals}]
    return [c for c in candidates if valid(c)]


def descend(score_all, start: dict, folds, valid, sweeps: int = 3, sources=SOURCES, say=print) -> dict:
    """{fold: (settings, scores)} after coordinate descent in each fold. score_all(list of settings)
    -> list of {source: score}; it is asked for several settings at once (one replay pool)."""
    current, moved = {f: dict(start) for f in folds}, {f: True for f in folds}
    known = {}

    def scores(settings_list):
        todo = [s for s in {key(s): s for s in settings_list}.values() if key(s) not in known]
        for s, result in zip(todo, score_all(todo) if todo else []):
            known[key(s)] = result
        return [known[key(s)] for s in settings_list]
    scores([start])
    for sweep in range(sweeps):
        active = [f for f in folds if moved[f]]
        if not active:
            break
        moved = {f: False for f in folds}
        for coordinate in list(NUMBERS) + list(TOGGLES):
            steps = {f: neighbours(current[f], coordinate, valid) for f in active}
            scores([current[f] for f in active] + [c for f in active for c in steps[f]])
            for f in active:
                best, best_merit = current[f], merit(known[key(current[f])], f, sources)
                for candidate in steps[f]:
                    if merit(known[key(candidate)], f, sources) > best_merit:
                        best, best_merit = candidate, merit(known[key(candidate)], f, sources)
                if best is not current[f]:
                    say(f"fold -{f}, sweep {sweep}: {coordinate} -> {best.get(coordinate, best['signals'])} "
                        f"(in-fold worst, mean {best_merit})")
                    current[f], moved[f] = best, True
    return {f: (current[f], known[key(current[f])]) for f in folds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True, help="JSON lines of every replay (read back on a rerun)")
    parser.add_argument("--folds", default=",".join(SOURCES), help=f"left-out sources, or {ALL!r}")
    parser.add_argument("--sweeps", type=int, default=3)
    parser.add_argument("--devcorpus", default=str(anomaly_sources.DEFAULT_DEVCORPUS))
    parser.add_argument("--work-dir", default=str(anomaly_runs.DEFAULT_WORK_DIR))
    args = parser.parse_args(argv)
    from statecast.daemon.anomaly import AnomalySettings

    def valid(settings: dict) -> bool:
        try:
            AnomalySettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
        except ValueError:
            return False
        return True
    log = Path(args.log)
    cached = {}
    if log.exists():
        for line in log.read_text().splitlines():
            row = json.loads(line)
            cached[key(row["cfg"])] = row["scores"]

    def score_all(settings_list):
        todo = [s for s in settings_list if key(s) not in cached]
        if todo:
            started = time.time()
            table = anomaly_eval.evaluate(todo, devcorpus=args.devcorpus, work_dir=args.work_dir, detectors=("float32",))
            with log.open("a") as out:
                for i, s in enumerate(todo):
                    cached[key(s)] = {src: anomaly_eval.pick(table, config=i, detector="float32", way="user",
                                                             profile="standard", source=src)["score"]
                                      for src in SOURCES + ("pooled",)}
                    out.write(json.dumps({"cfg": s, "scores": cached[key(s)]}) + "\n")
            print(f"  replayed {len(todo)} in {time.time() - started:.0f} s", flush=True)
        return [cached[key(s)] for s in settings_list]

    shipped = json.loads((anomaly_eval.ROOT / "models" / "default-anomaly.json").read_text())
    start = {**shipped, "level_window": shipped.get("level_window", AnomalySettings().level_window)}
    result = descend(score_all, start, tuple(args.folds.split(",")), valid, args.sweeps,
                     say=lambda text: print(text, flush=True))
    for fold, (settings, scores) in result.items():
        changes = {k: v for k, v in settings.items() if start.get(k) != v}
        print(f"fold -{fold}: {json.dumps({s: round(v, 2) for s, v in scores.items()})} changes {changes}")
    print(f"configurations replayed in all (the log): {len(cached)}")


if __name__ == "__main__":
    main()
