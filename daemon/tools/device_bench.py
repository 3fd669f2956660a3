"""`statecast bench`: what one board can carry with one model, measured on the board itself.

Reports which runtime, delegate and kernels ran; the model step's latency at batch 1 and at the
max batch; streams per second through the engine (admission, scaling, step, anomaly score, one
message per stream per round, as the daemon runs it, without MQTT); and the resident memory the
engine's stream table takes per 1,000 streams. No TensorFlow.
"""
from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np

from statecast.daemon.engine.step_engine import Engine, EngineSettings
from statecast.daemon.messages import Message
from statecast.daemon.service.runtime_setup import anomaly_factory_for, open_model

EMULATION_WARNING = ("EMULATED (qemu-user): these timings measure the emulator, not a Pi; "
                     "run `statecast bench` on the board itself to size a deployment")


@dataclass(frozen=True)
class BenchOptions:
    model: str
    runtime: str = "auto"
    kernels: str = "auto"
    num_threads: int = 1
    max_batch: int = 256
    streams: int = 10_000
    seconds: float = 2.0            # time budget per latency figure


def emulated() -> bool:
    """True under qemu-user: the Pi job says so (STATECAST_EMULATED), or an aarch64 process
    sees an x86 host's /proc/cpuinfo."""
    if os.environ.get("STATECAST_EMULATED"):
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            cpuinfo = handle.read()
    except OSError:
        return False
    return platform.machine() == "aarch64" and ("GenuineIntel" in cpuinfo or "AuthenticAMD" in cpuinfo)


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc/self/statm: pages)."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def step_latency_seconds(model, batch: int, budget_seconds: float) -> float:
    """Median wall time of one model step at `batch` streams (repeats until the budget is spent,
    at least 5 after a warm-up step)."""
    x = np.zeros((batch, model.n_features), np.float32)              # (batch, features)
    states = model.zero_states(batch)                                # [(batch, units), ...]
    model.step(x, states)                                            # warm-up: allocates the bucket
    times, deadline = [], time.perf_counter() + budget_seconds
    while len(times) < 5 or time.perf_counter() < deadline:
        started = time.perf_counter()
        model.step(x, states)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def engine_figures(model, streams: int, budget_seconds: float) -> tuple[float, float]:
    """(streams stepped per second through the engine, RSS bytes per 1,000 streams).

    One message per stream per round, rounds of max_batch messages; RSS is measured before any
    stream exists and after all `streams` have state, so it counts the stream table, the anomaly
    state and the allocator's overhead, not the model."""
    width = len(model.manifest.value_features)
    ids = [f"s{i}" for i in range(streams)]
    gc.collect()
    before = rss_bytes()                    # before the engine: its table may be sized up front
    engine = Engine(model, EngineSettings(max_streams=streams), anomaly_factory_for(model))
    step, processed, started = 0, 0, time.perf_counter()
    while step < 2 or time.perf_counter() - started < budget_seconds:
        ts = 1_700_000_000.0 + 60.0 * step
        for start in range(0, streams, model.max_batch):
            batch = [Message(sid, (20.0 + (i % 7),) * width, ts, ts) for i, sid in enumerate(ids[start:start + model.max_batch])]
            processed += len(engine.process(batch, now=ts))
        step += 1
        if step == 1:
            gc.collect()
            per_thousand = (rss_bytes() - before) * 1000.0 / streams
            processed, started = 0, time.perf_counter()     # the first round paid for admission
    return processed / (time.perf_counter() - started), per_thousand


def run_bench(options: BenchOptions) -> list[str]:
    model = open_model(options.model, options.runtime, options.num_threads, max_batch=options.max_batch,
                       kernels=options.kernels)
    ops = model.loaded_ops()
    lines = [EMULATION_WARNING] if emulated() else []
    lines += [f"platform: {platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}",
              f"model: {model.manifest.name} ({model.manifest.quantization}, {model.manifest.raw.get('cell', '?')})",
              f"runtime: {model.backend.name}; kernels: {model.kernels}; "
              f"delegate nodes: {ops.count('DELEGATE')} of {len(ops)} "
              f"({'XNNPACK or a configured delegate took part of the graph' if 'DELEGATE' in ops else 'builtin kernels only'})"]
    for batch in (1, options.max_batch):
        seconds = step_latency_seconds(model, batch, options.seconds)
        lines.append(f"step latency at batch {batch}: {seconds * 1e3:.3f} ms ({seconds * 1e6 / batch:.1f} us per stream)")
    rate, per_thousand = engine_figures(model, options.streams, options.seconds)
    lines.append(f"engine: {rate:,.0f} stream-steps/s with {options.streams:,} streams, max_batch {options.max_batch}")
    lines.append(f"RSS per 1,000 streams: {per_thousand / 1e6:.2f} MB (engine table with {options.streams:,} streams)")
    return lines
