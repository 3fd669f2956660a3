"""One PNG per NAB development file: what the default model forecast, what it scored, what fired.

Reads the `statecast score` outputs that bench/nab_eval.py left in its work directory. Top:
the value and the one-step forecast made for it; bottom: the anomaly score L on a log scale,
-log10(1 - L) (decades of tail probability: 2 is L = 0.99, 5 is the paper's 1 - 1e-5).
Labelled windows are shaded red, NAB's probationary period grey; the daemon's alert events
(replayed with the same StreamAnomaly the engine runs, from value and forecast) are red
triangles; dashed lines are the daemon's alert threshold and the NAB standard-profile θ.
1200x600 px, 64-colour PNG, so the repository stays light.

    python bench/nab_plots.py [--model models/default] [--work-dir /tmp/statecast-nab] [--out docs/nab]
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402  (matplotlib's own dependency)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import nab_eval  # noqa: E402
import nab_scorer  # noqa: E402

FIGSIZE_INCHES = (12, 6)
DPI = 100
PNG_COLOURS = 64
MAX_DECADES = 16.0          # 1 - L is 0 in float64 beyond ~16 decades


def decades(score) -> np.ndarray:
    """-log10(1 - L), capped: the score's tail probability in decades."""
    tail = np.clip(1.0 - np.asarray(score, np.float64), 10.0 ** -MAX_DECADES, 1.0)
    return -np.log10(tail)


def replay(model_dir, scored: dict) -> tuple[np.ndarray, list[int]]:
    """(scores, alert row indices) of the model's default anomaly settings, replayed from value and
    forecast; raises if the replayed scores differ from the ones `statecast score` wrote."""
    from statecast.daemon.model.step_model import StepModel
    from statecast.daemon.service.runtime_setup import anomaly_factory_for
    scores, events = nab_eval.replay_anomaly(scored, anomaly_factory_for(StepModel(str(model_dir))))
    written = scored["anomaly_score"]
    if not np.allclose(np.nan_to_num(scores, nan=-1), np.nan_to_num(written, nan=-1), rtol=0, atol=1e-12):
        raise ValueError("replayed anomaly scores differ from the scored CSV (different model or settings?)")
    return scores, [i for i, e in enumerate(events) if e == "alert"]


def plot_file(key: str, scored: dict, alerts: list[int], windows: list[tuple[str, str]],
              thresholds: dict[str, float], out_path) -> None:
    """thresholds: {"alert": the daemon's alert threshold, "nab": the NAB standard θ} (scores L)."""
    times = np.array([datetime.fromisoformat(t) for t in scored["timestamp"]])
    values, scores = scored["value"], decades(np.nan_to_num(scored["anomaly_score"], nan=0.0))
    expected = scored.get("expected")                  # a guarded model writes what each row was scored against
    if expected is None:
        expected = np.concatenate([[np.nan], scored["forecast_1"][:-1]])    # forecast made for this row
    fig, (top, bottom) = plt.subplots(2, 1, figsize=FIGSIZE_INCHES, dpi=DPI, sharex=True,
                                      gridspec_kw={"height_ratios": [2, 1]})
    top.plot(times, values, lw=0.6, color="black", label="value")
    top.plot(times, expected, lw=0.6, color="tab:blue", alpha=0.8, label="forecast (1 step)")
    bottom.plot(times, scores, lw=0.6, color="tab:purple", label="anomaly score, -log10(1 - L)")
    bottom.axhline(float(decades(thresholds["alert"])), ls="--", lw=0.8, color="tab:red",
                   label=f"alert threshold {thresholds['alert']:g}")
    if np.isfinite(thresholds["nab"]):
        bottom.axhline(float(decades(thresholds["nab"])), ls=":", lw=0.8, color="tab:orange",
                       label=f"NAB θ = {thresholds['nab']:.6g}")
    probation_end = times[max(nab_scorer.probation_rows(len(times)) - 1, 0)]
    for axis in (top, bottom):
        axis.axvspan(times[0], probation_end, color="0.85", lw=0)
        for start, end in windows:
            axis.axvspan(datetime.fromisoformat(start), datetime.fromisoformat(end), color="tab:red", alpha=0.15, lw=0)
    if alerts:
        top.plot(times[alerts], values[alerts], "v", color="tab:red", ms=7, label="alert")
        bottom.plot(times[alerts], scores[alerts], "v", color="tab:red", ms=7)
    bottom.set_ylim(0.0, MAX_DECADES + 0.5)
    top.set_title(f"{key} (grey: probation, red: labelled windows)", fontsize=10)
    top.legend(loc="upper left", fontsize=8)
    bottom.legend(loc="upper left", fontsize=8)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(bottom.xaxis.get_major_locator()))
    save_small_png(fig, out_path)


def save_small_png(fig, out_path) -> None:
    """The figure as a 64-colour PNG (a third of matplotlib's RGBA size for these line plots)."""
    fig.tight_layout()
    fig.canvas.draw()
    image = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    plt.close(fig)
    image.quantize(colors=PNG_COLOURS, method=Image.Quantize.MEDIANCUT).save(out_path, optimize=True)


def png_name(key: str) -> str:
    return key.replace("/", "__").removesuffix(".csv") + ".png"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--nab-dir", default=str(nab_eval.NAB_DIR))
    parser.add_argument("--work-dir", default="/tmp/statecast-nab",
                        help="nab_eval's work directory (the model's outputs are in <work-dir>/<model name>)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "nab"))
    args = parser.parse_args(argv)
    run_dir = Path(args.work_dir) / os.path.basename(os.path.normpath(args.model))
    files = nab_eval.development_files(args.nab_dir)
    outputs = {key: nab_eval.scored_path(run_dir, key) for key in files}
    missing = [str(p) for p in outputs.values() if not p.exists()]
    if missing:
        raise SystemExit(f"run bench/nab_eval.py first; missing {missing[0]} (and {len(missing) - 1} more)")
    windows = nab_scorer.load_windows(args.nab_dir)
    threshold = nab_scorer.score_corpus(nab_eval.nab_results(outputs), windows, "standard")["threshold"]
    from statecast.daemon.model.step_model import StepModel
    from statecast.daemon.service.runtime_setup import manifest_anomaly_settings
    thresholds = {"alert": manifest_anomaly_settings(StepModel(args.model)).threshold, "nab": threshold}
    os.makedirs(args.out, exist_ok=True)
    for key, path in outputs.items():
        scored = nab_eval.read_scored(path)
        _, alerts = replay(args.model, scored)
        plot_file(key, scored, alerts, windows.get(key, []), thresholds, Path(args.out) / png_name(key))
        print(f"{key}: {len(alerts)} alerts -> {png_name(key)}")


if __name__ == "__main__":
    main()
