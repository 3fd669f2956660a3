"""Fault catalogue: synthetic room-temperature streams with one injected fault each, through the
daemon's own engine and models/default with its shipped anomaly settings.

A room's temperature at 5-minute steps: a daily swing (warmest mid-afternoon), a heating setback
on weeknights (22:00-06:00, 2 degrees down over an hour, back up over an hour) and none at the
weekend, and sensor noise. Each fault starts on day 10 at 10:00 (the stream has seen nine days):

| fault | what |
|---|---|
| stuck | the reading freezes at its last value for 6 hours |
| spike | one reading 4 degrees high |
| level_shift | +2.5 degrees from then on (a moved or re-calibrated sensor) |
| drift | +0.5 degrees per hour for 8 hours, then stays |
| noise_burst | noise x10 for 2 hours |
| clean | no fault (the schedule changes between weekdays and weekends are ordinary) |

A fault counts as caught when exactly one alert falls between its start and 12 hours after it;
false alerts are alerts anywhere else after the warm-up day; no alert may fall in the warm-up
day. `python bench/fault_catalogue.py ['{"setting": value}']` prints the table (docs/anomaly.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
STEP_SECONDS = 300
STEPS_PER_DAY = 86_400 // STEP_SECONDS
DAYS = 14
START_TS = 1_704_067_200.0           # 2024-01-01 00:00 UTC, a Monday
FAULT_STEP = 10 * STEPS_PER_DAY + 10 * 12        # day 10, 10:00
CATCH_STEPS = 12 * 12                # an alert within 12 hours of the fault's start catches it
WARMUP_STEPS = STEPS_PER_DAY         # no alert on the first day
FAULTS = ("stuck", "spike", "level_shift", "drift", "noise_burst", "clean")


def room_temperature(seed: int = 0, days: int = DAYS) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps (n,), values (n,)): a clean room series, rounded to 0.01 degrees like a sensor."""
    rng = np.random.default_rng(seed)
    steps = np.arange(days * STEPS_PER_DAY)
    hours = (steps % STEPS_PER_DAY) * 24.0 / STEPS_PER_DAY
    day = steps // STEPS_PER_DAY
    daily = 21.0 + 1.2 * np.sin(2 * np.pi * (hours - 9.0) / 24.0)
    # setback on the nights before a workday: down 22:00-23:00 (Sunday to Thursday evenings),
    # held, up 05:00-06:00 (Monday to Friday mornings)
    evening = np.clip(hours - 22.0, 0.0, 1.0) * ((day + 1) % 7 < 5)
    morning = np.clip(6.0 - hours, 0.0, 1.0) * (hours < 6.0) * (day % 7 < 5)
    setback = -2.0 * (evening + morning)
    values = daily + setback + rng.normal(0.0, 0.08, steps.size)
    return START_TS + STEP_SECONDS * steps, np.round(values, 2)


def inject(values: np.ndarray, fault: str, seed: int = 0, at: int = FAULT_STEP) -> np.ndarray:
    """The clean series with one fault starting at row `at`."""
    values = values.copy()
    if fault == "stuck":
        values[at:at + 6 * 12] = values[at - 1]
    elif fault == "spike":
        values[at] += 4.0
    elif fault == "level_shift":
        values[at:] += 2.5
    elif fault == "drift":
        ramp = np.minimum(np.arange(values.size - at), 8 * 12) * (0.5 / 12)
        values[at:] += ramp
    elif fault == "noise_burst":
        values[at:at + 2 * 12] += np.random.default_rng(seed + 1).normal(0.0, 0.8, 2 * 12)
    elif fault != "clean":
        raise ValueError(f"unknown fault {fault!r}")
    return np.round(values, 2)


def alerts_of(stamps, values, model_dir=ROOT / "models" / "default", overrides: dict | None = None) -> list[tuple[int, dict]]:
    """(row, detail) of every alert the daemon's engine raises on one stream."""
    import dataclasses

    from statecast.daemon.engine.step_engine import Engine
    from statecast.daemon.messages import Message
    from statecast.daemon.service.runtime_setup import anomaly_factory_for, manifest_anomaly_settings, open_model
    model = open_model(str(model_dir))
    settings = dataclasses.replace(manifest_anomaly_settings(model), **(overrides or {}))
    engine = Engine(model, anomaly_factory=anomaly_factory_for(model, settings))
    messages = [Message("room", (float(v),), float(t), float(t), token=i) for i, (t, v) in enumerate(zip(stamps, values))]
    return [(r.token, r.detail) for r in engine.process(messages) if r.event == "alert"]


def judge(fault: str, alert_rows: list[int]) -> dict:
    """{caught, false_alerts, warmup_alerts} for one fault's alert rows."""
    inside = [r for r in alert_rows if FAULT_STEP <= r < FAULT_STEP + CATCH_STEPS]
    warmup = [r for r in alert_rows if r < WARMUP_STEPS]
    false = [r for r in alert_rows if r >= WARMUP_STEPS and not FAULT_STEP <= r < FAULT_STEP + CATCH_STEPS]
    if fault == "clean":
        false += inside
        inside = []
    return {"alerts_in_fault": len(inside), "false_alerts": len(false), "warmup_alerts": len(warmup)}


def catalogue(seeds=(0, 1, 2), model_dir=ROOT / "models" / "default", overrides: dict | None = None) -> list[dict]:
    rows = []
    for fault in FAULTS:
        for seed in seeds:
            stamps, clean = room_temperature(seed)
            found = alerts_of(stamps, inject(clean, fault, seed), model_dir, overrides)
            signals = sorted({d["signal"] for r, d in found if FAULT_STEP <= r < FAULT_STEP + CATCH_STEPS})
            rows.append({"fault": fault, "seed": seed, **judge(fault, [r for r, _ in found]),
                         "signals": ",".join(signals)})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| fault | seed | alerts within 12 h of the fault | false alerts | alerts on the warm-up day | signal |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        caught = "-" if r["fault"] == "clean" else r["alerts_in_fault"]
        lines.append(f"| {r['fault']} | {r['seed']} | {caught} | {r['false_alerts']} | {r['warmup_alerts']} | "
                     f"{r['signals']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="?", type=json.loads, default=None,
                        help='anomaly settings over the shipped ones, as JSON, e.g. \'{"refractory_steps": 125}\'')
    args = parser.parse_args(argv)
    print(markdown(catalogue(overrides=args.overrides)))


if __name__ == "__main__":
    main()
