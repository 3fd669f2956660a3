"""bench/recipe_selection.py's rule without training anything: each fold chooses on its own
sources only, by the worst of them, then their mean."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import recipe_selection  # noqa: E402

SOURCES = ("nab-dev", "smap", "msl", "skab")


def test_each_fold_chooses_on_the_other_sources_by_their_worst_then_their_mean():
    scores = {
        # best on msl by far, worst elsewhere: only a fold that sees msl but not its weak spot picks it
        "a": {"nab-dev": 60.0, "smap": 60.0, "msl": 90.0, "skab": 60.0},
        # even everywhere
        "b": {"nab-dev": 65.0, "smap": 65.0, "msl": 65.0, "skab": 65.0},
        # same worst as b on every fold, higher mean except on msl
        "c": {"nab-dev": 70.0, "smap": 70.0, "msl": 65.0, "skab": 70.0},
    }
    folds = recipe_selection.select(scores, SOURCES)
    # Without msl, c's worst is 70 (b 65, a 60); with msl in, b and c tie at 65 and c's mean wins.
    assert {fold: folds[fold]["chosen"] for fold in SOURCES} == {s: "c" for s in SOURCES}
    assert folds["msl"]["left_out"] == 65.0 and folds["skab"]["left_out"] == 70.0
    # The left-out source's own score never decides: a's 90 on msl does not win the msl fold.
    scores["c"]["msl"] = 10.0
    folds = recipe_selection.select(scores, SOURCES)
    assert folds["msl"]["chosen"] == "c" and folds["msl"]["left_out"] == 10.0
    assert folds["none"]["chosen"] == "b"       # on all four: b's worst 65 beats a's 60 and c's 10
