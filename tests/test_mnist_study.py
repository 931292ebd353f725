"""The MNIST study's arms and its analysis, on made-up learning curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpe_tutorial.running.config import run_slug
from dpe_tutorial.studies import mnist_study as study


def test_every_arm_is_a_valid_config_with_its_own_folder():
    configs = study.configs("../shared/data/mnist-png.zip")
    assert len(configs) == 10
    slugs = {run_slug(config) for config in configs.values()}
    assert len(slugs) == 10
    assert "mc-dropout-mutual_information" in slugs
    assert "dpe-paper-elbo-x0.1-mutual_information-power" in slugs
    for arm, config in configs.items():
        assert study.arm_of(config.to_dict()) == arm
        assert config.schedule[0] == 20 and config.budget == 400
        assert config.initial_labels == "balanced" and not config.member_predictions
    with pytest.raises(ValueError, match="no arm of the MNIST study"):
        study.arm_of({**configs["DPE, BALD"].to_dict(), "members": 5})


def test_an_unknown_arm_is_refused_before_anything_is_written(tmp_path):
    # arm names hold commas, so the list of arms is joined with semicolons
    with pytest.raises(ValueError, match="unknown arm 'DPE'; the arms are: MC dropout, BALD; "):
        study.run_study(tmp_path / "out", str(tmp_path / "mnist.zip"), arms=["DPE"])
    assert not (tmp_path / "out").exists()


def test_the_ensembles_run_three_seeds_and_mc_dropout_five(tmp_path, monkeypatch):
    # deviation 1 of the study's README: the budget cut the ensembles to seeds 0, 1, 2
    assert [study.planned_trials(arm) for arm in study.ARMS] == [5, 5, 3, 3, 3, 3, 3, 5, 3, 3]
    ran = []
    monkeypatch.setattr(
        "dpe_tutorial.running.experiment.run_experiment",
        lambda config, folder, quiet, trials: ran.append((config.members, trials[0])),
    )
    study.run_study(tmp_path, "mnist.zip", trials=[2, 3])
    assert sorted(ran) == [(1, 2)] * 3 + [(1, 3)] * 3 + [(8, 2)] * 7


def made_up_results(gap=40.0, seeds=5, noise=0.01):
    """Learning curves where BALD reaches each accuracy ``gap`` labels before random."""
    rng = np.random.default_rng(0)
    rows = []
    for method, shift in (("MC dropout, BALD", gap), ("MC dropout, random", 0.0)):
        for trial in range(seeds):
            for round_index, n in enumerate(study.SIZES):
                accuracy = 1 - 0.5 * np.exp(-(n + shift) / 80) + rng.normal(0, noise)
                rows.append(
                    {
                        "method": method,
                        "trial": trial,
                        "round": round_index,
                        "n_labeled": n,
                        "ensemble_accuracy": accuracy,
                        "nll": 1 - accuracy,
                        "ece": 0.02,
                    }
                )
    return pd.DataFrame(rows)


def test_the_analysis_reads_labels_to_reach_aulc_and_paired_differences():
    results = made_up_results()
    seeds = study.per_seed(results)
    assert len(seeds) == 10
    bald = seeds[seeds["method"] == "MC dropout, BALD"]
    random = seeds[seeds["method"] == "MC dropout, random"]
    assert (bald["labels_to_90"].to_numpy() < random["labels_to_90"].to_numpy()).all()
    summary = study.summary(results)
    assert list(summary.index) == ["MC dropout, BALD", "MC dropout, random"]
    assert summary.loc["MC dropout, BALD", "seeds"] == 5
    paired = study.paired_table(results)
    assert list(paired["comparison"]) == ["MC dropout, BALD - MC dropout, random"]
    aulc = paired.loc[0, "aulc"]
    assert aulc.startswith("+0.0") and "[+" in aulc  # BALD above random in every seed
    report = study.report(results)
    assert "p below 0.0625" in report and "BALD 145 / 335" in report


def test_an_unfinished_seed_is_left_out_and_an_unreached_threshold_is_counted():
    results = made_up_results(gap=0.0)
    results = results[~((results["trial"] == 4) & (results["n_labeled"] > 100))]
    seeds = study.per_seed(results)
    assert sorted(seeds.groupby("method").size()) == [4, 4]
    assert seeds["labels_to_95"].map(math.isnan).sum() == 0
    results.loc[:, "ensemble_accuracy"] = 0.5  # nobody reaches 90 %
    summary = study.summary(results)
    assert summary.loc["MC dropout, BALD", "labels_to_90"] == "not reached in 4 seeds"


# -- the chapter "Where active learning works" (dpe_tutorial.studies.mnist_report) ---------------


def test_the_chapter_reads_an_empty_study_without_a_finished_seed():
    from dpe_tutorial.studies import mnist_report as report

    empty = report.load("/nonexistent/mnist-study")
    assert empty.empty
    assert study.per_seed(empty).columns.tolist()[:2] == ["method", "trial"]
    assert "0 of the study's 36 runs" in report.progress(empty)  # deviation 1: 5 x 3 + 3 x 7
    table = report.summary_beside_gal(empty)
    assert list(table.index) == list(study.ARMS) and (table["seeds"] == 0).all()
    assert table.loc["MC dropout, BALD", "Gal et al., labels to 90 / 95 %"] == "145 / 335"
    assert "No comparison has a finished pair" in report.pairs_note(empty)
    assert report.paired(empty).empty
    assert "AULC" in report.paired(made_up_results()).columns
    reading = report.reading(empty)
    assert reading.count("not yet determinable") == 2 and "Not yet determinable" in reading
    assert len(report.curves_figure(empty).axes) == 4


def test_the_reading_says_reproduced_only_with_every_seed_and_both_criteria():
    from dpe_tutorial.studies import mnist_report as report

    # BALD reaches each accuracy 80 labels before random: 90 % well within 217 labels
    assert "The finding is reproduced" in report.reading(made_up_results(gap=80.0))
    three = made_up_results(gap=80.0, seeds=3)
    assert "so far" in report.reading(three) and "Not yet determinable" in report.reading(three)
    same = report.reading(made_up_results(gap=0.0))
    assert "not reproduced" in same and "(2)" in same
    # BALD ahead of random, but slower than Gal et al.: 90 % after about 260 labels
    late = made_up_results(gap=80.0)
    shift = np.where(late["method"] == "MC dropout, BALD", 80.0, 0.0)
    late["ensemble_accuracy"] = 1 - 0.5 * np.exp(-(late["n_labeled"] + shift) / 200)
    text = report.reading(late)
    assert "criterion (2) is met, (1) is not" in text and "**not met**" in text
    unfinished = made_up_results(gap=80.0)
    unfinished = unfinished[~((unfinished["trial"] == 4) & (unfinished["n_labeled"] > 100))]
    assert "seed 4 (at 100 labels)" in report.progress(unfinished)
    assert len(study.finished(unfinished)) == len(unfinished) - 2 * 5  # 20..100 labels


def test_the_recipe_tables_read_the_csv_with_and_without_the_old_defaults(tmp_path):
    from dpe_tutorial.studies import mnist_recipe_report as report

    rows = []
    for model in ("dpe-paper-elbo*0.1", "ensemble", "mc-dropout", "smoke-preset"):
        for steps in (15, 100, 300):
            for n_labels in (20, 100, 400):
                accuracy = 0.5 + n_labels / 1000 + steps / 3000
                rows.append(
                    {
                        "model": model,
                        "steps": steps,
                        "n_labels": n_labels,
                        "seed": 0,
                        "accuracy": accuracy,
                        "nll": 1.0,
                        "ece": 0.1,
                        "mean_top_probability": accuracy - 30 / steps,
                        "logistic_accuracy": 0.4 + n_labels / 1000,
                    }
                )
    path = tmp_path / "recipe.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    table = report.recipe_table(path)
    assert list(table.index.get_level_values(0).unique()) == ["DPE", "plain ensemble", "MC dropout"]
    assert ("mean top probability", 100) in table.columns
    assert ("logistic regression", "") in table.columns
    assert report.diagnosis_table(path) is not None
    reading = report.recipe_reading(path)
    assert "At 100 steps" in reading and "rises by" in reading and "old defaults" in reading
    pd.DataFrame([r for r in rows if r["model"] != "smoke-preset"]).to_csv(path, index=False)
    assert report.diagnosis_table(path) is None
    assert "old defaults" not in report.recipe_reading(path)
    assert "300 optimizer steps" in report.recipe_text()


def test_the_models_are_read_against_each_other_by_their_intervals():
    from dpe_tutorial.studies import mnist_report as report

    assert report.pairs_reading(made_up_results()).startswith("None of these comparisons")
    # DPE (as "BALD" in the made-up curves) reaches each accuracy 80 labels before MC dropout
    ahead = made_up_results(gap=80.0).replace(
        {"method": {"MC dropout, BALD": "DPE, random", "MC dropout, random": "MC dropout, random"}}
    )
    text = report.pairs_reading(ahead)
    assert (
        text.count("\n") == 0 and "**DPE, random** minus **MC dropout, random** (5 pairs)" in text
    )
    assert "AULC +0.0" in text and "], better;" in text  # a higher AULC in every seed
    same = made_up_results(gap=0.0, noise=0.0).replace(
        {"method": {"MC dropout, BALD": "DPE, random"}}
    )
    assert report.pairs_reading(same).count("holds zero") == 2
    assert ("DPE, random", "MC dropout, random") in report.MODEL_COMPARISONS
    assert ("MC dropout, BALD", "MC dropout, random") not in report.MODEL_COMPARISONS
    assert ("MC dropout, BALD", "MC dropout, random") in report.ACQUISITION_COMPARISONS
    assert len(report.ACQUISITION_COMPARISONS) + len(report.MODEL_COMPARISONS) == 12
    by_acquisition = report.pairs_reading(made_up_results(), report.ACQUISITION_COMPARISONS)
    assert "**MC dropout, BALD** minus **MC dropout, random** (5 pairs)" in by_acquisition
