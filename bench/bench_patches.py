"""Configuration variants of `statecast serve`, measured end to end against the echo baseline.

    .venv/bin/python bench/bench_patches.py compare [--qos 1] [--variants base,base+nofsync,base+fq2] [--repeats 3]
    .venv/bin/python bench/bench_patches.py serve --config FILE     (the daemon, as bench_profile.py runs it)

A variant is `base` (the daemon as bench_e2e.py configures it) or `echo` (the baseline client),
plus `+option`s that change one key of the daemon's TOML each (CONFIG_VARIANTS) and `@3.1.1` for
MQTT 3.1.1 instead of 5 (`[broker] protocol`; for `echo@3.1.1` the echo client's protocol).
Every variant runs the closed-loop throughput run of bench_e2e.py on a fresh broker, once per
repeat, interleaved with `echo`; ratios are taken within a repeat, then the median.

The hot-path fixes this file used to carry as monkeypatches are in daemon/ now; what remains is
configuration, so nothing here changes the daemon's code.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# "+name" in a variant: DaemonOptions overrides (strings are appended) and the TOML it amounts to.
CONFIG_VARIANTS = {
    "nofsync": ({"extra_state": "journal_fsync = false\n"}, "[state] journal_fsync = false"),
    "nojournal": ({"extra_state": "journal = false\n"}, "[state] journal = false"),
    "fq2": ({"forecast_qos": 2}, "[output] forecast_qos = 2 (exactly-once forecasts)"),
}
PROTOCOLS = ("5", "3.1.1")


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str               # "daemon" or "echo"
    protocol: str
    overrides: dict
    config: str             # what differs from base, in TOML terms


def parse_variant(name: str) -> Variant:
    """'base+nofsync@3.1.1' -> Variant; unknown parts raise ValueError before anything runs."""
    body, _, protocol = name.partition("@")
    head, *options = body.split("+")
    protocol = protocol or "5"
    if head not in ("base", "echo") or protocol not in PROTOCOLS:
        raise ValueError(f"variant {name!r}: expected base|echo[+option...][@3.1.1]")
    unknown = [o for o in options if o not in CONFIG_VARIANTS]
    if unknown or (head == "echo" and options):
        raise ValueError(f"variant {name!r}: options {options} (daemon only; known: {', '.join(CONFIG_VARIANTS)})")
    overrides: dict = {"protocol": protocol}
    for option in options:
        for key, value in CONFIG_VARIANTS[option][0].items():
            overrides[key] = overrides.get(key, "") + value if isinstance(value, str) else value
    described = [CONFIG_VARIANTS[o][1] for o in options]
    if protocol != "5":
        described.append(f'[broker] protocol = "{protocol}"' if head == "base" else f"echo client over MQTT {protocol}")
    return Variant(name, "echo" if head == "echo" else "daemon", protocol, overrides,
                   "; ".join(described) or ("the echo baseline (MQTT 5)" if head == "echo" else "bench_e2e.py's daemon"))


def reference_echo(variant: Variant, names) -> str:
    """The echo a daemon variant is compared with: the same protocol's, if that was measured."""
    same = "echo" if variant.protocol == "5" else f"echo@{variant.protocol}"
    return same if variant.kind == "daemon" and same in names else "echo"


# --- comparison ------------------------------------------------------------------------------
def compare(names: list[str], repeats: int, qos: int, streams: int, window_seconds: float) -> dict:
    import bench_e2e
    from bench_common import machine, median
    from bench_mqtt import DaemonOptions, with_retries

    variants = {v.name: v for v in map(parse_variant, dict.fromkeys(["echo"] + names))}
    runs = {name: [] for name in variants}
    for repeat in range(repeats):
        order = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in order:
            variant = variants[name]
            options = DaemonOptions(model=bench_e2e.DEFAULT_MODEL, **variant.overrides)
            result = with_retries(bench_e2e.throughput_run, variant.kind, qos, streams, 2.0, window_seconds, options)
            runs[name].append(result)
            print(f"bench_patches: repeat {repeat} {name}: {result['messages_per_second']:,.0f} msg/s, "
                  f"{result['sut_cpu_us_per_message']:.1f} us CPU/msg, lost {result['lost']}", file=sys.stderr)
    summary = {}
    for name, results in runs.items():
        reference = reference_echo(variants[name], runs)
        echo = runs[reference]
        batches = [r["daemon_stats"].get("mean_batch_size") or 0 for r in results if "daemon_stats" in r]
        summary[name] = {
            "config": variants[name].config, "reference_echo": reference,
            "msgs_per_s": median([r["messages_per_second"] for r in results]),
            "cpu_us_per_msg": median([r["sut_cpu_us_per_message"] for r in results]),
            "broker_cpu_us_per_msg": median([r["broker_cpu_us_per_message"] for r in results]),
            "vs_echo": median([r["messages_per_second"] / e["messages_per_second"] for r, e in zip(results, echo)]),
            "echo_cpu_over_cpu": median([e["sut_cpu_us_per_message"] / r["sut_cpu_us_per_message"]
                                         for r, e in zip(results, echo)]),
            "vs_base": (median([r["messages_per_second"] / b["messages_per_second"]
                                for r, b in zip(results, runs["base"])]) if "base" in runs else None),
            "mean_batch": median(batches) if batches else None,
            "lost": sum(r["lost"] for r in results),
        }
    return {"machine": machine(), "qos": qos, "streams": streams, "repeats": repeats,
            "window_seconds": window_seconds, "summary": summary, "runs": runs}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "serve":              # bench_profile.py's way in; no code patches any more
        parser = argparse.ArgumentParser()
        parser.add_argument("--patches", default="base", choices=["base"])
        args, rest = parser.parse_known_args(argv[1:])
        from statecast.daemon.cli import main as cli_main
        return cli_main(["serve"] + rest)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["compare"])
    parser.add_argument("--variants", default="base,base@3.1.1,echo@3.1.1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--qos", type=int, default=0)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--window-seconds", type=float, default=4.0)
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    result = compare([n for n in args.variants.split(",") if n], args.repeats, args.qos, args.streams, args.window_seconds)
    from bench_common import print_summary, write_result
    write_result(result, args.out)
    print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
