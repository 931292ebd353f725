import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dpe_tutorial.figures import palette
from dpe_tutorial.running import experiment, results
from dpe_tutorial.studies import active_learning_study as study

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "active_learning_study.py"


def test_the_methods_differ_only_in_acquisition_and_beta():
    configs = study.method_configs()
    assert list(configs) == list(study.METHODS)
    dpe = configs["DPE, predictive entropy"]
    assert dpe.name == study.PRESET and dpe.dataset == "cifar10" and dpe.trials == study.TRIALS
    assert dpe.beta != 0  # the package's default DPE
    for name, config in configs.items():
        differing = {
            field for field, value in config.to_dict().items() if value != dpe.to_dict()[field]
        }
        # and whether its folder stores member predictions: the first four ran before it could
        assert differing <= {"acquisition", "beta", "member_predictions"}, name
    assert configs["DPE, random"].acquisition == "random"
    assert configs["plain ensemble, predictive entropy"].beta == 0
    plain_random = configs["plain ensemble, random"]
    assert plain_random.beta == 0 and plain_random.acquisition == "random"
    assert plain_random.member_predictions and not dpe.member_predictions
    # every method in a folder of its own, under the preset's name (chapter 7 groups by it)
    folders = {study.folder_of("out", c) for c in configs.values()}
    assert len(folders) == 5 and {f.parent for f in folders} == {Path("out") / study.PRESET}


def write_method(root, config, accuracies):
    folder = study.folder_of(root, config)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"config": config.to_dict()}))
    rows = ["trial,round,n_labeled,ensemble_accuracy,nll,ece"]
    for trial, curve in enumerate(accuracies):
        rows += [f"{trial},{r},{500 * (r + 1)},{a},{2 - a},0.05" for r, a in enumerate(curve)]
    (folder / "results.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def finished(tmp_path):
    configs = study.method_configs()
    write_method(tmp_path, configs["DPE, predictive entropy"], [[0.30, 0.40], [0.32, 0.43]])
    write_method(tmp_path, configs["DPE, random"], [[0.30, 0.38], [0.32, 0.41]])
    write_method(
        tmp_path, configs["plain ensemble, predictive entropy"], [[0.29, 0.41], [0.33, 0.42]]
    )
    return tmp_path


def test_results_are_read_with_the_method_of_each_folder(finished):
    table = study.load_results(finished)
    assert set(table["method"]) == {
        "DPE, predictive entropy",
        "DPE, random",
        "plain ensemble, predictive entropy",
    }
    rounds = study.round_table(table)
    row = rounds.loc[("DPE, predictive entropy", 1000)]
    assert row[("ensemble_accuracy", "mean")] == pytest.approx(0.415)
    assert row[("ensemble_accuracy", "std")] == pytest.approx(0.0212, abs=1e-4)
    assert row[("trials", "n")] == 2


def test_paired_differences_are_per_trial_with_a_t_interval(finished):
    table = study.load_results(finished)
    against_random = study.paired_differences(table, "DPE, predictive entropy", "DPE, random")
    assert list(against_random["trial 0"]) == pytest.approx([0.0, 0.02])
    assert list(against_random["trial 1"]) == pytest.approx([0.0, 0.02])
    assert against_random.loc[1000, "baseline_spread"] == pytest.approx(0.0212, abs=1e-4)
    # +0.02 in both trials, no spread: a point interval at +0.02
    assert against_random.loc[1000, ["low", "high"]].tolist() == pytest.approx([0.02, 0.02])
    against_plain = study.paired_differences(
        table, "DPE, predictive entropy", "plain ensemble, predictive entropy"
    )
    assert list(against_plain["trial 0"]) == pytest.approx([0.01, -0.01])  # signs differ
    low, high = against_plain.loc[500, ["low", "high"]]
    assert low < 0 < high
    with pytest.raises(ValueError, match="no results for method 'DPE, mutual information'"):
        study.paired_differences(table, "DPE, mutual information", "DPE, random")


def test_three_consistent_pairs_give_an_interval_that_excludes_zero(tmp_path):
    configs = study.method_configs()
    write_method(tmp_path, configs["DPE, predictive entropy"], [[0.50], [0.52], [0.51]])
    write_method(tmp_path, configs["DPE, random"], [[0.40], [0.41], [0.40]])
    table = study.load_results(tmp_path)
    paired = study.paired_differences(table, "DPE, predictive entropy", "DPE, random")
    assert paired.loc[500, "mean"] == pytest.approx(0.1067, abs=1e-4)
    half = 4.3027 * np.std([0.10, 0.11, 0.11], ddof=1) / np.sqrt(3)  # t(2) = 4.303
    assert paired.loc[500, "low"] == pytest.approx(0.1067 - half, abs=1e-4)
    assert paired.loc[500, "low"] > 0


def test_the_report_has_the_round_table_and_the_paired_differences(finished):
    text = study.report(study.load_results(finished))
    assert text.startswith("- Ensemble accuracy, DPE, predictive entropy minus DPE, random (2 p")
    assert "\n- Negative log-likelihood, " in text
    assert "| DPE, predictive entropy | 1000 | 2 | 0.415 ± 0.021 |" in text
    assert "DPE, predictive entropy minus DPE, random, ensemble accuracy:" in text
    assert "| 1000 | +0.020 | +0.020 | +0.020 | +0.000 |" in text


def test_the_report_names_the_paired_differences_of_every_metric_and_the_wall_time(finished):
    folder = study.folder_of(finished, study.method_configs()["DPE, random"])
    record = json.loads((folder / "config.json").read_text())
    record["sessions"] = [
        {"wall_seconds": 5400.0, "machine": "AMD EPYC, 2 cores"},
        {"wall_seconds": None, "machine": "AMD EPYC, 2 cores"},  # cut off before writing it
        {"wall_seconds": 1800.0, "machine": "AMD EPYC, 2 cores"},
    ]
    (folder / "config.json").write_text(json.dumps(record))
    text = study.report(study.load_results(finished))
    for name in (
        "ensemble accuracy",
        "negative log-likelihood (lower is better)",
        "expected calibration error (lower is better)",
    ):
        assert f"DPE, predictive entropy minus DPE, random, {name}:" in text
    assert "At round 1 the DPE methods agree exactly in every trial checked (0, 1)" in text
    assert text.endswith(
        "Wall time recorded by 3 runs: 2.0 h on AMD EPYC, 2 cores; 1 session recorded none "
        "(stopped before writing it, or still running)."
    )
    # sessions on another machine: each machine's share, in the order they worked
    record["sessions"] += [
        {"wall_seconds": 0.0, "machine": "Intel Xeon, 2 cores"},  # opened a finished run
        {"wall_seconds": 1080.0, "machine": "Intel Xeon, 2 cores"},
    ]
    (folder / "config.json").write_text(json.dumps(record))
    assert study.report(study.load_results(finished)).endswith(
        "Wall time recorded by 3 runs: 2.3 h (AMD EPYC, 2 cores: 2.0 h; Intel Xeon, "
        "2 cores: 0.3 h); 1 session recorded none (stopped before writing it, or still "
        "running)."
    )


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no results under"):
        study.load_results(tmp_path)


def test_an_unknown_method_is_refused_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--methods", "DPE, magic"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"active_learning_study: error: unknown method 'DPE, magic'; the methods are "
        f"{', '.join(study.METHODS)}"
    ]
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_every_method_of_a_trial_starts_from_the_same_labelled_set(tmp_path, capsys):
    tiny = {
        "dataset": "digits",
        "train_subset": None,
        "test_subset": None,
        "member": "small_cnn",
        "members": 2,
        "kl_form": "exclusive",  # two members: the default (papers') form needs four
        "width": 2,
        "schedule": "linear-2",
        "budget": 40,
        "epochs": 1,
        "batch_size": 16,
        "augment": False,
        "shift_samples": 0,
    }
    folders = study.run_study(tmp_path, trials=[0], **tiny)
    assert len(folders) == 5
    order = [line.split(" -> ")[0] for line in capsys.readouterr().out.splitlines()]
    assert order == [f"trial 0: {name}" for name in study.METHODS]
    runs = [results.load_run(folder) for folder in folders]
    first = [results.load_round(run, trial=0, round=0)["labelled"] for run in runs]
    assert all((labelled == first[0]).all() for labelled in first)
    acquired = {
        run.config["acquisition"]: set(results.load_round(run, 0, 0)["acquired"]) for run in runs
    }
    assert acquired["random"] != acquired["predictive_entropy"]
    table = study.load_results(tmp_path)
    assert set(table["method"]) == set(study.METHODS)
    assert sorted(set(table["n_labeled"])) == [20, 40]
    # rerunning finds every trial finished and trains nothing
    again = experiment.run_experiment(
        experiment.ExperimentConfig.from_dict(runs[0].config), folders[0], trials=[0]
    )
    assert len(again) == 2


def test_the_verdict_gives_the_interval_and_what_it_shows(finished, tmp_path):
    table = study.load_results(finished)
    paired = study.paired_differences(
        table, "DPE, predictive entropy", "plain ensemble, predictive entropy"
    )
    text = study.verdict(paired, "DPE, predictive entropy", "plain ensemble, predictive entropy")
    assert text.startswith("DPE, predictive entropy minus plain ensemble, predictive entropy at")
    assert "at 1000 labels (per trial -0.010, +0.010): +0.000, 95 % interval" in text
    assert text.endswith("higher in 1 of 2 pairs: the interval holds zero.")
    consistent = tmp_path / "consistent"
    configs = study.method_configs()
    write_method(consistent, configs["DPE, predictive entropy"], [[0.50], [0.52], [0.51]])
    write_method(consistent, configs["DPE, random"], [[0.40], [0.41], [0.40]])
    paired = study.paired_differences(
        study.load_results(consistent), "DPE, predictive entropy", "DPE, random"
    )
    assert study.verdict(paired, "DPE", "random").endswith("higher in all 3 pairs: better.")


def test_a_single_trial_has_no_interval(tmp_path):
    configs = study.method_configs()
    write_method(tmp_path, configs["DPE, predictive entropy"], [[0.30, 0.45]])
    write_method(tmp_path, configs["DPE, random"], [[0.30, 0.38]])
    write_method(tmp_path, configs["plain ensemble, predictive entropy"], [[0.30, 0.44]])
    table = study.load_results(tmp_path)
    paired = study.paired_differences(table, "DPE, predictive entropy", "DPE, random")
    text = study.verdict(paired, "DPE, predictive entropy", "DPE, random")
    assert text.endswith("+0.070 (one pair: no interval).")
    sentences = study.headline(table)
    assert sentences[0].startswith("Ensemble accuracy, DPE, predictive entropy minus DPE, random ")
    assert "(1 paired trial): at 1000 labels +0.070 (one seed: no interval)" in sentences[0]
    assert len(sentences) == 2


def test_the_headline_reads_each_comparison_in_the_metric_s_direction(finished, tmp_path):
    sentences = study.headline(study.load_results(finished))
    assert (
        "minus DPE, random (2 paired trials): at 1000 labels +0.020 [+0.020, +0.020]"
        in (sentences[0])
    )
    consistent = tmp_path / "consistent"
    configs = study.method_configs()
    write_method(consistent, configs["DPE, predictive entropy"], [[0.50, 0.6], [0.52, 0.6]])
    write_method(consistent, configs["DPE, random"], [[0.40, 0.5], [0.41, 0.5]])
    write_method(
        consistent, configs["plain ensemble, predictive entropy"], [[0.55, 0.7], [0.57, 0.7]]
    )
    table = study.load_results(consistent)
    accuracy = study.headline(table)
    assert "at 1000 labels +0.100 [+0.100, +0.100], better; over the whole curve" in accuracy[0]
    assert "at 1000 labels -0.100 [-0.100, -0.100], worse; over the whole curve" in accuracy[1]
    assert accuracy[0].endswith(", better.") and accuracy[1].endswith(", worse.")
    # the fixture's NLL is 2 - accuracy: lower is better, so the readings stay the same
    nll = study.headline(table, "nll")
    assert nll[0].startswith("Negative log-likelihood, ")
    assert nll[0].endswith("better.") and nll[1].endswith("worse.")


def test_the_paired_figure_draws_every_trial_s_difference_and_zero(finished):
    table = study.load_results(finished)
    axes = study.paired_figure(table).axes
    assert len(axes) == 2

    def trial_lines(ax):
        return [list(line.get_ydata()) for line in ax.lines if line.get_label() == "one trial"]

    assert np.allclose(trial_lines(axes[0]), [[0.0, 0.02], [0.0, 0.02]])
    assert np.allclose(trial_lines(axes[1]), [[0.01, -0.01], [-0.01, 0.01]])
    assert any(list(line.get_ydata()) == [0.0, 0.0] for line in axes[0].lines)  # the zero line
    assert "minus DPE, random" in axes[0].get_title()


def test_a_study_in_progress_compares_only_the_methods_it_has(tmp_path):
    configs = study.method_configs()
    write_method(tmp_path, configs["DPE, predictive entropy"], [[0.30, 0.45]])
    table = study.load_results(tmp_path)
    assert study.comparisons(table) == []
    assert study.headline(table) == [
        'No paired comparison yet: the study has results of "DPE, predictive entropy" only.'
    ]
    assert study.headlines(table) == study.headline(table)  # said once, not per metric
    with pytest.raises(ValueError, match="no results for both methods"):
        study.paired_figure(table)
    assert "| DPE, predictive entropy | 1000 | 1 |" in study.report(table)
    write_method(tmp_path, configs["DPE, random"], [[0.30, 0.38]])
    table = study.load_results(tmp_path)
    assert study.comparisons(table) == [("DPE, predictive entropy", "DPE, random")]
    alone = study.paired_figure(table)
    assert len(alone.axes) == 1 and alone.get_figwidth() == pytest.approx(palette.PANEL_WIDTH)
    assert [s.split(",")[0] for s in study.headlines(table)] == [
        "Ensemble accuracy",
        "Negative log-likelihood",
        "Expected calibration error",
    ]


def test_the_compact_round_table_reads_mean_and_spread(finished, tmp_path):
    compact = study.compact_round_table(study.load_results(finished))
    row = compact.loc[("DPE, predictive entropy", 1000)]
    assert row["ensemble_accuracy"] == "0.415 ± 0.021" and row["trials"] == 2
    configs = study.method_configs()
    write_method(tmp_path / "one", configs["DPE, random"], [[0.30, 0.38]])
    one = study.compact_round_table(study.load_results(tmp_path / "one"))
    assert one.loc[("DPE, random", 1000), "nll"] == "1.620"  # one trial: no spread, no NaN


def test_a_comparison_still_running_is_read_at_the_last_round_both_methods_reached(tmp_path):
    configs = study.method_configs()
    write_method(tmp_path, configs["DPE, predictive entropy"], [[0.30, 0.45], [0.31, 0.44]])
    # random has reached only its first round in its second trial
    write_method(tmp_path, configs["DPE, random"], [[0.30, 0.38]])
    sentence = study.headline(study.load_results(tmp_path))[0]
    assert "minus DPE, random (1 paired trial): at 1000 labels +0.070" in sentence
    rows = "\n".join(f"1,{r},{500 * (r + 1)},{a},{2 - a},0.05" for r, a in enumerate([0.31]))
    random_csv = study.folder_of(tmp_path, configs["DPE, random"]) / "results.csv"
    random_csv.write_text(random_csv.read_text() + rows + "\n")
    assert "(1 paired trial): at 1000 labels" in study.headline(study.load_results(tmp_path))[0]
    write_method(tmp_path / "early", configs["DPE, predictive entropy"], [[0.30, 0.45]])
    write_method(tmp_path / "early", configs["DPE, random"], [[0.30]])
    early = study.headline(study.load_results(tmp_path / "early"))[0]
    assert "minus DPE, random (1 paired trial): at 500 labels +0.000" in early


def test_round_one_shows_whether_the_machine_moved_a_pair(tmp_path):
    configs = study.method_configs()
    same = [[0.36, 0.40], [0.375, 0.41], [0.35, 0.42]]
    write_method(tmp_path, configs["DPE, predictive entropy"], same)
    write_method(tmp_path, configs["DPE, mutual information"], same)
    # trial 1 of random ran elsewhere: its first round differs
    write_method(tmp_path, configs["DPE, random"], [[0.36, 0.39], [0.367, 0.40]])
    # the plain ensemble trains another ensemble: not part of the check
    write_method(tmp_path, configs["plain ensemble, predictive entropy"], [[0.30, 0.3]] * 3)
    table = study.first_round_agreement(study.load_results(tmp_path))
    assert list(table.columns) == [
        "DPE, predictive entropy",
        "DPE, mutual information",
        "DPE, random",
        "spread",
    ]
    assert list(table["spread"].round(6)) == [0.0, 0.008, 0.0]
    assert study.describe_first_round(table) == (
        "At round 1 the DPE methods agree exactly in trials 0, 2 but differ by up to 0.008 "
        "in trial 1: that much comes from the machine alone (runs of a trial that ran on "
        "different machines or software compute in a different order), and it is part of "
        "every difference of those pairs."
    )
    agreeing = table.assign(spread=[0.0, 0.0, float("nan")])
    assert study.describe_first_round(agreeing) == (
        "At round 1 the DPE methods agree exactly in every trial checked (0, 1): "
        "no pair is split by the machine."
    )
    alone = table.assign(spread=float("nan"))
    assert "nothing to check" in study.describe_first_round(alone)
    # the plain ensemble's two methods are checked the same way, among themselves
    write_method(tmp_path, configs["plain ensemble, random"], [[0.30, 0.31], [0.31, 0.3]])
    plain = study.first_round_agreement(study.load_results(tmp_path), ensemble="plain ensemble")
    assert list(plain.columns) == [
        "plain ensemble, predictive entropy",
        "plain ensemble, random",
        "spread",
    ]
    assert list(plain["spread"].round(6).fillna(-1)) == [0.0, 0.01, -1]
    assert study.describe_first_round(plain, "plain ensemble").startswith(
        "At round 1 the plain ensemble methods agree exactly in trial 0 but differ by up to 0.010"
    )


def test_judge_reads_a_comparison_in_the_metric_s_direction(tmp_path):
    configs = study.method_configs()
    write_method(tmp_path, configs["DPE, predictive entropy"], [[0.30, 0.45], [0.32, 0.46]])
    write_method(tmp_path, configs["DPE, random"], [[0.30, 0.40], [0.32, 0.41]])
    write_method(tmp_path, configs["DPE, mutual information"], [[0.30, 0.40]])
    results = study.load_results(tmp_path)
    entropy, random = "DPE, predictive entropy", "DPE, random"
    assert study.judge(results, entropy, random) == "better"
    # write_method's NLL is 2 - accuracy: lower, so better as well
    assert study.judge(results, entropy, random, "nll") == "better"
    assert study.judge(results, random, entropy) == "worse"
    assert study.judge(results, random, entropy, curve=True) == "worse"
    assert study.judge(results, "DPE, mutual information", random) == "undecided"  # one pair
    write_method(tmp_path / "noisy", configs[entropy], [[0.30, 0.45], [0.32, 0.40]])
    write_method(tmp_path / "noisy", configs[random], [[0.30, 0.40], [0.32, 0.41]])
    assert study.judge(study.load_results(tmp_path / "noisy"), entropy, random) == "undecided"


def test_the_curve_difference_is_the_paired_mean_over_the_rounds_both_reached(finished):
    table = study.load_results(finished)
    curve = study.curve_differences(table, "DPE, predictive entropy", "DPE, random")
    # rounds at 500 and 1000 labels: the trapezoid's mean of 0.0 and +0.02
    assert curve.to_dict() == pytest.approx({0: 0.01, 1: 0.01})
