"""The NAB scorer against the published reference results and small hand-computed corpora."""
from __future__ import annotations

import math
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
NAB_DIR = ROOT / "data" / "nab"
sys.path.insert(0, str(ROOT / "bench"))
import nab_scorer  # noqa: E402

PUBLISHED = {  # data/nab/README.md, rounded to 0.1
    "numenta": {"standard": 61.3, "reward_low_FP_rate": 54.3, "reward_low_FN_rate": 66.2},
    "windowedGaussian": {"standard": 12.1, "reward_low_FP_rate": 4.8, "reward_low_FN_rate": 16.0},
}


@pytest.fixture(scope="module")
def windows():
    return nab_scorer.load_windows(NAB_DIR)


@pytest.mark.parametrize("detector", sorted(PUBLISHED))
def test_reference_results_match_published_scores(detector, windows):
    results = nab_scorer.load_reference(NAB_DIR, detector)
    assert len(results) == 18
    for profile, expected in PUBLISHED[detector].items():
        out = nab_scorer.score_corpus(results, windows, profile)
        assert out["score"] == pytest.approx(expected, abs=0.1), profile
        assert out["tp"] + out["fn"] == 25


def _timestamps(n_rows: int) -> list[str]:
    start = datetime(2020, 1, 1)
    return [(start + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(n_rows)]


def _corpus(scores: np.ndarray, spans: list[tuple[int, int]], key: str = "f/a.csv"):
    """One file of len(scores) rows with windows over the given inclusive row ranges."""
    ts = _timestamps(len(scores))
    windows = {key: [(ts[lo] + ".000000", ts[hi] + ".000000") for lo, hi in spans]}
    return {key: (ts, np.asarray(scores, float))}, windows


def test_detection_at_window_left_edge_earns_a_tp():
    scores = np.zeros(200)  # probation: 30 rows
    scores[100] = 1.0
    results, windows = _corpus(scores, [(100, 119)])
    out = nab_scorer.score_corpus(results, windows, "standard")
    assert out["raw"] == pytest.approx(1.0)
    assert out["score"] == pytest.approx(100.0)
    assert (out["tp"], out["fp"], out["fn"]) == (1, 0, 0)


def test_later_detection_earns_less_and_after_window_penalty_grows():
    sigma = nab_scorer.scaled_sigmoid
    scores = np.zeros(200)
    scores[119] = 1.0  # the window's last row
    scores[130] = 1.0  # 11 rows past a window of R'-L' = 19
    results, windows = _corpus(scores, [(100, 119)])
    out = nab_scorer.score_corpus(results, windows, "reward_low_FP_rate", threshold=1.0)
    expected = sigma(-1 / 20) / sigma(-1.0) + 0.22 * sigma(11 / 19)
    assert out["raw"] == pytest.approx(expected)
    assert sigma(3.5) == -1.0 and sigma(0.0) == 0.0 and sigma(-1.0) == pytest.approx(0.98661, abs=1e-5)


def test_detector_that_never_fires_scores_zero():
    results, windows = _corpus(np.zeros(300), [(100, 119), (200, 219)])
    for profile in nab_scorer.PROFILES:
        out = nab_scorer.score_corpus(results, windows, profile)
        assert out["score"] == pytest.approx(0.0)
        assert out["fn"] == 2 and out["fp"] == 0


def test_perfect_detector_scores_100_in_every_profile():
    scores = np.zeros(300)
    scores[[100, 200]] = 1.0
    results, windows = _corpus(scores, [(100, 119), (200, 219)])
    for profile in nab_scorer.PROFILES:
        assert nab_scorer.score_corpus(results, windows, profile)["score"] == pytest.approx(100.0)


def test_probation_rows_and_windows_in_probation_are_ignored():
    scores = np.zeros(200)  # probation: 30 rows
    scores[[3, 10, 100]] = 1.0  # rows 3 and 10 lie in probation, so does the window (5, 12)
    results, windows = _corpus(scores, [(5, 12), (100, 119)])
    out = nab_scorer.score_corpus(results, windows, "standard")
    assert (out["tp"], out["fp"], out["fn"]) == (1, 0, 0)
    assert out["raw"] == pytest.approx(1.0) and out["score"] == pytest.approx(100.0)
    assert nab_scorer.probation_rows(22695) == 750 and nab_scorer.probation_rows(4032) == 604


def test_threshold_sweep_matches_brute_force_over_pooled_files():
    rng = np.random.default_rng(7)
    results, windows = {}, {}
    for k, spans in enumerate([[(80, 99)], [], [(60, 70), (150, 180)]]):
        scores = np.round(rng.random(220), 2)  # ties on purpose
        for lo, hi in spans:
            scores[lo + 3:hi] = np.maximum(scores[lo + 3:hi], rng.random(hi - lo - 3))
        r, w = _corpus(scores, spans, key=f"f/{k}.csv")
        results.update(r)
        windows.update(w)
    for profile in nab_scorer.PROFILES:
        best = nab_scorer.score_corpus(results, windows, profile)
        candidates = np.unique(np.concatenate([s for _, s in results.values()]))
        brute = max(nab_scorer.score_corpus(results, windows, profile, threshold=t)["raw"]
                    for t in [*candidates, math.inf])
        assert best["raw"] == pytest.approx(brute)
        rows = [nab_scorer.file_rows(*results[k], windows[k], profile) for k in sorted(results)]
        assert nab_scorer._sweep(rows, nab_scorer.PROFILES[profile][2])[1] == pytest.approx(brute)
