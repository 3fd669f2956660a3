"""The PNGs of docs/benchmarks.md (docs/bench/*.png) from bench_all.py's JSON results."""
from __future__ import annotations

import numpy as np

from bench_targets import P99_TARGET_MS, RSS_TARGET_MB, SHIPPED_MAX_BATCH, STEP_ROWS


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _echo_vs_serve(ax, labels: list[str], rows: list[dict], measure: str, ylabel: str, title: str,
                   legend_size: int) -> None:
    """Echo and serve side by side per row: rows carry echo_<measure> and daemon_<measure>."""
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r[f"echo_{measure}"] for r in rows], 0.4, label="echo baseline")
    ax.bar(x + 0.2, [r[f"daemon_{measure}"] for r in rows], 0.4, label="statecast serve")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=legend_size)


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
    _save(plt, fig, path)


def plot_throughput(e2e: dict, path: str) -> None:
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 5), dpi=100)
    rows = list(e2e["summary"].values())
    labels = [f"QoS {r['qos']}\n{r['streams']:,} streams" for r in rows]
    _echo_vs_serve(left, labels, rows, "msgs_per_s", "messages/s (median)", "Sustained throughput, same run", 8)
    _echo_vs_serve(right, labels, rows, "cpu_us_per_msg", "CPU µs per message in the process under test",
                   "CPU per message", 7)
    _save(plt, fig, path)


def plot_latency(latency: dict, path: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    rates = [r for r in latency["daemon"] if r.isdigit() and latency["daemon"][r].get("samples")]
    x = np.arange(len(rates))
    series = [(k, c) for k, c in (("echo", "tab:blue"), ("daemon", "tab:orange")) if k in latency]
    width = 0.8 / len(series)
    for k, (kind, color) in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * width
        figures = [latency[kind].get(r, {}) for r in rates]
        figures = [f if f.get("samples") else {"p50_ms": np.nan, "p99_ms": np.nan, "max_ms": np.nan} for f in figures]
        label = {"daemon": "serve", "echo": "echo"}[kind]
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
    _save(plt, fig, path)


def plot_memory(memory: dict, path: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 5), dpi=100)
    default = [r for r in memory["serve"] if r["variant"] == "default"]
    ax.plot([r["streams"] for r in default], [r["rss_live_kb"] / 1024 for r in default], "o-",
            label="statecast serve (anomaly on, long_window 2000, max_batch 1,024)")
    for r in memory["serve"]:
        if r["variant"] != "default":
            shipped = " (shipped)" if r["variant"] == f"max_batch {SHIPPED_MAX_BATCH}" else ""
            ax.plot([r["streams"]], [r["rss_live_kb"] / 1024], "s", label=f"serve, {r['variant']}{shipped}")
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
    _save(plt, fig, path)


# --- markdown --------------------------------------------------------------------------------
