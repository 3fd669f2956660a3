"""Per-stream anomaly scoring: bounds, warm-up, alerts, scale invariance, the block-sum reference
window and checkpoint round trips."""
from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from statecast.daemon.anomaly import STATE_VERSION, AnomalySettings, StreamAnomaly
from statecast.daemon.state import checkpoint
from statecast.daemon.state.stream_table import StreamTable

ROOT = Path(__file__).resolve().parent.parent


def run(anomaly: StreamAnomaly, residuals) -> tuple[list, list]:
    """Feed residuals as (actual=residual, expected=0); returns the scores and events."""
    scores, events = [], []
    for r in residuals:
        score, event = anomaly.update(float(r), 0.0)
        scores.append(score)
        events.append(event)
    return scores, events


def noise(n_steps: int, seed: int = 0, std: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, std, n_steps)


def test_scores_are_in_unit_interval_even_for_wild_residuals():
    rng = np.random.default_rng(1)
    residuals = np.concatenate([rng.standard_cauchy(3000), np.full(50, 1e12), np.zeros(500),
                                rng.normal(0, 1e-9, 500)])
    scores, _ = run(StreamAnomaly(AnomalySettings(), 1.0), residuals)
    defined = np.array([s for s in scores if s is not None])
    assert len(defined) == len(residuals) - 100
    assert np.all((defined >= 0.0) & (defined <= 1.0))


def test_no_score_before_min_steps():
    settings = AnomalySettings(min_steps=30, long_window=100)
    scores, events = run(StreamAnomaly(settings, 1.0), noise(40))
    assert scores[:30] == [None] * 30 and events[:30] == [None] * 30
    assert all(s is not None for s in scores[30:])


def test_spike_after_quiet_noise_alerts_once_then_clears():
    residuals = noise(1500, seed=2, std=0.1)
    residuals[1200] = 3.0  # 30 sigma
    scores, events = run(StreamAnomaly(AnomalySettings(), 0.1), residuals)
    assert scores[1200] > 0.999
    assert max(s for s in scores[100:1200]) < 0.99
    assert events.count("alert") == 1 and events.index("alert") == 1200
    assert events.count("clear") == 1 and events.index("clear") > 1200


def test_noisier_stream_does_not_alert_more_than_quiet_one():
    settings = AnomalySettings(threshold=0.95, clear_threshold=0.8)  # low, so noise alerts sometimes
    base = np.random.default_rng(3).standard_t(df=4, size=20000)
    quiet_scores, quiet_events = run(StreamAnomaly(settings, 1.0), base)
    # 10x noisier with the same (now wrong) prior: the scale estimate takes over.
    loud_scores, loud_events = run(StreamAnomaly(settings, 1.0), 10.0 * base)
    assert loud_events.count("alert") <= quiet_events.count("alert")
    # With the prior scaled too, the scores are the same up to rounding.
    scaled_scores, _ = run(StreamAnomaly(settings, 10.0), 10.0 * base)
    assert np.allclose(np.array(scaled_scores[100:], float), np.array(quiet_scores[100:], float),
                       atol=1e-9)
    late = slice(1000, None)  # once the scale has settled, the score distributions agree
    assert np.quantile(np.array(loud_scores[late], float), 0.99) == pytest.approx(
        np.quantile(np.array(quiet_scores[late], float), 0.99), abs=0.02)


def _spikes_at(n_steps: int, at: list[int], size: float = 12.0, seed: int = 4) -> np.ndarray:
    residuals = noise(n_steps, seed=seed)
    residuals[at] = size
    return residuals


def test_debounce_needs_consecutive_steps_above_threshold():
    # One spike keeps the score high while it is inside the 10-step short window.
    single = _spikes_at(2200, [2100])
    _, events = run(StreamAnomaly(AnomalySettings(debounce_steps=1), 1.0), single)
    assert events.count("alert") == 1 and events.index("alert") == 2100
    _, events = run(StreamAnomaly(AnomalySettings(debounce_steps=3), 1.0), single)
    assert events.count("alert") == 1 and events.index("alert") == 2102
    _, events = run(StreamAnomaly(AnomalySettings(debounce_steps=15), 1.0), single)
    assert events.count("alert") == 0
    sustained = _spikes_at(2200, list(range(2100, 2130)))
    _, events = run(StreamAnomaly(AnomalySettings(debounce_steps=15), 1.0), sustained)
    assert events.count("alert") == 1 and events.index("alert") == 2114


def test_refractory_suppresses_a_second_alert_soon_after_the_first():
    two = _spikes_at(2200, [2050, 2080])
    _, events = run(StreamAnomaly(AnomalySettings(refractory_steps=0), 1.0), two)
    assert [i for i, e in enumerate(events) if e == "alert"] == [2050, 2080]
    assert events.count("clear") == 2
    _, events = run(StreamAnomaly(AnomalySettings(refractory_steps=50), 1.0), two)
    assert [i for i, e in enumerate(events) if e == "alert"] == [2050]
    _, events = run(StreamAnomaly(AnomalySettings(refractory_steps=29), 1.0), two)
    assert [i for i, e in enumerate(events) if e == "alert"] == [2050, 2080]


def through_checkpoint(anomaly: StreamAnomaly, settings: AnomalySettings) -> StreamAnomaly:
    """The anomaly as a restarted daemon gets it back: checkpoint encode -> bytes -> decode."""
    table = StreamTable([(2,)], max_streams=4)
    table.add("s", 0.0).anomaly = anomaly
    blob = checkpoint.encode(table, "sha")
    fresh = StreamTable([(2,)], max_streams=4)
    checkpoint.decode(blob, "sha", fresh, anomaly_restore=lambda data: StreamAnomaly.from_state(settings, data))
    return fresh.get("s").anomaly


def same_state(a: dict, b: dict) -> bool:
    """Equal keys and values, bit for bit (NaN equals NaN)."""
    return a.keys() == b.keys() and all(
        np.array_equal(np.asarray(a[k]), np.asarray(b[k]), equal_nan=np.asarray(a[k]).dtype.kind == "f")
        for k in a)


# Cut points: in the learning period; the first block just finished; filling, mid-block; a block
# edge after two laps of the ring; mid-block after four laps.
@pytest.mark.parametrize("cut", [30, 82, 300, 1234, 2100])
def test_checkpoint_round_trip_continues_bit_identically(cut):
    settings = AnomalySettings(long_window=500, refractory_steps=5)
    assert (settings.block_steps, settings.blocks) == (32, 16)     # blocks finish at steps 50 + 32 j
    residuals = _spikes_at(4000, [700, 1300, 2600], seed=5)
    original = StreamAnomaly(settings, 0.7)
    run(original, residuals[:cut])
    restored = through_checkpoint(original, settings)
    assert same_state(restored.to_state(), original.to_state())
    assert run(restored, residuals[cut:]) == run(original, residuals[cut:])
    assert same_state(restored.to_state(), original.to_state())
    with pytest.raises(ValueError, match="long_window"):
        StreamAnomaly.from_state(AnomalySettings(), original.to_state())


def test_states_of_another_version_are_refused_in_one_line(caplog):
    settings = AnomalySettings()
    state = StreamAnomaly(settings, 1.0).to_state()
    with pytest.raises(ValueError, match=f"anomaly state version 2, expected {STATE_VERSION}"):
        StreamAnomaly.from_state(settings, {**state, "version": 2})
    # A checkpoint from before the block sums (ring in meta JSON, one JSON object per stream):
    # the stream's RNN state loads, its anomaly statistics restart, and one warning says why.
    meta = {"model_sha256": "sha", "state_shapes": [[2]],
            "streams": [{"id": sid, "last_ts": 1e9, "steps": 3, "last_seen": 0.0, "last_interval": 300.0,
                         "extra": None, "anomaly": {"version": 2, "raw": [0.0] * 2000}} for sid in ("a", "b")]}
    old = _checkpoint_blob({"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
                            "state_0": np.asarray([[0.5, -0.5], [0.25, 0.75]], np.float32),
                            "last_forecast": np.full((2, 1), np.nan, np.float32)})
    fresh = StreamTable([(2,)], max_streams=4)
    with caplog.at_level("WARNING", logger="statecast.checkpoint"):
        assert checkpoint.decode(old, "sha", fresh, lambda d: StreamAnomaly.from_state(settings, d)) == 2
    assert fresh.get("a").anomaly is None and fresh.get("b").anomaly is None
    assert fresh.state_of("b")[0].tolist() == [0.25, 0.75] and fresh.get("b").steps == 3
    assert (fresh.get("a").last_ts, fresh.get("a").last_interval) == (1e9, 300.0)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "2 stream(s)" in warnings[0] and "version 2, expected" in warnings[0]


def _checkpoint_blob(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    return checkpoint.MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def test_reference_window_is_exact_over_its_documented_span():
    """Block sums give the mean/std of exactly the last window_size() raw scores: every score since
    the learning period until K*B, then K*B .. K*B + B - 1 (whole blocks + the partial one).
    Tolerance 1e-12 relative: each block sums at most B = 125 scores (rounding <= 125 ulp of the
    block), the window total is fsum'd exactly; a numpy reference sums in another order."""
    settings = AnomalySettings()                                    # long_window 2000: B = 125, K = 16
    b, k, learning = settings.block_steps, settings.blocks, settings.min_steps // 2
    assert (b, k) == (125, 16)
    anomaly = StreamAnomaly(settings, 1.0)
    raws = np.random.default_rng(11).beta(0.5, 8.0, 120_000)        # skewed, like surprise scores
    for step, raw in enumerate(raws, start=1):
        anomaly._push(float(raw))
        if step % 997 and step not in (learning + 1, learning + k * b, learning + k * b + 1):
            continue
        pushed = step - learning
        n = anomaly.window_size()
        assert n == (pushed if pushed <= k * b else k * b + pushed % b)
        window = raws[step - n: step]
        mean, std = anomaly._window_stats()
        assert mean == pytest.approx(window.mean(), rel=1e-12)
        if n >= 2:
            assert std == pytest.approx(max(window.std(ddof=1), 1e-3), rel=1e-12)
    assert anomaly.window_size() >= settings.long_window           # ~2,000 scores, not fewer


def test_per_stream_statistics_stay_small():
    """What 10,000s of streams cost: no __dict__, ~350 bytes of rings (was a 16 kB ring), a 576-byte profile."""
    anomaly = StreamAnomaly(AnomalySettings(), 1.0)
    run(anomaly, noise(3000, seed=12))
    assert not hasattr(anomaly, "__dict__")
    assert anomaly.recent.nbytes + anomaly.blocks.nbytes <= 2 * 16 * 8 + 10 * 8
    profiled = StreamAnomaly(AnomalySettings(daily_profile=True), 1.0)
    assert profiled.levels.itemsize * len(profiled.levels) == 288 * 2


def test_per_stream_allocations_after_long_window_steps():
    """Everything a stream's statistics allocate, as Python sees it (tracemalloc), after they have
    filled their reference window. The numbers themselves take 432 bytes with the default
    settings (54 float64: the running sums, the alert's floats, the 10-score ring, 16 blocks x 2
    sums, the range signal); with the object, the array header and the counters this layout
    measures ~730 bytes, the same layout with 32 blocks ~990 and the one before (two ndarrays and
    a boxed float per running sum) 1,265. The bound sits between the first two."""
    import tracemalloc
    settings = AnomalySettings()
    values = noise(settings.long_window + settings.min_steps + 100, seed=13)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    streams = [StreamAnomaly(settings, 1.0) for _ in range(50)]
    for anomaly in streams:
        run(anomaly, values)
    per_stream = (tracemalloc.get_traced_memory()[0] - before) / len(streams)
    tracemalloc.stop()
    assert streams[0].window_size() >= settings.long_window
    assert per_stream <= 850, f"{per_stream:.0f} bytes per stream"


def test_invalid_inputs_are_rejected_or_skipped():
    with pytest.raises(ValueError, match="clear_threshold"):
        AnomalySettings(threshold=0.9, clear_threshold=0.95)
    with pytest.raises(ValueError, match="long_window"):
        AnomalySettings(long_window=50, min_steps=100)
    with pytest.raises(ValueError, match="prior_residual_std"):
        StreamAnomaly(AnomalySettings(), 0.0)
    anomaly = StreamAnomaly(AnomalySettings(), 1.0)
    before = anomaly.to_state()
    assert anomaly.update(math.nan, 0.0) == (None, None)
    assert anomaly.update(1.0, math.inf) == (None, None)
    assert same_state(anomaly.to_state(), before)


# --- NAB-tuned features: online prior, spatial check, held score, daily profile ------------------

def test_without_prior_weight_scores_do_not_depend_on_the_streams_units():
    """Online-normalised models pass prior_weight_steps=0: any units, same scores."""
    base = _spikes_at(3000, [2500], seed=7)
    settings = AnomalySettings(spatial_tolerance=0.05)
    reference, _ = run(StreamAnomaly(settings, 1.0, prior_weight_steps=0.0), base)
    for units in (1e-6, 1e6):
        scores, _ = run(StreamAnomaly(settings, 1.0, prior_weight_steps=0.0), units * base)
        assert np.allclose(np.array(scores[100:], float), np.array(reference[100:], float), atol=1e-9)


def test_a_value_beyond_the_seen_range_scores_one():
    residuals = noise(1000, seed=8)
    residuals[900] = 1.02 * residuals[:900].max()          # a new maximum, but within 5% of the range
    residuals[950] = residuals[:950].max() + 0.5 * np.ptp(residuals[:950])
    settings = AnomalySettings(spatial_tolerance=0.05)
    scores, events = run(StreamAnomaly(settings, 1.0), residuals)
    assert scores[950] == 1.0 and events[950] == "alert"
    assert scores[900] < 1.0
    off, _ = run(StreamAnomaly(AnomalySettings(), 1.0), residuals)
    assert off[950] < 1.0


def test_published_score_is_held_for_refractory_steps_after_an_alert():
    residuals = _spikes_at(2300, [2100, 2103, 2150])
    settings = AnomalySettings(refractory_steps=100, clear_threshold=0.9)
    held, events = run(StreamAnomaly(settings, 1.0), residuals)
    free, _ = run(StreamAnomaly(AnomalySettings(clear_threshold=0.9), 1.0), residuals)
    assert events.index("alert") == 2100 and held[2100] == free[2100] > 0.99
    assert max(free[2101:2200]) > 0.99                        # the later spikes score high on their own
    assert max(held[2101:2201]) <= 0.9                        # ... but the alert already said it
    assert held[2201:] == free[2201:]


def _daily(days: int, steps_per_day: int = 288, flat_day: int | None = None):
    """A square daily pattern (high from 8:00 to 20:00) with noise; one day optionally stays low."""
    t = np.arange(days * steps_per_day)
    hour = (t % steps_per_day) * 24.0 / steps_per_day
    values = np.where((hour >= 8) & (hour < 20), 80.0, 20.0) + np.random.default_rng(9).normal(0, 1, t.size)
    if flat_day is not None:
        day = slice(flat_day * steps_per_day, (flat_day + 1) * steps_per_day)
        values[day] = 20.0 + np.random.default_rng(10).normal(0, 1, steps_per_day)
    return 1_600_000_000.0 + 300.0 * t, values      # midnight-aligned epoch seconds, 5-minute steps


def run_persistence(anomaly: StreamAnomaly, stamps, values):
    """A model that forecasts the last value; returns scores and events."""
    out = [anomaly.update(values[i], values[i - 1], stamps[i]) for i in range(1, len(values))]
    return [None] + [s for s, _ in out], [None] + [e for _, e in out]


def test_daily_profile_catches_a_missing_daily_jump_the_model_cannot_predict():
    stamps, values = _daily(12, flat_day=10)
    jump = 10 * 288 + 96                              # 8:00 on the flat day: the jump that did not come
    tuned = dict(short_window=5, threshold=0.997, clear_threshold=0.99, refractory_steps=500)
    _, with_profile = run_persistence(StreamAnomaly(AnomalySettings(**tuned, daily_profile=True), 1.0), stamps, values)
    _, without = run_persistence(StreamAnomaly(AnomalySettings(**tuned), 1.0), stamps, values)
    assert "alert" in with_profile[jump:jump + 3]
    assert "alert" not in without[jump - 5:jump + 50]
    # once learnt, the regular daily jumps look less surprising than to the model alone
    scores_with, _ = run_persistence(StreamAnomaly(AnomalySettings(**tuned, daily_profile=True), 1.0), stamps, values)
    scores_without, _ = run_persistence(StreamAnomaly(AnomalySettings(**tuned), 1.0), stamps, values)
    for day in range(3, 10):
        at = slice(day * 288 + 96, day * 288 + 101)
        assert max(scores_with[at]) < max(scores_without[at])


def test_daily_profile_needs_the_timestamp_and_round_trips():
    stamps, values = _daily(4)
    settings = AnomalySettings(daily_profile=True, spatial_tolerance=0.05, long_window=500)
    no_ts = StreamAnomaly(settings, 1.0)
    plain = StreamAnomaly(AnomalySettings(spatial_tolerance=0.05, long_window=500), 1.0)
    for i in range(1, 400):                          # without ts the profile stays out of it
        assert no_ts.update(values[i], values[i - 1]) == plain.update(values[i], values[i - 1])
    original = StreamAnomaly(settings, 1.0)
    run_persistence(original, stamps[:700], values[:700])
    restored = through_checkpoint(original, settings)
    rest = [(values[i], values[i - 1], stamps[i]) for i in range(700, len(values))]
    assert [restored.update(*a) for a in rest] == [original.update(*a) for a in rest]
    assert same_state(restored.to_state(), original.to_state())
    with pytest.raises(ValueError, match="daily_profile"):
        StreamAnomaly.from_state(AnomalySettings(spatial_tolerance=0.05, long_window=500), original.to_state())


def _float_profile(stamps, values):
    """The profile's levels as floats would hold them (the reference for the int16 quanta)."""
    from statecast.daemon.anomaly import daily_profile
    levels = {}
    for ts, x in zip(stamps, values):
        slot = daily_profile.slot_of(ts)
        old = levels.get(slot)
        levels[slot] = x if old is None else (1 - daily_profile.LEVEL_WEIGHT) * old + daily_profile.LEVEL_WEIGHT * x
    return levels


@pytest.mark.parametrize("offset, spread", [(80.0, 10.0), (1.0e6, 3.0), (-2.5e-3, 1.0e-4), (0.0, 5.0e4)])
def test_daily_profile_quanta_stay_within_one_quantum_of_float_levels(offset, spread):
    """int16 levels hold 288 slots in half a float32 array's bytes. The stated bound: each level
    is within 1.5 quanta of the float64 level (half a quantum of rounding on the last store, and
    at most one more from rounding the slot's older level to a coarser quantum), and a quantum
    is at most 2**-14 of the farthest level from the anchor (levels fill 2**14 to 2**15 quanta)."""
    from statecast.daemon.anomaly import daily_profile as dp
    rng = np.random.default_rng(7)
    stamps = 1.7e9 + 300.0 * np.arange(288 * 5)
    values = offset + spread * (np.sin(np.arange(stamps.size) * 2 * np.pi / 288) + 0.1 * rng.standard_normal(stamps.size))
    levels, stats = dp.new_levels(), [0.0] * dp.FLOATS
    dp.reset(stats, 0)
    for ts, x in zip(stamps, values):
        dp.observe(levels, stats, 0, 100.0, float(ts), float(x), float(x))
    reference = _float_profile(stamps, values)
    quantum = math.ldexp(1.0, int(stats[dp.SHIFT]))
    farthest = max(abs(level - stats[dp.ANCHOR]) for level in reference.values())
    assert quantum <= farthest * 2.0 ** -14
    worst = max(abs(dp.level_at(levels, stats, 0, slot) - level) for slot, level in reference.items())
    assert worst <= 1.5 * quantum, (worst, quantum)


def test_daily_profile_far_value_coarsens_the_quantum_without_losing_levels():
    from statecast.daemon.anomaly import daily_profile as dp
    levels, stats = dp.new_levels(), [0.0] * dp.FLOATS
    dp.reset(stats, 0)
    for slot, x in enumerate((20.0, 20.5, 19.75)):
        dp.observe(levels, stats, 0, 100.0, slot * 300.0, x, x)
    fine = math.ldexp(1.0, int(stats[dp.SHIFT]))
    dp.observe(levels, stats, 0, 100.0, 3 * 300.0, 1.0e9, 1.0e9)         # one value 10**9 away
    coarse = math.ldexp(1.0, int(stats[dp.SHIFT]))
    assert coarse > 1000 * fine and abs(dp.level_at(levels, stats, 0, 3) - 1.0e9) <= coarse / 2
    for slot, x in enumerate((20.0, 20.5, 19.75)):
        assert abs(dp.level_at(levels, stats, 0, slot) - x) <= coarse     # rounded, not lost
    assert math.isnan(dp.level_at(levels, stats, 0, 4))                 # an empty slot stays empty
    dp.observe(levels, stats, 0, 100.0, 5 * 300.0, math.inf, 0.0)      # beyond float range: kept out
    assert math.isnan(dp.level_at(levels, stats, 0, 5))


def _profile_run(settings: AnomalySettings, stamps, values, forecasts):
    """Alert steps, and the daily profile's quantum (log2) and levels at the end."""
    from statecast.daemon.anomaly import daily_profile as dp
    anomaly = StreamAnomaly(settings, 1.0, 0.0)
    alerted = [i for i in range(1, len(values)) if anomaly.update(values[i], forecasts[i], stamps[i])[1] == "alert"]
    at = anomaly.offsets.profile_at
    levels = [dp.level_at(anomaly.levels, anomaly.stats, at, slot) for slot in range(dp.SLOTS)]
    return alerted, anomaly.stats[at + dp.SHIFT], np.array(levels)


def test_a_glitch_does_not_teach_the_daily_profile():
    """One 65535 in a 20/80 daily stream (noise 1) with models/default's settings, and a forecast
    that is not thrown by it (as models/default's is not, with its bounded scaler). Learnt, the
    glitch coarsened the profile's quantum from 2**-9 to 2 and swamped both running errors, and
    three more alerts followed on the next days (measured). More than SKIP_BEYOND_WIDTHS range
    widths beyond the stream's range, it is judged (one alert, by the range signal) but not learnt:
    the profile ends as it does without the glitch."""
    tuned = AnomalySettings(**json.loads((ROOT / "models" / "default-anomaly.json").read_text()))
    stamps, clean = _daily(14)
    forecasts = np.concatenate([[clean[0]], clean[:-1]])
    glitch_at = 3 * 288 + 150
    spoiled = clean.copy()
    spoiled[glitch_at] = 65535.0
    clean_alerts, clean_shift, clean_levels = _profile_run(tuned, stamps, clean, forecasts)
    alerts, shift, levels = _profile_run(tuned, stamps, spoiled, forecasts)
    assert clean_alerts == [] and alerts == [glitch_at]
    assert shift == clean_shift
    np.testing.assert_array_equal(levels, clean_levels)


def test_the_daily_profile_still_learns_a_real_shift(monkeypatch):
    """The same stream moves up by 1,000 (about 14 of its range widths) on day 4 and stays there.
    Only its first shifted value is kept out of the profile: the range signal then widens the
    range (3 widths a step), and every value after is learnt. So the profile ends as one that
    learns everything, but for that first value's slot, which has learnt one shifted day less
    (6 of 7 half-weight updates: about 1000 / 2**7 behind, at most 1000 / 2**6 with noise 1)."""
    from statecast.daemon.anomaly import daily_profile as dp
    tuned = AnomalySettings(**json.loads((ROOT / "models" / "default-anomaly.json").read_text()))
    stamps, values = _daily(11)
    values[4 * 288:] += 1000.0
    forecasts = np.concatenate([[values[0]], values[:-1]])
    _, shift, levels = _profile_run(tuned, stamps, values, forecasts)
    monkeypatch.setattr(dp, "SKIP_BEYOND_WIDTHS", math.inf)
    _, everything_shift, everything = _profile_run(tuned, stamps, values, forecasts)
    assert shift == everything_shift
    first_slot = dp.slot_of(stamps[4 * 288])
    others = np.arange(dp.SLOTS) != first_slot
    np.testing.assert_array_equal(levels[others], everything[others])
    assert 0.0 < everything[first_slot] - levels[first_slot] < 1000.0 / 2 ** 6    # 7.8 measured


def test_default_model_carries_its_tuned_settings_and_no_unit_prior():
    from pathlib import Path

    from statecast.daemon.model.step_model import StepModel
    from statecast.daemon.service.runtime_setup import anomaly_factory_for, manifest_anomaly_settings
    root = Path(__file__).resolve().parent.parent
    model = StepModel(str(root / "models" / "default"))
    tuned = json.loads((root / "models" / "default-anomaly.json").read_text())
    assert manifest_anomaly_settings(model) == AnomalySettings(**tuned)
    anomaly = anomaly_factory_for(model)()
    assert anomaly.settings.daily_profile and anomaly.prior_weight_steps == 0.0
    fixed = StepModel(str(root / "models" / "machine_temperature-float32"))
    assert manifest_anomaly_settings(fixed) == AnomalySettings()
    assert anomaly_factory_for(fixed)().prior_weight_steps > 0.0
