"""`statecast train` with defaults configures itself from the data (issue 16): a weekly rhythm turns
the calendar on and the model beats seasonal-naive; a series without one keeps it off."""
import json
import subprocess
import sys

import numpy as np

from statecast.convert.data_profile import profile_series

HOUR_SECONDS = 3600
MONDAY_2024 = 1704067200          # 2024-01-01 00:00 UTC, a Monday


def weekly_series(weeks: int, noise: float, seed: int = 0):
    """Hourly rows: a daily shape on weekdays, a flat low weekend, plus iid noise."""
    rng = np.random.default_rng(seed)
    t = MONDAY_2024 + HOUR_SECONDS * np.arange(weeks * 7 * 24)
    hour, weekday = (t // HOUR_SECONDS) % 24, (t // 86400) % 7
    shape = np.where(weekday < 5, 10 + 6 * np.sin(np.pi * np.clip(hour - 7, 0, 12) / 12), 8.0)
    return t, shape + noise * rng.standard_normal(t.shape)


def write_csv(path, t, values):
    with open(path, "w") as handle:
        handle.write("timestamp,value\n")
        handle.writelines(f"{int(s)},{v:.5f}\n" for s, v in zip(t, values))


def test_weekly_cycle_turns_the_calendar_on_and_beats_seasonal_naive(tmp_path):
    csv, model = tmp_path / "weekly.csv", tmp_path / "m.keras"
    write_csv(csv, *weekly_series(weeks=12, noise=0.5))
    result = subprocess.run([sys.executable, "-m", "statecast.daemon", "train", "--csv", str(csv), "--horizon", "3",
                             "--units", "16", "--report-dir", str(tmp_path / "report"), "--out", str(model)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "weekly period: found" in result.stdout and "calendar = ['tod_sin', 'tod_cos', 'dow_sin', 'dow_cos']" \
        in result.stdout
    meta = json.loads((tmp_path / "m.keras.json").read_text())
    assert meta["features"] == ["value", "tod_sin", "tod_cos", "dow_sin", "dow_cos"]
    png = tmp_path / "report" / "m-training-report.png"
    assert meta["report_png"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = meta["skill"][0]
    assert report["tail"].startswith("held-back tail")
    for step in report["steps"]:
        # Same-slot-last-week carries the noise twice (sqrt(2) x 0.5); a model that has learnt the
        # weekly shape carries it about once, so 10% better is a margin a working model clears
        # with room and a model without the calendar (or without training) does not.
        assert step["nrmse_model"] <= 0.9 * step["nrmse_seasonal_naive_weekly"], step
        assert step["nrmse_model"] < step["nrmse_persistence"], step


def test_no_rhythm_keeps_the_calendar_off():
    rng = np.random.default_rng(1)
    t = MONDAY_2024 + HOUR_SECONDS * np.arange(24 * 7 * 6)
    walk = np.cumsum(rng.standard_normal(t.shape))                # a random walk: no calendar rhythm
    profile = profile_series(t.astype(float), walk)
    assert profile.interval_seconds == HOUR_SECONDS and profile.gaps == 0
    assert profile.calendar_features() == (), [p.reason for p in profile.periods]
    t, weekly = weekly_series(weeks=6, noise=0.5)
    assert profile_series(t.astype(float), weekly).calendar_features() == ("tod_sin", "tod_cos", "dow_sin", "dow_cos")


def test_synthetic_minute_timestamps_with_an_orbit_do_not_look_daily():
    """SMAP/MSL-like: 1-minute synthetic timestamps on a signal with a 96-minute period (which
    divides a day): the peak test must not take it for a daily rhythm."""
    t = np.arange(1440 * 5) * 60.0
    orbit = np.sin(2 * np.pi * np.arange(t.size) / 96) + 0.1 * np.random.default_rng(2).standard_normal(t.size)
    assert profile_series(t, orbit).calendar_features() == ()
