"""The objective study's follow-ups: confirmatory trials and the training-length check (no
training here: results folders written by hand)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dpe_tutorial.running import experiment
from dpe_tutorial.studies import objective_followups as followups
from dpe_tutorial.studies import objective_study

COLUMNS = "trial,round,n_labeled,acquisition,ensemble_accuracy,mean_member_accuracy,nll,ece"
COLUMNS += ",train_seconds,acquire_seconds,brier"


def write_arm(root, arm, trials, accuracy, confidence=None, epochs=10):
    """A results folder of one arm: ``accuracy`` and ``confidence`` are per-trial functions."""
    config = objective_study.config_for(
        objective_study.Arm.parse(arm), "d.zip", trials=5, epochs=epochs
    )
    folder = root / "w8" / experiment.run_slug(config)
    folder.mkdir(parents=True)
    record = {"config": config.to_dict(), "method": arm}
    (folder / "config.json").write_text(json.dumps(record))
    rows = [COLUMNS]
    (folder / "rounds").mkdir()
    for t in trials:
        a = accuracy(t)
        rows.append(f"{t},0,2000,predictive_entropy,{a},{a - 0.05},{2 - a},0.05,1,0,{1 - a}")
        top = confidence(t) if confidence else a
        probs = np.full((100, 10), (1 - top) / 9, dtype=np.float16)
        probs[:, 0] = top
        np.savez(
            folder / "rounds" / f"trial{t}_round0.npz",
            labelled=np.arange(2000, dtype=np.int32),
            acquired=np.zeros(0, np.int32),
            acquired_scores=np.zeros(0, np.float32),
            pool_scores=np.zeros(0, np.float16),
            test_probs=probs,
        )
    (folder / "results.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def main(tmp_path):
    root = tmp_path / "main"
    write_arm(root, "plain", [0, 1, 2], lambda t: 0.40 + 0.01 * t, lambda t: 0.30)
    write_arm(root, "paper:elbo*0.1", [0, 1, 2], lambda t: 0.41 + 0.01 * t, lambda t: 0.32)
    # another arm, which the follow-ups leave out
    write_arm(root, "exclusive:elbo", [0, 1], lambda t: 0.2)
    return objective_study.load_results(root)


def test_the_confirmatory_table_reads_the_new_pairs_then_all_five(main, tmp_path):
    root = tmp_path / "confirm"
    write_arm(root, "plain", [3, 4], lambda t: 0.40)
    write_arm(root, "paper:elbo*0.1", [3, 4], lambda t: 0.40 + 0.002 * (t - 2))
    confirm = objective_study.load_results(root)
    table = followups.confirmatory_table(main, confirm)
    first = table.xs("3 and 4 (confirmatory)", level="trials")
    assert first.loc["NLL (nats)", "per pair"] == "-0.002, -0.004"
    # NLL is 2 - accuracy: lower in both pairs, and the interval (t with 1 df) holds zero
    assert first.loc["NLL (nats)", "shows"] == "holds zero"
    every = table.xs("0 to 4 (0 and 1 chose the arm)", level="trials")
    assert every.loc["ensemble accuracy", "per pair"].count(",") == 4
    assert every.loc["ensemble accuracy", "shows"] == "better"
    text = followups.confirmatory_reading(main, confirm)
    assert "-0.003" in text and "criterion (an interval below zero) is not met" in text


def test_confirmatory_trials_are_not_read_before_both_pairs_are_in(main, tmp_path):
    root = tmp_path / "confirm"
    write_arm(root, "plain", [3, 4], lambda t: 0.40)
    write_arm(root, "paper:elbo*0.1", [3], lambda t: 0.45)
    confirm = objective_study.load_results(root)
    with pytest.raises(ValueError, match=r"lack a pair for trial\(s\) \[4\]"):
        followups.confirmatory_table(main, confirm)
    assert "have not finished yet" in followups.confirmatory_reading(main, confirm)
    assert "have not finished yet" in followups.confirmatory_reading(main, None)


def test_the_confidence_gap_is_accuracy_minus_the_mean_top_probability(main):
    gaps = followups.with_confidence_gap(main[main["form"] == "plain"])
    # accuracy 0.40 + 0.01 t against a top probability of 0.30 (float16)
    np.testing.assert_allclose(gaps[followups.GAP], [0.10, 0.11, 0.12], atol=1e-3)


def test_the_training_length_check_pairs_each_ensemble_with_itself(main, tmp_path):
    root = tmp_path / "long"
    write_arm(root, "plain", [0, 1], lambda t: 0.45 + 0.01 * t, lambda t: 0.44, epochs=30)
    write_arm(root, "paper:elbo*0.1", [0, 1], lambda t: 0.47, lambda t: 0.49, epochs=30)
    long = objective_study.load_results(root)
    table = followups.training_length_table(main, long)
    plain = table.xs("plain ensemble: 30 minus 10 epochs", level="comparison")
    assert plain.loc["ensemble accuracy", "per pair"] == "+0.050, +0.050"
    # under-confident by 0.10 and 0.11 at 10 epochs, by 0.01 and 0.02 at 30
    assert plain.loc["accuracy - confidence", "per pair"] == "-0.090, -0.090"
    at_30 = table.xs("at 30 epochs", level="comparison")
    assert at_30.loc["NLL (nats)", "per pair"] == "-0.020, -0.010"
    text = followups.training_length_reading(main, long)
    assert text.startswith("The plain ensemble at 30 epochs is still under-confident")
    assert "DPE at 30 epochs is over-confident" in text
    # NLL is 2 - accuracy: DPE's is lower at 10 epochs (0.41 against 0.40) and at 30
    assert "DPE's NLL is lower than the plain ensemble's at both lengths" in text
    assert "DPE's ECE is level with the plain ensemble's at both lengths" in text


def test_the_training_length_check_waits_for_its_runs(main, tmp_path):
    root = tmp_path / "long"
    write_arm(root, "plain", [0, 1], lambda t: 0.45, epochs=30)
    long = objective_study.load_results(root)
    with pytest.raises(ValueError, match="lacks a pair"):
        followups.training_length_table(main, long)
    assert "has not finished yet" in followups.training_length_reading(main, long)


def test_a_study_reaching_past_its_planned_trials_gets_a_folder_that_holds_them(
    tmp_path, monkeypatch
):
    seen = []
    monkeypatch.setattr(
        experiment, "run_experiment", lambda config, folder, **kw: seen.append(config)
    )
    arms = [objective_study.Arm(None, 0.0)]
    objective_study.run_study(tmp_path, "d.zip", chosen=arms, trials=[3, 4])
    objective_study.run_study(tmp_path, "d.zip", chosen=arms, trials=[4])  # resumes alone
    objective_study.run_study(tmp_path, "d.zip", chosen=arms, trials=[0, 1])
    assert [c.trials for c in seen] == [5, 5, 5, objective_study.PLANNED_TRIALS, 3]


def test_a_follow_up_with_no_finished_run_loads_as_none(tmp_path):
    assert followups.load(tmp_path / "absent") is None
    (tmp_path / "w8" / "started").mkdir(parents=True)
    assert followups.load(tmp_path) is None
    assert not followups.confirmatory_finished(None)
