"""What the reference kernels (the int8 default, issue 17) cost against the optimized ones.

Per shipped model: model-step time per stream at batch 1 and batch 256, reference vs optimized
kernels, interleaved (bench_common.interleaved) and reported as medians and the median paired
ratio, all in one run. Only the interpreter step is timed: the engine's own per-message work
(admission, scaling, anomaly score) comes on top of either and is the same for both.

  nice -n 10 .venv/bin/python bench/kernel_cost.py [--repeats 7] [--budget 0.2]
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import MODELS, calls_for, interleaved, machine, median, paired_ratio, timed_block  # noqa: E402

from statecast.daemon.model.step_model import StepModel  # noqa: E402

SHIPPED = ("default-int8", "default-int16x8", "machine_temperature-int8", "default", "machine_temperature-float32")
BATCHES = (1, 256)


def stepper(model: StepModel, batch: int):
    x = np.zeros((batch, model.n_features), np.float32)              # (batch, features)
    states = model.zero_states(batch)                                # [(batch, units), ...]
    model.step(x, states)                                            # allocate the bucket first
    return lambda: model.step(x, states)


def measure(name: str, repeats: int, budget: float) -> list[str]:
    rows = []
    models = {k: StepModel(os.path.join(MODELS, name), max_batch=max(BATCHES), kernels=k)
              for k in ("reference", "optimized")}
    for batch in BATCHES:
        fns = {k: stepper(m, batch) for k, m in models.items()}
        calls = {k: calls_for(fn, budget) for k, fn in fns.items()}
        times = interleaved({k: (lambda k=k: timed_block(fns[k], calls[k]) / batch) for k in fns}, repeats)
        rows.append(f"| {name} | {batch} | {median(times['reference']) * 1e6:.2f} | "
                    f"{median(times['optimized']) * 1e6:.2f} | {paired_ratio(times['reference'], times['optimized']):.1f}x |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per timed block")
    args = parser.parse_args()
    info = machine()
    print(f"# kernel cost on {info['cpu']}, ai-edge-litert {info['ai_edge_litert']}, load {info['load_average_at_start']}, "
          f"{args.repeats} interleaved repeats, {info['date_utc']}")
    print("| model | batch | reference us/stream-step | optimized us/stream-step | reference / optimized |")
    print("|---|---|---|---|---|")
    for name in SHIPPED:
        for row in measure(name, args.repeats, args.budget):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
