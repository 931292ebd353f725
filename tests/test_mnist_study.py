"""The MNIST study's arms and its analysis, on made-up learning curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpe_tutorial import mnist_study as study
from dpe_tutorial.config import run_slug


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
