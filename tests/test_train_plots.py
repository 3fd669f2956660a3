"""`statecast score --plot`: a PNG of a scored CSV, with alerts when the CSV has an alert column."""
import csv
import subprocess
import sys

from conftest import MACHINE_TEMPERATURE, ROOT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_score_plot_writes_a_png(tmp_path):
    series = tmp_path / "series.csv"
    series.write_text("".join(open(MACHINE_TEMPERATURE).readlines()[:801]))
    scored, png = tmp_path / "scored.csv", tmp_path / "scored.png"
    result = subprocess.run([sys.executable, "-m", "statecast.daemon", "score", "--model", f"{ROOT}/models/default",
                             "--csv", str(series), "--out", str(scored), "--plot", str(png)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert png.read_bytes()[:8] == PNG_MAGIC and f"plot: {png}" in result.stdout


def test_score_plot_draws_alerts_and_refuses_a_csv_that_is_not_scored(tmp_path):
    from statecast.daemon.tools.score_plot import PlotError, plot_scored
    scored = tmp_path / "scored.csv"
    with open(scored, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value", "forecast_1", "forecast_2", "anomaly_score", "alert"])
        for t in range(200):
            writer.writerow([t, t % 17, (t + 1) % 17, (t + 2) % 17, "" if t < 50 else 0.5, int(120 <= t < 130)])
    png = plot_scored(str(scored), str(tmp_path / "a.png"))
    assert open(png, "rb").read(8) == PNG_MAGIC
    plain = tmp_path / "plain.csv"
    plain.write_text("timestamp,value\n1,2\n")
    try:
        plot_scored(str(plain), str(tmp_path / "b.png"))
    except PlotError as error:
        assert "not a scored CSV" in str(error)
    else:
        raise AssertionError("a CSV without forecasts was plotted")
