"""`statecast` command line. Device commands (serve, score, replay) never import TensorFlow;
train and convert import the workstation package lazily."""
from __future__ import annotations

import argparse
import logging
import sys


class UserError(Exception):
    """Anything a user can fix: printed as one line, exit status 2."""


class HELP_FORMAT(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every option's default, except where there is none to show (None, off, required)."""

    def _get_help_string(self, action):
        if action.required or action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


TIME_HELP = ("timestamp column: ISO 8601 or epoch seconds; a time without a zone is read as UTC (it also "
             "drives calendar features)")
CONVERT_HELP = ("Prints the parity report against the Keras model and a one-line Edge TPU pre-check. A failed "
                "parity check prints the report and what to try next, and writes nothing unless "
                "--keep-on-parity-failure.")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("statecast")
    except PackageNotFoundError:                  # run from a source tree without installing
        return "unknown (not installed)"


def _split(text: str | None) -> tuple[str, ...] | None:
    return tuple(part.strip() for part in text.split(",") if part.strip()) if text else None


def _cmd_train(args) -> int:
    from statecast.convert.train import DEFAULT_GUARD_HALFLIFE, TrainOptions, train
    from statecast.convert.train_report import print_training_report
    guard = None if args.no_forecast_guard else \
        DEFAULT_GUARD_HALFLIFE if args.forecast_guard is None else args.forecast_guard
    meta = train(TrainOptions(csv=tuple(args.csv), out=args.out, cell=args.cell, units=args.units, layers=args.layers,
                              window=args.window, horizon=args.horizon, time_column=args.time_column,
                              value_columns=_split(args.value_columns) or ("value",), rows=args.rows,
                              calendar=args.calendar, epochs=args.epochs, seed=args.seed,
                              residual=not args.no_residual, online_normalization=args.online_normalization,
                              halflife_steps=args.halflife_steps, holdout_fraction=args.holdout_fraction,
                              validation_fraction=args.validation_fraction,
                              shrinkage=args.shrinkage and not args.no_residual,
                              learning_rate=args.learning_rate, lr_schedule=args.lr_schedule, patience=args.patience,
                              progress=True, report_dir=args.report_dir,
                              forecast_guard=guard))
    return print_training_report(meta, args.out, allow_no_skill=args.allow_no_skill)


def _cmd_convert(args) -> int:
    from statecast.convert.quiet import hush_before_import, quiet
    if not args.verbose:
        hush_before_import()
    with quiet(args.verbose):
        from statecast.convert.pipeline import ConvertOptions, convert
        from statecast.convert.report import format_conversion
        manifest = convert(ConvertOptions(model_path=args.model, mode=args.quantize, out_dir=args.out,
                                          calibration_csv=(args.calibration_csv or [None])[0],
                                          more_calibration_csvs=tuple((args.calibration_csv or [])[1:]),
                                          time_column=args.time_column,
                                          features=_split(args.features), targets=_split(args.targets),
                                          horizon=args.horizon, name=args.name, static_batch=args.static_batch,
                                          keep_on_parity_failure=args.keep_on_parity_failure, window=args.window))
    print(format_conversion(manifest, args.out))
    return 0


def _cmd_score(args) -> int:
    from statecast.daemon.service.runtime_setup import open_model, anomaly_factory_for
    from statecast.daemon.tools.score import score_csv
    model = open_model(args.model, args.runtime)
    rows = score_csv(model, args.csv, args.out, args.time_column, anomaly_factory=anomaly_factory_for(model),
                     value_columns=_split(args.value_columns))
    print(f"scored {rows} rows with {model.manifest.name} -> {args.out}")
    if args.plot:
        from statecast.daemon.tools.score_plot import plot_scored
        print(f"plot: {plot_scored(args.out, args.plot)}")
    return 0


def _cmd_serve(args) -> int:
    from statecast.daemon.service.serve import serve
    return serve(args.config, check_only=args.check_config)


def _cmd_replay(args) -> int:
    from statecast.daemon.tools.replay import replay
    sent = replay(args.csv, args.topic, host=args.host, port=args.port, rate_hz=args.rate, speedup=args.speedup,
                  qos=args.qos, limit=args.limit, time_column=args.time_column,
                  value_columns=_split(args.value_columns) or ("value",), stream_id=args.stream_id,
                  window=args.window)
    print(f"published {sent} messages to {args.topic.replace('{stream}', args.stream_id)}")
    return 0


def _cmd_watch(args) -> int:
    from statecast.daemon.tools.watch import watch
    watch(args.topic or ["statecast/#"], host=args.host, port=args.port, count=args.count, seconds=args.seconds)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from statecast.daemon.replay_pacing import DEFAULT_RATE_HZ, DEFAULT_WINDOW
    parser = argparse.ArgumentParser(prog="statecast", description=__doc__, formatter_class=HELP_FORMAT)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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
    p.add_argument("--cell", choices=["lstm", "gru", "rnn", "bilstm"], default="gru",
                   help="gru (default: its int8 step model keeps the float model's skill where an LSTM's "
                        "did not, docs/forecasting.md); bilstm: a window model (one forecast per window "
                        "of the last --window steps)")
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--window", type=int, help="training window in rows (default: one daily period found "
                                               "in the data, capped to 32..256; else 64)")
    p.add_argument("--horizon", type=int, default=1)
    p.add_argument("--calendar", action=argparse.BooleanOptionalAction, default=None,
                   help="time-of-day and day-of-week features (default: on for the periods found in the data)")
    p.add_argument("--epochs", type=int, default=60, help="at most; early stopping on the validation part")
    p.add_argument("--patience", type=int, default=6, help="epochs without a better validation loss before stopping")
    p.add_argument("--learning-rate", type=float, default=1e-2,
                   help="Adam's initial rate; halved after 2 epochs without improvement")
    p.add_argument("--lr-schedule", action=argparse.BooleanOptionalAction, default=True,
                   help="halve the learning rate after 2 epochs without a better validation loss")
    p.add_argument("--validation-fraction", type=float, default=0.15,
                   help="rows before the held-back tail used for early stopping and the shrinkage fit")
    p.add_argument("--holdout-fraction", type=float, default=0.15,
                   help="last rows of each series, never trained on: the skill report (0: reuse validation)")
    p.add_argument("--shrinkage", action=argparse.BooleanOptionalAction, default=True,
                   help="scale each step's predicted change by a factor in [0,1] fitted on the validation part")
    p.add_argument("--forecast-guard", type=float, default=None, metavar="MESSAGES",
                   help="half-life of the forecast guard: per stream and horizon step, serve publishes the share "
                        "of the predicted change that held up lately (default: chosen on development streams, "
                        "printed with train's other choices; docs/forecasting.md)")
    p.add_argument("--no-forecast-guard", action="store_true", help="publish the model's forecast as it is")
    p.add_argument("--allow-no-skill", action="store_true",
                   help="exit 0 even if the model does not beat persistence and seasonal-naive at every step")
    p.add_argument("--report-dir", help="write training-report.png (forecasts vs baselines, loss curves; "
                                        "needs the plot extra)")
    p.add_argument("--no-residual", action="store_true",
                   help="forecast levels directly instead of the change from the current value")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("convert", help="Keras model -> quantized TFLite step model (needs TensorFlow)",
                       formatter_class=HELP_FORMAT, description=CONVERT_HELP)
    p.add_argument("model", help="the Keras model (.keras or legacy .h5), e.g. from `statecast train`")
    p.add_argument("--quantize", choices=["float32", "float16", "dynamic", "int8", "int16x8"], default="float32",
                   help="weights and activations: int8 is what the Edge TPU runs and is smallest on a Pi; "
                        "int16x8 (int16 activations, int8 weights) follows the float model closer, CPU only; "
                        "dynamic and float16 quantize weights only")
    p.add_argument("--calibration-csv", action="append", metavar="CSV",
                   help="CSV for int8 calibration and the parity check; repeat it to calibrate int8 on several "
                        "streams (parity runs on the first). Default: the training CSVs recorded in the model")
    p.add_argument("--time-column", default="timestamp", help=TIME_HELP)
    p.add_argument("--value-columns", "--features", dest="features",
                   help="feature names in model input order: value columns first, then calendar features "
                        "(default: recorded by `statecast train`)")
    p.add_argument("--targets", help="comma-separated target names (default: recorded by train, else the "
                                     "first value column)")
    p.add_argument("--horizon", type=int, help="forecast steps (default: from the model)")
    p.add_argument("--name", help="model name in the manifest and in every forecast (default: the --out "
                                  "directory's name)")
    p.add_argument("--static-batch", type=int, help="fixed batch size (the Edge TPU needs static shapes)")
    p.add_argument("--keep-on-parity-failure", action="store_true",
                   help="write the artifact even when the parity check against Keras fails")
    p.add_argument("--window", type=int, help="export a window model of W steps (Bidirectional models whose "
                                               "input length is not fixed)")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's and the converter's own messages")
    p.add_argument("--out", required=True, help="artifact directory to write (model.tflite + manifest.json)")
    p.set_defaults(handler=_cmd_convert)

    p = sub.add_parser("serve", help="run the daemon", formatter_class=HELP_FORMAT)
    p.add_argument("--config", required=True, help="TOML config (systemd/statecast.example.toml documents "
                                                   "every key)")
    p.add_argument("--check-config", action="store_true", help="validate the config and models, then exit")
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("score", help="run the daemon's engine over a CSV", formatter_class=HELP_FORMAT,
                       description="One CSV row = one message of one stream. Writes timestamp,<values>,"
                                   "forecast_1..H,anomaly_score,alert; forecast_k is the prediction made at this "
                                   "row for the value k rows later; anomaly_score is empty until defined. A "
                                   "model with a forecast guard (models/default, train's default) adds `expected` before "
                                   "anomaly_score: the model's own forecast the row was scored against.")
    p.add_argument("--model", required=True, help="step-model artifact directory (from `statecast convert`)")
    p.add_argument("--csv", required=True, help="input CSV")
    p.add_argument("--time-column", default="timestamp", help=TIME_HELP)
    p.add_argument("--value-columns", help="CSV columns holding the model's value features, in the model's "
                                           "order (default: the model's own feature names)")
    p.add_argument("--runtime", default="auto", help="interpreter: auto, ai_edge_litert, tflite_runtime or "
                                                     "tensorflow")
    p.add_argument("--out", required=True, help="output CSV")
    p.add_argument("--plot", metavar="PNG", help="also draw value, forecasts, anomaly score (and alerts) to PNG "
                                                "(needs the plot extra)")
    p.set_defaults(handler=_cmd_score)

    p = sub.add_parser("replay", help="publish a CSV as a live sensor stream", formatter_class=HELP_FORMAT,
                       description="Publishes each row as JSON {\"ts\": epoch seconds, \"value\": v} (one named "
                                   "field per column with several --value-columns). Paced so that a stock "
                                   "mosquitto (max_queued_messages 1000) does not drop what the daemon has not "
                                   "read yet: a rate, and at QoS 1/2 at most --window unacknowledged messages.")
    p.add_argument("--csv", required=True, help="input CSV")
    p.add_argument("--topic", required=True, help="topic to publish on ({stream} is replaced by --stream-id)")
    p.add_argument("--stream-id", default="replay", help="replaces {stream} in --topic")
    p.add_argument("--host", default="127.0.0.1", help="broker host")
    p.add_argument("--port", type=int, default=1883, help="broker port")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE_HZ,
                   help="messages per second; 0: as fast as the broker acknowledges (can outrun a subscriber: "
                        "a stock mosquitto then drops)")
    p.add_argument("--speedup", type=float, default=0.0,
                   help="instead of --rate: the data's own timing, N x faster (0: off)")
    p.add_argument("--qos", type=int, choices=[0, 1, 2], default=1, help="MQTT QoS of each message")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                   help="most QoS 1/2 messages not yet acknowledged by the broker")
    p.add_argument("--limit", type=int, default=0, help="publish only the first N rows (0: all)")
    p.add_argument("--time-column", default="timestamp", help=TIME_HELP)
    p.add_argument("--value-columns", "--fields", dest="value_columns", default="value",
                   help="comma-separated value columns; one column is sent as \"value\", several by name "
                        "(match the stream's `fields` in the config)")
    p.set_defaults(handler=_cmd_replay)

    p = sub.add_parser("watch", help="print what arrives on MQTT topics (like mosquitto_sub -v)",
                       formatter_class=HELP_FORMAT)
    p.add_argument("--topic", action="append", help="topic filter (repeat for several; default: statecast/#)")
    p.add_argument("--host", default="127.0.0.1", help="broker host")
    p.add_argument("--port", type=int, default=1883, help="broker port")
    p.add_argument("--count", type=int, default=0, help="stop after N messages (0: never)")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after S seconds (0: never)")
    p.set_defaults(handler=_cmd_watch)
    _add_bench(sub)
    return parser


# --- `statecast bench` (issue 17): one self-contained block -----------------------------------
def _cmd_bench(args) -> int:
    from statecast.daemon.tools.device_bench import BenchOptions, run_bench
    for line in run_bench(BenchOptions(model=args.model, runtime=args.runtime, kernels=args.kernels,
                                       num_threads=args.num_threads, max_batch=args.max_batch,
                                       streams=args.streams, seconds=args.seconds)):
        print(line, flush=True)
    return 0


def _add_bench(sub) -> None:
    from statecast.daemon.model.backends.kernels import KERNEL_CHOICES
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
    from statecast.daemon.model.artifact import ArtifactError
    from statecast.daemon.model.backends import BackendError
    errors: list[type[BaseException]] = [UserError, ArtifactError, BackendError]
    if "statecast.daemon.tools.series_csv" in sys.modules:       # only the tools read CSVs
        errors.append(sys.modules["statecast.daemon.tools.series_csv"].SeriesError)
    if "statecast.daemon.tools.replay" in sys.modules:
        errors.append(sys.modules["statecast.daemon.tools.replay"].ReplayError)
    if "statecast.daemon.tools.score_plot" in sys.modules:
        errors.append(sys.modules["statecast.daemon.tools.score_plot"].PlotError)
    if "statecast.convert.errors" in sys.modules:
        errors.append(sys.modules["statecast.convert.errors"].ConversionError)
    if "statecast.daemon.config" in sys.modules:
        errors.append(sys.modules["statecast.daemon.config"].ConfigError)
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    from statecast.daemon.service.platform_check import current_userland_problem
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
