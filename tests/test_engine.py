"""The engine in process, with the shipped model and a real LiteRT interpreter."""
import os

import numpy as np
import pytest

from conftest import ROOT
from statecast.daemon.engine.step_engine import Engine, EngineSettings
from statecast.daemon.messages import Message
from statecast.daemon.model.step_model import StepModel
from statecast.daemon.state import checkpoint
from statecast.daemon.tools.series_csv import read_series

MODEL_DIR = os.path.join(ROOT, "models", "machine_temperature-float32")
SERIES = read_series(os.path.join(ROOT, "data", "nab", "data", "realKnownCause", "machine_temperature_system_failure.csv"))


@pytest.fixture(scope="module")
def model():
    return StepModel(MODEL_DIR)


def messages(stream, start, stop, offset=0.0):
    return [Message(stream, (float(SERIES.values[i, 0]),), float(SERIES.timestamps[i]) + offset, 0.0)
            for i in range(start, stop)]


def interleave(*lists):
    return [m for group in zip(*lists) for m in group]


def forecasts(results):
    return {(r.stream_id, r.ts): r.forecast.tolist() for r in results}


def test_chunking_and_interleaving_do_not_change_forecasts(model):
    """The streaming contract: whatever the arrival pattern, every stream gets the same forecasts."""
    feed = interleave(messages("a", 0, 300), messages("b", 1000, 1300), messages("c", 5000, 5300))
    reference = forecasts(Engine(model).process(feed))
    for chunk in (1, 7, 64):
        engine = Engine(model)
        results = []
        for start in range(0, len(feed), chunk):
            results += engine.process(feed[start:start + chunk])
        assert forecasts(results) == reference, chunk
    # one stream's messages all in one call: rounds keep their order, one step per stream per invoke
    engine = Engine(model)
    same_stream = engine.process(messages("a", 0, 300))
    assert [r.steps for r in same_stream] == list(range(1, 301))
    assert engine.counters.batches == 300 and engine.counters.batch_sizes == {1: 300}
    assert {k: v for k, v in reference.items() if k[0] == "a"} == forecasts(same_stream)


def test_duplicates_and_older_timestamps_never_step_twice(model):
    engine = Engine(model)
    engine.process(messages("a", 0, 50))
    before = engine.table.state_of("a")
    replayed = engine.process(messages("a", 10, 50))           # all older or equal
    assert replayed == [] and engine.counters.rejected["duplicate_or_old_timestamp"] == 40
    assert all(np.array_equal(x, y) for x, y in zip(before, engine.table.state_of("a")))
    assert engine.table.get("a").steps == 50


def test_gap_policy(model):
    gap = 3600.0
    reset = Engine(model, EngineSettings(max_gap_seconds=gap, gap_policy="reset"))
    carry = Engine(model, EngineSettings(max_gap_seconds=gap, gap_policy="continue"))
    fresh = Engine(model)
    for engine in (reset, carry):
        engine.process(messages("a", 0, 100))
    later = messages("a", 100, 110, offset=10 * gap)
    after_reset = reset.process(later)
    after_carry = carry.process(later)
    assert reset.counters.gap_resets == 1 and carry.counters.gap_resets == 1
    # after a reset the stream behaves like a brand-new one fed the same messages
    assert forecasts(after_reset) == forecasts(fresh.process(later))
    assert forecasts(after_carry) != forecasts(after_reset)


def test_table_is_bounded_and_established_streams_keep_working(model):
    engine = Engine(model, EngineSettings(max_streams=3, idle_eviction_seconds=600))
    for name in "abc":
        engine.process(messages(name, 0, 5), now=1000.0)
    flood = [Message(f"new{i}", (50.0,), 1e9, 0.0) for i in range(100)]
    assert engine.process(flood, now=1001.0) == []
    assert engine.counters.rejected["stream_table_full"] == 100 and len(engine.table) == 3
    assert len(engine.process(messages("a", 5, 6), now=1002.0)) == 1          # established stream still served
    # once "b" and "c" are idle long enough, a new stream evicts the oldest idle one
    assert len(engine.process([Message("late", (50.0,), 1e9, 0.0)], now=1000.0 + 601)) == 1
    assert engine.table.evicted == 1 and "late" in engine.table


def test_rollout_beyond_the_model_horizon_leaves_state_untouched(model):
    one = Engine(model)
    three = Engine(model, EngineSettings(horizon=3))
    feed = messages("a", 0, 120)
    r1, r3 = one.process(feed), three.process(feed)
    assert r3[-1].forecast.shape == (3, 1)
    assert [r.forecast[0, 0] for r in r3] == [r.forecast[0, 0] for r in r1]   # first step is the model's own
    assert all(np.array_equal(x, y) for x, y in zip(one.table.state_of("a"), three.table.state_of("a")))
    assert not np.allclose(r3[-1].forecast[1:, 0], r3[-1].forecast[0, 0])    # the path moves


def test_wrong_number_of_values_is_rejected(model):
    engine = Engine(model)
    assert engine.process([Message("a", (1.0, 2.0), 1.0, 0.0)]) == []
    assert engine.counters.rejected["wrong_feature_count"] == 1 and "a" not in engine.table


def test_checkpoint_round_trip_continues_bit_identically(model, tmp_path):
    uninterrupted = Engine(model)
    full = uninterrupted.process(interleave(messages("a", 0, 200), messages("b", 300, 500)))
    first = Engine(model)
    first.process(interleave(messages("a", 0, 120), messages("b", 300, 420)))
    path = str(tmp_path / "x.ckpt")
    checkpoint.save(path, first.table, model.manifest.sha256)
    assert os.stat(path).st_mode & 0o777 == 0o600
    second = Engine(model)
    count, source = checkpoint.restore(path, second.table, model.manifest.sha256)
    assert count == 2 and source == path
    rest = second.process(interleave(messages("a", 120, 200), messages("b", 420, 500)))
    assert forecasts(rest) == {k: v for k, v in forecasts(full).items() if k in forecasts(rest)}
    assert len(rest) == 160
    for sid in "ab":
        assert all(np.array_equal(x, y) for x, y in zip(uninterrupted.table.state_of(sid), second.table.state_of(sid)))


def test_torn_or_foreign_checkpoints_are_refused(model, tmp_path):
    engine = Engine(model)
    engine.process(messages("a", 0, 10))
    path = str(tmp_path / "x.ckpt")
    checkpoint.save(path, engine.table, model.manifest.sha256)          # generation 1 (becomes .prev)
    engine.process(messages("a", 10, 20))
    checkpoint.save(path, engine.table, model.manifest.sha256)          # generation 2
    blob = open(path, "rb").read()
    open(path, "wb").write(blob[: len(blob) // 2])                      # torn write of generation 2
    fresh = Engine(model)
    count, source = checkpoint.restore(path, fresh.table, model.manifest.sha256)
    assert (count, source) == (1, path + ".prev") and fresh.table.get("a").steps == 10
    other = Engine(model)
    count, reason = checkpoint.restore(path, other.table, "0" * 64)
    assert count == 0 and "another model" in reason and len(other.table) == 0
