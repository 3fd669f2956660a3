"""Profile the daemon under end-to-end load with py-spy, and summarise where its CPU goes.

    .venv/bin/python bench/bench_profile.py [--qos 0] [--forecast-qos 2] [--streams 1000] [--seconds 8] [--gil]

Runs one closed-loop throughput run (bench_e2e.throughput_run) and records the serve process with
`py-spy record --nonblocking` during the steady window; prints self time and inclusive time per
function (top 30) and the share of samples under a few daemon phases. `--gil` samples only the
thread holding the GIL (what serialises the network thread and the engine loop).
"""
from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_e2e  # noqa: E402

PY_SPY = os.path.join(os.path.dirname(sys.executable), "py-spy")
# Phases: a sample counts under the first marker found in its stack (outermost first).
PHASES = {
    "routing (topic match, payload decode)": "Router.route (",
    "queue put (network thread)": "Queue.put_nowait",
    "forecast JSON (forecast_message)": "forecast_message (",
    "paho publish (called by the engine loop)": "MqttLink.publish (",
    "engine.process (admit, anomaly, step, scaling)": "Engine.process (",
    "drain loop (queue get / sleep)": "Daemon._drain (",
    "paho network thread (read, parse, write, select)": "Client.loop_forever (",
}


def record(pid: int, seconds: float, out: str, gil: bool) -> None:
    command = [PY_SPY, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250",
               "--format", "raw", "--nonblocking", "--threads", "-o", out]
    if gil:
        command.append("--gil")
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(path: str, top: int = 30) -> str:
    self_time, inclusive, phases = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    with open(path) as handle:
        for line in handle:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            count = int(count)
            frames = stack.split(";")
            total += count
            self_time[_short(frames[-1])] += count
            for name in {_short(f) for f in frames}:
                inclusive[name] += count
            for phase, marker in PHASES.items():
                if any(marker in f for f in frames):
                    phases[phase] += count
                    break
            else:
                phases["other"] += count
    lines = [f"{total} samples", "", "phase share (first matching marker):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in phases.most_common()]
    lines += ["", f"self time, top {top}:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in self_time.most_common(top)]
    lines += ["", f"inclusive time, top {top}:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """'func (path/to/module.py:123)' -> 'func (module.py:123)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({os.path.basename(where.rstrip(')'))})" if where else name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qos", type=int, default=0)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--gil", action="store_true")
    parser.add_argument("--raw-out", default=None)
    parser.add_argument("--forecast-qos", type=int, default=None, help="[output] forecast_qos (default: --qos)")
    args = parser.parse_args(argv)
    out = args.raw_out or tempfile.mktemp(prefix="statecast-pyspy-", suffix=".txt")
    from bench_mqtt import DaemonOptions
    options = DaemonOptions(model=bench_e2e.DEFAULT_MODEL, forecast_qos=args.forecast_qos)
    result = bench_e2e.throughput_run("daemon", args.qos, args.streams, 2.0, args.seconds, options,
                                      profile=lambda pid, seconds: record(pid, seconds, out, args.gil))
    print(f"{result['messages_per_second']:,.0f} msg/s under py-spy, {result['sut_cpu_us_per_message']:.1f} us CPU/msg")
    print(summarise(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
