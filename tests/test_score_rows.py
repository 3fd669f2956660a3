"""`statecast score` writes one row per input row, each with what serve would publish for it."""
import csv
import math
from pathlib import Path

from statecast.daemon.service.runtime_setup import anomaly_factory_for, open_model
from statecast.daemon.tools.score import score_csv

ROOT = Path(__file__).resolve().parent.parent
MACHINE_TEMPERATURE = ROOT / "data" / "nab" / "data" / "realKnownCause" / "machine_temperature_system_failure.csv"


def test_a_repeated_timestamp_gets_empty_cells_like_serve_publishes_nothing(tmp_path):
    lines = MACHINE_TEMPERATURE.read_text().splitlines()[:301]
    lines.insert(201, lines[200].split(",")[0] + ",99.0")      # data row 199's timestamp again as row 200
    series = tmp_path / "repeated.csv"
    series.write_text("\n".join(lines) + "\n")
    model = open_model(str(ROOT / "models" / "default"))
    out = tmp_path / "scored.csv"
    assert score_csv(model, str(series), str(out), anomaly_factory=anomaly_factory_for(model)) == 301
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 301 and rows[200]["value"] == "99.0" and rows[199]["timestamp"] == rows[200]["timestamp"]
    assert rows[200]["forecast_1"] == "" and rows[200]["anomaly_score"] == "" and rows[200]["alert"] == ""
    assert rows[199]["forecast_1"] != "" and rows[201]["forecast_1"] != "" and rows[201]["anomaly_score"] != ""


def test_a_value_beyond_float32_is_refused_with_one_line_naming_its_row(tmp_path):
    """serve drops such a payload as out_of_range (tests/test_serve.py); score stops on it with one
    line, as on a non-finite cell (it stopped with an OverflowError's traceback from the daily
    profile before)."""
    import subprocess
    import sys
    lines = MACHINE_TEMPERATURE.read_text().splitlines()[:50]
    lines[30] = lines[30].split(",")[0] + ",1e300"
    series = tmp_path / "huge.csv"
    series.write_text("\n".join(lines) + "\n")
    done = subprocess.run([sys.executable, "-m", "statecast.daemon", "score", "--model", str(ROOT / "models" / "default"),
                           "--csv", str(series), "--out", str(tmp_path / "out.csv")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    error = done.stderr.strip().splitlines()[-1]
    assert error.endswith(f"huge.csv:31: column 'value' is beyond float32's range (±3.4e38), "
                          "in which the model computes ('1e300')"), done.stderr
    assert not (tmp_path / "out.csv").exists()


def test_a_stream_of_subnormal_steps_scores_to_the_end(tmp_path):
    """0 and 5e-324 in turn: a range of one subnormal step made the novelty signal's bins 0 wide,
    and the bin index divided by zero (ZeroDivisionError, which stopped serve too)."""
    lines = MACHINE_TEMPERATURE.read_text().splitlines()[:801]
    rows = [lines[0]] + [line.split(",")[0] + (",5e-324" if i % 2 else ",0") for i, line in enumerate(lines[1:])]
    series = tmp_path / "subnormal.csv"
    series.write_text("\n".join(rows) + "\n")
    model = open_model(str(ROOT / "models" / "default"))
    out = tmp_path / "scored.csv"
    assert score_csv(model, str(series), str(out), anomaly_factory=anomaly_factory_for(model)) == 800
    scores = [row["anomaly_score"] for row in csv.DictReader(open(out))]
    assert all(0.0 <= float(score) <= 1.0 for score in scores[101:])    # defined after the warm-up


def test_a_reading_at_float32s_limit_leaves_a_fixed_scale_models_state_usable(tmp_path):
    """3.4e38 is in range, so it is stepped. Standardised by machine_temperature's fixed mean and std
    it reached the LSTM at ~2.8e37, overflowed its sums to inf and NaN, and every later forecast of
    the stream was empty. Held within FIXED_INPUT_LIMIT standard deviations, the reading draws an
    alert and the model forgets it: 300 rows later the forecast is that of a run without it (measured
    2.6e-4 apart; 0.01 degrees is 40x that and a hundredth of the stream's step-to-step noise)."""
    scored = _score_clean_and_spoiled(tmp_path, "machine_temperature-float32", 700, 400, "3.4028234663852886e38")
    assert all(row["forecast_1"] != "" and math.isfinite(float(row["forecast_1"])) for row in scored["spoiled"])
    assert scored["spoiled"][400]["alert"] == "alert"
    assert abs(float(scored["spoiled"][-1]["forecast_1"]) - float(scored["clean"][-1]["forecast_1"])) < 0.01


def test_one_glitch_reading_throws_an_online_models_forecasts_off_for_rows_not_days(tmp_path):
    """models/default normalises each stream online. Its scaler used to learn a glitch (65535 in a
    ~85-degree stream, 6,600 of its scales) whole: the scale grew 360-fold, and the next 100
    forecasts moved by 250 on average, 275 times the model's own mean error there (0.91). Learnt
    as a value at WINSOR_SCALES (100) scales, it moves them by 3.2 (3.5 times; the bound, 5 times,
    is what the next looser bound on the grid, 200 scales at 7.6 times, fails), and 1,600 rows on
    they are a clean run's to within a twentieth of that error (measured: 0.010 on average;
    unbounded, 0.091, which fails it)."""
    scored = _score_clean_and_spoiled(tmp_path, "default", 2700, 1000, "65535")

    def moved(rows):
        pairs = zip(scored["clean"][rows], scored["spoiled"][rows])
        return _mean([abs(float(a["forecast_1"]) - float(b["forecast_1"])) for a, b in pairs])

    next_100 = slice(1001, 1101)
    own_error = _mean([abs(float(r["value"]) - float(r["expected"])) for r in scored["clean"][next_100]])
    assert moved(next_100) < 5 * own_error
    assert moved(slice(2600, 2700)) < own_error / 20


def _mean(xs) -> float:
    return sum(xs) / len(xs)


def _score_clean_and_spoiled(tmp_path, model_name: str, rows: int, row: int, reading: str) -> dict:
    """machine_temperature's first `rows` rows through `statecast score` with models/<model_name>,
    as they are and with data row `row` replaced by `reading`: {"clean"|"spoiled": output rows}."""
    lines = MACHINE_TEMPERATURE.read_text().splitlines()[:rows + 1]
    clean, spoiled = tmp_path / "clean.csv", tmp_path / "spoiled.csv"
    clean.write_text("\n".join(lines) + "\n")
    lines[row + 1] = lines[row + 1].split(",")[0] + "," + reading                  # after the header
    spoiled.write_text("\n".join(lines) + "\n")
    model = open_model(str(ROOT / "models" / model_name))
    scored = {}
    for series in (clean, spoiled):
        out = tmp_path / f"{series.stem}.out.csv"
        assert score_csv(model, str(series), str(out), anomaly_factory=anomaly_factory_for(model)) == rows
        scored[series.stem] = list(csv.DictReader(open(out)))
    return scored
