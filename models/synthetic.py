"""Synthetic single-value training streams for the default model (numpy only, seeded).

The default model must forecast streams it has never seen, so besides the NAB development
files it trains on a spread of generic shapes: periodic signals with noise at several periods,
random walks, AR(1) noise, level steps, square waves, sawtooths, spiky counts and flat lines with
dropouts, daily profiles tied to the clock; each at a random level and scale (the online
normaliser removes those, so the model learns shapes, not units) and a random sampling interval
from 1 minute to 1 hour.

    python models/synthetic.py OUT_DIR [--series 36] [--rows 4000] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
from datetime import datetime, timedelta

import numpy as np


def periodic(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n)
    period = rng.choice([24, 48, 96, 144, 288])
    shape = np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.5:                                   # a second harmonic
        shape += rng.uniform(0.2, 0.6) * np.sin(4 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.3:                                   # a weekly modulation
        shape *= 1.0 + 0.4 * (np.sin(2 * np.pi * t / (7 * period)) > 0.6)
    return shape + rng.uniform(0.0, 0.3) * rng.standard_normal(n)


def random_walk(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.cumsum(rng.standard_normal(n)) + rng.uniform(0, 0.5) * rng.standard_normal(n)


def ar1(rng: np.random.Generator, n: int) -> np.ndarray:
    phi, x = rng.uniform(0.5, 0.99), np.zeros(n)
    noise = rng.standard_normal(n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + noise[i]
    return x


def steps(rng: np.random.Generator, n: int) -> np.ndarray:
    levels = np.cumsum(rng.standard_normal(n) * (rng.random(n) < 1.0 / rng.integers(100, 800)) * 5.0)
    return levels + rng.uniform(0.05, 1.0) * rng.standard_normal(n)


def square(rng: np.random.Generator, n: int) -> np.ndarray:
    period = rng.choice([48, 144, 288])
    duty = rng.uniform(0.2, 0.8)
    wave = ((np.arange(n) % period) < duty * period).astype(float)
    return wave + rng.uniform(0.0, 0.1) * rng.standard_normal(n)


def sawtooth(rng: np.random.Generator, n: int) -> np.ndarray:
    period = rng.integers(30, 300)
    return (np.arange(n) % period) / period + rng.uniform(0.0, 0.05) * rng.standard_normal(n)


def spiky(rng: np.random.Generator, n: int) -> np.ndarray:
    base = rng.poisson(rng.uniform(1, 20), n).astype(float)
    spikes = (rng.random(n) < rng.uniform(0.001, 0.02)) * rng.uniform(5, 20) * base.mean()
    return base + spikes


def flat(rng: np.random.Generator, n: int) -> np.ndarray:
    x = np.full(n, 1.0) + rng.uniform(0.0, 0.01) * rng.standard_normal(n)
    if rng.random() < 0.5:                                   # occasional dropouts to zero
        x[rng.random(n) < 0.002] = 0.0
    return x


def trend_season(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.linspace(0, rng.uniform(-3, 3), n) + periodic(rng, n)


def daily_profile(rng: np.random.Generator, n: int, steps_per_day: int) -> np.ndarray:
    """A random daily shape (smooth or piecewise flat) repeated every day at the same clock time,
    sometimes with a weekday/weekend difference: what calendar features can help forecast."""
    knots = rng.normal(size=rng.integers(3, 9))
    grid = np.linspace(0, len(knots), steps_per_day, endpoint=False)
    if rng.random() < 0.5:
        day = knots[grid.astype(int)]                                      # piecewise flat
    else:
        day = np.interp(grid, np.arange(len(knots) + 1), np.append(knots, knots[0]))  # smooth
    t = np.arange(n)
    x = day[t % steps_per_day]
    if rng.random() < 0.4:
        weekend = ((t // steps_per_day) % 7) >= 5
        x = np.where(weekend, x * rng.uniform(0.3, 0.8), x)
    return x + rng.uniform(0.0, 0.3) * rng.standard_normal(n)


SHAPES = (periodic, trend_season, random_walk, ar1, steps, square, sawtooth, spiky, flat,
          daily_profile, daily_profile)
STEP_CHOICES_SECONDS = (60, 300, 300, 300, 600, 1800, 3600)


def write_series(path: str, values: np.ndarray, start: datetime, step_seconds: int) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("timestamp,value\n")
        for i, v in enumerate(values):
            handle.write(f"{(start + timedelta(seconds=step_seconds * i)).strftime('%Y-%m-%d %H:%M:%S')},{v:.6g}\n")


def generate(out_dir: str, n_series: int, n_rows: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for index in range(n_series):
        shape = SHAPES[index % len(SHAPES)]
        step_seconds = int(rng.choice(STEP_CHOICES_SECONDS))
        if shape is daily_profile:
            values = shape(rng, n_rows, 86_400 // step_seconds)
        else:
            values = shape(rng, n_rows)
        values = rng.uniform(-100, 1000) + 10.0 ** rng.uniform(-2, 3) * values   # any level, any units
        path = os.path.join(out_dir, f"synthetic_{index:03d}_{shape.__name__}.csv")
        write_series(path, values, datetime(2020, 1, 1), step_seconds)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--series", type=int, default=36)
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for path in generate(args.out_dir, args.series, args.rows, args.seed):
        print(path)


if __name__ == "__main__":
    main()
