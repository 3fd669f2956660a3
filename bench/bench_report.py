"""docs/benchmarks.md and docs/bench/*.png from the JSON results of bench_all.py."""
from __future__ import annotations

import json
import os
import re

import numpy as np

from bench_common import fmt

REPRODUCE = ".venv/bin/python bench/bench_all.py --with-patches"
STEP_ROWS = [
    ("step batch 1024", "step model, batch 1,024"),
    ("batched, 1,000 streams, max_batch 1024", "**batched, 1,000 streams** (gather + 1 invoke + scatter)"),
    ("batched, 1,000 streams, max_batch 256", "batched, 1,000 streams, max_batch 256 (4 invokes)"),
    ("step batch 64", "step model, batch 64"),
    ("step batch 1", "step model, batch 1"),
    ("one invoke per message (1,000 streams)", "**one invoke per message** (1,000 streams, gather + invoke + scatter)"),
    ("window TFLite (64 steps) per message", "**window TFLite**, last 64 steps re-run per message"),
]
E2E_TARGET, BATCH_TARGET, WINDOW_TARGET, P99_TARGET_MS, RSS_TARGET_MB = 0.8, 10.0, 20.0, 5.0, 80.0


def _load(results: str, name: str) -> dict | None:
    path = os.path.join(results, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def _verdict(ok: bool) -> str:
    return "**pass**" if ok else "**FAIL**"


def _mb(kb) -> str:
    return "n/a" if kb is None else f"{kb / 1024:,.1f}"


# --- plots ---------------------------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_step(step: dict, path: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    modes = list(step["modes"])
    fastest = step["modes"][modes[0]]["fastest_keras"]
    rows = [key for key, _ in STEP_ROWS] + [fastest, "Keras model.predict"]
    labels = [label.replace("**", "") for _, label in STEP_ROWS] + [f"{fastest} (fastest Keras)", "Keras model.predict"]
    y = np.arange(len(rows))
    height = 0.8 / len(modes)
    for k, mode in enumerate(modes):
        values = [step["modes"][mode]["median_us"].get(r, np.nan) for r in rows]
        ax.barh(y + k * height, values, height, label=mode)
    ax.set_xscale("log")
    ax.set_yticks(y + height * (len(modes) - 1) / 2, [label[:60] for label in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("µs per stream-step (per message), median; log scale")
    ax.set_title("Step cost: 2x64 LSTM, one stream-step")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_throughput(e2e: dict, patches: dict | None, path: str) -> None:
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 5), dpi=100)
    keys = list(e2e["summary"])
    x = np.arange(len(keys))
    rows = [e2e["summary"][k] for k in keys]
    labels = [f"QoS {r['qos']}\n{r['streams']:,} streams" for r in rows]
    left.bar(x - 0.2, [r["echo_msgs_per_s"] for r in rows], 0.4, label="echo baseline")
    left.bar(x + 0.2, [r["daemon_msgs_per_s"] for r in rows], 0.4, label="statecast serve")
    left.set_xticks(x, labels, fontsize=8)
    left.set_ylabel("messages/s (median)")
    left.set_title("Sustained throughput, same run")
    left.legend(fontsize=8)
    right.bar(x - 0.2, [r["echo_cpu_us_per_msg"] for r in rows], 0.4, label="echo baseline")
    right.bar(x + 0.2, [r["daemon_cpu_us_per_msg"] for r in rows], 0.4, label="statecast serve")
    if patches:
        name = "drain+route+fmt+json" if "drain+route+fmt+json" in patches["summary"] else "all"
        fixed = patches["summary"].get(name, {}).get("cpu_us_per_msg")
        if fixed:
            right.axhline(fixed, color="green", linestyle="--", linewidth=1,
                          label=f"serve + fixes 1-4 (QoS {patches['qos']}, {patches['streams']:,} streams)")
    right.set_xticks(x, labels, fontsize=8)
    right.set_ylabel("CPU µs per message in the process under test")
    right.set_title("CPU per message")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(latency: dict, path: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    rates = [r for r in latency["daemon"] if r.isdigit() and latency["daemon"][r].get("samples")]
    x = np.arange(len(rates))
    series = [(k, c) for k, c in (("echo", "tab:blue"), ("daemon", "tab:orange"), ("daemon_nodelay", "tab:green"))
              if k in latency]
    width = 0.8 / len(series)
    for k, (kind, color) in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * width
        figures = [latency[kind].get(r, {}) for r in rates]
        figures = [f if f.get("samples") else {"p50_ms": np.nan, "p99_ms": np.nan, "max_ms": np.nan} for f in figures]
        label = {"daemon": "serve", "daemon_nodelay": "serve + TCP_NODELAY", "echo": "echo"}[kind]
        ax.bar(x + offset, [f["p50_ms"] for f in figures], width * 0.9, color=color, alpha=0.45, label=f"{label} p50")
        ax.bar(x + offset, [f["p99_ms"] - f["p50_ms"] for f in figures], width * 0.9, bottom=[f["p50_ms"] for f in figures],
               color=color, alpha=0.9, label=f"{label} p99")
        ax.scatter(x + offset, [f["max_ms"] for f in figures], color=color, marker="v", label=f"{label} max")
    ax.axhline(P99_TARGET_MS, color="red", linestyle="--", linewidth=1, label="target p99 5 ms")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.1)
    ax.set_xticks(x, [f"{int(r):,} msg/s" for r in rates])
    ax.set_ylabel("publish -> output received, ms (log)")
    ax.set_title("Latency at fixed rates, 1,000 streams, QoS 0")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_memory(memory: dict, path: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    default = [r for r in memory["serve"] if r["variant"] == "default"]
    ax.plot([r["streams"] for r in default], [r["rss_live_kb"] / 1024 for r in default], "o-",
            label="statecast serve (anomaly on, default long_window 2000)")
    for r in memory["serve"]:
        if r["variant"] != "default":
            ax.plot([r["streams"]], [r["rss_live_kb"] / 1024], "s", label=f"serve, {r['variant']}")
    peaks = [r for r in default if r.get("rss_peak_during_final_checkpoint_kb")]
    ax.plot([r["streams"] for r in peaks], [r["rss_peak_during_final_checkpoint_kb"] / 1024 for r in peaks], "x--",
            label="peak while writing the checkpoint")
    ax.axhline(RSS_TARGET_MB, color="red", linestyle="--", linewidth=1, label="target 80 MB at 10,000 streams")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("live streams")
    ax.set_ylabel("resident set size, MB (log)")
    ax.set_title("Memory of the serve process")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- markdown --------------------------------------------------------------------------------
def machine_section(machine: dict, durations: dict) -> list[str]:
    m = machine
    lines = ["## Machine", "",
             "| | |", "|---|---|",
             f"| platform | `{m['platform']}` |", f"| CPU | {m['cpu']}, {m['cpu_count']} logical CPUs |",
             f"| Python | {m['python']} |", f"| numpy | {m['numpy']} |", f"| ai-edge-litert | {m['ai_edge_litert']} |",
             f"| TensorFlow / Keras (step bench only) | {m['tensorflow']} / {m['keras']} |",
             f"| paho-mqtt | {m['paho_mqtt']} |", f"| mosquitto | {m['mosquitto']} |",
             f"| load average when the run started | {', '.join(str(x) for x in m['load_average_at_start'])} |",
             f"| date | {m['date_utc']} |"]
    if durations:
        lines.append(f"| bench run time | " + ", ".join(f"{k} {v:.0f} s" for k, v in durations.items())
                     + f" (total {sum(durations.values()) / 60:.1f} min) |")
    lines += ["", "The machine is shared with other work (see the load average): absolute numbers are noisy; "
              "every comparison below is interleaved in one run and reported as a median (ratios as the median "
              "of per-repeat ratios).", ""]
    return lines


def targets_section(step, e2e, memory) -> list[str]:
    lines = ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    if step:
        for mode, data in step["modes"].items():
            r = data["ratios"]["per_message / batched_1000"]
            lines.append(f"| batched at 1,000 streams >= {BATCH_TARGET:.0f}x cheaper per stream-step than one invoke "
                         f"per message ({mode}) | {r:.1f}x | {_verdict(r >= BATCH_TARGET)} |")
        for mode, data in step["modes"].items():
            r = data["ratios"]["window / per_message"]
            b = data["ratios"]["window / batched_1000"]
            lines.append(f"| step model >= {WINDOW_TARGET:.0f}x cheaper per message than re-running a 64-step window "
                         f"({mode}) | {r:.0f}x one invoke per message; {b:.0f}x batched | {_verdict(r >= WINDOW_TARGET)} |")
    if e2e:
        for key, row in e2e["summary"].items():
            if row["streams"] != 1000:
                continue
            lines.append(f"| end to end >= {E2E_TARGET} x echo baseline, 1,000 streams, QoS {row['qos']} | "
                         f"{row['ratio']:.2f} x (msg/s, same run); CPU per message: echo/serve = {row['cpu_ratio']:.2f} | "
                         f"{_verdict(row['ratio'] >= E2E_TARGET)} by msg/s, {_verdict(row['cpu_ratio'] >= E2E_TARGET)} "
                         "by CPU cost |")
        for kind, label in (("daemon", ""), ("daemon_nodelay", " (with fix 8, TCP_NODELAY)")):
            lat = e2e.get("latency", {}).get(kind, {}).get("1000")
            if lat and lat.get("samples"):
                lines.append(f"| p99 latency <= {P99_TARGET_MS:.0f} ms at 1,000 msg/s{label} | {lat['p99_ms']:.2f} ms "
                             f"(p50 {lat['p50_ms']:.2f}, max {lat['max_ms']:.1f}) | {_verdict(lat['p99_ms'] <= P99_TARGET_MS)} |")
    if memory:
        row = next((r for r in memory["serve"] if r["streams"] == 10000 and r["variant"] == "default"), None)
        if row:
            mb = row["rss_live_kb"] / 1024
            lines.append(f"| RSS <= {RSS_TARGET_MB:.0f} MB with 10,000 live streams | {mb:.0f} MB "
                         f"(peak {_mb(row.get('rss_peak_during_final_checkpoint_kb'))} MB while checkpointing) | "
                         f"{_verdict(mb <= RSS_TARGET_MB)} |")
        mapped = sorted({f for r in memory["serve"] for f in r.get("tensorflow_mapped", [])})
        heavy = memory.get("python_modules_probe", {}).get("heavy_modules", [])
        lines.append(f"| serve never imports TensorFlow | /proc/<pid>/maps: {len(mapped)} TensorFlow/Keras files; "
                     f"modules after building the daemon: {heavy or 'none'} | {_verdict(not mapped and not heavy)} |")
    return lines + [""]


def step_section(step: dict) -> list[str]:
    modes = list(step["modes"])
    base = "batched, 1,000 streams, max_batch 1024"
    lines = ["## 1. Step cost per stream-step", "",
             "Same 2 x 64 LSTM throughout. Step models: `models/machine_temperature-float32` and `-int8` (shipped), "
             "`dynamic` converted with `statecast convert` from a copy re-trained exactly as `models/build.sh` does "
             "(same architecture, so the same cost). All run through the daemon's own `StepModel` (ai-edge-litert, "
             "XNNPACK, 1 thread). The window model is the step graph's cell functions unrolled 64 times from a zero "
             "state (`bench/bench_models.py`), converted with the project's TFLiteConverter path; it reproduces Keras "
             + ", ".join(f"{m}: max |error| {step['window_parity'][m]['max_abs_error']:.2g} °F over "
                          f"{step['window_parity'][m]['windows']} windows" for m in modes) + ". "
             "Keras runs the same weights on one (1, 64, 1) window with TensorFlow's default threading.",
             f"Timing: {step['repeats']} interleaved repeats of ~{step['block_seconds'] * 1000:.0f} ms blocks per "
             "alternative, medians.", "",
             "| alternative | " + " | ".join(f"{m} µs" for m in modes) + " | " +
             " | ".join(f"{m} x batched" for m in modes) + " |",
             "|---|" + "---:|" * (2 * len(modes))]
    keras = sorted((k for k in step["modes"][modes[0]]["median_us"] if k.startswith("Keras")),
                   key=lambda k: step["modes"][modes[0]]["median_us"][k])
    rows = STEP_ROWS + [(k, k + (" (fastest Keras)" if k == step["modes"][modes[0]]["fastest_keras"] else "")) for k in keras]
    for key, label in rows:
        values = [step["modes"][m]["median_us"].get(key) for m in modes]
        ratios = [v / step["modes"][m]["median_us"][base] if v is not None else None for m, v in zip(modes, values)]
        lines.append(f"| {label} | " + " | ".join(fmt(v, 2 if v is not None and v < 100 else 0) for v in values) + " | "
                     + " | ".join(fmt(r, 1) for r in ratios) + " |")
    lines += ["", "Keras does not depend on the quantization mode; its rows are the same Keras runs timed "
              "interleaved with each mode's alternatives.", "",
              "Ratios measured within each repeat (median):", "",
              "| ratio | " + " | ".join(modes) + " |", "|---|" + "---:|" * len(modes)]
    for key, label in (("per_message / batched_1000", "one invoke per message / batched at 1,000 streams"),
                       ("per_message / batched_1000_mb256", "one invoke per message / batched, max_batch 256"),
                       ("window / per_message", "window TFLite / one invoke per message"),
                       ("window / batched_1000", "window TFLite / batched at 1,000 streams"),
                       ("keras_fastest / per_message", "fastest Keras / one invoke per message"),
                       ("keras_fastest / batched_1000", "fastest Keras / batched at 1,000 streams")):
        lines.append(f"| {label} | " + " | ".join(f"{step['modes'][m]['ratios'][key]:.1f}x" for m in modes) + " |")
    lines += ["", "![step cost](bench/step_cost.png)", ""]
    return lines


def e2e_section(e2e: dict) -> list[str]:
    o = e2e["daemon_options"]
    lines = ["## 2. End-to-end throughput through mosquitto", "",
             f"A fresh mosquitto on loopback per run; {e2e['publishers']} closed-loop publisher processes (at most "
             f"{e2e['in_flight_window']:,} messages in flight end to end, so nothing queues without bound), one "
             "receiver process counting outputs. System under test: `statecast serve` as a subprocess "
             f"(`{os.path.basename(o['model'])}`, [batching] max_batch {o['max_batch']}, max_wait_ms {o['max_wait_ms']}, "
             f"anomaly on, stats every {o['stats_interval_seconds']:g} s, MQTT {o['protocol']}, forecast QoS = input QoS), "
             "or the echo baseline: one paho client (MQTT 5) that receives each reading, `json.loads` it and "
             "publishes an echo. Alternated within each repeat; rate over a "
             f"{e2e['window_seconds']:g} s window after every stream answered once. "
             "**CPU µs/msg** is the CPU time of the process under test in that window per message (from "
             "/proc/<pid>/stat): on a loaded 2-core machine the message rate is bounded by everything sharing the "
             "cores (publishers, broker, receiver, other work), while CPU per message is the cost the process "
             "itself adds; echo CPU / serve CPU is the throughput ratio the two would reach with a core each.", "",
             "| QoS | streams | echo msg/s | serve msg/s | serve / echo | echo CPU µs/msg | serve CPU µs/msg | "
             "echo CPU / serve CPU | broker CPU µs/msg | mean batch | lost |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in e2e["summary"].values():
        lines.append(f"| {row['qos']} | {row['streams']:,} | {row['echo_msgs_per_s']:,.0f} | {row['daemon_msgs_per_s']:,.0f} | "
                     f"{row['ratio']:.2f} | {row['echo_cpu_us_per_msg']:.0f} | {row['daemon_cpu_us_per_msg']:.0f} | "
                     f"{row['cpu_ratio']:.2f} | {row['broker_cpu_us_per_msg']:.0f} | {row['daemon_mean_batch']:.0f} | "
                     f"{row['lost']} |")
    lines += ["", f"Medians of {max(r['repeats'] for r in e2e['summary'].values())} repeats; every run's numbers are "
              "in the results JSON.", "", "![throughput](bench/throughput.png)", ""]
    return lines


def latency_section(e2e: dict) -> list[str]:
    lat = e2e["latency"]
    lines = ["## 3. Latency, publish -> output received", "",
             "Open-loop publishing (one publisher, message i at t0 + i/rate) over 1,000 streams that have each seen "
             "two readings, QoS 0, after a 1 s lead-in. The payload's `ts` is the publish time; the daemon echoes it "
             "in the forecast, so latency is `time.time() - ts` in the receiver, on one clock. The daemon waits up "
             "to max_wait_ms (2 ms) to batch. The benchmark's own clients (publisher, receiver, echo) set "
             "TCP_NODELAY; paho does not, and neither does the daemon today, so its forecasts wait for Nagle's "
             "algorithm at low rates (the `serve + TCP_NODELAY` rows: fix 8 below). At 5,000 msg/s this 2-core machine "
             "runs publisher, broker, receiver and the process under test at once, so the tail is scheduling.", "",
             "| rate msg/s | system | p50 ms | p90 | p99 | max | samples |", "|---:|---|---:|---:|---:|---:|---:|"]
    names = {"daemon": "statecast serve", "daemon_nodelay": "serve + TCP_NODELAY", "echo": "echo baseline"}
    for rate in [r for r in lat["daemon"] if r.isdigit()]:
        for kind in [k for k in ("daemon", "daemon_nodelay", "echo") if k in lat]:
            f = lat[kind].get(rate, {})
            if not f.get("samples"):
                lines.append(f"| {int(rate):,} | {names[kind]} | no samples ({f.get('error')}) | | | | |")
                continue
            lines.append(f"| {int(rate):,} | {names[kind]} | {f['p50_ms']:.2f} | {f['p90_ms']:.2f} | {f['p99_ms']:.2f} | "
                         f"{f['max_ms']:.1f} | {f['samples']:,} |")
    return lines + ["", "![latency](bench/latency.png)", ""]


def memory_section(memory: dict) -> list[str]:
    lines = ["## 4. Memory and start-up", "",
             f"`statecast serve` (`{memory['model']}`, anomaly scoring on, [state] max_streams = streams), "
             f"{memory['messages_per_stream']} readings per stream (the second creates the stream's anomaly "
             "statistics), RSS from /proc/<pid>/status once all forecasts arrived. READY: time from exec to the "
             "READY=1 datagram on a NOTIFY_SOCKET bound by the benchmark. Final checkpoint: SIGTERM to exit (the "
             "engine loop writes it synchronously), peak RSS sampled every 20 ms meanwhile; then a second daemon "
             "restores it.", "",
             "| streams | variant | RSS at READY MB | RSS live MB | kB / stream | READY cold s | final checkpoint s | "
             "checkpoint MB | peak RSS while checkpointing MB | READY after restore s | RSS after restore MB |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in memory["serve"]:
        size = r.get("checkpoint_bytes")
        lines.append(f"| {r['streams']:,} | {r['variant']} | {_mb(r['rss_ready_kb'])} | {_mb(r['rss_live_kb'])} | "
                     f"{r['kb_per_stream']:.1f} | {r['ready_cold_seconds']:.2f} | {fmt(r.get('stop_seconds'), 1)} | "
                     f"{fmt(size / 1e6 if size else None, 0)} | {_mb(r.get('rss_peak_during_final_checkpoint_kb'))} | "
                     f"{fmt(r.get('ready_restore_seconds'), 1)} | {_mb(r.get('rss_after_restore_kb'))} |")
    lines.append("")
    probes = memory.get("steady_state_probe") or []
    if probes:
        lines += ["A stream's anomaly statistics hold long_window (2,000) readings' worth of block sums only after "
                  "that many readings. The probe builds the serve process's own objects (`serve.Daemon` from the same "
                  "config, TensorFlow-free), steps every stream twice, fills every stream's statistics as 2,000 "
                  "readings would, then saves (encode + fsync'd write) and restores a checkpoint:", "",
                  "| streams | RSS fresh MB | RSS steady MB | anomaly array bytes / stream | checkpoint save s | "
                  "checkpoint MB | peak RSS after save MB | restore s |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in probes:
            lines.append(f"| {p['streams']:,} | {_mb(p['rss_fresh_kb'])} | {_mb(p['rss_steady_kb'])} | "
                         f"{p['anomaly_array_bytes_per_stream']:,} | {fmt(p.get('checkpoint_save_seconds'), 2)} | "
                         f"{fmt((p.get('checkpoint_bytes') or 0) / 1e6 or None, 0)} | "
                         f"{_mb(p.get('hwm_after_checkpoint_kb'))} | {fmt(p.get('checkpoint_restore_seconds'), 2)} |")
        lines.append("")
    stall = memory.get("checkpoint_stall")
    if stall:
        lines += [f"**Checkpoint stall.** {stall['streams']:,} streams with two readings each, then "
                  f"{stall['rate_hz']:g} readings/s while the first periodic checkpoint is written (interval "
                  f"{stall['checkpoint_interval_seconds']:g} s; the default is 30 s): publish -> forecast latency "
                  f"p50 {stall['p50_ms']:.1f} ms, p99 {stall['p99_ms']:,.0f} ms, **max {stall['max_ms']:,.0f} ms** over "
                  f"{stall['samples']:,} readings; RSS {_mb(stall['rss_before_kb'])} MB before the checkpoint, "
                  f"{_mb(stall['rss_after_kb'])} MB after it (checkpoint "
                  f"{fmt((stall['checkpoint_bytes'] or 0) / 1e6, 0)} MB). The engine loop writes checkpoints "
                  "synchronously, so every interval the daemon stops forecasting for as long as the save takes.", ""]
    mapped = sorted({f for r in memory["serve"] for f in r.get("tensorflow_mapped", [])})
    heavy = memory.get("python_modules_probe", {}).get("heavy_modules", [])
    lines += [f"TensorFlow check: no file of TensorFlow, Keras or tf_keras is mapped in any serve process above "
              f"({len(mapped)} found in /proc/<pid>/maps), and building the daemon from a config "
              f"(`serve --check-config` in a fresh interpreter) imports {heavy or 'no tensorflow/keras module'}.", "",
              "![memory](bench/memory.png)", ""]
    return lines


def accuracy_section(docs: str, step: dict | None) -> list[str]:
    lines = ["## 5. Accuracy vs size per quantization mode", ""]
    path = os.path.join(docs, "conversion.md")
    if os.path.exists(path):
        text = open(path).read()
        rows = text.splitlines()
        header = next((i for i, line in enumerate(rows) if line.startswith("| cell | mode |")), None)
        if header is not None:
            end = next((i for i in range(header, len(rows)) if not rows[i].startswith("|")), len(rows))
            table = rows[header:end]
            lines += ["The shipped 2 x 64 LSTM rows of [conversion.md](conversion.md) (generated by "
                      "`bench/conversion_table.py`; column definitions and the other cells are there):", ""]
            lines += table[:2] + [line for line in table[2:] if line.startswith("| shipped |")]
            baseline = re.search(r"Baseline for the RMSE columns.*", text)
            lines += ["", baseline.group(0) if baseline else "", ""]
            return lines
    lines.append("docs/conversion.md not found; see the manifests in models/.")
    return lines + [""]


def patches_section(patches: dict | None, first: bool = True) -> list[str]:
    lines = ["## Profiling and recommended fixes", ""] if first else []
    if not patches:
        return lines + ["(run `bench/bench_all.py --with-patches` for the before/after table)", ""] if first else []
    s = patches["summary"]
    lines += [f"QoS {patches['qos']}, {patches['streams']:,} streams, {patches['repeats']} repeats, "
              "each variant a fresh daemon on a fresh broker, interleaved with the unpatched daemon and the echo "
              "baseline:", "",
              "| variant | msg/s | serve / echo (msg/s) | CPU µs/msg | echo CPU / serve CPU | msg/s vs unpatched | lost |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in s.items():
        vs_base = row.get("vs_base")
        lines.append(f"| {name} | {row['msgs_per_s']:,.0f} | {row['vs_echo']:.2f} | {row['cpu_us_per_msg']:.0f} | "
                     f"{row.get('echo_cpu_over_cpu', float('nan')):.2f} | {fmt(vs_base, 2)} | {row['lost']} |")
    return lines + [""]


VARIANTS_TEXT = ("Variants: `base` is today's daemon; `drain`, `route`, `fmt`, `json` one fix each (below); "
                 "`drain+route+fmt+json` fixes 1-4 together; `all` adds fix 8 (TCP_NODELAY, a latency fix that "
                 "costs some CPU per message in more, smaller TCP segments); `@3.1.1` the same over MQTT 3.1.1 (`[broker] protocol = \"3.1.1\"`; for `echo@3.1.1` the "
                 "echo client too), which skips paho's per-message MQTT 5 property objects; `+nofsync` / `+nojournal` "
                 "are configuration ([state] `journal_fsync = false` / `journal = false`), not code. Tools: "
                 "`bench/bench_profile.py` (py-spy on the serve process under the section 2 load, `--gil` for the "
                 "thread holding the GIL) and `bench/bench_patches.py` (each fix written as a monkeypatch of the "
                 "current code, so it is measured end to end before anyone applies it).")


FIXES = """### The fixes measured above

1. **`daemon/routing.py`, `Router.route`: cache topic -> (route, stream id).** Every message today
   builds a paho `MQTTMatcher` (`topic_matches_sub`), then `stream_id_from_topic` validates the
   filter and matches the topic again, and `sanitize_stream_id` runs its regex, for a result that
   only depends on the topic (in process: 18 µs -> 7 µs per message for routing + decoding). Keep a dict
   `topic -> (route, stream_id)` on the Router (bounded, e.g. cleared at 100,000 entries; rejections
   not cached so they are still counted and logged), and clear it when `routes` change (reload
   assigns `router.routes`: make `routes` a property whose setter clears the cache). The shard
   check stays per message (it is cheap and changes on reload). Outputs unchanged (checked: same
   routed messages and the same rejection counters on good and hostile inputs).
2. **`daemon/outputs.py`, `forecast_message`: one f-string instead of dict + `json.dumps`.** The
   payload has a fixed shape; stream ids are sanitised to `[A-Za-z0-9._-]` so they need no
   escaping; floats through `repr()` are exactly what `json` writes; the model name is
   `json.dumps`ed once and cached. Fall back to the dict path for several targets. Byte-identical
   to today's output (checked on 4,000 cases including None, NaN, inf and odd model names);
   in process 7.1 -> 4.2 µs per message.
3. **`daemon/payload.py`, `_load_json`: a module-level `json.JSONDecoder(parse_constant=...,
   parse_float=..., parse_int=...)`** (json.loads with hooks constructs a decoder per call) and run
   the `_check_depth` regex scan only when `text.count("[") + text.count("{") > MAX_JSON_DEPTH`
   (a payload with fewer opening brackets cannot be too deep). Same results and reasons.
   (`json` in the table: this fix plus a shared `JSONEncoder` in outputs.)
4. **`daemon/serve.py`, `Daemon._drain`: after the first message, `time.sleep(max_wait_ms)` once
   and take what arrived (`get_nowait` until empty or max_batch)** instead of polling
   `get_nowait` + `sleep(0.2 ms)` until the deadline: up to 10 wake-ups per batch, each taking the
   GIL from the network thread. If the queue already holds a full batch, skip the sleep.
"""

FIXES_MORE = """8. **`daemon/mqtt_link.py`, `_handle_connect`: set TCP_NODELAY on `client.socket()`** (AF_INET/AF_INET6
   only). paho leaves Nagle's algorithm on, so at low rates a forecast sits in the kernel until
   the previous segment is acknowledged; see the `serve + TCP_NODELAY` latency rows (variant
   `nodelay` in `bench_patches.py`; it is part of `all`).
9. **`daemon/sdnotify.py`, `Notifier.notify`: send with `socket.MSG_DONTWAIT`** (and count EAGAIN as
   a failed notification, like any other OSError). The datagram send blocks when the manager's
   socket queue is full (net.unix.max_dgram_qlen, 10 by default): a first version of this
   benchmark read NOTIFY_SOCKET only until READY=1 and every daemon froze ~10 STATUS= lines
   later, in `Notifier.notify` on the engine loop (py-spy dump), not reacting to SIGTERM. systemd
   drains its socket, but a slow or wedged manager must not stop the forecasts; the module
   promises that sending never takes the engine down.
"""


def more_findings(e2e: dict | None, memory: dict | None, patches_qos1: dict | None) -> list[str]:
    """Findings that come with numbers from the runs above (memory, checkpoints, QoS 1)."""
    lines = []
    if memory:
        serve = {(r["streams"], r["variant"]): r for r in memory["serve"]}
        base = serve.get((10000, "default"))
        off = serve.get((10000, "anomaly disabled"))
        probe = next((p for p in memory.get("steady_state_probe", []) if p["streams"] == 10000
                      and "checkpoint_save_seconds" in p), None)
        stall = memory.get("checkpoint_stall")
        if base and off:
            lines += [f"5. **Memory per stream (landed: block sums in `daemon/anomaly.py`, slots).** 10,000 streams take "
                      f"{_mb(base['rss_live_kb'])} MB with anomaly scoring, {_mb(off['rss_live_kb'])} MB without "
                      f"({base['kb_per_stream'] - off['kb_per_stream']:.1f} kB per stream for the statistics). "
                      "What is left above READY is mostly outside the anomaly code: the RNN state (1 kB per stream "
                      "for 2 x 64 LSTM), the largest batch bucket's interpreter arena, and per-stream Python objects "
                      "(stream info, routing cache, topic strings).", ""]
        if probe or stall:
            text = "6. **Checkpoints (landed: per-stream statistics as stacked .npz arrays).** "
            if base and base.get("stop_seconds") is not None:
                text += (f"At 10,000 streams the final checkpoint is {fmt((base.get('checkpoint_bytes') or 0) / 1e6, 0)} MB "
                         f"(stop {base['stop_seconds']:.1f} s, peak RSS {_mb(base.get('rss_peak_during_final_checkpoint_kb'))} "
                         f"MB; after restoring it the new process holds {_mb(base.get('rss_after_restore_kb'))} MB). ")
            if probe:
                text += (f"Saving {probe['streams']:,} steady-state streams takes {probe['checkpoint_save_seconds']:.2f} s. ")
            if stall:
                text += (f"It still runs on the engine loop: max latency {stall['max_ms']:,.0f} ms at "
                         f"{stall['rate_hz']:g} msg/s while one is written. Moving the encode + fsync to a worker "
                         "thread needs the journal to drop only what the snapshot holds (today it is truncated "
                         "whole once the checkpoint is durable).")
            lines += [text, ""]
    if e2e and patches_qos1:
        q1 = patches_qos1["summary"]
        lines += [f"7. **QoS 1 costs the daemon about twice the echo's CPU per message** "
                  f"({q1['base']['cpu_us_per_msg']:.0f} vs {q1['echo']['cpu_us_per_msg']:.0f} µs; "
                  f"{q1['all']['cpu_us_per_msg']:.0f} with the fixes above"
                  + (f", {q1['base+nojournal']['cpu_us_per_msg']:.0f} with the journal off" if 'base+nojournal' in q1 else "")
                  + "). Each message makes two calls into paho from the engine thread (the forecast publish and the "
                  "manual PUBACK); each wakes paho's network thread through its socket pair and hands the GIL back and "
                  "forth, where the echo does both inside paho's own callback. Not fixed here: worth measuring next is "
                  "acknowledging and publishing a whole batch from the network thread (e.g. hand the batch's "
                  "(topic, payload) list and ack tokens to a callback scheduled on paho's loop), or paho's "
                  "`loop()` driven from the engine loop itself so no second thread contends for the GIL. The "
                  "journal's fsync per batch (on by default) shows up as wall time on the engine thread, not as "
                  "CPU; on an SD card it will bound the batch rate.", ""]
    return lines


def write(results: str, docs: str) -> None:
    step, e2e, memory = _load(results, "step"), _load(results, "e2e"), _load(results, "memory")
    patches, durations = _load(results, "patches"), _load(results, "durations") or {}
    images = os.path.join(docs, "bench")
    os.makedirs(images, exist_ok=True)
    machine = next(d["machine"] for d in (step, e2e, memory, patches) if d)
    lines = ["# Benchmarks", "",
             "Generated by `bench/bench_all.py` from the JSON results of `bench/bench_step.py`, `bench_e2e.py`, "
             "`bench_memory.py` and `bench_patches.py` (do not edit by hand). Reproduce (about 8 minutes on 2 "
             "cores, plus ~7 for `--with-patches`; needs `make test`'s venv and Debian's mosquitto):", "",
             f"    {REPRODUCE}", ""]
    lines += machine_section(machine, durations)
    lines += targets_section(step, e2e, memory)
    if step:
        lines += step_section(step)
        plot_step(step, os.path.join(images, "step_cost.png"))
    if e2e:
        lines += e2e_section(e2e)
        plot_throughput(e2e, patches, os.path.join(images, "throughput.png"))
        if "latency" in e2e:
            lines += latency_section(e2e)
            plot_latency(e2e["latency"], os.path.join(images, "latency.png"))
    if memory:
        lines += memory_section(memory)
        plot_memory(memory, os.path.join(images, "memory.png"))
    lines += accuracy_section(docs, step)
    patches_qos1 = _load(results, "patches_qos1")
    lines += patches_section(patches)
    if patches_qos1:
        lines += patches_section(patches_qos1, first=False)
    if patches or patches_qos1:
        lines += [VARIANTS_TEXT, ""] + FIXES.splitlines() + [""]
    lines += more_findings(e2e, memory, patches_qos1)
    lines += FIXES_MORE.splitlines() + [""]
    with open(os.path.join(docs, "benchmarks.md"), "w") as handle:
        handle.write("\n".join(lines).rstrip() + "\n")
