import numpy as np
import pandas as pd
import pytest

from dpe_tutorial.studies import two_by_two

LABELS = (500, 1000, 2000)


def curves(base, offset, trials=3):
    """Accuracy per trial and round: ``base`` + ``offset`` + a trial effect shared by all cells."""
    return {
        t: [base + offset + 0.01 * t + 0.05 * r for r in range(len(LABELS))] for t in range(trials)
    }


def table(cells):
    rows = []
    for method, per_trial in cells.items():
        for trial, accuracies in per_trial.items():
            for n, accuracy in zip(LABELS, accuracies, strict=True):
                rows.append(
                    {
                        "method": method,
                        "trial": trial,
                        "n_labeled": n,
                        "ensemble_accuracy": accuracy,
                        "nll": 2.0 - accuracy,
                        "ece": 0.05,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture
def full():
    # DPE leads by 0.02 under entropy and by 0.005 under random (per trial, every round),
    # and entropy costs the plain ensemble 0.01 against random picks
    offsets = {
        "DPE, predictive entropy": 0.01,
        "plain ensemble, predictive entropy": -0.01,
        "DPE, random": 0.005,
        "plain ensemble, random": 0.0,
    }
    cells = {method: curves(0.3, offset) for method, offset in offsets.items()}
    # trial noise on one cell, so the intervals have a width
    cells["plain ensemble, random"] = {
        t: [a + 0.002 * (t - 1) for a in accuracies]
        for t, accuracies in cells["plain ensemble, random"].items()
    }
    return table(cells)


def test_the_contrasts_are_the_registered_differences_trial_by_trial(full):
    a = two_by_two.contrast_values(
        full, "(a) plain random minus DPE random", "ensemble_accuracy", False
    )
    np.testing.assert_allclose(a.to_numpy(), [-0.005 - 0.002, -0.005, -0.005 + 0.002])
    b = two_by_two.contrast_values(
        full, "(b) plain entropy minus plain random", "ensemble_accuracy", True
    )
    np.testing.assert_allclose(b.to_numpy(), [-0.01 + 0.002, -0.01, -0.01 - 0.002])
    c = two_by_two.contrast_values(full, two_by_two.INTERACTION, "ensemble_accuracy", False)
    # (0.01 - -0.01) - (0.005 - plain random), plain random carrying the trial noise
    np.testing.assert_allclose(c.to_numpy(), [0.015 - 0.002, 0.015, 0.015 + 0.002])
    with pytest.raises(ValueError, match="unknown contrast"):
        two_by_two.contrast_values(full, "(d)", "nll", False)


def test_the_contrast_table_reads_each_interval_in_the_metrics_direction(full):
    contrasts = two_by_two.contrast_table(full)
    assert len(contrasts) == 3 * 3 * 2
    accuracy = contrasts.xs("ensemble accuracy", level="metric")
    assert accuracy.loc[(two_by_two.INTERACTION, "last round"), "shows"] == "better"
    assert accuracy.loc[("(b) plain entropy minus plain random", "whole curve"), "shows"] == "worse"
    # NLL is accuracy mirrored here: lower is better, so the reading is the same
    nll = contrasts.xs("NLL (nats)", level="metric")
    assert nll.loc[(two_by_two.INTERACTION, "last round"), "shows"] == "better"
    # ECE does not differ: no interval, no reading
    ece = contrasts.xs("ECE", level="metric")
    assert set(ece["shows"]) == {"holds zero"}


def test_an_incomplete_2x2_is_named_and_not_read(full):
    partial = full[full["method"] != "plain ensemble, random"]
    assert not two_by_two.complete(partial)
    assert two_by_two.missing_cells(partial) == ["plain ensemble, random"]
    assert "plain ensemble, random has no finished trial" in two_by_two.reading(partial)
    with pytest.raises(ValueError, match="lacks a finished trial of plain ensemble, random"):
        two_by_two.contrast_table(partial)
    # the cells that ran are still shown, the missing one left empty
    cells = two_by_two.cell_table(partial)
    assert cells.loc["DPE", ("at 2000 labels", "random")].startswith("0.")
    assert cells.loc["plain", ("at 2000 labels", "random")] == "not run yet"


def test_the_reading_names_every_contrast_and_the_number_of_readings(full):
    text = two_by_two.reading(full)
    for name in [*two_by_two.CONTRASTS, two_by_two.INTERACTION]:
        assert name in text
    assert "18 comparisons" in text and "3 pairs" in text


def test_the_cell_table_has_a_level_and_interval_per_cell(full):
    cells = two_by_two.cell_table(full)
    assert list(cells.index) == ["DPE", "plain"]
    assert cells.loc["plain", ("at 2000 labels", "random")].startswith("0.4")
    assert "[" in cells.loc["DPE", ("whole curve", "entropy")]


def test_a_trial_still_running_in_one_cell_is_left_out_of_every_contrast(full):
    # trial 2 of the plain ensemble with random picks has only its first two rounds
    running = full[
        ~(
            (full["method"] == "plain ensemble, random")
            & (full["trial"] == 2)
            & (full["n_labeled"] == 2000)
        )
    ]
    assert set(two_by_two.finished(running)["trial"]) == {0, 1}
    for name in [*two_by_two.CONTRASTS, two_by_two.INTERACTION]:
        for curve in (False, True):
            values = two_by_two.contrast_values(running, name, "ensemble_accuracy", curve)
            assert list(values.index) == [0, 1], (name, curve)
    # the cell's own level is read over the trials it finished
    cells = two_by_two.cell_table(running)
    plain_random = full[(full["method"] == "plain ensemble, random") & (full["n_labeled"] == 2000)]
    expected = plain_random[plain_random["trial"] < 2]["ensemble_accuracy"].mean()
    assert cells.loc["plain", ("at 2000 labels", "random")].startswith(f"{expected:.3f}")
    # no trial finished in every cell: nothing is read
    first = running[running["trial"] == 2]
    assert not two_by_two.complete(first)


def test_one_finished_trial_is_shown_without_a_reading(full):
    one = full[full["trial"] == 0]
    contrasts = two_by_two.contrast_table(one)
    # one pair has no interval: it neither holds zero nor excludes it
    assert set(contrasts["shows"]) == {"no interval (one pair)"}
    assert "(one seed: no interval)" in two_by_two.reading(one)


def test_the_report_holds_the_cells_contrasts_and_machine_noise(full):
    text = two_by_two.report(full)
    assert text.startswith("The 2x2 (ensemble x acquisition):")
    assert "(c) interaction" in text and "18 comparisons" in text
    assert "At round 1 the plain ensemble methods" in text
    partial = full[full["method"] != "plain ensemble, random"]
    assert two_by_two.report(partial) == (
        "The 2x2 lacks a finished trial of plain ensemble, random."
    )
