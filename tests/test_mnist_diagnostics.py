"""Reading the MNIST study's retrain diagnostics (no training: a CSV written by hand)."""

import numpy as np
import pandas as pd
import pytest

from dpe_tutorial.studies import mnist_diagnostics as diagnostics

SIZES = diagnostics.RETRAIN_SIZES


def write(path, accuracy):
    """``accuracy(run, trial, recipe, size)`` for both arms, seeds 0-2, two recipes."""
    rows = [
        {
            "run": run,
            "trial": trial,
            "recipe": recipe,
            "n_labeled": size,
            "ensemble_accuracy": accuracy(run, trial, recipe, size),
            "nll": 0.3,
            "ece": 0.02,
            "seconds": 1.0,
            "cpu": "test",
        }
        for run in diagnostics.RUNS
        for trial in range(3)
        for recipe in ("study", "lr 3e-3")
        for size in SIZES
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def curve(run, trial, recipe, size):
    # BALD's sets help only with the faster recipe: +0.025 at every size there
    lift = 0.025 if (run == "mc-dropout-mutual_information" and recipe == "lr 3e-3") else 0.0
    return 0.6 + size / 1000 + lift + 0.001 * trial


def test_bald_sets_are_paired_with_random_sets_seed_by_seed(tmp_path):
    path = write(tmp_path / "retrain.csv", curve)
    fast = diagnostics.sets_comparison(path, "lr 3e-3")
    assert list(fast.index) == [0, 1, 2]
    np.testing.assert_allclose(fast["BALD minus random, mean accuracy"], 0.025)
    # 0.6 + 0.28 + 0.025 reaches 0.9 at 280 labels; random first at 320
    assert list(fast["BALD labels to 90 %"]) == [280, 280, 280]
    assert list(fast["BALD minus random, labels to 90 %"]) == [-40, -40, -40]
    same = diagnostics.sets_comparison(path, "study")
    np.testing.assert_allclose(same["BALD minus random, mean accuracy"], 0.0)


def test_the_reading_gives_each_recipe_its_interval_and_gal_beside(tmp_path):
    path = write(tmp_path / "retrain.csv", curve)
    text = diagnostics.sets_reading(path)
    assert text.startswith("**study recipe, retrained** (3 seeds)")
    assert "+0.025 [+0.025, +0.025], better" in text
    assert "BALD 280 (Gal et al.: 145)" in text


def test_a_seed_with_one_arm_is_left_out_and_said(tmp_path):
    path = write(tmp_path / "retrain.csv", curve)
    table = pd.read_csv(path)
    # seed 2 of random is part-way through its retrains: left out
    table = table[
        ~(
            (table["run"] == "mc-dropout-random")
            & (table["trial"] == 2)
            & (table["n_labeled"] > 200)
        )
    ]
    table.to_csv(path, index=False)
    assert list(diagnostics.sets_comparison(path).index) == [0, 1]
    only_bald = table[table["run"] == "mc-dropout-mutual_information"]
    only_bald.to_csv(path, index=False)
    assert "no seed has both arms retrained yet" in diagnostics.sets_reading(path)


def test_one_run_is_shown_beside_the_study_s_own_curve(tmp_path):
    path = write(tmp_path / "retrain.csv", curve)
    results = pd.DataFrame(
        {
            "folder": ["runs/mc-dropout-mutual_information"] * 2 + ["runs/mc-dropout-random"],
            "trial": [0, 0, 0],
            "n_labeled": [40, 120, 40],
            "ensemble_accuracy": [0.5, 0.7, 0.1],
        }
    )
    table = diagnostics.retrain_table(path, results)
    assert list(table.columns) == ["the study's own run", "study recipe, retrained", "lr 3e-3"]
    assert table.loc[40, "the study's own run"] == 0.5
    assert np.isnan(table.loc[200, "the study's own run"])
    with pytest.raises(ValueError, match="no retrain of mc-dropout-random, seed 7"):
        diagnostics.retrain_table(path, results, "mc-dropout-random", 7)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"absent\.csv: not a readable retrain table"):
        diagnostics.load_retrain(tmp_path / "absent.csv")


def test_the_retrain_reading_gives_the_labels_each_recipe_needs(tmp_path):
    path = write(tmp_path / "retrain.csv", curve)
    results = pd.DataFrame(
        {
            "folder": ["mc-dropout-mutual_information"] * 2,
            "trial": [0, 0],
            "n_labeled": [40, 360],
            "ensemble_accuracy": [0.5, 0.7],
        }
    )
    text = diagnostics.retrain_reading(path, results)
    assert text == (
        "Labels to reach 90 % test accuracy, MC dropout, BALD, seed 0 (on the grid of the "
        "retrains): the study's own run never; study recipe, retrained 320; lr 3e-3 280; "
        "Gal et al. report 145."
    )
