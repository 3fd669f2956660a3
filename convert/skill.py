"""Skill report: the model's forecast error per horizon step next to the forecasts anyone can make
without a model, on rows the model never trained on.

Baselines: persistence (the last value, for every step ahead) and seasonal-naive (the value one
period before the target time, for each calendar period the data was found to have). NRMSE is
RMSE over the standard deviation of the truth on the same rows, per target, averaged over
targets; skill = 1 - model NRMSE / best baseline NRMSE (positive: the model beats every baseline).
"""
from __future__ import annotations

import numpy as np


def _targets_at(values: np.ndarray, origins: np.ndarray, step: int) -> np.ndarray:
    """values (rows, T) -> (origins, T): the value `step` rows after each origin."""
    return values[origins + step]


def _errors(predicted: np.ndarray, truth: np.ndarray, spread: np.ndarray) -> tuple[float, float]:
    """(n, T) each -> (NRMSE averaged over targets, MAE averaged over targets, sensor units)."""
    rmse = np.sqrt(np.mean((predicted - truth) ** 2, axis=0))              # (T,)
    return float(np.mean(rmse / spread)), float(np.mean(np.abs(predicted - truth)))


def horizon_errors(forecast: np.ndarray, values: np.ndarray, start: int, stop: int, horizon: int,
                   season_lags: dict[str, int]) -> dict:
    """forecast (rows, H*T) step-major in sensor units, made at each row; values (rows, T).

    Origins are rows start..stop-1 whose targets (up to H ahead) exist and whose seasonal
    baselines reach no earlier than row 0. Returns per-step NRMSE/MAE of model and baselines."""
    rows, n_targets = values.shape
    earliest = max([start] + [lag for lag in season_lags.values()])
    origins = np.arange(earliest, min(stop, rows - horizon))
    if origins.size < 2:
        raise ValueError(f"too few rows to evaluate ({origins.size} forecast origins)")
    rows = values[origins[0]:origins[-1] + horizon + 1]
    spread = rows.std(axis=0)
    # A flat truth (a constant, whose float std is rounding noise ~1e-16 of its level, not 0) has
    # no spread to normalise by: its NRMSE is the RMSE in sensor units.
    spread = np.where(spread > 1e-9 * np.abs(rows).max(axis=0), spread, 1.0)
    report = {"origins": int(origins.size), "first_row": int(origins[0]), "last_row": int(origins[-1]),
              "steps": []}
    for k in range(horizon):
        truth = _targets_at(values, origins, k + 1)                         # (n, T)
        errors = {"model": _errors(forecast[origins, k * n_targets:(k + 1) * n_targets], truth, spread),
                  "persistence": _errors(values[origins], truth, spread)}
        for name, lag in season_lags.items():
            errors[f"seasonal_naive_{name}"] = _errors(values[origins + k + 1 - lag], truth, spread)
        report["steps"].append({"step": k + 1, **{f"nrmse_{n}": round(e[0], 5) for n, e in errors.items()},
                                **{f"mae_{n}": round(e[1], 6) for n, e in errors.items()}})
    return add_skill(report)


def add_skill(report: dict) -> dict:
    for step in report["steps"]:
        baselines = {k[len("nrmse_"):]: v for k, v in step.items() if k.startswith("nrmse_") and k != "nrmse_model"}
        best = min(baselines, key=baselines.get)
        step["best_baseline"] = best
        step["skill"] = round(1.0 - step["nrmse_model"] / baselines[best], 4) if baselines[best] > 0 else 0.0
    report["skill_min"] = min(s["skill"] for s in report["steps"])
    report["has_skill"] = report["skill_min"] > 0
    return report


def skill_line(report: dict, label: str = "model") -> str:
    """One line: per-step skill and the verdict (what `serve` logs at start)."""
    steps = report["steps"]
    per_step = ", ".join(f"{s['skill']:+.3f}" for s in steps)
    verdict = "beats every baseline at every step" if report["has_skill"] else \
        "NO SKILL at step " + ",".join(str(s["step"]) for s in steps if s["skill"] <= 0)
    rows = "validation rows (reused, no held-back tail)" if report.get("tail", "").startswith("validation") \
        else "held-back rows"
    return (f"{label} skill vs best baseline on {report['origins']} {rows}, steps 1..{len(steps)}: "
            f"{per_step} ({verdict})")


def format_report(report: dict, label: str = "model") -> list[str]:
    names = [k[len("nrmse_"):] for k in report["steps"][0] if k.startswith("nrmse_")]
    lines = [f"{label} skill report on rows {report['first_row']}..{report['last_row']} "
             f"({report.get('tail', 'tail')}); NRMSE (MAE) per step ahead:"]
    for s in report["steps"]:
        cells = "  ".join(f"{n} {s['nrmse_' + n]:.4f} ({s['mae_' + n]:.4g})" for n in names)
        lines.append(f"  step {s['step']}: {cells}  -> skill {s['skill']:+.3f} vs {s['best_baseline']}")
    lines.append(skill_line(report, label))
    return lines
