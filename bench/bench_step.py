"""Step cost per stream-step: the batched step model vs one invoke per message vs re-running a
64-step window on every message vs Keras on the window; float32, dynamic, int8.

    .venv/bin/python bench/bench_step.py [--repeats 9] [--block-seconds 0.08] [--out step.json]

All alternatives of a quantization mode are timed interleaved (shuffled order per repeat, medians
over repeats); ratios are medians of per-repeat ratios. The step model runs through the daemon's
own StepModel (LiteRT, XNNPACK, num_threads=1, as `serve` runs it); "engine-like" rows add the
per-round gather/scatter of a 1,000-stream StreamTable.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import calls_for, interleaved, machine, median, paired_ratio, timed_block, write_result  # noqa: E402
import bench_models  # noqa: E402

STREAMS = 1000


def step_alternatives(mode: str, block_seconds: float) -> dict:
    """name -> callable returning seconds per stream-step (one timed block)."""
    from statecast.daemon.model.step_model import StepModel
    from statecast.daemon.state.stream_table import StreamTable

    directory = bench_models.step_artifact(mode)
    model = StepModel(directory, max_batch=1024)
    model_256 = StepModel(directory, max_batch=256)
    rng = np.random.default_rng(0)
    alternatives = {}

    def pure(batch: int):
        x = rng.standard_normal((batch, 1)).astype(np.float32)                   # (batch, features)
        holder = {"states": model.zero_states(batch)}

        def once():
            _, holder["states"] = model.step(x, holder["states"])
        calls = calls_for(once, block_seconds)
        return lambda: timed_block(once, calls) / batch

    for batch in (1, 64, 1024):
        alternatives[f"step batch {batch}"] = pure(batch)

    def engine_like(step_model, per_message: bool):
        table = StreamTable(step_model.state_sizes, STREAMS)
        for i in range(STREAMS):
            table.add(f"s{i}", 0.0)
        slots = np.arange(STREAMS, dtype=np.intp)
        x = rng.standard_normal((STREAMS, 1)).astype(np.float32)
        if per_message:
            singles = [np.asarray([s], np.intp) for s in slots]

            def once():                                   # 1,000 messages, one invoke each
                for i, one in enumerate(singles):
                    _, new = step_model.step(x[i:i + 1], table.gather(one))
                    table.scatter(one, new)
        else:
            def once():                                   # 1,000 messages, one invoke (bucket 1024) or 4 x 256
                _, new = step_model.step(x, table.gather(slots))
                table.scatter(slots, new)
        calls = calls_for(once, block_seconds)
        return lambda: timed_block(once, calls) / STREAMS

    alternatives["one invoke per message (1,000 streams)"] = engine_like(model, per_message=True)
    alternatives["batched, 1,000 streams, max_batch 1024"] = engine_like(model, per_message=False)
    alternatives["batched, 1,000 streams, max_batch 256"] = engine_like(model_256, per_message=False)
    alternatives["window TFLite (64 steps) per message"] = window_alternative(mode, block_seconds, 1)
    alternatives["window TFLite (64 steps), 1,000 streams batched"] = window_alternative(mode, block_seconds, STREAMS)
    return alternatives


def window_alternative(mode: str, block_seconds: float, streams: int):
    """Per message, re-run the window: each of `streams` streams shifts its last-64 window by the
    new value, then one invoke over all their windows. streams=1 is one invoke per message;
    streams=STREAMS is the window alternative batched as the daemon's window engine runs it, the
    like-for-like partner of the batched step model. Returns seconds per stream-step."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=bench_models.window_tflite(mode), num_threads=1)
    x_index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(x_index, [streams, bench_models.WINDOW, 1], strict=False)
    interpreter.allocate_tensors()
    y_index = interpreter.get_output_details()[0]["index"]
    windows = np.zeros((streams, bench_models.WINDOW, 1), np.float32)               # (streams, W, features)
    values = np.random.default_rng(1).standard_normal((64, streams)).astype(np.float32)
    counter = [0]

    def once():
        windows[:, :-1] = windows[:, 1:]
        windows[:, -1, 0] = values[counter[0] & 63]
        counter[0] += 1
        interpreter.set_tensor(x_index, windows)
        interpreter.invoke()
        return interpreter.get_tensor(y_index)
    calls = calls_for(once, block_seconds)
    return lambda: timed_block(once, calls) / streams


def keras_alternatives(block_seconds: float) -> dict:
    """Every reasonable way to run Keras on one (1, 64, 1) window; the fastest is the fair baseline."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from statecast.convert.keras_reader import load_keras_model

    model = load_keras_model(bench_models.keras_model_path())
    x_np = np.random.default_rng(2).normal(87.0, 10.0, (1, bench_models.WINDOW, 1)).astype(np.float32)
    x_tf = tf.constant(x_np)
    graph = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec(x_np.shape, tf.float32)])
    variants = {
        "Keras model.predict": lambda: model.predict(x_np, verbose=0),
        "Keras model.predict_on_batch": lambda: model.predict_on_batch(x_np),
        "Keras model(x) (eager)": lambda: model(x_tf, training=False).numpy(),
        "Keras model(x) in tf.function": lambda: graph(x_tf).numpy(),
    }
    try:
        xla = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec(x_np.shape, tf.float32)],
                          jit_compile=True)
        xla(x_tf)
        variants["Keras model(x) in tf.function, XLA"] = lambda: xla(x_tf).numpy()
    except Exception as error:  # noqa: BLE001 - XLA availability differs between builds; report, don't fail
        print(f"bench_step: XLA variant skipped ({type(error).__name__})", file=sys.stderr)
    out = {}
    for name, fn in variants.items():
        calls = calls_for(fn, block_seconds, max_calls=10_000)
        out[name] = (lambda f, c: lambda: timed_block(f, c))(fn, calls)
    return out


def run(repeats: int, block_seconds: float) -> dict:
    result = {"machine": machine(), "repeats": repeats, "block_seconds": block_seconds, "modes": {}}
    keras = keras_alternatives(block_seconds)
    for mode in bench_models.MODES:
        alternatives = {**step_alternatives(mode, block_seconds), **keras}
        times = interleaved(alternatives, repeats, seed=hash(mode) & 0xFFFF)
        keras_times = {k: v for k, v in times.items() if k.startswith("Keras")}
        fastest_keras = min(keras_times, key=lambda k: median(keras_times[k]))
        per_message = times["one invoke per message (1,000 streams)"]
        batched = times["batched, 1,000 streams, max_batch 1024"]
        window = times["window TFLite (64 steps) per message"]
        window_batch = times["window TFLite (64 steps), 1,000 streams batched"]
        result["modes"][mode] = {
            "artifact": os.path.basename(bench_models.step_artifact(mode)),
            "median_us": {k: median(v) * 1e6 for k, v in times.items()},
            "samples_us": {k: [t * 1e6 for t in v] for k, v in times.items()},
            "fastest_keras": fastest_keras,
            "ratios": {
                "per_message / batched_1000": paired_ratio(per_message, batched),
                "per_message / batched_1000_mb256": paired_ratio(per_message, times["batched, 1,000 streams, max_batch 256"]),
                "window / per_message": paired_ratio(window, per_message),
                "window / batched_1000": paired_ratio(window, batched),
                "window_batched / batched_1000": paired_ratio(window_batch, batched),
                "keras_fastest / per_message": paired_ratio(times[fastest_keras], per_message),
                "keras_fastest / batched_1000": paired_ratio(times[fastest_keras], batched),
            },
        }
        print(f"bench_step: {mode} done", file=sys.stderr)
    result["window_parity"] = {mode: bench_models.window_parity(mode) for mode in bench_models.MODES}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--block-seconds", type=float, default=0.08)
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    result = run(args.repeats, args.block_seconds)
    write_result(result, args.out)
    for mode, data in result["modes"].items():
        print(mode, {k: round(v, 2) for k, v in data["median_us"].items()}, file=sys.stderr)
        print(mode, {k: round(v, 1) for k, v in data["ratios"].items()}, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
