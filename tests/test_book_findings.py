"""What chapter 2 reads off the ensemble it trains, asserted on the same run.

The chapter prints its findings for the reader and says in its prose what
the numbers show; it asserts nothing. These tests train the chapter's
ensemble as the chapter does (the same data, seeds and settings, which
``test_the_chapters_still_train_as_these_tests_do`` keeps in step) and assert
each finding the prose relies on, so a change that breaks one fails here
instead of leaving a chapter that contradicts its own output.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest

from dpe_tutorial import toy

BOOK = Path(__file__).resolve().parents[1] / "book"

# chapter 2: the toy ensemble of the figures
TOY_SETTINGS = {"n_members": 8, "width": 32, "depth": 2, "steps": 300, "learning_rate": 0.01}


def chapter_code(name: str) -> str:
    cells = nbformat.read(BOOK / f"{name}.ipynb", as_version=4).cells
    return "\n".join(cell.source for cell in cells if cell.cell_type == "code")


def test_the_chapters_still_train_as_these_tests_do():
    toy_chapter = chapter_code("02_active_learning")
    for line in [
        "data = toy.two_moons(n_train=500, n_test=1_000, noise=0.25, seed=0)",
        "n_initial = 24",
        "labelled = np.random.default_rng(0).choice(",
        *(f'"{key}": {value},' for key, value in TOY_SETTINGS.items()),
        "x_labelled, y_labelled, data.n_classes, seed=0, **settings",
    ]:
        assert line in toy_chapter, f"chapter 2 no longer has {line!r}: update this test"


@pytest.mark.slow
def test_chapter_2_toy_uncertainty_is_mostly_not_disagreement_and_grows_away_from_labels():
    moons = toy.two_moons(n_train=500, n_test=1_000, noise=0.25, seed=0)
    labelled = np.random.default_rng(0).choice(len(moons.x_train), size=24, replace=False)
    pool = np.setdiff1d(np.arange(len(moons.x_train)), labelled)
    x_labelled, y_labelled = moons.x_train[labelled], moons.y_train[labelled]
    model = toy.train_ensemble(x_labelled, y_labelled, moons.n_classes, seed=0, **TOY_SETTINGS)
    pool_points = moons.x_train[pool]
    distance = toy.nearest_label_distance(pool_points, x_labelled)
    reading = toy.disagreement_by_distance(model.predict_members(pool_points), distance)
    assert reading["share"] < 0.5
    assert reading["far"] > reading["near"]
