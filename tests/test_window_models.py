"""Window models (issue 8): Bidirectional Keras models -> window TFLite, and the window engine.

The conversion contract, window by window on real NAB machine_temperature windows, for every
merge mode x quantization mode, with the step models' tolerances:
  float32           max |tflite - keras| <= 1e-5 of the output range
  float16, dynamic  <= 1e-2 of the output range
  int8              forecasters: next-step RMSE against the true series <= 1.05 x Keras';
                    models without a target series: RMS |tflite - keras| <= 5e-2 of the range
Then the engine: the ring buffer survives a checkpoint/restore, runs happen every `stride`
messages batched across the due streams, and arrival order/batching does not change outputs.
"""

import keras
import numpy as np
import pytest

from conftest import MACHINE_TEMPERATURE
from statecast.convert import window_parity
from statecast.convert.convert_common import ConvertOptions
from statecast.convert.errors import ConversionError
from statecast.convert.keras_reader import read_model_spec
from statecast.convert.pipeline import convert
from statecast.convert.train import TrainOptions, train
from statecast.convert.window_reader import read_window_spec
from statecast.daemon.anomaly import AnomalySettings, StreamAnomaly
from statecast.daemon.engine.step_engine import EngineSettings
from statecast.daemon.engine.window_engine import WindowEngine, window_message
from statecast.daemon.messages import Message
from statecast.daemon.model.window_model import WindowModel
from statecast.daemon.state.checkpoint import restore, save
from statecast.daemon.tools.series_csv import read_series

WINDOW = 16
MERGE_MODES = ["concat", "sum", "ave", "mul"]
MODES = ["float32", "float16", "dynamic", "int8"]
WINDOW_OPS = {"FULLY_CONNECTED", "SPLIT", "LOGISTIC", "TANH", "MUL", "ADD", "RELU", "UNPACK", "STRIDED_SLICE",
              "PACK", "CONCATENATION"}
BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}
RANGE_TOLERANCE = {"float32": 1e-5, "float16": 1e-2, "dynamic": 1e-2}
HELD_OUT = slice(12_000, 13_000 + WINDOW)      # windows the converter's own parity run never saw


@pytest.fixture(scope="module")
def series():
    return read_series(MACHINE_TEMPERATURE).values.astype(np.float32)     # (rows, 1)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    """Trained BiLSTM forecasters (8 units, 1 epoch on 2,000 rows: parity needs a target, not a good
    model), one per merge mode, converted on demand."""
    root = tmp_path_factory.mktemp("window")
    models, cache = {}, {}

    def get(merge, mode):
        if merge not in models:
            models[merge] = str(root / f"bilstm_{merge}.keras")
            train(TrainOptions(csv=MACHINE_TEMPERATURE, out=models[merge], cell="bilstm", units=8, window=WINDOW,
                               rows=":2000", epochs=1, merge_mode=merge, seed=1))
        if (merge, mode) not in cache:
            out = str(root / f"{merge}-{mode}")
            convert(ConvertOptions(model_path=models[merge], mode=mode, out_dir=out,
                                   calibration_csv=MACHINE_TEMPERATURE, keep_on_parity_failure=True))
            cache[(merge, mode)] = (out, models[merge])
        return cache[(merge, mode)]
    return get


def rmse(forecast, truth):
    return float(np.sqrt(np.mean((forecast[:, 0] - truth[:, 0]) ** 2)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("merge", MERGE_MODES)
def test_window_tflite_matches_keras(merge, mode, series, artifact):
    directory, keras_path = artifact(merge, mode)
    model = WindowModel(directory)
    ops = model.ops()
    assert set(ops) <= WINDOW_OPS | BOUNDARY_OPS, f"unexpected ops: {set(ops) - WINDOW_OPS}"
    # The window is cut into steps by one UNPACK on CPU and by W STRIDED_SLICEs in int8, the Edge TPU's mode
    # (which has no UNPACK): window_graph.unpack_steps_for.
    slicing = {"UNPACK": ops.count("UNPACK"), "STRIDED_SLICE": ops.count("STRIDED_SLICE")}
    assert slicing == ({"UNPACK": 0, "STRIDED_SLICE": WINDOW} if mode == "int8" else {"UNPACK": 1, "STRIDED_SLICE": 0})
    m = model.manifest.raw
    assert (m["kind"], m["window"], m["window_output"], m["state"]) == ("window", WINDOW, "per_window", [])
    assert m["input_shape"] == [None, WINDOW, 1] and m["layers"][0]["merge_mode"] == merge
    assert m["parity"]["pass"] and m["parity"]["windows"] == 2000, m["parity"]
    # Independently, on held-out windows: Keras vs the artifact, in sensor units.
    segment = series[HELD_OUT]
    windows = window_parity.sliding_windows(segment, WINDOW)[:-1]          # (1000, W, 1)
    truth = segment[WINDOW:]                                               # the step after each window
    keras_out = keras.saving.load_model(keras_path).predict(windows, verbose=0) + windows[:, -1]
    out = window_parity.run_window_model(model, windows)
    if mode == "int8":
        ratio = rmse(out, truth) / rmse(keras_out, truth)
        assert ratio <= 1.05, f"{merge} int8 RMSE is {ratio:.4f} x Keras"
    else:
        relative = float(np.max(np.abs(out - keras_out))) / float(np.ptp(keras_out))
        assert relative <= RANGE_TOLERANCE[mode], f"{merge} {mode}: {relative:.3g}"


STACKS = {
    # causal LSTM under a per-step Bidirectional GRU: one output per step (a denoiser's shape)
    "lstm_then_bigru_ave_per_step": lambda: [keras.layers.LSTM(8, return_sequences=True),
                                             keras.layers.Bidirectional(keras.layers.GRU(8, return_sequences=True),
                                                                        merge_mode="ave"),
                                             keras.layers.Dense(1)],
    # Bidirectional SimpleRNN (relu) under a causal classic GRU: one output per window
    "birnn_mul_then_gru": lambda: [keras.layers.Bidirectional(keras.layers.SimpleRNN(8, activation="relu",
                                                                                     return_sequences=True),
                                                              merge_mode="mul"),
                                   keras.layers.GRU(8, reset_after=False), keras.layers.Dense(2)],
}


@pytest.mark.parametrize("stack,mode", [("lstm_then_bigru_ave_per_step", "float32"),
                                        ("lstm_then_bigru_ave_per_step", "int8"),
                                        ("birnn_mul_then_gru", "float32")])
def test_stacked_with_causal_layers(stack, mode, tmp_path, series):
    """Untrained but seeded (no target series): int8 is held to its output-error tolerance. The
    Keras input length is free, so the window comes from --window."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((None, 1))
    h = keras.layers.Normalization(mean=float(series.mean()), variance=float(series.var()))(inputs)
    for layer in STACKS[stack]():
        h = layer(h)
    path = str(tmp_path / "stack.keras")
    keras.Model(inputs, h).save(path)
    manifest = convert(ConvertOptions(model_path=path, mode=mode, out_dir=str(tmp_path / "out"), window=WINDOW,
                                      calibration_csv=MACHINE_TEMPERATURE, keep_on_parity_failure=True))
    per_step = stack.endswith("per_step")
    assert manifest["window_output"] == ("per_step" if per_step else "per_window")
    assert manifest["output_shape"] == ([None, WINDOW, 1] if per_step else [None, 2])
    parity = manifest["parity"]
    assert "rmse_ratio" not in parity and parity["pass"], parity
    if mode == "int8":
        assert parity["rms_error_over_range"] <= 0.05, parity
    else:
        assert parity["max_abs_error_over_range"] <= RANGE_TOLERANCE[mode], parity
    model = WindowModel(str(tmp_path / "out"))
    assert set(model.ops()) <= WINDOW_OPS | BOUNDARY_OPS


def test_window_needs_a_length_and_steps_still_refuse_bidirectional(tmp_path):
    inputs = keras.Input((None, 1))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Bidirectional(keras.layers.LSTM(4))(inputs)))
    with pytest.raises(ConversionError, match="see the future.*--window"):
        read_window_spec(model)
    with pytest.raises(ConversionError, match="see the future"):
        read_model_spec(model)
    assert read_window_spec(model, window=12).window == 12
    fixed = keras.Input((10, 1))
    pair = keras.layers.Bidirectional(keras.layers.LSTM(4), merge_mode=None)(fixed)
    with pytest.raises(ConversionError, match="merge_mode None"):
        read_window_spec(keras.Model(fixed, keras.layers.Concatenate()(pair)))


def test_int16x8_is_refused_for_window_models(tmp_path):
    """int16x8 is a step-model mode; a window model gets a one-line reason naming what it takes."""
    inputs = keras.Input((12, 1))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Bidirectional(keras.layers.LSTM(4))(inputs)))
    model.save(tmp_path / "bi.keras")
    with pytest.raises(ConversionError, match="int16x8 is for step models; a window model takes int8"):
        convert(ConvertOptions(model_path=str(tmp_path / "bi.keras"), mode="int16x8", out_dir=str(tmp_path / "out"),
                               calibration_csv=MACHINE_TEMPERATURE))
    assert not (tmp_path / "out").exists()


# --- the engine -------------------------------------------------------------------------------------

def messages_for(series, streams, start, count, t0=1_700_000_000.0, interval=300.0):
    """`count` rounds of one message per stream; stream k reads the series from row start + 500 k."""
    return [[Message(sid, (float(series[start + 500 * k + i, 0]),), t0 + (start + i) * interval, 0.0)
             for k, sid in enumerate(streams)] for i in range(count)]


def anomaly_settings():
    return AnomalySettings(min_steps=10, long_window=50)


def engine_for(directory, stride):
    model = WindowModel(directory)
    prior = model.manifest.raw["anomaly"]["residual_std"][0]
    return WindowEngine(model, EngineSettings(), stride=stride,
                        anomaly_factory=lambda: StreamAnomaly(anomaly_settings(), prior))


def test_ring_buffer_survives_restart(artifact, series, tmp_path):
    directory, _ = artifact("concat", "float32")
    before = engine_for(directory, stride=3)
    streams = ["a", "b", "c"]
    rounds = messages_for(series, streams, 0, 60)
    for batch in rounds[:40]:
        before.process(batch, now=1.0)
    path = str(tmp_path / "window.ckpt")
    sha = before.model.manifest.sha256
    save(path, before.table, sha)
    after = engine_for(directory, stride=3)
    restored, _ = restore(path, after.table, sha,
                          anomaly_restore=lambda data: StreamAnomaly.from_state(anomaly_settings(), data))
    assert restored == 3
    ran, scores = 0, []
    for batch in rounds[40:]:
        expected, got = before.process(batch, now=2.0), after.process(batch, now=2.0)
        for e, g in zip(expected, got):
            assert (e.stream_id, e.steps, e.window_ts) == (g.stream_id, g.steps, g.window_ts)
            assert (e.anomaly_score, e.expected, e.event) == (g.anomaly_score, g.expected, g.event)
            scores.append(g.anomaly_score)
            if e.output is not None:
                ran += 1
                assert np.array_equal(e.output, g.output)
            else:
                assert g.output is None
    assert ran == 3 * 6                                   # counts 43, 46, ..., 58: (n - 16) % 3 == 0
    assert any(score is not None for score in scores)     # the restored anomaly statistics keep scoring


def test_stride_batches_due_streams(artifact, series):
    directory, _ = artifact("sum", "float32")
    stride = 5
    engine = WindowEngine(WindowModel(directory), EngineSettings(), stride=stride)
    # "late" joins 3 rounds after the others, so it falls due in different rounds.
    rounds = messages_for(series, ["a", "b"], 0, 40)
    late = messages_for(series, ["late"], 0, 37)
    results = []
    for i, batch in enumerate(rounds):
        results += engine.process(batch + (late[i - 3] if i >= 3 else []), now=1.0)
    for sid, first in (("a", 0), ("b", 0), ("late", 3)):
        ran = [r.steps for r in results if r.stream_id == sid and r.output is not None]
        mine = [r.steps for r in results if r.stream_id == sid]
        assert ran == [n for n in mine if n >= WINDOW and (n - WINDOW) % stride == 0], sid
    # a and b are due together (one invoke of 2 windows), late on its own rounds
    assert engine.counters.batch_sizes == {2: 5, 1: 5} and engine.counters.forecasts_out == 15
    # Each output is the model on that stream's own last W values, oldest first.
    model = engine.model
    for r in results:
        if r.output is None:
            continue
        offset = {"a": 0, "b": 500, "late": 0}[r.stream_id]
        window = series[offset + r.steps - WINDOW: offset + r.steps][None]          # (1, W, 1)
        alone = window_parity.run_window_model(model, window)[0]
        np.testing.assert_allclose(r.output[:, 0], alone, rtol=0, atol=1e-6)
        assert r.window_ts[-1] == r.ts and len(r.window_ts) == WINDOW
    message = window_message(next(r for r in results if r.output is not None), "m", ("value",))
    assert '"window":16' in message and '"output":[' in message


def test_one_by_one_equals_batched(artifact, series):
    directory, _ = artifact("ave", "int8")
    streams = ["s1", "s2", "s3", "s4"]
    flat = [m for batch in messages_for(series, streams, 100, 30) for m in batch]
    batched = WindowEngine(WindowModel(directory), stride=2).process(flat, now=1.0)
    single_engine = WindowEngine(WindowModel(directory), stride=2)
    single = [r for m in flat for r in single_engine.process([m], now=1.0)]
    key = lambda r: (r.stream_id, r.steps)
    for b, s in zip(sorted(batched, key=key), sorted(single, key=key)):
        assert key(b) == key(s) and (b.output is None) == (s.output is None)
        if b.output is not None:
            np.testing.assert_allclose(b.output, s.output, rtol=0, atol=1e-5)
    assert sum(r.output is not None for r in batched) == 4 * 8          # counts 16, 18, ..., 30


def test_duplicates_do_not_advance_and_gaps_empty_the_ring(artifact, series):
    directory, _ = artifact("concat", "float32")
    engine = WindowEngine(WindowModel(directory), EngineSettings(max_gap_seconds=3600.0), stride=1)
    first = messages_for(series, ["a"], 0, 20)                                   # 300 s apart
    ran = [r.steps for batch in first for r in engine.process(batch, now=1.0) if r.output is not None]
    assert ran == [16, 17, 18, 19, 20]
    assert engine.process(first[-1], now=1.0) == []                              # same timestamp again
    assert engine.counters.rejected["duplicate_or_old_timestamp"] == 1
    later = messages_for(series, ["a"], 20, WINDOW, t0=1_700_000_000.0 + 7200.0)  # after a 2 h gap
    outputs = [r.output is not None for batch in later for r in engine.process(batch, now=1.0)]
    assert engine.counters.gap_resets == 1 and outputs == [False] * (WINDOW - 1) + [True]
