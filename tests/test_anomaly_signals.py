"""The signals beside the forecast residual (range, level, stuck, novel, drift) and the alert limits (hold
breakers, cooldown, hourly cap, event details), each on a stream built to show it."""
from __future__ import annotations

import json
from array import array
from pathlib import Path

import numpy as np
import pytest

from statecast.daemon.anomaly import STATE_VERSION, AnomalySettings, StreamAnomaly, extremes
from statecast.daemon.anomaly.drift_signal import DriftSignal
from statecast.daemon.anomaly.range_signal import RangeSignal
from test_anomaly import same_state, through_checkpoint


def alone(signal, settings):
    """One signal on its own, as the scorer steps it: step(value, ready) -> score. The statistics
    array holds the stream's extremes first and then the signal's slice; each step scores the
    value and then learns it into the extremes."""
    stats = array("d", [0.0] * (extremes.FLOATS + signal.size(settings)))
    extremes.reset(stats)
    signal.reset(stats, extremes.FLOATS, settings)

    def step(value: float, ready: bool = True) -> float:
        score, _ = signal.update(stats, extremes.FLOATS, value, 0.0, ready, settings)
        extremes.learn(stats, value, ready)
        return score
    return step

TUNED = dict(threshold=0.997, clear_threshold=0.99, short_window=5, spatial_tolerance=0.05, range_warmup_steps=1000)


def feed(anomaly: StreamAnomaly, values, step_seconds: float = 60.0):
    """Persistence as the forecast (expected = the last value); returns scores, events, details."""
    scores, events, details = [None], [None], [None]
    for i in range(1, len(values)):
        ts = 1e9 + step_seconds * i
        score, event = anomaly.update(values[i], values[i - 1], ts)
        scores.append(score)
        events.append(event)
        details.append(anomaly.detail(event, ts) if event else None)
    return scores, events, details


def noisy(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, n)


def test_a_new_extreme_breaks_the_hold_only_for_a_hold_breaker():
    values = noisy(3000)
    values[2000] = 9.0                     # alerts (beyond the range)
    values[2100:] += 30.0                  # a new extreme 100 steps later, inside the 500-step hold
    held = StreamAnomaly(AnomalySettings(**TUNED, refractory_steps=500), 1.0, 0.0)
    broken = StreamAnomaly(AnomalySettings(**TUNED, refractory_steps=500, hold_breakers=("range",)), 1.0, 0.0)
    _, held_events, _ = feed(held, values)
    scores, events, details = feed(broken, values)
    assert [i for i, e in enumerate(held_events) if e == "alert" and i > 1900] == [2000]
    assert [i for i, e in enumerate(events) if e == "alert" and i > 1900] == [2000, 2100]
    assert scores[2100] == 1.0 and details[2100]["signal"] == "range" and details[2100]["direction"] == "high"


def test_alert_and_clear_say_why_and_how_long():
    values = noisy(1500)
    values[1200] = -12.0
    _, events, details = feed(StreamAnomaly(AnomalySettings(**TUNED), 1.0, 0.0), values)
    alert = events.index("alert", 1100)
    clear = events.index("clear", alert)
    assert alert == 1200 and details[alert]["direction"] == "low" and details[alert]["threshold"] == 0.997
    assert details[alert]["episode_start"] == 1e9 + 60.0 * 1200
    assert details[clear]["threshold"] == 0.99 and details[clear]["duration_seconds"] == 60.0 * (clear - alert)


@pytest.mark.parametrize("limit, expected", [({}, 4), ({"cooldown_seconds": 3600.0 * 3}, 2),
                                              ({"max_alerts_per_hour": 1.0 / 8}, 1)])
def test_cooldown_and_hourly_cap_limit_alerts_in_message_time(limit, expected):
    values = noisy(1000)
    for at in (300, 420, 540, 660):        # spikes two hours apart (1-minute steps)
        values[at] = 40.0 + at
    _, events, _ = feed(StreamAnomaly(AnomalySettings(**TUNED, **limit), 1.0, 0.0), values)
    assert sum(e == "alert" for e in events[290:]) == expected


def test_a_frozen_reading_scores_once_with_the_stuck_signal():
    values = noisy(2000)
    values[1500:1600] = values[1499]       # frozen for 100 steps; the noise never repeats a value
    plain_scores, plain_events, _ = feed(StreamAnomaly(AnomalySettings(**TUNED), 1.0, 0.0), values)
    stuck = AnomalySettings(**TUNED, signals=("range", "stuck"))
    scores, events, details = feed(StreamAnomaly(stuck, 1.0, 0.0), values)
    assert "alert" not in plain_events[1500:1600]
    alert = events.index("alert", 1500)
    assert alert == 1499 + stuck.stuck_min_steps and details[alert]["signal"] == "stuck"   # the minimum run
    assert max(scores[alert + 1:1600]) < 0.997                          # ... and scores once


def test_the_stuck_signal_judges_a_run_against_the_longest_the_stream_has_shown():
    """A slow, quantised stream holds each value for 40 steps (39 repeats): such runs are its
    normal; a run of 60 is not. It alerts when the run reaches 1.25 x 39 (stuck_margin 0.25)."""
    levels = np.repeat((np.arange(60) % 7) * 0.1, 40)      # consecutive holds differ
    values = np.concatenate([levels, np.full(60, levels[-1] + 0.5), noisy(100, seed=6)])
    settings = AnomalySettings(**TUNED, signals=("stuck",), stuck_min_steps=24, stuck_margin=0.25)
    scores, events, details = feed(StreamAnomaly(settings, 1.0, 0.0), values)
    alerts = [i for i, e in enumerate(events) if e == "alert" and details[i]["signal"] == "stuck"]
    frozen_from = len(levels)             # run 1 at frozen_from + 1
    assert alerts == [frozen_from + 49]   # ceil(1.25 x 39) = 49 repeats; none of the 40-step holds before


def repeating(n: int, repeat_chance: float, seed: int) -> np.ndarray:
    """A quantised-like stream: each step repeats the value before with `repeat_chance`, else moves."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, n)
    for i in range(1, n):
        if rng.random() < repeat_chance:
            values[i] = values[i - 1]
    return values


def test_a_short_freeze_alerts_on_a_stream_that_seldom_repeats_but_not_on_one_that_often_does():
    """stuck_rare_decades: a run of 30 after 1,500 steps. The noise never repeats a value, so 12
    repeats (RARE_RUN_FLOOR) are already improbable (chance (1/1,502)^12, about 1e-38) and it
    alerts there, long before stuck_min_steps (48). A stream that repeats its value 6 steps in 10
    has shown runs of about 13; a run of 30 there has a chance of 0.6^30, about 2e-7, above 1e-9:
    no alert, where a fixed minimum of 24 (the earlier shipped setting) alerts on both."""
    rare = AnomalySettings(**TUNED, signals=("stuck",), stuck_min_steps=48, stuck_rare_decades=9.0)
    fixed = AnomalySettings(**TUNED, signals=("stuck",), stuck_min_steps=24)
    seldom, often = noisy(2000, seed=8), repeating(2000, 0.6, seed=9)
    seldom[1500:1531] = seldom[1500]
    often[1500:1531] = often[1500] + 7.0              # a fresh value, held for 30 repeats
    assert max(len(run) for run in np.split(often[:1500], np.flatnonzero(np.diff(often[:1500])) + 1)) < 24

    def stuck_alerts(settings, values):
        _, events, details = feed(StreamAnomaly(settings, 1.0, 0.0), values)
        return [i for i, e in enumerate(events) if e == "alert" and details[i]["signal"] == "stuck"]

    assert stuck_alerts(rare, seldom) == [1500 + 12]           # the 12th repeat
    assert stuck_alerts(rare, often) == []
    assert stuck_alerts(fixed, seldom) == [1500 + 24] and stuck_alerts(fixed, often) == [1500 + 24]
    assert stuck_alerts(AnomalySettings(**TUNED, signals=("stuck",), stuck_min_steps=48), seldom) == []


def test_a_stream_that_has_never_changed_is_not_stuck_but_one_that_freezes_later_is():
    """NAB's art_flatline, or a status channel: one value from the first reading on. No stuck
    alert when the warm-up (min_steps, 100) ends, nor later. A stream that moved in its warm-up
    and froze there alerts once the run reaches the minimum past the warm-up."""
    settings = AnomalySettings(**TUNED, signals=("stuck",), stuck_min_steps=12)
    _, flat_events, _ = feed(StreamAnomaly(settings, 1.0, 0.0), np.full(600, 45.0))
    assert "alert" not in flat_events
    moved = noisy(600, seed=7)
    moved[60:] = moved[59]                               # frozen from step 60: 41 repeats by step 101
    _, events, details = feed(StreamAnomaly(settings, 1.0, 0.0), moved)
    alerts = [i for i, e in enumerate(events) if e == "alert"]
    assert alerts == [101] and details[101]["signal"] == "stuck"     # the first scored step


def test_a_level_shift_the_forecast_follows_scores_with_the_level_signal():
    values = noisy(4000) * 0.1
    values[3000:] += np.linspace(0.0, 3.0, 1000)                        # a slow rise of 30 noise levels
    quiet = {**TUNED, "spatial_tolerance": 0.0}
    _, plain, _ = feed(StreamAnomaly(AnomalySettings(**quiet, signals=()), 1.0, 0.0), values)
    _, events, details = feed(StreamAnomaly(AnomalySettings(**quiet, signals=("level",)), 1.0, 0.0), values)
    assert "alert" not in plain[3000:]
    alert = events.index("alert", 3000)
    assert details[alert]["signal"] == "level" and details[alert]["direction"] == "high"


def test_range_warmup_keeps_a_young_stream_from_alerting_on_its_first_new_extremes():
    values = noisy(400, seed=4)
    values[150] = values[:150].max() + 0.3 * (values[:150].max() - values[:150].min())   # 30% past a young range
    young = {**TUNED, "range_warmup_steps": 0}
    _, events, _ = feed(StreamAnomaly(AnomalySettings(**young), 1.0, 0.0), values)
    _, warm, _ = feed(StreamAnomaly(AnomalySettings(**{**young, "range_warmup_steps": 1000}), 1.0, 0.0), values)
    assert events[150] == "alert" and warm[150] is None


def test_range_noise_margin_ignores_a_brush_past_the_extreme_but_not_a_jump():
    """A stream with noise of 1 (persistence forecast: residual scale ~1.4) passes its extreme
    by 0.6 (10% of its range) at step 400 and by 4 at step 800. Without the noise margin both
    alert on the range signal; with range_noise_scales 1 the margin is 5% of the range plus one
    residual scale (~0.3 + 1.4), so only the jump does."""
    values = noisy(1000, seed=6)
    values[400] = values[:400].max() + 0.6
    values[800] = values[:800].max() + 4.0
    plain = {**TUNED, "range_warmup_steps": 0}
    _, events, details = feed(StreamAnomaly(AnomalySettings(**plain), 1.0, 0.0), values)
    _, noise, noise_details = feed(StreamAnomaly(AnomalySettings(**plain, range_noise_scales=1.0), 1.0, 0.0), values)
    assert events[400] == "alert" and details[400]["signal"] == "range"
    assert noise[400] is None
    assert events[800] == noise[800] == "alert" and noise_details[800]["signal"] == "range"


def test_a_glitch_leaves_the_range_signal_watching_above_it():
    """One 65535 in a stream with noise of 1 (its range 6.4 wide, -3.2 to 3.2) used to become its
    maximum, and the range signal never fired above the stream again. Learnt at most
    EXTEND_WIDTHS (3) widths past the extreme, it leaves the maximum at 22.4, so a later jump to
    40 is a new extreme again."""
    values = noisy(1000, seed=8)
    values[400], values[800] = 65535.0, 40.0
    _, events, details = feed(StreamAnomaly(AnomalySettings(**TUNED), 1.0, 0.0), values)
    assert events[400] == "alert" and details[400]["signal"] == "range"
    assert events[800] == "alert" and details[800]["signal"] == "range"


def test_a_real_shift_is_learnt_by_the_range_in_a_few_steps():
    """The range grows (1 + EXTEND_WIDTHS)-fold a step while the stream stays beyond it: from 5.6
    wide to a level of 1,000 takes ceil(log4(1000 / 5.6)) = 4 steps, after which values at the new
    level score 0 (measured: the fifth value is the first inside; the bound allows the sixth)."""
    step = alone(RangeSignal(), AnomalySettings(**TUNED))
    for x in noisy(500, seed=9):
        step(float(x))
    shifted = [step(1000.0 + float(x)) for x in noisy(20, seed=10)]
    assert shifted[:4] == [1.0] * 4 and sum(shifted[4:6]) <= 1.0 and shifted[6:] == [0.0] * 14


def test_novelty_signal_sees_a_value_between_known_levels_but_not_a_step_of_noise_past_one():
    """A valve-like stream switches between 0 and 10 (noise 0.5) every 50 steps. At step 1500 it
    settles at 5, inside its range (the range signal is blind to it) and where it has never been;
    at step 1700 it holds 0.5 past the highest value of its low level, a fresh bin as well, but
    within 2 residual scales (~0.9 each) of a visited one. Only the first is news."""
    rng = np.random.default_rng(7)
    levels = np.where((np.arange(2000) // 50) % 2 == 0, 0.0, 10.0)
    values = levels + rng.normal(0.0, 0.5, 2000)
    values[1500:1530] = 5.0 + rng.normal(0.0, 0.05, 30)
    values[1700:1730] = values[:1500][levels[:1500] == 0.0].max() + 0.5 + rng.normal(0.0, 0.05, 30)
    base = {**TUNED, "range_warmup_steps": 300}

    def alerts(signals, noise_scales=2.0):
        _, events, details = feed(StreamAnomaly(AnomalySettings(**base, signals=signals,
                                                                novelty_noise_scales=noise_scales), 1.0, 0.0), values)
        return [(i, details[i]["signal"]) for i, event in enumerate(events) if event == "alert"]

    assert alerts(("range", "level", "stuck")) == []
    assert alerts(("range", "level", "stuck", "novel")) == [(1500, "novel")]
    # without the noise margin, both fresh bins are news, and so is a step of noise into one as
    # the stream leaves 5 (1533)
    assert alerts(("range", "level", "stuck", "novel"), noise_scales=0.0) == [(1500, "novel"), (1533, "novel"),
                                                                             (1700, "novel")]


def test_novelty_signal_takes_a_value_far_beyond_a_tiny_range_in_its_stride():
    """Bins 3e-12 wide and a reading of 1e300: the bin index would overflow (it raised
    OverflowError before it was tested against the edges first). It is outside the bins, so the
    novelty signal leaves it to the range signal and the step scores as usual."""
    anomaly = StreamAnomaly(AnomalySettings(signals=("novel",), range_warmup_steps=10, min_steps=5), 1.0, 0.0)
    for i in range(40):
        anomaly.update(1e-10 * (i % 2), 0.0, 1e9 + 60.0 * i)
    score, _ = anomaly.update(1e300, 0.0, 1e9 + 60.0 * 41)
    assert 0.0 <= score <= 1.0


@pytest.mark.parametrize("rare_decades", [0.0, 9.0])      # the stuck signal's 4 and 6 floats
@pytest.mark.parametrize("cut", [120, 1234])
def test_every_signal_continues_bit_identically_through_a_checkpoint(cut, rare_decades):
    settings = AnomalySettings(**TUNED, signals=("range", "level", "stuck", "novel"), hold_breakers=("range",),
                               max_alerts_per_hour=2.0, long_window=500, stuck_rare_decades=rare_decades)
    values = noisy(2500, seed=5)
    values[700] = 20.0
    values[1300:1400] = values[1299]
    original = StreamAnomaly(settings, 1.0, 0.0)
    feed(original, values[:cut])
    restored = through_checkpoint(original, settings)
    assert same_state(restored.to_state(), original.to_state())
    rest = [(values[i], values[i - 1], 1e9 + 60.0 * i) for i in range(cut, len(values))]
    assert [restored.update(*a) for a in rest] == [original.update(*a) for a in rest]
    with pytest.raises(ValueError, match="other signals"):
        StreamAnomaly.from_state(AnomalySettings(**TUNED, long_window=500), original.to_state())



SHIPPED = json.loads((Path(__file__).resolve().parent.parent / "models" / "default-anomaly.json").read_text())


def drifting(n: int, start: int, per_step: float, seed: int) -> np.ndarray:
    """Noise of 1, and from `start` on a steady slide of `per_step` a step (downwards if < 0)."""
    values = noisy(n, seed)
    values[start:] += per_step * np.arange(1, n - start + 1)
    return values


def test_a_slow_drift_past_the_range_alerts_on_the_drift_signal():
    """models/default's settings. After 3,000 steps of noise of 1, the stream slides down 0.02 a
    step (a fiftieth of its noise). It passes its lowest value at step 3,111 and creeps on, each
    new low a hair below the last: the range signal learns every one (each is inside its margin
    of 5% of the range plus one residual scale), the forecast follows, and without the drift
    signal nothing alerts. The drift signal sees new lows come again and again where there were
    hardly any for 3,000 steps: one alert, within 150 steps of the first (measured: 83 steps on,
    at -6.2)."""
    values = drifting(4000, 3000, -0.02, seed=11)
    first_low = 3000 + int(np.argmax(values[3000:] < values[:3000].min()))
    others = tuple(name for name in SHIPPED["signals"] if name != "drift")
    _, without, _ = feed(StreamAnomaly(AnomalySettings(**{**SHIPPED, "signals": others}), 1.0, 0.0), values)
    assert "alert" not in without
    with_drift = AnomalySettings(**{**SHIPPED, "signals": (*others, "drift")})
    _, events, details = feed(StreamAnomaly(with_drift, 1.0, 0.0), values)
    alerts = [i for i, e in enumerate(events) if e == "alert"]
    assert len(alerts) == 1 and first_low <= alerts[0] < first_low + 150, (first_low, alerts)
    assert details[alerts[0]]["signal"] == "drift" and details[alerts[0]]["direction"] == "low"


def test_a_stream_that_always_trends_is_no_drift():
    """A stream that slides up 0.1 a step from its first value sets records all the time: its
    usual rate of records is as high as its recent one, so the drift signal never scores, and
    nor does it 1,500 steps in, where the stream's usual rate (divided by the weight it has
    gathered) still counts its young, record-setting days. After 3,000 flat steps the same slide
    scores (measured: 52 steps in)."""
    settings = AnomalySettings(**{**SHIPPED, "signals": ("drift",), "hold_breakers": ()})

    def drift_scores(values):
        step = alone(DriftSignal(), settings)
        return [step(float(x), i >= settings.min_steps) for i, x in enumerate(values)]
    assert max(drift_scores(drifting(5000, 0, 0.1, seed=12))) == 0.0
    assert max(drift_scores(drifting(5000, 1500, 0.1, seed=12))) == 0.0
    assert max(drift_scores(drifting(5000, 3000, 0.1, seed=12))[3000:3100]) == 1.0


def test_the_drift_signal_state_round_trips():
    values = drifting(1500, 900, -0.02, seed=13)
    settings = AnomalySettings(**{**SHIPPED, "signals": ("range", "drift")})
    original = StreamAnomaly(settings, 1.0, 0.0)
    feed(original, values[:1000])
    restored = through_checkpoint(original, settings)
    rest = [(values[i], values[i - 1], 1e9 + 60.0 * i) for i in range(1000, 1500)]
    assert [restored.update(*a) for a in rest] == [original.update(*a) for a in rest]
    assert same_state(restored.to_state(), original.to_state())


def test_a_state_from_before_the_rare_run_path_is_refused_in_one_line():
    """Upgrading from the fifth round's settings (stuck state of 4 floats) to the shipped ones (5):
    the statistics are refused with a reason (the daemon then restarts them with one warning)."""
    before = AnomalySettings(**{**SHIPPED, "stuck_min_steps": 24, "stuck_rare_decades": 0.0})
    anomaly = StreamAnomaly(before, 1.0, 0.0)
    feed(anomaly, noisy(300, seed=10))
    with pytest.raises(ValueError, match=r"statistics, expected \d+ \(a signal's settings changed its state") as error:
        StreamAnomaly.from_state(AnomalySettings(**SHIPPED), anomaly.to_state())
    assert "\n" not in str(error.value)


V5_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "anomaly_state_v5.npz"


def test_a_version_5_state_continues_exactly_as_the_code_that_wrote_it():
    """Version 6 keeps one copy of the stream's extremes (extremes.py) where version 5 kept one
    in the range, drift, stuck and novelty signals each. A stream saved by version 5's code
    (tests/fixtures/make_anomaly_state_v5.py, run at 38fd739: models/default's settings, 2,000
    minutes of a room-like series) restores with today's code, through a real checkpoint, and
    gives the scores and events that code gave for the next 1,000 steps (2 alerts, 2 clears):
    bit for bit, with no statistics restarted."""
    with np.load(V5_FIXTURE) as data:
        fixture = {k: data[k] for k in data.files}
    stored = json.loads(str(fixture["settings"]))
    settings = AnomalySettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()})
    state = {k.removeprefix("state."): v for k, v in fixture.items() if k.startswith("state.")}
    assert int(state["version"]) == 5
    restored = StreamAnomaly.from_state(settings, state)
    again = through_checkpoint(restored, settings)               # and it saves and loads as version 6
    assert int(again.to_state()["version"]) == STATE_VERSION == 6
    values, t, cut = fixture["values"], fixture["t"], int(fixture["cut"])
    codes = {None: 0, "alert": 1, "clear": 2}
    scores, events = [], []
    for i in range(cut, len(values)):
        score, event = again.update(values[i], values[i - 1], t[i])
        scores.append(np.nan if score is None else score)
        events.append(codes[event])
    assert np.array_equal(np.array(scores), fixture["scores"], equal_nan=True)
    assert events == fixture["events"].tolist() and events.count(1) == 2


def test_a_version_5_state_of_another_size_is_refused_in_one_line():
    with np.load(V5_FIXTURE) as data:
        state = {k.removeprefix("state."): data[k] for k in data.files if k.startswith("state.")}
    settings = AnomalySettings(**{**SHIPPED, "stuck_rare_decades": 0.0})     # stuck's state was 6 floats
    with pytest.raises(ValueError, match=r"anomaly state \(version 5\) has 71 statistics, expected 69$"):
        StreamAnomaly.from_state(settings, state)
