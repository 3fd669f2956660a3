"""Shared helpers of the benchmark suite: machine description, interleaved timing, /proc readers.

The machine these numbers come from is usually shared and noisy, so every comparison is run
*interleaved*: each repeat times every alternative once, in a shuffled order, and results are
medians over repeats (ratios are taken within a repeat, then the median of the ratios).
"""
from __future__ import annotations

import hashlib
import json

import importlib.metadata
import os
import platform
import random
import subprocess
import sys
import time
from typing import Callable

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSV = os.path.join(ROOT, "data", "nab", "data", "realKnownCause", "machine_temperature_system_failure.csv")
MODELS = os.path.join(ROOT, "models")
CACHE = os.environ.get("STATECAST_BENCH_CACHE", os.path.join("/tmp", "statecast-bench"))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GRAPH_BUILDERS = tuple(os.path.join(ROOT, "convert", name) for name in ("step_graph.py", "window_graph.py"))


def files_digest(paths) -> str:
    """12 hex digits of the sha256 over the files' bytes: a cache key that changes with any of them."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:12]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mosquitto_version() -> str:
    from statecast.daemon.tools.local_broker import mosquitto_binary
    binary = mosquitto_binary()
    if binary is None:
        return "not installed"
    out = subprocess.run([binary, "-h"], capture_output=True, text=True).stdout.splitlines()
    return out[0].replace("mosquitto version ", "") if out else "unknown"


def machine() -> dict:
    """What absolute numbers must be read against (versions read from metadata: no TF import)."""
    return {
        "platform": platform.platform(), "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0], "numpy": np.__version__,
        "ai_edge_litert": _version("ai-edge-litert"), "tensorflow": _version("tensorflow") or _version("tensorflow-cpu"),
        "keras": _version("keras"), "paho_mqtt": _version("paho-mqtt"), "mosquitto": mosquitto_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def interleaved(alternatives: dict[str, Callable[[], float]], repeats: int, seed: int = 0) -> dict[str, list[float]]:
    """Run every alternative once per repeat, in a shuffled order; each call returns its own
    measurement (e.g. seconds per unit). Returns name -> one measurement per repeat."""
    rng = random.Random(seed)
    names = list(alternatives)
    results: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        rng.shuffle(names)
        for name in names:
            results[name].append(alternatives[name]())
    return results


def median(values) -> float:
    return float(np.median(np.asarray(values, np.float64)))


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over repeats of numerator[i] / denominator[i] (both measured in the same repeat)."""
    return median([n / d for n, d in zip(numerator, denominator)])


def timed_block(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call over `calls` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def calls_for(fn: Callable[[], object], budget_seconds: float, max_calls: int = 1_000_000) -> int:
    """How many calls fill about `budget_seconds` (estimated from a short trial; also warms up)."""
    calls, elapsed = 1, 0.0
    while elapsed < budget_seconds / 10 and calls < max_calls:
        calls *= 2
        elapsed = timed_block(fn, calls) * calls
    per_call = max(elapsed / calls, 1e-9)
    return int(min(max_calls, max(3, budget_seconds / per_call)))


# --- /proc ------------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, ... of a live process in kB."""
    fields = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key.startswith("Vm") or key.startswith("Rss"):
                fields[key] = int(rest.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads (not its children), in seconds."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS        # utime, stime


def mapped_files(pid: int) -> set[str]:
    files = set()
    with open(f"/proc/{pid}/maps") as handle:
        for line in handle:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                files.add(parts[5].strip())
    return files


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def print_summary(result: dict) -> None:
    """One line per row of result["summary"] on stderr, floats rounded (stdout may carry the JSON)."""
    for key, row in result["summary"].items():
        print(key, {k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}, file=sys.stderr)


def write_result(result: dict, out: str) -> None:
    """A benchmark's JSON result to stdout ("-") or to a file."""
    text = json.dumps(result, indent=1)
    if out == "-":
        print(text)
    else:
        with open(out, "w") as handle:
            handle.write(text)
