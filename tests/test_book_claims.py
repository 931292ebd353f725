"""The verdicts the book's prose states about the committed CIFAR-10 studies.

Chapters 1, 7 and 9 print the package's reading of the results and, around
it, sentences that a reader reads as text. These tests hold those sentences
to the committed results: new results that change a verdict fail here, and
the prose is rewritten with them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dpe_tutorial.running import config
from dpe_tutorial.studies import active_learning_study as al_study
from dpe_tutorial.studies import intervals, objective_study

ROOT = Path(__file__).resolve().parents[1]
ENTROPY, RANDOM = "DPE, predictive entropy", "DPE, random"
BALD, PLAIN = "DPE, mutual information", "plain ensemble, predictive entropy"


@pytest.fixture(scope="module")
def objective():
    return objective_study.load_results(ROOT / "results" / "objective-study")


@pytest.fixture(scope="module")
def active():
    return al_study.load_results(ROOT / "results" / "active-learning")


def _default_arm():
    default = config.ExperimentConfig()
    return default.kl_form, config.beta_label(default.beta)


def _readings(table):
    from dpe_tutorial.studies.objective_comparisons import row_direction

    return {metric: row_direction(row, metric) for metric, row in table.iterrows()}


def test_chapter_9_section_1_the_default_is_better_on_nll_only(objective):
    form, beta = _default_arm()
    readings = _readings(objective_study.arm_against_plain(objective, form, beta))
    assert readings.pop("nll") == "better"
    assert set(readings.values()) == {"undecided"}
    nll = objective_study.arm_against_plain(objective, form, beta, ("nll",)).iloc[0]
    assert intervals.sign_count(nll["differences"]) == "lower in all 3 pairs"


def test_chapter_9_width_16_a_quarter_of_beta_is_worse_and_the_default_level(objective):
    quarter = objective_study.arm_against_plain(
        objective, "paper", "elbo*0.025", ("ensemble_accuracy", "nll", "ece"), width=16
    )
    assert _readings(quarter) == {"ensemble_accuracy": "worse", "nll": "worse", "ece": "undecided"}
    assert intervals.sign_count(quarter.loc["ece", "differences"]) == "lower in both pairs"
    kept = objective_study.arm_against_plain(
        objective, "paper", "elbo*0.1", ("ensemble_accuracy", "nll", "ece"), width=16
    )
    assert set(_readings(kept).values()) == {"undecided"}


@pytest.mark.parametrize(
    ("method", "baseline", "metric", "last", "curve"),
    [
        (ENTROPY, RANDOM, "ensemble_accuracy", "undecided", "undecided"),
        (ENTROPY, RANDOM, "ece", "worse", "worse"),
        (ENTROPY, RANDOM, "nll", "undecided", "worse"),
        (BALD, RANDOM, "ensemble_accuracy", "undecided", "undecided"),
        (ENTROPY, PLAIN, "ensemble_accuracy", "better", "better"),
        (ENTROPY, PLAIN, "nll", "better", "undecided"),
    ],
)
def test_chapter_9_section_2_verdicts(active, method, baseline, metric, last, curve):
    assert al_study.judge(active, method, baseline, metric) == last
    assert al_study.judge(active, method, baseline, metric, curve=True) == curve


def test_chapter_9_section_2_signs_in_every_trial(active):
    def last_round(method, baseline, metric):
        paired = al_study.paired_differences(active, method, baseline, metric)
        return paired.loc[paired.index.max(), [c for c in paired if c.startswith("trial ")]]

    # "the NLL was higher in all three trials", "BALD ... lower ... in all three trials"
    assert intervals.sign_count(last_round(ENTROPY, RANDOM, "nll")) == "higher in all 3 pairs"
    bald = last_round(BALD, RANDOM, "ensemble_accuracy")
    assert intervals.sign_count(bald) == "lower in all 3 pairs"


def test_chapter_9_trial_1_is_the_only_pair_split_by_the_machine(active):
    # "DPE with random acquisition differs from the other two by 0.008 in that trial"
    first = al_study.first_round_agreement(active)
    assert first.loc[0, "spread"] == 0 and first.loc[2, "spread"] == 0
    assert first.loc[1, "spread"] == pytest.approx(0.008, abs=0.0005)
    assert first.loc[1, ENTROPY] == first.loc[1, BALD] != first.loc[1, RANDOM]
