"""NAB scores of per-row detector output over the development sources, both ways.

- "nab": NAB's way, one θ optimised on the scored files themselves (per source; one θ over
  all 147 files for "pooled"; one θ over the three other sources for "without:<source>").
- "nab_pooled_theta": each source scored at the θ optimised over all 147 files (NAB's
  published single-threshold figure, split by source).
- "user": the user's way, detections = exactly the rows where the scorer emitted an "alert"
  event (what a subscriber receives); no θ is chosen, the alert threshold is a setting.

Rules as NAB v1.1 (bench/nab_scorer.py), probation included. Undefined scores count as 0.
The weights of every file and profile are computed once (Corpus) and reused for every detector.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import anomaly_sources
import nab_scorer

PROFILES = tuple(nab_scorer.PROFILES)
WAYS = ("nab", "nab_pooled_theta", "user")


def file_sets(sources) -> dict[str, tuple[str, ...]]:
    """Named sets of sources: each source, "pooled" (all), and "without:<s>" (the other ones)."""
    sets = {s: (s,) for s in sources}
    sets["pooled"] = tuple(sources)
    if len(sources) > 1:
        sets.update({f"without:{s}": tuple(o for o in sources if o != s) for s in sources})
    return sets


@dataclass
class Corpus:
    """The files of the evaluated sources with NAB's row weights per profile (no scores yet)."""
    files: list
    rows: dict = field(default_factory=dict)          # profile -> {key: FileRows}
    by_source: dict = field(default_factory=dict)     # source -> [keys]

    @property
    def pooled(self) -> "Pooled":
        if "_pooled" not in self.__dict__:
            self.__dict__["_pooled"] = Pooled.of(self)
        return self.__dict__["_pooled"]

    @classmethod
    def load(cls, files) -> "Corpus":
        corpus = cls(list(files))
        times = {f.key: nab_scorer.parse_times(_timestamps(f.path)) for f in corpus.files}
        for profile in PROFILES:
            corpus.rows[profile] = {f.key: nab_scorer.file_rows(times[f.key], None, list(f.windows), profile)
                                    for f in corpus.files}
        for f in corpus.files:
            corpus.by_source.setdefault(f.source, []).append(f.key)
        return corpus

    def subset(self, sources) -> "Corpus":
        """The same prepared rows, restricted to some sources."""
        keep = [f for f in self.files if f.source in sources]
        return Corpus(keep, {p: {f.key: rows[f.key] for f in keep} for p, rows in self.rows.items()},
                      {s: self.by_source[s] for s in sources})

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.by_source)

    def n_rows(self, key: str) -> int:
        r = self.rows[PROFILES[0]][key]
        return r.start + len(r.weights)


def _timestamps(path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        next(handle)
        return [line.split(",", 1)[0] for line in handle if line.strip()]


@dataclass
class Pooled:
    """All files' scorable rows end to end (corpus file order), with window ids unique over the
    corpus, so that every file set is a row mask and one sort per detector serves them all."""
    keys: list
    file_of_row: np.ndarray      # (rows,) file index
    group: np.ndarray            # (rows,) corpus-wide window id, or FP_GROUP
    weights: dict                # profile -> (rows,)
    window_file: np.ndarray      # (windows,) file index of each window
    starts: np.ndarray           # (files,) probation rows of each file (its scores start there)

    @classmethod
    def of(cls, corpus: "Corpus") -> "Pooled":
        keys = [f.key for f in corpus.files]
        first = [corpus.rows[PROFILES[0]][k] for k in keys]
        _, _, group = nab_scorer.pooled_rows(first)
        file_of_row = np.repeat(np.arange(len(keys)), [len(r.weights) for r in first])
        inside = group != nab_scorer.FP_GROUP
        # Dense window ids: a window lying in probation has no rows and leaves a gap.
        windows, group[inside] = np.unique(group[inside], return_inverse=True)
        window_file = np.zeros(len(windows), np.int64)
        window_file[group[inside]] = file_of_row[inside]
        weights = {p: np.concatenate([corpus.rows[p][k].weights for k in keys]) for p in PROFILES}
        return cls(keys, file_of_row, group, weights, window_file, np.array([r.start for r in first]))

    def scores_of(self, per_row: dict[str, np.ndarray]) -> np.ndarray:
        """(rows,) pooled scores from whole-file scores {key: (file rows,)}; NaN -> 0."""
        return np.nan_to_num(np.concatenate([per_row[k][s:] for k, s in zip(self.keys, self.starts)]), nan=0.0)


def _sweep(pooled: Pooled, scores, order, in_set, profile: str) -> float:
    """NAB's best θ over the rows of one file set (nab_scorer._sweep on a presorted pool)."""
    a_fn = nab_scorer.PROFILES[profile][2]
    idx = order[in_set[order]]                             # the set's rows, descending score
    s, w, g = scores[idx], pooled.weights[profile][idx], pooled.group[idx]
    inside = np.flatnonzero(g != nab_scorer.FP_GROUP)
    null_total = -a_fn * len(np.unique(g[inside]))
    delta = np.where(g == nab_scorer.FP_GROUP, w, 0.0)
    at_window = inside[np.argsort(g[inside], kind="stable")]
    for at in np.split(at_window, np.flatnonzero(np.diff(g[at_window])) + 1) if len(at_window) else []:
        best = np.maximum.accumulate(np.maximum(w[at], -a_fn))
        delta[at] = np.diff(np.concatenate([[-a_fn], best]))
    totals = null_total + np.cumsum(delta)
    last_of_tie = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    if len(last_of_tie) == 0:
        return np.inf
    best = last_of_tie[int(np.argmax(totals[last_of_tie]))]
    return float(s[best]) if totals[best] > null_total else np.inf


def _per_file_at(pooled: Pooled, scores, threshold: float, profile: str) -> dict[str, np.ndarray]:
    """Per file at one θ: raw score, TP (windows with a detection), FP rows, FN, windows."""
    a_fn = nab_scorer.PROFILES[profile][2]
    n_files, n_win = len(pooled.keys), len(pooled.window_file)
    w, g, f = pooled.weights[profile], pooled.group, pooled.file_of_row
    detects = scores >= threshold
    fp = detects & (g == nab_scorer.FP_GROUP)
    hit_rows = detects & (g != nab_scorer.FP_GROUP)
    best = np.full(n_win, -np.inf)
    np.maximum.at(best, g[hit_rows], w[hit_rows])
    hit = best > -np.inf
    windows = np.bincount(pooled.window_file, minlength=n_files)
    tp = np.bincount(pooled.window_file, weights=hit, minlength=n_files)
    raw = (np.bincount(f[fp], weights=w[fp], minlength=n_files)
           + np.bincount(pooled.window_file, weights=np.where(hit, best, -a_fn), minlength=n_files))
    return {"raw": raw, "tp": tp.astype(int), "fp": np.bincount(f[fp], minlength=n_files),
            "fn": windows - tp.astype(int), "windows": windows}


def _set_result(pooled: Pooled, parts: dict, file_mask, threshold: float, profile: str,
                keep_per_file: bool) -> dict:
    a_tp, _, a_fn = nab_scorer.PROFILES[profile]
    n_windows = int(parts["windows"][file_mask].sum())
    raw = float(parts["raw"][file_mask].sum())
    perfect, null = a_tp * n_windows, -a_fn * n_windows
    out = {"score": 100.0 * (raw - null) / (perfect - null) if n_windows else 0.0, "threshold": threshold,
           "raw": raw, "tp": int(parts["tp"][file_mask].sum()), "fp": int(parts["fp"][file_mask].sum()),
           "fn": int(parts["fn"][file_mask].sum()), "n_windows": n_windows}
    if keep_per_file:
        out["per_file"] = {pooled.keys[i]: {"score": float(parts["raw"][i]), "tp": int(parts["tp"][i]),
                                            "fp": int(parts["fp"][i]), "fn": int(parts["fn"][i])}
                           for i in np.flatnonzero(file_mask)}
    return out


def score_detector(corpus: Corpus, scores: dict[str, np.ndarray] | None,
                   alerts: dict[str, np.ndarray] | None, keep_per_file: bool = False) -> list[dict]:
    """Rows {source, way, profile, score, threshold, raw, tp, fp, fn, n_windows[, per_file]}
    for one detector's per-row scores and/or alert rows ({file key: (file rows,)})."""
    pooled = corpus.pooled
    source_of = np.array([f.source for f in corpus.files])
    sets = {name: np.isin(source_of, members) for name, members in file_sets(corpus.sources).items()}
    out = []
    pooled_scores = pooled.scores_of(scores) if scores is not None else None
    order = np.argsort(-pooled_scores, kind="stable") if scores is not None else None
    for profile in PROFILES:
        if scores is not None:
            for name, file_mask in sets.items():
                theta = _sweep(pooled, pooled_scores, order, file_mask[pooled.file_of_row], profile)
                parts = _per_file_at(pooled, pooled_scores, theta, profile)
                out.append(_row(name, "nab", profile, _set_result(pooled, parts, file_mask, theta, profile, keep_per_file)))
                if name == "pooled":
                    for source in corpus.sources:
                        result = _set_result(pooled, parts, sets[source], theta, profile, keep_per_file)
                        out.append(_row(source, "nab_pooled_theta", profile, result))
        if alerts is not None:
            fired = pooled.scores_of({k: v.astype(np.float64) for k, v in alerts.items()})
            parts = _per_file_at(pooled, fired, 0.5, profile)
            for name, file_mask in sets.items():
                out.append(_row(name, "user", profile, _set_result(pooled, parts, file_mask, 0.5, profile, keep_per_file)))
    return out


def _row(source: str, way: str, profile: str, result: dict) -> dict:
    return {"source": source, "way": way, "profile": profile, **result}


def reference_scores(corpus: Corpus, detector: str, devcorpus) -> dict[str, np.ndarray]:
    """A reference detector's per-row scores for the corpus files where they are stored."""
    out = {}
    for f in corpus.files:
        path = anomaly_sources.reference_path(f, detector, devcorpus)
        if path is None or not path.exists():
            continue
        _, scores = anomaly_sources.read_score_csv(path)
        if len(scores) != corpus.n_rows(f.key):
            raise ValueError(f"{path}: {len(scores)} scores for {corpus.n_rows(f.key)} data rows")
        out[f.key] = scores
    return out


def at_theta_chosen_without(corpus: Corpus, scores: dict[str, np.ndarray], profile: str) -> dict[str, dict]:
    """{source: result} with each source scored at the θ that NAB's sweep picks on the *other*
    sources: a detector's alert threshold chosen without the source, as a user has to choose it."""
    pooled = corpus.pooled
    pooled_scores = pooled.scores_of(scores)
    order = np.argsort(-pooled_scores, kind="stable")
    source_of = np.array([f.source for f in corpus.files])
    out = {}
    for source in corpus.sources:
        others = (source_of != source)[pooled.file_of_row]
        theta = _sweep(pooled, pooled_scores, order, others, profile)
        parts = _per_file_at(pooled, pooled_scores, theta, profile)
        out[source] = _set_result(pooled, parts, source_of == source, theta, profile, False)
    return out


def window_hits(corpus: Corpus, per_row: dict[str, np.ndarray], thresholds: dict[str, float]) -> dict[str, list[bool]]:
    """{file key: [caught?] per window after probation, in time order}: a row at or above its
    source's threshold (thresholds: {source: θ}) inside the window."""
    pooled = corpus.pooled
    scores = pooled.scores_of(per_row)
    theta = np.array([thresholds[f.source] for f in corpus.files])[pooled.file_of_row]
    inside = (pooled.group != nab_scorer.FP_GROUP) & (scores >= theta)
    caught = np.zeros(len(pooled.window_file), bool)
    caught[pooled.group[inside]] = True
    return {k: caught[pooled.window_file == i].tolist() for i, k in enumerate(pooled.keys)}
