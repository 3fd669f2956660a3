"""The four development sources of the anomaly evaluation, and the reference detectors on them.

- nab-dev: the repository's data/nab (18 files, windows.json; per-row numenta and
  windowedGaussian in data/nab/reference-results).
- smap, msl, skab: the development corpus (../shared/data/devcorpus by default, or --devcorpus):
  data/<source>/*.csv, labels/combined_windows.json keyed "smap/A-1.csv", and NAB's CAD OSE
  per-row scores in reference-results/contextOSE/<source>/contextOSE_<file>.csv.gz.

A file is named by its key "<source>/<relative name>" everywhere in the harness
("nab-dev/realKnownCause/nyc_taxi.csv", "smap/A-1.csv"). Nothing here reads a model.
"""
from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NAB_DIR = ROOT / "data" / "nab"
DEFAULT_DEVCORPUS = ROOT.parent / "shared" / "data" / "devcorpus"
DEVCORPUS_SOURCES = ("smap", "msl", "skab")
SOURCES = ("nab-dev", *DEVCORPUS_SOURCES)
NAB_REFERENCE_DETECTORS = ("numenta", "windowedGaussian")
CAD_OSE = "contextOSE"

# CAD OSE on nab-dev, only as published numbers (reference-scores.md, standard profile): its
# per-row nab-dev results are not stored. Per-source θ, and at the pooled-147 θ; pooled-147 score.
CAD_OSE_NAB_DEV_TABLE = {"source_theta": 49.6, "pooled_theta": 48.5, "pooled_147": 68.9}


@dataclass(frozen=True)
class DataFile:
    key: str                          # "<source>/<name>", unique over all sources
    source: str                       # one of SOURCES
    path: Path                        # the CSV (timestamp,value)
    windows: tuple[tuple[str, str], ...]  # labelled windows as NAB timestamps


def _windows(path: Path) -> dict[str, tuple[tuple[str, str], ...]]:
    with open(path, encoding="utf-8") as handle:
        return {k: tuple((w[0], w[1]) for w in v) for k, v in json.load(handle).items()}


def nab_dev_files(nab_dir=NAB_DIR) -> list[DataFile]:
    windows = _windows(Path(nab_dir) / "windows.json")
    files = []
    for path in sorted(Path(nab_dir, "data").glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        files.append(DataFile(f"nab-dev/{name}", "nab-dev", path, windows.get(name, ())))
    return files


def devcorpus_files(devcorpus, source: str) -> list[DataFile]:
    root = Path(devcorpus)
    windows = _windows(root / "labels" / "combined_windows.json")
    paths = sorted((root / "data" / source).glob("*.csv"))
    if not paths:
        raise FileNotFoundError(f"{root / 'data' / source}: no CSV files (is --devcorpus right?)")
    return [DataFile(f"{source}/{p.name}", source, p, windows.get(f"{source}/{p.name}", ())) for p in paths]


def all_files(sources=SOURCES, devcorpus=DEFAULT_DEVCORPUS, nab_dir=NAB_DIR) -> list[DataFile]:
    """Every file of the given sources, in source order then name order."""
    files = []
    for source in sources:
        files += nab_dev_files(nab_dir) if source == "nab-dev" else devcorpus_files(devcorpus, source)
    return files


def read_score_csv(path) -> tuple[list[str], np.ndarray]:
    """timestamp,anomaly_score CSV (optionally .gz) -> (timestamps, scores)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        rows = [(r["timestamp"], float(r["anomaly_score"])) for r in csv.DictReader(handle)]
    return [t for t, _ in rows], np.array([s for _, s in rows], np.float64)


def reference_path(data_file: DataFile, detector: str, devcorpus=DEFAULT_DEVCORPUS,
                   nab_dir=NAB_DIR) -> Path | None:
    """Where a reference detector's per-row scores for this file are stored (None: not stored)."""
    name = data_file.key.split("/", 1)[1]
    if data_file.source == "nab-dev":
        if detector not in NAB_REFERENCE_DETECTORS:
            return None
        folder, base = name.split("/")
        return Path(nab_dir) / "reference-results" / detector / folder / f"{detector}_{base}"
    if detector != CAD_OSE:
        return None
    return Path(devcorpus) / "reference-results" / CAD_OSE / data_file.source / f"{CAD_OSE}_{Path(name).stem}.csv.gz"


def reference_detectors(source: str) -> tuple[str, ...]:
    return NAB_REFERENCE_DETECTORS if source == "nab-dev" else (CAD_OSE,)
