"""bench/cad_ose_range.py without NAB's code: the range rules it builds CAD OSE with, and the
left-out scoring (θ chosen on the other sources) it reports. The CAD OSE runs themselves need a
NAB checkout and are not part of `make test`; docs/anomaly.md has their figures."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import anomaly_scoring  # noqa: E402
import anomaly_sources  # noqa: E402
import cad_ose_range  # noqa: E402
import nab_scorer  # noqa: E402


def test_whole_file_range_sees_the_future_and_probation_ranges_do_not():
    # 1,000 rows: probation is 150 rows of 0..1, then an excursion to 9 the labels would call anomalous.
    values = np.concatenate([np.linspace(0.0, 1.0, 150), np.full(850, 0.5)])
    values[600] = 9.0
    assert cad_ose_range.value_range(values, "whole-file") == (0.0, 9.0, False)
    assert cad_ose_range.value_range(values, "probation") == (0.0, 1.0, True)
    assert cad_ose_range.value_range(values, "probation-x3") == (-1.0, 2.0, True)
    assert cad_ose_range.value_range(values, "probation-x11") == (-5.0, 6.0, True)
    # NAB's probation is capped at 750 rows: a long file's range comes from its first 750 only.
    long = np.zeros(10_000)
    long[750] = 5.0
    assert cad_ose_range.value_range(long, "probation")[:2] == (0.0, 0.0)
    with pytest.raises(ValueError, match="unknown range rule"):
        cad_ose_range.value_range(values, "oracle")


@pytest.fixture(scope="module")
def two_source_corpus():
    """Three nab-dev files (shipped in data/nab) split into two made-up sources a and b."""
    every = {f.key: f for f in anomaly_sources.all_files(("nab-dev",))}
    keys = ("nab-dev/artificialWithAnomaly/art_increase_spike_density.csv",
            "nab-dev/realKnownCause/ec2_request_latency_system_failure.csv",
            "nab-dev/realKnownCause/rogue_agent_key_hold.csv")
    sources = ("a", "a", "b")
    return anomaly_scoring.Corpus.load([dataclasses.replace(every[k], source=s) for k, s in zip(keys, sources)])


def test_left_out_score_uses_the_threshold_chosen_on_the_other_sources(two_source_corpus):
    corpus = two_source_corpus
    rng = np.random.default_rng(7)
    scores = {f.key: np.round(rng.random(corpus.n_rows(f.key)), 2) for f in corpus.files}
    for profile in anomaly_scoring.PROFILES:
        result = anomaly_scoring.at_theta_chosen_without(corpus, scores, profile)
        for left_out, others in (("b", "a"), ("a", "b")):
            prepared = {k: corpus.rows[profile][k].with_scores(scores[k]) for k in corpus.by_source[others]}
            theta = nab_scorer.score_rows(prepared, profile)["threshold"]
            on_left_out = {k: corpus.rows[profile][k].with_scores(scores[k]) for k in corpus.by_source[left_out]}
            expected = nab_scorer.score_rows(on_left_out, profile, theta)
            assert result[left_out]["threshold"] == theta
            assert result[left_out]["score"] == pytest.approx(expected["score"], abs=1e-9)
            assert (result[left_out]["tp"], result[left_out]["fp"]) == (expected["tp"], expected["fp"])
    # And it is not the source's own optimum: on b alone NAB's sweep picks another θ here.
    own_b = nab_scorer.score_rows({k: corpus.rows["standard"][k].with_scores(scores[k])
                                   for k in corpus.by_source["b"]}, "standard")
    assert anomaly_scoring.at_theta_chosen_without(corpus, scores, "standard")["b"]["threshold"] != own_b["threshold"]
