"""`statecast train` -> `convert` -> `score`, through the CLI as a user runs it."""
import csv
import json
import os
import subprocess
import sys

from conftest import FIXTURES, MACHINE_TEMPERATURE


def cli(*args):
    result = subprocess.run([sys.executable, "-m", "statecast.daemon", *args], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_train_direct_multistep_with_calendar_features_then_convert_and_score(tmp_path):
    model = tmp_path / "m.keras"
    out = cli("train", "--csv", MACHINE_TEMPERATURE, "--rows", ":3000", "--cell", "gru", "--units", "8",
              "--layers", "2", "--window", "32", "--horizon", "3", "--calendar", "--epochs", "2", "--allow-no-skill",
              "--out", str(model))
    assert "trained gru 2x8" in out
    meta = json.loads((tmp_path / "m.keras.json").read_text())
    assert meta["features"] == ["value", "tod_sin", "tod_cos", "dow_sin", "dow_cos"] and meta["horizon"] == 3
    artifact = tmp_path / "artifact"
    report = cli("convert", str(model), "--quantize", "float32", "--calibration-csv", MACHINE_TEMPERATURE,
                 "--out", str(artifact))
    assert "parity vs Keras over 5000 steps" in report and "PASS" in report
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["horizon"] == 3 and manifest["heads"][-1]["units"] == 3 and manifest["output_residual"]
    scored = tmp_path / "scored.csv"
    series = tmp_path / "series.csv"
    series.write_text("".join(open(MACHINE_TEMPERATURE).readlines()[:501]))
    cli("score", "--model", str(artifact), "--csv", str(series), "--out", str(scored))
    rows = list(csv.DictReader(open(scored)))
    assert len(rows) == 500
    # train's default forecast guard: score adds what each row was scored against (the model's own forecast)
    assert manifest["forecast_guard"] == {"halflife_steps": 31.0}
    assert list(rows[0]) == ["timestamp", "value", "forecast_1", "forecast_2", "forecast_3", "expected",
                             "anomaly_score", "alert"]
    assert all(r["forecast_1"] and r["forecast_3"] for r in rows)
    assert rows[0]["anomaly_score"] == "" and rows[-1]["anomaly_score"] != ""     # defined once warmed up
    assert all(0.0 <= float(r["anomaly_score"]) <= 1.0 for r in rows if r["anomaly_score"])


def test_convert_calibrates_int8_on_every_calibration_csv_given(tmp_path):
    """--calibration-csv repeated: the int8 ranges come from all the streams (so the model differs
    from one calibrated on the first alone), parity runs on the first."""
    other = os.path.join(os.path.dirname(MACHINE_TEMPERATURE), "ambient_temperature_system_failure.csv")
    model = os.path.join(FIXTURES, "rnn_tanh.keras")
    cli("convert", model, "--quantize", "int8", "--calibration-csv", MACHINE_TEMPERATURE, "--out", str(tmp_path / "one"))
    cli("convert", model, "--quantize", "int8", "--calibration-csv", MACHINE_TEMPERATURE,
        "--calibration-csv", other, "--out", str(tmp_path / "two"))
    one, two = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("one", "two"))
    assert one["parity"]["series"] == two["parity"]["series"] == os.path.basename(MACHINE_TEMPERATURE)
    assert one["sha256"] != two["sha256"]
    assert two["parity"]["pass"]
