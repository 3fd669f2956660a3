"""Memory and start-up of `statecast serve`: resident set size at 1,000, 10,000 and 100,000 live
streams, time to READY=1 (cold, and restarting from a checkpoint of those streams), the final
checkpoint's size and time, and a check that the serve process never loads TensorFlow.

    .venv/bin/python bench/bench_memory.py [--streams 1000,10000,100000] [--out memory.json]

Per size: a fresh broker and daemon (max_streams = N, anomaly scoring on, as by default), two
readings published to every stream (the second creates the stream's anomaly statistics), RSS
read from /proc/<pid>/status once the load is over and the daemon at rest. READY=1 is timed on a NOTIFY_SOCKET the
benchmark binds, as systemd would. Then SIGTERM (final checkpoint, peak RSS sampled meanwhile)
and a second daemon on the same state directory: READY after restoring N streams.

A stream's anomaly statistics (one float64 array with the running sums and block sums of its
reference window, 544 bytes with models/default, and 576 bytes of int16 daily-profile levels) are
allocated with its second message, but hold long_window messages' worth of values only later; `probe`
builds the serve process's own objects in a TensorFlow-free subprocess, fills every stream's
statistics as 2,000 messages would, and reports that steady-state RSS and what saving (encode +
fsync'd write) and restoring a checkpoint cost at that point (per-stream statistics are stacked
.npz arrays: a checkpoint of models/default's streams is ~1.4 kB per stream).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import MODELS, cpu_seconds, machine, mapped_files, proc_status, write_result  # noqa: E402
from bench_mqtt import DaemonOptions, DaemonSUT, Load, with_retries, write_daemon_config  # noqa: E402

from statecast.daemon.tools.local_broker import LocalMosquitto  # noqa: E402

# STATECAST_BENCH_MODEL measures another artifact (e.g. models/default); the probe subprocess inherits it
MODEL = os.path.abspath(os.environ.get("STATECAST_BENCH_MODEL", os.path.join(MODELS, "machine_temperature-float32")))
MESSAGES_PER_STREAM = 2
CHECKPOINT_MAX_STREAMS = 100_000    # final checkpoint + restart measured up to this many streams
VARIANT_STREAMS = 10_000
# What anomaly scoring costs, what the largest batch bucket's interpreter arena costs (4x smaller at
# 256), and what the daily profile (288 int16 levels per stream) costs at the shipped max_batch
VARIANTS = {"anomaly disabled": {"anomaly": False}, "max_batch 256": {"max_batch": 256},
            "max_batch 256, daily profile off": {"max_batch": 256, "anomaly_daily_profile": False}}
# The shipped configuration's RSS moves by a few MB from run to run (allocator and scheduling):
# it is measured this many times (the first with the checkpoint and restart), median reported.
SHIPPED_VARIANT, SHIPPED_RUNS = "max_batch 256", 3
TF_MARKERS = ("/tensorflow/", "libtensorflow", "/keras/", "/tf_keras/")


def tensorflow_mapped(pid: int) -> list[str]:
    return sorted(f for f in mapped_files(pid) if any(marker in f for marker in TF_MARKERS))


def python_modules_probe(config_path: str) -> dict:
    """Build the daemon exactly as serve does (--check-config: config, models, engines) and list
    the heavy modules it imported."""
    code = ("import json, sys\nfrom statecast.daemon.cli import main\n"
            f"rc = main(['serve', '--config', {config_path!r}, '--check-config'])\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
            "print(json.dumps({'rc': rc, 'heavy_modules': heavy}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


class PeakSampler:
    """Samples VmRSS every 20 ms until the process exits (the final checkpoint's peak)."""

    def __init__(self, pid: int):
        self.pid, self.peak_kb = pid, 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.peak_kb = max(self.peak_kb, proc_status(self.pid).get("VmRSS", 0))
            except (OSError, ValueError):
                return
            time.sleep(0.02)


def measure(streams: int, restart_timeout_seconds: float, checkpoint: bool = True, label: str = "default",
            **overrides) -> dict:
    """RSS with `streams` live streams; with `checkpoint`, also the final checkpoint (SIGTERM) and a
    restart from it; without, the daemon is killed."""
    broker = LocalMosquitto().start()
    settings = {"max_batch": 1024, **overrides}
    options = DaemonOptions(model=MODEL, qos=0, max_streams=streams, checkpoint_interval_seconds=3600,
                            stats_interval_seconds=0, **settings)
    daemon = DaemonSUT(broker.port, options)
    result = {"streams": streams, "variant": label, "max_batch": settings["max_batch"]}
    try:
        daemon.start()
        result["ready_cold_seconds"] = daemon.startup_seconds
        time.sleep(0.5)
        result["rss_ready_kb"] = proc_status(daemon.pid)["VmRSS"]
        result["tensorflow_mapped"] = tensorflow_mapped(daemon.pid)
        load = Load(broker.port, "statecast/forecast/#", 0, streams, 2, window=4000)
        started = time.monotonic()
        load.go()
        target = MESSAGES_PER_STREAM * streams
        while load.total_sent() < target and time.monotonic() - started < 300:
            daemon.check_alive()
            time.sleep(0.05)
        load.finish(drain_seconds=30)
        result["fill_seconds"] = time.monotonic() - started
        result["forecasts_received"] = int(load.received.value)
        result["settle_seconds"] = wait_until_idle(daemon)
        daemon.check_alive()
        status = proc_status(daemon.pid)
        result["rss_live_kb"], result["hwm_live_kb"] = status["VmRSS"], status["VmHWM"]
        result["kb_per_stream"] = (result["rss_live_kb"] - result["rss_ready_kb"]) / streams
        if checkpoint:
            result.update(_checkpoint_and_restart(daemon, restart_timeout_seconds))
    finally:
        daemon.kill()
        daemon.cleanup()
        broker.cleanup()
    return result


IDLE_CPU_SHARE = 0.05          # the daemon is at rest below this share of one core over a second
SETTLE_TIMEOUT_SECONDS = 120.0


def wait_until_idle(daemon: DaemonSUT) -> float:
    """Seconds until the daemon has worked off what it received (under IDLE_CPU_SHARE of a core
    for a whole second, at least one second after the load): the RSS is then that of N streams
    at rest. Reading it while a backlog is queued measured up to 118 MB: when this shared VM
    stalls the answers for over a second, the load counts them as lost and stops waiting."""
    started = time.monotonic()
    before = cpu_seconds(daemon.pid)
    while time.monotonic() - started < SETTLE_TIMEOUT_SECONDS:
        time.sleep(1.0)
        daemon.check_alive()
        now = cpu_seconds(daemon.pid)
        if now - before < IDLE_CPU_SHARE:
            return time.monotonic() - started
        before = now
    raise RuntimeError(f"the daemon did not come to rest within {SETTLE_TIMEOUT_SECONDS:.0f} s")


def _checkpoint_and_restart(daemon: DaemonSUT, restart_timeout_seconds: float) -> dict:
    from bench_mqtt import NotifyListener
    result = {}
    sampler = PeakSampler(daemon.pid)
    stop_started = time.monotonic()
    daemon.stop(timeout_seconds=600)
    result["stop_seconds"] = time.monotonic() - stop_started             # mostly the final checkpoint
    result["rss_peak_during_final_checkpoint_kb"] = sampler.peak_kb
    path = os.path.join(daemon.directory, "state", "bench.ckpt")
    result["checkpoint_bytes"] = os.path.getsize(path) if os.path.exists(path) else None
    # A second daemon on the same state directory: READY once the checkpoint is restored.
    daemon.notify = NotifyListener(daemon.directory + "/restart")
    try:
        daemon.start(timeout_seconds=restart_timeout_seconds)
        result["ready_restore_seconds"] = daemon.startup_seconds
        result["rss_after_restore_kb"] = proc_status(daemon.pid)["VmRSS"]
    except RuntimeError as error:
        result["ready_restore_seconds"] = None
        result["restore_error"] = str(error)
    return result


def checkpoint_stall(streams: int = 10_000, rate_hz: float = 500.0, interval_seconds: float = 20.0) -> dict:
    """What a periodic checkpoint does to a running daemon: RSS before and after the first one, and
    publish -> forecast latency of a paced stream of readings while it is written (the engine
    loop takes the snapshot; a thread writes the files)."""
    import numpy as np
    broker = LocalMosquitto().start()
    options = DaemonOptions(model=MODEL, qos=0, max_batch=1024, max_streams=streams,
                            checkpoint_interval_seconds=interval_seconds, stats_interval_seconds=0)
    daemon = DaemonSUT(broker.port, options)
    checkpoint = os.path.join(daemon.directory, "state", "bench.ckpt")
    result = {"streams": streams, "rate_hz": rate_hz, "checkpoint_interval_seconds": interval_seconds}
    try:
        daemon.start()
        ready = time.monotonic()
        fill = Load(broker.port, "statecast/forecast/#", 0, streams, 2, window=4000)
        fill.go()
        while fill.total_sent() < MESSAGES_PER_STREAM * streams and time.monotonic() - ready < 300:
            daemon.check_alive()
            time.sleep(0.05)
        fill.finish(drain_seconds=30)
        result["checkpoint_written_during_fill"] = os.path.exists(checkpoint)
        result["rss_before_kb"] = proc_status(daemon.pid)["VmRSS"]
        paced = Load(broker.port, "statecast/forecast/#", 0, streams, 1, rate_hz=rate_hz)
        started_wall = time.time()
        paced.go()
        deadline = time.monotonic() + interval_seconds + 120
        while not os.path.exists(checkpoint) and time.monotonic() < deadline:
            daemon.check_alive()
            time.sleep(0.05)
        time.sleep(3.0)
        stamps, latencies = paced.finish(drain_seconds=30)
        daemon.check_alive()
        result["rss_after_kb"] = proc_status(daemon.pid)["VmRSS"]
        ms = latencies[stamps >= started_wall] * 1e3
        result.update({"samples": int(ms.size), "p50_ms": float(np.percentile(ms, 50)),
                       "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
                       "checkpoint_bytes": os.path.getsize(checkpoint) if os.path.exists(checkpoint) else None})
    finally:
        daemon.kill()
        daemon.cleanup()
        broker.cleanup()
    return result


# --- steady-state probe (runs in a subprocess, TensorFlow-free like serve) ------------------------
def probe(streams: int, checkpoint: bool) -> dict:
    import shutil
    import tempfile

    import numpy as np

    from statecast.daemon.anomaly import BLOCK_SUM, BLOCK_SUM_SQ, StreamAnomaly
    from statecast.daemon.config import load_config
    from statecast.daemon.messages import Message
    from statecast.daemon.service.serve import Daemon
    from statecast.daemon.state import checkpoint as ckpt

    directory = tempfile.mkdtemp(prefix="statecast-probe-")
    config = load_config(write_daemon_config(directory, 1883, DaemonOptions(
        model=MODEL, max_batch=1024, max_streams=streams)))
    daemon = Daemon(config)
    engine = daemon.pipelines["bench"].engine
    out = {"streams": streams, "rss_empty_kb": proc_status(os.getpid())["VmRSS"]}
    for step in range(MESSAGES_PER_STREAM):
        for start in range(0, streams, 1000):
            engine.process([Message(f"s{i:06d}", (80.0 + step,), 1e9 + step, 0.0)
                            for i in range(start, min(start + 1000, streams))], now=1e9)
    out["rss_fresh_kb"] = proc_status(os.getpid())["VmRSS"]
    rng = np.random.default_rng(0)
    for info in engine.table.streams.values():           # what long_window messages leave behind
        anomaly = info.anomaly
        anomaly.blocks[:] = rng.random(anomaly.blocks.shape) * 3.0     # sums over blocks of ~63 scores
        anomaly.stats[BLOCK_SUM], anomaly.stats[BLOCK_SUM_SQ] = float(rng.random()), float(rng.random()) * 0.1
        anomaly.count = anomaly.settings.long_window + anomaly.settings.min_steps
        anomaly._sum_window()
    out["rss_steady_kb"] = proc_status(os.getpid())["VmRSS"]
    sample = next(iter(engine.table.streams.values())).anomaly
    out["anomaly_array_bytes_per_stream"] = int(sample.stats.itemsize * len(sample.stats))
    if checkpoint:                                        # the daemon's own save (encode + fsync'd write)
        sha, path = engine.model.manifest.sha256, os.path.join(directory, "probe.ckpt")
        started = time.perf_counter()
        ckpt.save(path, engine.table, sha)
        out["checkpoint_save_seconds"] = time.perf_counter() - started
        out["checkpoint_bytes"] = os.path.getsize(path)
        out["hwm_after_checkpoint_kb"] = proc_status(os.getpid())["VmHWM"]
        restored = type(engine.table)(engine.table.state_shapes, streams)
        settings = sample.settings
        started = time.perf_counter()
        ckpt.restore(path, restored, sha, lambda data: StreamAnomaly.from_state(settings, data))
        out["checkpoint_restore_seconds"] = time.perf_counter() - started
    shutil.rmtree(directory, ignore_errors=True)           # checkpoints of up to ~200 MB
    return out


def run_probe(streams: int, checkpoint: bool) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "probe", "--streams", str(streams)]
                         + (["--checkpoint"] if checkpoint else []), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(streams_list: list[int], probe_list: list[int], restart_timeout_seconds: float) -> dict:
    result = {"machine": machine(), "model": os.path.basename(MODEL), "messages_per_stream": MESSAGES_PER_STREAM,
              "serve": [], "steady_state_probe": []}
    for streams in streams_list:
        row = with_retries(measure, streams, restart_timeout_seconds, checkpoint=streams <= CHECKPOINT_MAX_STREAMS)
        result["serve"].append(row)
        print(f"bench_memory: {streams} streams: RSS {row['rss_live_kb'] / 1024:.1f} MB, READY {row['ready_cold_seconds']:.2f} s"
              f" cold / {row.get('ready_restore_seconds')} s restored, stop {row.get('stop_seconds')} s", file=sys.stderr)
    for label, overrides in VARIANTS.items():             # at 10,000 streams
        row = with_retries(measure, VARIANT_STREAMS, restart_timeout_seconds, checkpoint=True, label=label, **overrides)
        if label == SHIPPED_VARIANT:
            row["rss_live_kb_runs"] = [row["rss_live_kb"]] + [
                with_retries(measure, VARIANT_STREAMS, restart_timeout_seconds, checkpoint=False, label=label,
                             **overrides)["rss_live_kb"] for _ in range(SHIPPED_RUNS - 1)]
        result["serve"].append(row)
        print(f"bench_memory: {VARIANT_STREAMS} streams, {label}: RSS {row['rss_live_kb'] / 1024:.1f} MB", file=sys.stderr)
    result["checkpoint_stall"] = with_retries(checkpoint_stall)
    print(f"bench_memory: checkpoint stall: {result['checkpoint_stall']}", file=sys.stderr)
    for streams in probe_list:
        row = run_probe(streams, checkpoint=streams <= CHECKPOINT_MAX_STREAMS)
        result["steady_state_probe"].append(row)
        print(f"bench_memory: probe {streams}: {row}", file=sys.stderr)
    with tempfile_dir() as directory:
        config = write_daemon_config(directory, 1883, DaemonOptions(model=MODEL))
        result["python_modules_probe"] = python_modules_probe(config)
    return result


class tempfile_dir:
    def __enter__(self):
        import tempfile
        self.path = tempfile.mkdtemp(prefix="statecast-bench-")
        return self.path

    def __exit__(self, *exc):
        import shutil
        shutil.rmtree(self.path, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="run", choices=["run", "probe"])
    parser.add_argument("--streams", default="1000,10000,100000")
    parser.add_argument("--probe-streams", default="1000,10000")
    parser.add_argument("--checkpoint", action="store_true")
    parser.add_argument("--restart-timeout-seconds", type=float, default=120.0)
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    if args.command == "probe":
        print(json.dumps(probe(int(args.streams), args.checkpoint)))
        return 0
    result = run([int(s) for s in args.streams.split(",")], [int(s) for s in args.probe_streams.split(",") if s],
                 args.restart_timeout_seconds)
    write_result(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
