"""The NAB evaluation path on a few short development files (the full run is bench/nab_eval.py)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import nab_eval  # noqa: E402
import nab_scorer  # noqa: E402

MODEL = ROOT / "models" / "default"
SHORT_FILES = ("realKnownCause/rogue_agent_key_hold.csv", "artificialWithAnomaly/art_daily_jumpsup.csv")


@pytest.fixture(scope="module")
def files():
    every = nab_eval.development_files()
    assert len(every) == 18
    return {key: every[key] for key in SHORT_FILES}


@pytest.fixture(scope="module")
def scored(files, tmp_path_factory):
    work = tmp_path_factory.mktemp("nab")
    return nab_eval.run_model(MODEL, work, files, in_process=True)


def test_one_output_row_per_input_row_with_scores_in_unit_interval(files, scored):
    for key, path in scored.items():
        data = nab_eval.read_scored(path)
        n_rows = sum(1 for _ in open(files[key])) - 1
        assert len(data["timestamp"]) == n_rows
        # models/default has a forecast guard: score writes what each row was scored against
        assert open(path).readline().strip() == "timestamp,value,forecast_1,expected,anomaly_score,alert"
        scores = data["anomaly_score"]
        defined = scores[~np.isnan(scores)]
        assert len(defined) > 0.9 * n_rows                      # only the first steps are undefined
        assert np.all((defined >= 0.0) & (defined <= 1.0))
        assert np.isfinite(data["forecast_1"]).all()


def test_scoring_runs_for_every_profile(files, scored):
    windows = nab_scorer.load_windows(nab_eval.NAB_DIR)
    profiles = nab_eval.score_profiles(nab_eval.nab_results(scored), {k: windows[k] for k in files})
    assert set(profiles) == set(nab_scorer.PROFILES)
    for result in profiles.values():
        assert math.isfinite(result["score"]) and -1000.0 < result["score"] <= 100.0
        assert result["tp"] + result["fn"] == 3                  # 2 + 1 labelled windows
    table = nab_eval.table({"statecast default": profiles})
    assert table.count("\n") == 2 and "| statecast default |" in table


def test_replay_reproduces_what_score_wrote(scored):
    """The tuning shortcut (anomaly settings replayed from value and forecast) is the engine's path."""
    from statecast.daemon.model.step_model import StepModel
    from statecast.daemon.service.runtime_setup import anomaly_factory_for
    factory = anomaly_factory_for(StepModel(str(MODEL)))
    for path in scored.values():
        data = nab_eval.read_scored(path)
        replayed, events = nab_eval.replay_anomaly(data, factory)
        assert np.array_equal(np.isnan(replayed), np.isnan(data["anomaly_score"]))
        assert np.allclose(np.nan_to_num(replayed), np.nan_to_num(data["anomaly_score"]), rtol=0, atol=1e-12)
        assert set(events) <= {None, "alert", "clear"}


def test_replay_of_a_repeated_timestamp_matches_score_and_the_other_harness(files, tmp_path):
    """A row whose timestamp repeats the last accepted one: score writes empty cells (the engine
    drops it), and both replays (this one and bench/anomaly_runs.py's) leave its score NaN and
    agree with score everywhere else."""
    import anomaly_runs
    from statecast.daemon.model.step_model import StepModel
    from statecast.daemon.service.runtime_setup import anomaly_factory_for
    lines = Path(files[SHORT_FILES[0]]).read_text().splitlines()
    lines.insert(300, lines[299])                        # data row 298 again, as data row 299 (0-based)
    repeated, out = tmp_path / "repeated.csv", tmp_path / "repeated_scored.csv"
    repeated.write_text("\n".join(lines) + "\n")
    nab_eval.score_file_cli(MODEL, repeated, out)
    data = nab_eval.read_scored(out)
    written = data["anomaly_score"]
    assert math.isnan(written[299]) and math.isfinite(written[298]) and math.isfinite(written[300])
    factory = anomaly_factory_for(StepModel(str(MODEL)))
    replayed, _ = nab_eval.replay_anomaly(data, factory)
    anomaly_runs.parse_scored(out, tmp_path / "repeated.npz")
    other, _ = anomaly_runs.replay(anomaly_runs.load_scored(str(tmp_path / "repeated.npz")), factory)
    for scores in (replayed, other):
        assert np.array_equal(np.isnan(scores), np.isnan(written))
        assert np.allclose(np.nan_to_num(scores), np.nan_to_num(written), rtol=0, atol=1e-12)


def test_command_line_path_matches_in_process(files, scored, tmp_path):
    key = SHORT_FILES[0]
    out = tmp_path / "cli.csv"
    nab_eval.score_file_cli(MODEL, files[key], out)
    assert out.read_text() == Path(scored[key]).read_text()


def test_docs_block_is_replaced_not_appended(tmp_path):
    doc = tmp_path / "nab.md"
    doc.write_text("# NAB\n\nintro\n")
    rows = {"x": {p: {"score": 1.0, "tp": 1, "fp": 0, "fn": 0, "threshold": 0.5,
                      "per_file": {"f.csv": {"score": 1.0, "tp": 1, "fp": 0, "fn": 0}}} for p in nab_scorer.PROFILES}}
    nab_eval.write_docs(doc, rows, "x", {"x": 1.0})
    nab_eval.write_docs(doc, rows, "x", {"x": 2.0})
    text = doc.read_text()
    assert text.startswith("# NAB\n\nintro\n") and text.count(nab_eval.DOC_BEGIN) == 1
    assert "2 s" in text and "1 s" not in text


@pytest.mark.slow
def test_full_development_subset_scores_above_numenta(tmp_path):
    """The headline number in docs/nab.md (all 18 files, one configuration): standard > 61.3."""
    profiles = nab_eval.evaluate(MODEL, tmp_path, in_process=True)
    assert profiles["standard"]["score"] > 61.3
