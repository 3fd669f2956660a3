"""The forecast guard on a model `statecast train` made (issue 16): train turns it on by default and
says so, convert carries it into the manifest, the skill reports are of the guarded forecast, and
serve publishes exactly that. On a stream that leaves the regime the model was trained on, the
guard brings the forecast back to about persistence where the model alone is far worse."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from statecast.convert.skill import horizon_errors
from statecast.daemon.engine.step_engine import Engine
from statecast.daemon.messages import Message
from statecast.daemon.model.forecast_guard import guarded_sequence
from statecast.daemon.model.step_model import StepModel

HORIZON = 3
ROWS = 2000
REGIME_CHANGE = 1750           # train: rows 0..1399 train, ..1699 validation (AR only), 1700.. held back


def regime_change_series(seed: int = 0):
    """A mean-reverting AR(1) around 10, then a random walk that drifts away from it. A model
    trained on the first learns to predict the pull back to 10, which never comes in the second."""
    rng = np.random.default_rng(seed)
    values = np.empty(ROWS)
    values[0] = 10.0
    for t in range(1, ROWS):
        if t < REGIME_CHANGE:
            values[t] = 10.0 + 0.5 * (values[t - 1] - 10.0) + rng.normal()
        else:
            values[t] = values[t - 1] + 0.3 + rng.normal()          # drifts up, ~+75 by the end
    stamps = 1_700_000_000 + 3600 * np.arange(ROWS)
    return stamps, values


def cli(*args):
    return subprocess.run([sys.executable, "-m", "statecast.daemon", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guarded")
    stamps, values = regime_change_series()
    csv = folder / "stream.csv"
    csv.write_text("timestamp,value\n" + "".join(f"{int(t)},{v:.5f}\n" for t, v in zip(stamps, values)))
    trained = cli("train", "--csv", str(csv), "--horizon", str(HORIZON), "--units", "8", "--allow-no-skill",
                  "--out", str(folder / "m.keras"))
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    converted = cli("convert", str(folder / "m.keras"), "--out", str(folder / "float32"))
    assert converted.returncode == 0, converted.stdout[-2000:] + converted.stderr[-2000:]
    plain = folder / "plain"
    shutil.copytree(folder / "float32", plain)
    manifest = json.loads((plain / "manifest.json").read_text())
    del manifest["forecast_guard"]
    (plain / "manifest.json").write_text(json.dumps(manifest))
    return trained.stdout, folder, StepModel(str(folder / "float32")), StepModel(str(plain)), stamps, values


def published(model, stamps, values) -> np.ndarray:
    results = Engine(model).process([Message("s", (float(v),), float(t), float(t)) for t, v in zip(stamps, values)])
    return np.array([r.forecast.reshape(-1) for r in results], np.float64)


def test_train_turns_the_guard_on_says_so_and_convert_carries_it(trained):
    stdout, folder, guarded, _, _, _ = trained
    assert "forecast_guard = 31.0: half-life 31 messages" in stdout
    meta = json.loads((folder / "m.keras.json").read_text())
    assert meta["forecast_guard"] == guarded.manifest.raw["forecast_guard"] == {"halflife_steps": 31.0}


def test_serve_publishes_what_the_skill_reports_measure(trained):
    """The engine with the guard == the reports' guarded_sequence over the engine's own model
    forecast: serve sends what train and convert reported."""
    _, folder, guarded, plain, stamps, values = trained
    engine_guarded = published(guarded, stamps, values)
    report_path = guarded_sequence(31.0, published(plain, stamps, values), values[:, None])
    np.testing.assert_allclose(engine_guarded, report_path, rtol=0, atol=1e-4)   # float32 forecast cells
    tail = json.loads((folder / "float32" / "manifest.json").read_text())["skill"]["report"]
    ours = horizon_errors(engine_guarded, values[:, None], tail["first_row"], ROWS, HORIZON, {})
    assert [s["nrmse_model"] for s in ours["steps"]] == pytest.approx([s["nrmse_model"] for s in tail["steps"]],
                                                                      rel=1e-3)


def test_on_a_stream_that_left_the_training_regime_the_guard_falls_back_to_persistence(trained):
    _, _, guarded, plain, stamps, values = trained
    start = REGIME_CHANGE + 100                         # the guard has had ~3 half-lives to see it
    ratios = {}
    for name, model in (("guarded", guarded), ("plain", plain)):
        report = horizon_errors(published(model, stamps, values), values[:, None], start, ROWS, HORIZON, {})
        ratios[name] = max(s["nrmse_model"] / s["nrmse_persistence"] for s in report["steps"])
    assert ratios["plain"] > 1.5, ratios            # the failure the guard is for (measured 2.09-2.61x)
    # within 10% of persistence at every step: the factor is an estimate from ~45 effective pairs
    # (spread ~0.15), which costs a little where the best factor is 0 (measured 1.00 at each step)
    assert ratios["guarded"] < 1.1, ratios


@pytest.mark.parametrize("halflife", ["0", "-5", "nan"])
def test_a_guard_half_life_that_is_not_positive_is_refused_before_training(tmp_path, halflife):
    stamps, values = regime_change_series()
    csv = tmp_path / "stream.csv"
    csv.write_text("timestamp,value\n" + "".join(f"{int(t)},{v:.5f}\n" for t, v in zip(stamps[:200], values)))
    result = cli("train", "--csv", str(csv), "--forecast-guard", halflife, "--out", str(tmp_path / "m.keras"))
    assert result.returncode == 2 and not (tmp_path / "m.keras").exists()
    assert result.stderr.strip().splitlines()[-1].startswith(f"statecast train: error: --forecast-guard {halflife}")
