"""The MNIST reproduction follow-up: its arms and its reading, on made-up learning curves."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dpe_tutorial.studies import mnist_reproduction as reproduction
from dpe_tutorial.studies import mnist_study as study

SIZES = study.REPRODUCTION["schedule"]


def curves(gap=60.0, seeds=5, sizes=SIZES, scale=80.0):
    """Learning curves of the follow-up's arms: BALD ``gap`` labels ahead of random."""
    rng = np.random.default_rng(1)
    rows = []
    for method, shift in zip(reproduction.ARMS, (gap, 0.0), strict=True):
        for trial in range(seeds):
            for round_index, n in enumerate(sizes):
                accuracy = 1 - 0.5 * np.exp(-(n + shift) / scale) + rng.normal(0, 0.005)
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


def test_the_follow_up_runs_mc_dropout_at_10_a_round_with_the_faster_rate(tmp_path, monkeypatch):
    configs = study.configs("mnist.zip", reproduction=True)
    assert list(configs) == list(reproduction.ARMS)
    main = study.configs("mnist.zip")
    for arm, config in configs.items():
        assert study.arm_of(config.to_dict()) == arm  # the study's readers name it the same
        differs = {k for k, v in config.to_dict().items() if v != main[arm].to_dict()[k]}
        assert differs == {"learning_rate", "schedule"}
        assert config.schedule[:3] == (20, 30, 40) and config.schedule[-1] == 400
    ran = []
    monkeypatch.setattr(
        "dpe_tutorial.running.experiment.run_experiment",
        lambda config, folder, quiet, trials: ran.append((folder.name, trials[0])),
    )
    study.run_study(tmp_path, "mnist.zip", trials=[0], reproduction=True)
    assert [name for name, _ in ran] == ["mc-dropout-mutual_information", "mc-dropout-random"]


def test_the_reading_applies_the_study_s_two_criteria():
    text = reproduction.reading(curves(gap=60.0))
    assert "reproduced** by both registered criteria" in text
    assert text.count("**met**") == 2
    # BALD 60 labels ahead, but 90 % only at 270 labels (random: 330)
    slow = reproduction.reading(curves(gap=60.0, scale=200.0))
    assert "**Half reproduced:** BALD needs fewer labels" in slow
    level = reproduction.reading(curves(gap=0.0))
    assert "(2)" in level and "**not met**" in level
    partial = curves(gap=60.0, seeds=3)
    assert "Not yet determinable" in reproduction.reading(partial)
    assert "6 of the follow-up's 10 runs" in reproduction.progress(partial)


def test_each_arm_is_paired_with_the_study_s_same_arm():
    ours = curves(gap=60.0)
    theirs = curves(gap=0.0, sizes=study.SIZES, scale=120.0)
    table = reproduction.against_study(ours, theirs)
    assert list(table.index) == list(reproduction.ARMS) and (table["pairs"] == 5).all()
    bald = table.loc["MC dropout, BALD"]
    assert bald["AULC, follow-up minus study"].startswith("+0.")
    assert bald["labels to 90 %, follow-up minus study"].startswith("-")
    assert reproduction.against_study(ours, theirs.iloc[:0]).empty


def test_the_figure_and_table_read_an_unfinished_follow_up():
    partial = curves(seeds=2)
    assert list(reproduction.summary_beside_gal(partial)["seeds"]) == [2, 2]
    figure = reproduction.curves_figure(partial, main=curves(sizes=study.SIZES))
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "BALD, the study (20 a round, lr 1e-3)" in labels
    assert "Gal et al. (2017), labels to 90 / 95 %" in labels
