"""Anomaly scores of statecast on the four development sources (nab-dev, smap, msl, skab).

`statecast score` runs once per model per file (cached by manifest sha256, bench/anomaly_runs.py);
the anomaly stage is then replayed in-process for any settings dict (over the model manifest's
settings), for float32, int8 and persistence (expected = the previous value, same settings),
and scored NAB's way and the user's way (bench/anomaly_scoring.py), per source and pooled.

    python bench/anomaly_eval.py [--devcorpus PATH] [--work-dir /tmp/statecast-anomaly]
                                 [--write-docs docs/anomaly.md]

From Python (the lead's selection loop, bench/loso.py):

    table = evaluate([{}, {"refractory_steps": 250}])      # [] = the manifest's own settings
    pick(table, config=1, detector="float32", way="user", profile="standard", source="smap")
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anomaly_runs  # noqa: E402
import anomaly_scoring  # noqa: E402
import anomaly_sources  # noqa: E402

ROOT = anomaly_sources.ROOT
MODELS = {"float32": ROOT / "models" / "default", "int8": ROOT / "models" / "default-int8"}
PERSISTENCE = "persistence"
DETECTORS = ("float32", "int8", PERSISTENCE)
PERSISTENCE_MODEL = "float32"      # whose scorer construction (prior, normalisation) persistence uses
_CORPORA: dict = {}


def corpus_for(sources=anomaly_sources.SOURCES, devcorpus=anomaly_sources.DEFAULT_DEVCORPUS,
               nab_dir=anomaly_sources.NAB_DIR) -> anomaly_scoring.Corpus:
    """The prepared corpus (weights per profile), built once per process."""
    key = (tuple(sources), str(devcorpus), str(nab_dir))
    if key not in _CORPORA:
        _CORPORA[key] = anomaly_scoring.Corpus.load(anomaly_sources.all_files(sources, devcorpus, nab_dir))
    return _CORPORA[key]


def _replay_task(task: tuple) -> tuple:
    """Worker: one (config, detector, file) replay -> (task id, scores, alerts)."""
    task_id, model_dir, npz_path, settings, persistence = task
    factory = anomaly_runs.scorer_factory(model_dir, settings)
    scores, alerts = anomaly_runs.replay(anomaly_runs.load_scored(str(npz_path)), factory, persistence)
    return task_id, scores.astype(np.float64), alerts


def _exact_task(task: tuple) -> tuple:
    key, model_dir, npz_path = task
    return key, anomaly_runs.exactness(anomaly_runs.load_scored(str(npz_path)),
                                       anomaly_runs.scorer_factory(model_dir))


def scored_files(corpus, work_dir, models=MODELS, jobs: int = 2) -> dict[str, dict[str, Path]]:
    """{model name: {file key: npz}}: runs `statecast score` where the cache lacks a file."""
    return {name: anomaly_runs.ensure_scored(d, corpus.files, work_dir, jobs) for name, d in models.items()}


def replay_all(settings_list, corpus, npz, detectors=DETECTORS, models=MODELS, jobs: int = 2):
    """{(config, detector): ({key: scores}, {key: alerts})} over a process pool of `jobs`."""
    tasks = []
    sizes = {f.key: f.path.stat().st_size for f in corpus.files}
    for c, settings in enumerate(settings_list):
        for d in detectors:
            model = PERSISTENCE_MODEL if d == PERSISTENCE else d
            for f in corpus.files:
                tasks.append(((c, d, f.key), str(models[model]), str(npz[model][f.key]),
                              dict(settings), d == PERSISTENCE))
    tasks.sort(key=lambda t: -sizes[t[0][2]])               # largest first: workers end together
    out = {(c, d): ({}, {}) for c in range(len(settings_list)) for d in detectors}
    if jobs <= 1:
        results = map(_replay_task, tasks)
    else:
        pool = ProcessPoolExecutor(max_workers=jobs)
        results = pool.map(_replay_task, tasks, chunksize=4)
    for (c, d, key), scores, alerts in results:
        out[(c, d)][0][key], out[(c, d)][1][key] = scores, alerts
    if jobs > 1:
        pool.shutdown()
    return out


def check_exact(corpus, npz, models=MODELS, jobs: int = 2) -> dict[str, float]:
    """Per model: largest |replay - CLI| anomaly score over all files, with the manifest settings."""
    worst = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for name, model_dir in models.items():
            tasks = [(f.key, str(model_dir), str(npz[name][f.key])) for f in corpus.files]
            worst[name] = max(d for _, d in pool.map(_exact_task, tasks, chunksize=4))
    return worst


def evaluate(settings_list, sources=anomaly_sources.SOURCES, detectors=DETECTORS,
             devcorpus=anomaly_sources.DEFAULT_DEVCORPUS, work_dir=anomaly_runs.DEFAULT_WORK_DIR,
             models=MODELS, jobs: int = 2, references: bool = False, keep_per_file: bool = False) -> list[dict]:
    """Table rows {config, settings, detector, source, way, profile, score, threshold, raw, tp,
    fp, fn, n_windows}: one per settings dict x detector x file set (each source, "pooled",
    "without:<s>") x way x profile. settings are dicts over each model manifest's own settings.
    references: also NAB's reference detectors (config None, NAB's ways only)."""
    corpus = corpus_for(sources, devcorpus)
    npz = scored_files(corpus, work_dir, {m: models[m] for m in _needed_models(detectors)}, jobs)
    replays = replay_all(settings_list, corpus, npz, detectors, models, jobs)
    table = []
    for (c, d), (scores, alerts) in replays.items():
        for row in anomaly_scoring.score_detector(corpus, scores, alerts, keep_per_file):
            table.append({"config": c, "settings": dict(settings_list[c]), "detector": d, **row})
    if references:
        table += reference_rows(corpus, devcorpus, keep_per_file)
    _log_configs(work_dir, settings_list)
    return table


def _needed_models(detectors) -> list[str]:
    return sorted({PERSISTENCE_MODEL if d == PERSISTENCE else d for d in detectors})


def reference_rows(corpus, devcorpus, keep_per_file: bool = False) -> list[dict]:
    """NAB's detectors where their per-row scores are stored, each source separately."""
    table = []
    for source in corpus.sources:
        sub = corpus.subset((source,))
        for detector in anomaly_sources.reference_detectors(source):
            scores = anomaly_scoring.reference_scores(sub, detector, devcorpus)
            rows = anomaly_scoring.score_detector(sub, scores, None, keep_per_file)
            table += [{"config": None, "settings": None, "detector": detector, **r}
                      for r in rows if r["way"] == "nab" and r["source"] == source]
    return table


def _log_configs(work_dir, settings_list) -> None:
    """Every distinct settings dict ever evaluated under work_dir (for 'configurations tried')."""
    path = Path(work_dir) / "configs-tried.jsonl"
    seen = set(path.read_text().splitlines()) if path.exists() else set()
    new = [json.dumps(s, sort_keys=True) for s in settings_list]
    with open(path, "a", encoding="utf-8") as handle:
        for line in dict.fromkeys(new):
            if line not in seen:
                handle.write(line + "\n")


def configs_tried(work_dir=anomaly_runs.DEFAULT_WORK_DIR) -> int:
    path = Path(work_dir) / "configs-tried.jsonl"
    return len(set(path.read_text().splitlines())) if path.exists() else 0


def pick(table, **where) -> dict:
    """The one row matching every key=value (e.g. config=0, detector="int8", source="msl")."""
    found = [r for r in table if all(r.get(k) == v for k, v in where.items())]
    if len(found) != 1:
        raise KeyError(f"{len(found)} rows match {where}")
    return found[0]


FRESH_CHECK_FILES = ("nab-dev/realKnownCause/rogue_agent_key_hold.csv",
                     "nab-dev/artificialWithAnomaly/art_increase_spike_density.csv")


def _check_fresh(corpus, npz, work_dir) -> dict[str, float]:
    """The CLI rerun now on two short files: is the forecast cache current, is the replay exact?"""
    import tempfile
    files = [f for f in corpus.files if f.key in FRESH_CHECK_FILES]
    out = {}
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        for name, model_dir in MODELS.items():
            worst = anomaly_runs.check_fresh(model_dir, files, npz[name], scratch)
            out[f"{name}, fresh CLI run on 2 files: forecast vs cache"] = worst["forecast"]
            out[f"{name}, fresh CLI run on 2 files: replay vs CLI"] = worst["replay"]
    if any(v != 0.0 for v in out.values()):
        print(f"WARNING: {out}: the forecast cache is stale (delete {work_dir}/<sha12>) or the replay "
              "is not exact", file=sys.stderr)
    return out


def _cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children (the pool's workers)."""
    import resource
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def main(argv: list[str] | None = None) -> None:
    import anomaly_report
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devcorpus", default=str(anomaly_sources.DEFAULT_DEVCORPUS))
    parser.add_argument("--work-dir", default=str(anomaly_runs.DEFAULT_WORK_DIR))
    parser.add_argument("--settings", default="{}", help="JSON settings dict over the manifests' own")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--write-docs", help="Markdown file whose generated block is replaced")
    parser.add_argument("--json", help="write the table rows here (default <work-dir>/baseline.json, "
                        "read by bench/anomaly_plots.py)")
    args = parser.parse_args(argv)
    settings = json.loads(args.settings)
    seconds = {}
    started = time.perf_counter()
    corpus = corpus_for(anomaly_sources.SOURCES, args.devcorpus)
    npz = scored_files(corpus, args.work_dir, MODELS, args.jobs)
    seconds["`statecast score` (cached after the first run)"] = time.perf_counter() - started
    started = time.perf_counter()
    exact = {f"{name}, replay vs cached CLI scores, 147 files": worst
             for name, worst in check_exact(corpus, npz, MODELS, args.jobs).items()}
    exact.update(_check_fresh(corpus, npz, args.work_dir))
    seconds["exactness checks"] = time.perf_counter() - started
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    table = evaluate([settings], devcorpus=args.devcorpus, work_dir=args.work_dir, jobs=args.jobs)
    seconds["evaluate() of one settings dict (float32 + int8 + persistence, replay + scoring)"] = \
        time.perf_counter() - started
    seconds["the same in CPU time (all processes)"] = _cpu_seconds() - cpu_started
    table += reference_rows(corpus, args.devcorpus)
    detectors = [*DETECTORS, anomaly_sources.CAD_OSE, *anomaly_sources.NAB_REFERENCE_DETECTORS]
    block = anomaly_report.baseline_markdown(table, detectors, seconds, exact, settings)
    print(block)
    Path(args.json or Path(args.work_dir) / "baseline.json").write_text(json.dumps(table, indent=1),
                                                                         encoding="utf-8")
    if args.write_docs:
        anomaly_report.write_block(args.write_docs, block)


if __name__ == "__main__":
    main()
