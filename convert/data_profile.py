"""What `statecast train` learns about a series before it trains: sampling interval, gaps, and
whether a daily or weekly rhythm is really there. Every choice carries its reason, so the user
(and the manifest) can see why the calendar is on or off.

The seasonality test: remove the slow level (a centred moving average one period long), then
compare the autocorrelation at the calendar lag P with its largest value at lags between P/8
and P/4 either side. A real daily (weekly) rhythm peaks at P; a trend, a random walk or white
noise does not, and a signal whose own shorter period merely fits into a day (an orbit on
synthetic timestamps) has peaks of the same height at its own multiples next to P.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

SECONDS_PER_DAY = 86400.0
PERIODS_SECONDS = {"daily": SECONDS_PER_DAY, "weekly": 7 * SECONDS_PER_DAY}
CALENDAR_BY_PERIOD = {"daily": ("tod_sin", "tod_cos"), "weekly": ("dow_sin", "dow_cos")}
MIN_PERIODS = 3               # the training part must cover this many periods before P is tested
# A peak of 0.1 in the autocorrelation means the rhythm holds about a tenth of the detrended
# variance: below that, calendar features add inputs without a forecast gain worth having.
MIN_PEAK = 0.1
GAP_FACTOR = 1.5              # a step longer than 1.5 intervals is a gap
WINDOW_MIN, WINDOW_MAX, WINDOW_DEFAULT = 32, 256, 64


@dataclass(frozen=True)
class PeriodTest:
    name: str
    lag_samples: int
    found: bool
    reason: str
    acf_at_lag: float | None = None
    acf_beside: float | None = None


@dataclass(frozen=True)
class DataProfile:
    rows: int
    interval_seconds: float
    gaps: int
    largest_gap_seconds: float
    periods: tuple[PeriodTest, ...] = field(default_factory=tuple)

    def found(self) -> tuple[PeriodTest, ...]:
        return tuple(p for p in self.periods if p.found)

    def calendar_features(self) -> tuple[str, ...]:
        return tuple(name for p in self.found() for name in CALENDAR_BY_PERIOD[p.name])

    def season_lags(self) -> dict[str, int]:
        """Seasonal-naive baselines this series supports: name -> lag in samples."""
        return {p.name: p.lag_samples for p in self.found()}

    def to_json(self) -> dict:
        return asdict(self)


def _acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """(rows,) -> (max_lag + 1,) autocorrelation (the usual biased estimate), by FFT."""
    centred = x - x.mean()
    size = 1 << int(np.ceil(np.log2(2 * centred.size)))
    spectrum = np.fft.rfft(centred, size)
    r = np.fft.irfft(spectrum * np.conj(spectrum), size)[: max_lag + 1]
    return r / r[0] if r[0] > 0 else np.zeros(max_lag + 1)


def _detrended(values: np.ndarray, period: int) -> np.ndarray:
    """(rows,) -> (rows - period + 1,): value minus the centred moving average one period long."""
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    moving = (cumulative[period:] - cumulative[:-period]) / period
    half = period // 2
    return values[half:half + moving.shape[0]] - moving


def test_period(values: np.ndarray, name: str, interval_seconds: float) -> PeriodTest:
    lag = int(round(PERIODS_SECONDS[name] / interval_seconds))
    if lag < 4:
        return PeriodTest(name, lag, False, f"interval {interval_seconds:g} s gives {lag} samples a period: too coarse")
    if values.shape[0] < MIN_PERIODS * lag:
        return PeriodTest(name, lag, False, f"training part covers {values.shape[0] / lag:.1f} periods of {lag} "
                                            f"samples (< {MIN_PERIODS}): not tested")
    x = _detrended(values, lag)
    acf = _acf(x, lag + lag // 4)
    at = float(acf[lag])
    beside = float(max(acf[lag - lag // 4:lag - lag // 8 + 1].max(), acf[lag + lag // 8:lag + lag // 4 + 1].max()))
    bound = max(MIN_PEAK, 3 * np.sqrt(2.0 / x.shape[0]))
    found = at - beside >= bound and at > 0
    verdict = "found" if found else "not found"
    reason = (f"{verdict}: autocorrelation at {lag} samples {at:.2f} vs at most {beside:.2f} 1/8-1/4 period beside "
              f"(peak {at - beside:+.2f}, needs >= {bound:.2f})")
    return PeriodTest(name, lag, bool(found), reason, round(at, 4), round(beside, 4))


def profile_series(timestamps: np.ndarray, values: np.ndarray) -> DataProfile:
    """timestamps (rows,) epoch seconds, values (rows,) of the first target, training part only."""
    diffs = np.diff(timestamps)
    interval = float(np.median(diffs)) if diffs.size else 1.0
    interval = interval if interval > 0 else 1.0
    long_steps = diffs[diffs > GAP_FACTOR * interval]
    periods = tuple(test_period(values, name, interval) for name in PERIODS_SECONDS)
    return DataProfile(rows=int(values.shape[0]), interval_seconds=interval, gaps=int(long_steps.size),
                       largest_gap_seconds=float(long_steps.max()) if long_steps.size else 0.0, periods=periods)


def choose_window(profile: DataProfile) -> tuple[int, str]:
    """Training window: one daily period (the shortest rhythm the model must carry in its
    state), capped to [32, 256] steps; training cost per epoch does not depend on it."""
    found = profile.found()
    if not found:
        return WINDOW_DEFAULT, f"no calendar period found: default {WINDOW_DEFAULT}"
    lag = min(p.lag_samples for p in found)
    window = int(min(max(lag, WINDOW_MIN), WINDOW_MAX))
    return window, f"one {found[0].name} period ({lag} samples) capped to [{WINDOW_MIN}, {WINDOW_MAX}]"


def describe(profile: DataProfile) -> list[str]:
    gap = (f"{profile.gaps} gaps (> {GAP_FACTOR:g} intervals), largest {profile.largest_gap_seconds:g} s"
           if profile.gaps else "no gaps")
    lines = [f"sampling: median interval {profile.interval_seconds:g} s over {profile.rows} training rows; {gap}"]
    lines += [f"{p.name} period: {p.reason}" for p in profile.periods]
    return lines
