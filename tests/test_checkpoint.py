"""Checkpoints with per-stream statistics stacked as arrays: a restart through the serve path
(restore_shard) continues every stream bit-identically, size stays proportional to real state,
and streams whose statistics have different layouts share one file."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from statecast.daemon.anomaly import AnomalySettings, StreamAnomaly
from statecast.daemon.engine.step_engine import Engine
from statecast.daemon.messages import Message
from statecast.daemon.service.runtime_setup import anomaly_factory_for, open_model
from statecast.daemon.state import checkpoint
from statecast.daemon.state.stream_table import StreamTable
from statecast.daemon.state.takeover import restore_shard

ROOT = Path(__file__).resolve().parent.parent
STREAMS = 40


@pytest.fixture(scope="module")
def model():
    # models/default has everything a stream keeps: RNN state, an online normaliser, anomaly
    # statistics with a daily profile.
    return open_model(str(ROOT / "models" / "default"))


def readings(step: int) -> list[Message]:
    """One 5-minute reading per stream: a daily shape, a per-stream level and scale, some noise."""
    ts = 1_600_000_000.0 + 300.0 * step
    rng = np.random.default_rng(step)
    return [Message(f"s{i}", (10.0 * i + (1 + i) * np.sin(2 * np.pi * step / 288) + rng.normal(0, 0.3),), ts, ts)
            for i in range(STREAMS)]


def outputs(results) -> list:
    return [(r.stream_id, r.ts, r.forecast.tolist(), r.anomaly_score, r.event) for r in results]


def test_restart_through_the_serve_path_continues_bit_identically(model, tmp_path):
    settings = anomaly_factory_for(model)().settings
    assert settings.daily_profile and model.manifest.online_normalization
    uninterrupted = Engine(model, anomaly_factory=anomaly_factory_for(model))
    first = Engine(model, anomaly_factory=anomaly_factory_for(model))
    cut = 700                                                  # scores defined, blocks mid-way, ring not full
    for step in range(cut):
        uninterrupted.process(readings(step), now=1.0)
        first.process(readings(step), now=1.0)
    checkpoint.save(str(tmp_path / "entry.ckpt"), first.table, model.manifest.sha256)
    assert oct(os.stat(tmp_path / "entry.ckpt").st_mode & 0o777) == "0o600"
    second = Engine(model, anomaly_factory=anomaly_factory_for(model))
    count, sources = restore_shard(second.table, str(tmp_path), "entry", model.manifest.sha256,
                                   anomaly_restore=lambda data: StreamAnomaly.from_state(settings, data))
    assert count == STREAMS and sources == [str(tmp_path / "entry.ckpt")]
    info = second.table.get("s3")
    assert info.scaler is not None and info.anomaly is not None and info.anomaly.levels is not None
    assert info.guard is not None and info.guard.seen == [cut - 1]     # the forecast guard's state
    for step in range(cut, cut + 400):                         # across ring laps and alerts
        expected = outputs(uninterrupted.process(readings(step), now=1.0))
        assert outputs(second.process(readings(step), now=1.0)) == expected
    assert any(score is not None for *_, score, _ in expected)


def test_size_is_the_state_not_json(model):
    """1,000 streams with anomaly statistics: RNN state (GRU(32): 128 B), forecast, normaliser,
    anomaly blocks (~600 B) and daily profile (1,152 B) per stream, ~2 kB; bound 3 kB per stream
    (meta JSON ~100 B per stream included). The ring-in-JSON layout took ~45 kB per stream."""
    engine = Engine(model, anomaly_factory=anomaly_factory_for(model))
    for step in range(3):
        engine.process([Message(f"stream-{i:05d}", (float(i + step),), 1e9 + 300 * step, 0.0)
                        for i in range(1000)], now=1.0)
    blob = checkpoint.encode(engine.table, model.manifest.sha256)
    assert len(blob) < 3_000 * 1000
    data = np.load(io.BytesIO(blob.split(b"\n", 2)[2]), allow_pickle=False)
    meta = json.loads(bytes(data["meta"]).decode())
    assert len(meta["stream_ids"]) == 1000 and data["stream_steps"].tolist() == [3.0] * 1000
    assert data["anomaly0.profile_levels"].shape == (1000, 288)


def test_streams_with_different_anomaly_layouts_share_a_checkpoint():
    """After a reload that changed anomaly settings, old and new streams coexist in one table."""
    short, long = AnomalySettings(long_window=200), AnomalySettings(long_window=3000, daily_profile=True)
    table = StreamTable([(4,)], max_streams=8)
    for name, settings in (("a", short), ("b", long), ("c", short)):
        anomaly = StreamAnomaly(settings, 1.0)
        for step in range(300):
            anomaly.update(np.sin(step) + (5.0 if step == 250 else 0.0), 0.0, 1e9 + 60.0 * step)
        table.add(name, 0.0).anomaly = anomaly
    table.add("d", 0.0)                                        # no statistics yet
    blob = checkpoint.encode(table, "sha")
    for settings, restored_names in ((short, {"a", "c"}), (long, {"b"})):
        fresh = StreamTable([(4,)], max_streams=8)
        assert checkpoint.decode(blob, "sha", fresh, lambda data, s=settings: StreamAnomaly.from_state(s, data)) == 4
        assert {sid for sid, info in fresh.streams.items() if info.anomaly is not None} == restored_names
        assert (fresh.get("d").last_ts, fresh.get("d").last_interval, fresh.get("d").steps) == (None, None, 0)
        for name in restored_names:
            assert np.array_equal(fresh.get(name).anomaly.to_state()["stats"],
                                  table.get(name).anomaly.to_state()["stats"], equal_nan=True)


def stacked_to_state(prefix: str, items) -> dict[str, np.ndarray]:
    """The reference layout of a checkpoint's per-stream statistics: each stream's to_state()
    dict, grouped by keys and shapes in order of first appearance, every key stacked (numbers as
    float64, arrays in their dtype). The daemon builds the same arrays without the dicts."""
    groups: dict[tuple, tuple[list, list]] = {}
    for row, obj in items:
        state = obj.to_state()
        layout = (tuple(state), tuple(np.shape(value) for value in state.values()))
        rows, states = groups.setdefault(layout, ([], []))
        rows.append(row)
        states.append(state)
    arrays = {}
    for g, (rows, states) in enumerate(groups.values()):
        arrays[f"{prefix}{g}.rows"] = np.asarray(rows, np.int64)
        for key, value in states[0].items():
            column = [state[key] for state in states]
            arrays[f"{prefix}{g}.{key}"] = np.stack(column) if np.ndim(value) else np.asarray(column, np.float64)
    return arrays


def test_statistics_are_stacked_as_their_to_state_dicts_would_be(model):
    """Anomaly statistics (with and without a daily profile, two ring lengths, alerting or not,
    never alerted) and online scalers are stacked column-wise straight from the objects; the arrays
    must be those of stacking every stream's to_state() dict: same names in the same order, dtype,
    shape and bytes (tobytes compares NaN payloads and -0.0 too), so the files are the same."""
    engine = Engine(model, anomaly_factory=anomaly_factory_for(model))     # profile + online scaler
    for step in range(400):
        engine.process(readings(step), now=1.0)
    table = engine.table
    others = (AnomalySettings(long_window=200, short_window=3), AnomalySettings(long_window=200))
    for k, settings in enumerate(others * 3):                              # layouts interleaved
        anomaly = StreamAnomaly(settings, 1.0)
        for step in range(260 + 7 * k):
            anomaly.update(np.sin(step) + (9.0 if step == 250 else 0.0), 0.0, 1e9 + 60.0 * step)
        table.add(f"other-{k}", 0.0).anomaly = anomaly
    table.add("no-statistics", 0.0)
    infos = list(table.streams.values())
    assert any(i.anomaly is not None and i.anomaly.last_alert_step is not None for i in infos)
    assert any(i.anomaly is not None and i.anomaly.last_alert_step is None for i in infos)
    arrays = checkpoint.snapshot(table, model.manifest.sha256)
    for prefix in ("anomaly", "scaler"):
        ours = {name: array for name, array in arrays.items() if name.startswith(prefix)}
        reference = stacked_to_state(prefix, ((row, getattr(i, prefix)) for row, i in enumerate(infos)
                                              if getattr(i, prefix) is not None))
        assert list(ours) == list(reference)
        for name, expected in reference.items():
            got = ours[name]
            assert (got.dtype, got.shape) == (expected.dtype, expected.shape), name
            assert np.ascontiguousarray(got).tobytes() == expected.tobytes(), name
    assert {name.split(".")[0] for name in arrays if name.startswith("anomaly")} == {"anomaly0", "anomaly1", "anomaly2"}


def test_a_crash_while_checkpoint_files_are_written_loses_no_step(tmp_path):
    """The loop takes the snapshot and moves the journal aside (<journal>.pending), then goes on
    stepping and journaling into a new file while another thread writes the checkpoint. A crash
    before the files are durable, or after but before .pending is deleted, must restart into the
    state of an uninterrupted run: previous checkpoint, then .pending, then the new journal. The
    next successful checkpoint deletes the leftover .pending."""
    from daemon_proc import write_config
    from statecast.daemon.config import load_config
    from statecast.daemon.service.stream_pipeline import Pipeline
    from statecast.daemon.state.journal import PENDING

    def pipeline_in(directory):
        config = load_config(write_config(tmp_path / f"{directory}.toml", 1883, str(tmp_path / directory)))
        os.makedirs(config.state.directory, exist_ok=True)
        pipeline = Pipeline(config.streams[0], config)
        pipeline.restore()
        return pipeline

    def run(pipeline, steps):
        for step in steps:
            pipeline.record(*pipeline.step(readings(step)))

    def state(pipeline):
        table = pipeline.engine.table
        return {sid: ([a.tolist() for a in table.state_of(sid)], info.steps, info.last_ts)
                for sid, info in sorted(table.streams.items())}

    uninterrupted = pipeline_in("reference")
    run(uninterrupted, range(150))
    for crash_after_write in (False, True):
        name = f"crash-{crash_after_write}"
        first = pipeline_in(name)
        run(first, range(50))
        files = first.begin_checkpoint(settled=True)             # a whole round: checkpoint at step 50,
        run(first, range(50, 60))                                # steps journaled while it is written
        for path, arrays in files:
            checkpoint.write_snapshot(path, arrays)
        first.end_checkpoint()
        run(first, range(60, 100))
        files = first.begin_checkpoint(settled=True)             # snapshot at step 100 ...
        assert os.path.exists(first.journal_path + PENDING)
        run(first, range(100, 150))                              # ... the loop goes on meanwhile
        if crash_after_write:
            for path, arrays in files:
                checkpoint.write_snapshot(path, arrays)
        first.journal.close()                                    # crash: end_checkpoint never runs
        second = pipeline_in(name)
        assert state(second) == state(uninterrupted), name
        files = second.begin_checkpoint(settled=True)            # the leftover .pending stays until ...
        assert os.path.exists(second.journal_path + PENDING)
        for path, arrays in files:
            checkpoint.write_snapshot(path, arrays)
        second.end_checkpoint()                                  # ... a checkpoint after it is durable
        assert not os.path.exists(second.journal_path + PENDING)
        second.journal.close()
        assert state(pipeline_in(name)) == state(uninterrupted), name
