"""The anomaly evaluation harness (bench/anomaly_eval.py) on repository data only (data/nab):
the replay is exact against `statecast score`, the fast pooled scorer is bench/nab_scorer.py's
rules, leave-one-source-out picks what its criterion says, and the quality gate separates the
shipped models from persistence and from a random-score detector."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import anomaly_eval  # noqa: E402
import anomaly_runs  # noqa: E402
import anomaly_scoring  # noqa: E402
import anomaly_sources  # noqa: E402
import loso  # noqa: E402
import nab_scorer  # noqa: E402
import nested_selection  # noqa: E402

# The quality gate (issue 15): a small fixed set of development files (9,946 rows, so the CLI
# runs in seconds; 6 labelled windows, two real streams) and a floor on NAB's standard score,
# θ optimised over the set (the most favourable choice for every detector). Chosen at b4ce124
# among the 84 three-file sets of short nab-dev files with windows, as the set where the
# shipped models lead persistence and random scores by the widest margin; measured there:
# float32 65.8, int8 63.9, persistence 55.6, random (seeds 0-9) 0.0-38.5, and the floor was 60.
# With the stuck signal shipped (1a4e5fc), every detector gains on these files
# (rogue_agent_key_hold freezes): float32 76.1, int8 76.1, persistence 66.0, random unchanged.
# The floor moved up with them, by the same rule: 71 sits between int8 and persistence, ~5
# points from each, so a change that makes a shipped model no better than persistence here fails.
GATE_FILES = ("nab-dev/artificialWithAnomaly/art_increase_spike_density.csv",
              "nab-dev/realKnownCause/ec2_request_latency_system_failure.csv",
              "nab-dev/realKnownCause/rogue_agent_key_hold.csv")
GATE_FLOOR = 71.0


@pytest.fixture(scope="module")
def gate_corpus():
    every = {f.key: f for f in anomaly_sources.all_files(("nab-dev",))}
    assert len(every) == 18
    return anomaly_scoring.Corpus.load([every[k] for k in GATE_FILES])


@pytest.fixture(scope="module")
def gate_npz(gate_corpus, tmp_path_factory):
    """`statecast score` (the CLI, as a user runs it) on the gate files, both shipped models."""
    work = tmp_path_factory.mktemp("anomaly")
    return anomaly_eval.scored_files(gate_corpus, work), work


def test_replay_is_exact_against_the_cli(gate_corpus, gate_npz):
    npz, _ = gate_npz
    for name, model_dir in anomaly_eval.MODELS.items():
        factory = anomaly_runs.scorer_factory(model_dir)
        for f in gate_corpus.files:
            scored = anomaly_runs.load_scored(str(npz[name][f.key]))
            assert np.isfinite(scored["anomaly_score"]).sum() > 0.9 * len(scored["value"])
            # Bit-exact: the CLI writes repr() precision and the replay runs the same scorer code.
            assert anomaly_runs.exactness(scored, factory) == 0.0, (name, f.key)


def test_replay_notices_other_settings(gate_corpus, gate_npz):
    """The exactness check can fail: other settings give other scores than the CLI wrote."""
    npz, _ = gate_npz
    scored = anomaly_runs.load_scored(str(npz["float32"][GATE_FILES[0]]))
    other = anomaly_runs.scorer_factory(anomaly_eval.MODELS["float32"], {"short_window": 10})
    assert anomaly_runs.exactness(scored, other) > 1e-3


def test_persistence_expects_the_previous_value():
    scored = {"value": np.array([1.0, 2.0, 4.0]), "forecast_1": np.array([9.0, 9.0, 9.0]),
              "anomaly_score": np.full(3, np.nan), "stamps": np.array([0.0, 60.0, 120.0])}
    seen = []

    class Recorder:
        def update(self, actual, expected, ts):
            seen.append((actual, expected, ts))
            return 0.5, None
    anomaly_runs.replay(scored, Recorder, persistence=True)
    assert seen == [(2.0, 1.0, 60.0), (4.0, 2.0, 120.0)]
    seen.clear()
    anomaly_runs.replay(scored, Recorder)
    assert seen == [(2.0, 9.0, 60.0), (4.0, 9.0, 120.0)]


def test_pooled_scorer_matches_nab_scorer(gate_corpus):
    """The fast path (one sort per detector, file sets as masks) against nab_scorer.score_rows."""
    rng = np.random.default_rng(3)
    scores = {f.key: np.round(rng.random(gate_corpus.n_rows(f.key)), 2) for f in gate_corpus.files}
    alerts = {k: v >= 0.99 for k, v in scores.items()}
    rows = anomaly_scoring.score_detector(gate_corpus, scores, alerts)
    for row in rows:
        source = row["source"]
        per_row = alerts if row["way"] == "user" else scores
        prepared = {k: gate_corpus.rows[row["profile"]][k].with_scores(per_row[k].astype(float))
                    for k in gate_corpus.by_source["nab-dev"]}
        theta = 0.5 if row["way"] == "user" else None
        expected = nab_scorer.score_rows(prepared, row["profile"], theta)
        assert source in ("nab-dev", "pooled")
        assert row["score"] == pytest.approx(expected["score"], abs=1e-9)
        assert (row["tp"], row["fp"], row["fn"]) == (expected["tp"], expected["fp"], expected["fn"])


def _fake_table(scores: dict) -> list[dict]:
    """evaluate()-shaped rows from {(config, set): score} (user and nab ways equal)."""
    return [{"config": c, "settings": {"k": c}, "detector": "float32", "source": s, "way": way,
             "profile": "standard", "score": v} for (c, s), v in scores.items() for way in ("user", "nab")]


def test_loso_chooses_on_the_other_sources_and_ships_the_best_worst_case():
    sources = ("a", "b")
    # config 0 is great on a, poor on b; config 1 is middling on both.
    scores = {(0, "a"): 90.0, (0, "b"): 10.0, (1, "a"): 60.0, (1, "b"): 50.0,
              (0, "without:a"): 10.0, (1, "without:a"): 50.0, (0, "without:b"): 90.0, (1, "without:b"): 60.0}
    report = loso.loso(_fake_table(scores), sources=sources)
    by = {f["left_out"]: f for f in report["folds"]}
    assert by["a"]["config"] == 1 and by["a"]["left_out_user"] == 60.0 and by["a"]["in_sample_user"] == 90.0
    assert by["b"]["config"] == 0 and by["b"]["left_out_user"] == 10.0 and by["b"]["in_sample_user"] == 50.0
    assert report["ship"]["config"] == 1 and report["ship"]["worst_source_score"] == 50.0
    assert report["configs_tried"] == 2


def test_sensitivity_variants_scale_tails_and_report_invalid_ones():
    variants = loso.scaled_settings(anomaly_eval.MODELS["float32"], {})
    by = {(k, f): v for k, f, v in variants}
    assert by[("threshold", 2.0)]["threshold"] == pytest.approx(0.994)      # tail 0.003 -> 0.006
    base = anomaly_runs.resolved_settings(anomaly_eval.MODELS["float32"], {})["refractory_steps"]
    assert by[("refractory_steps", 0.5)]["refractory_steps"] == round(base * 0.5)
    assert isinstance(by[("clear_threshold", 0.5)], dict)
    # threshold tail halved (0.9985) stays above clear_threshold, but the clear tail doubled
    # (0.98) is fine too; what cannot be built is reported with the daemon's reason.
    assert all(isinstance(v, (dict, str)) for v in by.values())
    assert "debounce_steps" in by[("debounce_steps", 0.5)]              # 1 x 0.5 rounds to 0: invalid


def _gate_score(corpus, scores: dict) -> float:
    rows = anomaly_scoring.score_detector(corpus, scores, None)
    return anomaly_eval.pick(rows, way="nab", source="pooled", profile="standard")["score"]


def test_quality_gate_shipped_models_pass_persistence_and_random_fail(gate_corpus, gate_npz):
    npz, work = gate_npz
    replays = anomaly_eval.replay_all([{}], gate_corpus, npz, jobs=1)
    measured = {d: _gate_score(gate_corpus, replays[(0, d)][0]) for d in anomaly_eval.DETECTORS}
    for seed in range(10):
        rng = np.random.default_rng(seed)
        random_scores = {f.key: rng.random(gate_corpus.n_rows(f.key)) for f in gate_corpus.files}
        measured[f"random{seed}"] = _gate_score(gate_corpus, random_scores)
    assert measured["float32"] > GATE_FLOOR and measured["int8"] > GATE_FLOOR, measured
    assert all(v < GATE_FLOOR for d, v in measured.items() if d not in ("float32", "int8")), measured


def test_window_hits_agree_with_the_scored_true_positives(gate_corpus):
    rng = np.random.default_rng(5)
    scores = {f.key: rng.random(gate_corpus.n_rows(f.key)) for f in gate_corpus.files}
    row = anomaly_eval.pick(anomaly_scoring.score_detector(gate_corpus, scores, None),
                            way="nab", source="nab-dev", profile="standard")
    hits = anomaly_scoring.window_hits(gate_corpus, scores, {"nab-dev": row["threshold"]})
    assert sum(len(h) for h in hits.values()) == row["tp"] + row["fn"] == 6
    assert sum(sum(h) for h in hits.values()) == row["tp"]


def test_nested_selection_chooses_each_fold_on_its_own_sources_only():
    """Two sources that pull refractory_steps opposite ways: "a" scores higher the longer the
    hold, "b" the shorter; the novelty signal costs "a" a point. The fold that leaves "a" out is
    judged on "b" alone and halves the hold down to the smallest value `valid` allows; the fold
    that leaves "b" out doubles it up to the largest, and drops the novelty signal. What the
    left-out source would say never enters its fold's choice."""
    start = {name: 1.0 for name in nested_selection.NUMBERS}
    start.update(threshold=0.997, refractory_steps=64, signals=["range", "novel"])

    def score_all(settings_list):
        return [{"a": s["refractory_steps"] / 10 - ("novel" in s["signals"]),
                 "b": -s["refractory_steps"] / 10} for s in settings_list]

    def valid(s):
        return 16 <= s["refractory_steps"] <= 256
    result = nested_selection.descend(score_all, start, ("a", "b"), valid, sweeps=3, sources=("a", "b"),
                                      say=lambda text: None)
    assert result["a"][0]["refractory_steps"] == 16 and result["a"][0]["signals"] == ["range", "novel"]
    assert result["b"][0]["refractory_steps"] == 256 and result["b"][0]["signals"] == ["range"]
    assert result["a"][1] == {"a": 1.6 - 1, "b": -1.6}
