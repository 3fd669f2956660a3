"""Leave-one-source-out selection and "no cliffs" sensitivity over an evaluate() table.

    table = anomaly_eval.evaluate(settings_list)
    report = loso(table)                       # per left-out source: chosen config, scores
    rows = sensitivity(report["ship"]["settings"])

Selection criterion (stated, default): for left-out source S, the configuration with the best
pooled score over the other three sources (file set "without:S", one score over their files)
in `select_way` ("user": the alerts a subscriber gets; "nab": θ optimised over those files) and
`profile` (standard); ties go to the lower config index. Its score on S is then reported both
ways: "user" (alerts as configured) and "nab" (θ optimised on S itself, comparable with
published tables), next to the in-sample figures.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anomaly_eval  # noqa: E402
import anomaly_runs  # noqa: E402
import anomaly_sources  # noqa: E402

THRESHOLD_KEYS = ("threshold", "clear_threshold")   # scaled on the tail 1 - value, not the value


def _score(table, config, detector, source, way, profile) -> float:
    return anomaly_eval.pick(table, config=config, detector=detector, source=source, way=way,
                             profile=profile)["score"]


def loso(table, detector: str = "float32", select_way: str = "user", profile: str = "standard",
         sources=anomaly_sources.SOURCES) -> dict:
    """{"folds": [per left-out source], "ship": {...}, "configs_tried": n, "criterion": text}."""
    configs = sorted({r["config"] for r in table if r["detector"] == detector and r["config"] is not None})
    settings = {r["config"]: r["settings"] for r in table if r["detector"] == detector}
    folds = []
    for left_out in sources:
        chosen = max(configs, key=lambda c: (_score(table, c, detector, f"without:{left_out}", select_way, profile), -c))
        fold = {"left_out": left_out, "config": chosen, "settings": settings[chosen],
                "selection_score": _score(table, chosen, detector, f"without:{left_out}", select_way, profile)}
        for way in ("user", "nab"):
            fold[f"left_out_{way}"] = _score(table, chosen, detector, left_out, way, profile)
            # In-sample: the best any tried config reaches on S itself (tuned on the scored files).
            fold[f"in_sample_{way}"] = max(_score(table, c, detector, left_out, way, profile) for c in configs)
        folds.append(fold)
    worst = {c: min(_score(table, c, detector, s, select_way, profile) for s in sources) for c in configs}
    ship = max(configs, key=lambda c: (worst[c], -c))
    return {"folds": folds, "configs_tried": len(configs),
            "criterion": f"{detector}, {profile} profile, {select_way} way, pooled over the other sources",
            "ship": {"config": ship, "settings": settings[ship], "worst_source_score": worst[ship],
                     "per_source": {s: _score(table, ship, detector, s, select_way, profile) for s in sources}}}


def scaled_settings(model_dir, settings: dict, factors=(0.5, 2.0)) -> list[tuple[str, float, dict | str]]:
    """(key, factor, settings dict or the reason it is invalid) for every numeric setting.
    Thresholds in (0, 1) scale their tail 1 - value (0.997 x2 -> 0.994); integers are rounded."""
    resolved = anomaly_runs.resolved_settings(model_dir, settings)
    out = []
    for key, value in resolved.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        for factor in factors:
            if key in THRESHOLD_KEYS:
                new = 1.0 - (1.0 - value) * factor
            elif isinstance(value, int):
                new = int(round(value * factor))
            else:
                new = value * factor
            variant = {**settings, key: new}
            if new == value:
                out.append((key, factor, f"{key}={value!r}: scaling leaves it unchanged"))
                continue
            try:
                anomaly_runs.scorer_factory(model_dir, variant)()
            except ValueError as error:
                out.append((key, factor, str(error)))
                continue
            out.append((key, factor, variant))
    return out


def sensitivity(settings: dict, detector: str = "float32", way: str = "user", profile: str = "standard",
                **evaluate_kwargs) -> list[dict]:
    """Score of `settings` and of each numeric setting at 0.5x and 2x, per source and pooled:
    [{"key", "factor", "value", "scores": {source: score} | None, "note"}], the first row the base."""
    model_dir = evaluate_kwargs.get("models", anomaly_eval.MODELS)[detector if detector != "persistence" else "float32"]
    variants = scaled_settings(model_dir, settings)
    runnable = [settings] + [v for _, _, v in variants if isinstance(v, dict)]
    table = anomaly_eval.evaluate(runnable, detectors=(detector,), **evaluate_kwargs)
    columns = [*evaluate_kwargs.get("sources", anomaly_sources.SOURCES), "pooled"]

    def scores(config):
        return {s: _score(table, config, detector, s, way, profile) for s in columns}
    rows = [{"key": None, "factor": 1.0, "value": None, "scores": scores(0), "note": "base"}]
    config = 1
    for key, factor, variant in variants:
        if isinstance(variant, dict):
            rows.append({"key": key, "factor": factor, "value": variant[key], "scores": scores(config), "note": ""})
            config += 1
        else:
            rows.append({"key": key, "factor": factor, "value": None, "scores": None, "note": variant})
    return rows


def worst_drop(rows: list[dict], column: str = "pooled") -> float:
    """Largest fall of `column` from the base over the variants (a cliff detector)."""
    base = rows[0]["scores"][column]
    return max((base - r["scores"][column] for r in rows[1:] if r["scores"]), default=0.0) if math.isfinite(base) else math.nan


def loso_markdown(report: dict) -> str:
    lines = [f"Criterion: {report['criterion']}; configurations tried: {report['configs_tried']}.", "",
             "| left out | chosen config | its score on the other three (selection) | left out, user's way | "
             "left out, NAB's way | in-sample best, user's way | in-sample best, NAB's way |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for f in report["folds"]:
        lines.append(f"| {f['left_out']} | {f['config']}: `{f['settings']}` | {f['selection_score']:.1f} | "
                     f"{f['left_out_user']:.1f} | {f['left_out_nab']:.1f} | {f['in_sample_user']:.1f} | "
                     f"{f['in_sample_nab']:.1f} |")
    ship = report["ship"]
    per_source = ", ".join(f"{s} {v:.1f}" for s, v in ship["per_source"].items())
    lines += ["", f"Best worst-source score: config {ship['config']} `{ship['settings']}`: {per_source} "
                  f"(worst {ship['worst_source_score']:.1f}; chosen on all four sources, so in-sample)."]
    return "\n".join(lines)


def sensitivity_markdown(rows: list[dict]) -> str:
    columns = list(rows[0]["scores"])
    lines = [f"| setting | x | value | {' | '.join(columns)} |", "|---|---:|---|" + "---:|" * len(columns)]
    for r in rows:
        if r["scores"] is None:
            lines.append(f"| {r['key']} | {r['factor']} | not run: {r['note']} |" + " |" * len(columns))
            continue
        name = "base" if r["key"] is None else r["key"]
        value = "" if r["value"] is None else f"{r['value']:.6g}"
        lines.append(f"| {name} | {r['factor']} | {value} | " + " | ".join(f"{r['scores'][c]:.1f}" for c in columns) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    parser = argparse.ArgumentParser(description="Leave-one-source-out over a grid of settings dicts")
    parser.add_argument("--grid", required=True, help='JSON list of settings dicts, e.g. [{}, {"refractory_steps": 250}]')
    parser.add_argument("--detector", default="float32")
    parser.add_argument("--way", default="user", choices=("user", "nab"))
    parser.add_argument("--sensitivity", action="store_true", help="also 0.5x / 2x around the shipped pick")
    args = parser.parse_args(argv)
    grid = json.loads(args.grid)
    table = anomaly_eval.evaluate(grid, detectors=(args.detector,))
    report = loso(table, args.detector, args.way)
    print(loso_markdown(report))
    if args.sensitivity:
        print()
        print(sensitivity_markdown(sensitivity(report["ship"]["settings"], args.detector, args.way)))


if __name__ == "__main__":
    main()
