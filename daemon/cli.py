"""`statecast` command line. Device commands (serve, score, replay) never import TensorFlow;
train and convert import the workstation package lazily."""
from __future__ import annotations

import argparse
import logging
import sys


class UserError(Exception):
    """Anything a user can fix: printed as one line, exit status 2."""


def _split(text: str | None) -> tuple[str, ...] | None:
    return tuple(part.strip() for part in text.split(",") if part.strip()) if text else None


def _cmd_train(args) -> int:
    from statecast.convert.train import TrainOptions, train
    meta = train(TrainOptions(csv=tuple(args.csv), out=args.out, cell=args.cell, units=args.units, layers=args.layers,
                              window=args.window, horizon=args.horizon, time_column=args.time_column,
                              value_columns=_split(args.value_columns) or ("value",), rows=args.rows,
                              calendar=args.calendar, epochs=args.epochs, seed=args.seed,
                              residual=not args.no_residual, online_normalization=args.online_normalization,
                              halflife_steps=args.halflife_steps))
    print(f"trained {meta['cell']} {meta['layers']}x{meta['units']} for {meta['epochs_run']} epochs, "
          f"best validation loss {meta['val_loss_scaled']:.4f} (scaled units) -> {args.out}")
    return 0


def _cmd_convert(args) -> int:
    from statecast.convert.pipeline import ConvertOptions, convert
    from statecast.convert.report import format_conversion
    manifest = convert(ConvertOptions(model_path=args.model, mode=args.quantize, out_dir=args.out,
                                      calibration_csv=args.calibration_csv, time_column=args.time_column,
                                      features=_split(args.features), targets=_split(args.targets),
                                      horizon=args.horizon, name=args.name, static_batch=args.static_batch,
                                      keep_on_parity_failure=args.keep_on_parity_failure, window=args.window))
    print(format_conversion(manifest, args.out))
    return 0


def _cmd_score(args) -> int:
    from .score import score_csv
    from .runtime_setup import open_model, anomaly_factory_for
    model = open_model(args.model, args.runtime)
    rows = score_csv(model, args.csv, args.out, args.time_column, anomaly_factory=anomaly_factory_for(model))
    print(f"scored {rows} rows with {model.manifest.name} -> {args.out}")
    return 0


def _cmd_serve(args) -> int:
    from .serve import serve
    return serve(args.config, check_only=args.check_config)


def _cmd_replay(args) -> int:
    from .replay import replay
    sent = replay(args.csv, args.topic, host=args.host, port=args.port, rate_hz=args.rate, speedup=args.speedup,
                  qos=args.qos, limit=args.limit, time_column=args.time_column,
                  value_columns=_split(args.value_columns) or ("value",), stream_id=args.stream_id)
    print(f"published {sent} messages to {args.topic.replace('{stream}', args.stream_id)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="statecast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a streaming forecaster from a CSV (needs TensorFlow)")
    p.add_argument("--csv", required=True, action="append", help="training CSV (repeat for several series)")
    p.add_argument("--time-column", default="timestamp")
    p.add_argument("--value-columns", default="value")
    p.add_argument("--rows", help="slice of data rows, e.g. :5000")
    p.add_argument("--online-normalization", action="store_true",
                   help="normalise each stream by its own running mean/std on the device "
                        "(one model for streams it has never seen)")
    p.add_argument("--halflife-steps", type=float, default=1000.0,
                   help="half-life of the running statistics, in messages")
    p.add_argument("--cell", choices=["lstm", "gru", "rnn", "bilstm"], default="lstm",
                   help="bilstm: a window model (one forecast per window of the last --window steps)")
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--horizon", type=int, default=1)
    p.add_argument("--calendar", action="store_true", help="add time-of-day and day-of-week features")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--no-residual", action="store_true",
                   help="forecast levels directly instead of the change from the current value")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("convert", help="Keras model -> quantized TFLite step model (needs TensorFlow)")
    p.add_argument("model")
    p.add_argument("--quantize", choices=["float32", "float16", "dynamic", "int8"], default="float32")
    p.add_argument("--calibration-csv")
    p.add_argument("--time-column", default="timestamp")
    p.add_argument("--features", help="comma-separated feature names in model input order")
    p.add_argument("--targets", help="comma-separated target names")
    p.add_argument("--horizon", type=int)
    p.add_argument("--name")
    p.add_argument("--static-batch", type=int, help="fixed batch size (Edge TPU needs static shapes)")
    p.add_argument("--keep-on-parity-failure", action="store_true")
    p.add_argument("--window", type=int, help="export a window model of W steps (Bidirectional models whose "
                                               "input length is not fixed)")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=_cmd_convert)

    p = sub.add_parser("serve", help="run the daemon")
    p.add_argument("--config", required=True)
    p.add_argument("--check-config", action="store_true", help="validate the config and models, then exit")
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("score", help="run the daemon's engine over a CSV")
    p.add_argument("--model", required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("--time-column", default="timestamp")
    p.add_argument("--runtime", default="auto")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=_cmd_score)

    p = sub.add_parser("replay", help="publish a CSV as a live sensor stream")
    p.add_argument("--csv", required=True)
    p.add_argument("--topic", required=True, help="topic to publish on ({stream} is replaced by --stream-id)")
    p.add_argument("--stream-id", default="replay")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--rate", type=float, default=0.0, help="messages per second (0: as fast as possible)")
    p.add_argument("--speedup", type=float, default=0.0, help="replay at N x real time from the timestamps")
    p.add_argument("--qos", type=int, choices=[0, 1, 2], default=1)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--time-column", default="timestamp")
    p.add_argument("--value-columns", default="value")
    p.set_defaults(handler=_cmd_replay)
    _add_bench(sub)
    return parser


# --- `statecast bench` (issue 17): one self-contained block -----------------------------------
def _cmd_bench(args) -> int:
    from .device_bench import BenchOptions, run_bench
    for line in run_bench(BenchOptions(model=args.model, runtime=args.runtime, kernels=args.kernels,
                                       num_threads=args.num_threads, max_batch=args.max_batch,
                                       streams=args.streams, seconds=args.seconds)):
        print(line, flush=True)
    return 0


def _add_bench(sub) -> None:
    from .backends.kernels import KERNEL_CHOICES
    p = sub.add_parser("bench", help="measure step latency, streams/s and memory per stream on this board")
    p.add_argument("--model", required=True, help="step model directory")
    p.add_argument("--runtime", default="auto")
    p.add_argument("--kernels", choices=KERNEL_CHOICES, default="auto",
                   help="auto: reference kernels for int8 models (same numbers on every CPU), optimized for float")
    p.add_argument("--num-threads", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=256, help="as [batching] max_batch")
    p.add_argument("--streams", type=int, default=10_000, help="streams in the engine table")
    p.add_argument("--seconds", type=float, default=2.0, help="time budget per latency figure")
    p.set_defaults(handler=_cmd_bench)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that carry a one-line, user-facing reason."""
    from .artifact import ArtifactError
    from .backends import BackendError
    from .series_csv import SeriesError
    errors: list[type[BaseException]] = [UserError, ArtifactError, BackendError, SeriesError]
    if "statecast.convert.errors" in sys.modules:
        errors.append(sys.modules["statecast.convert.errors"].ConversionError)
    if "statecast.daemon.config" in sys.modules:
        errors.append(sys.modules["statecast.daemon.config"].ConfigError)
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    from .platform_check import current_userland_problem
    problem = current_userland_problem()
    if problem:                       # 32-bit ARM: no runtime wheels exist, stop before any import
        print(f"statecast: error: {problem}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - narrowed just below
        if isinstance(error, _user_errors()):
            print(f"statecast {args.command}: error: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
