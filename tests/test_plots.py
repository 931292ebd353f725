"""Figures and tables from results folders: fake folders with numbers checked by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from dpe_tutorial.figures import palette, plots, round_figures
from dpe_tutorial.method import metrics
from dpe_tutorial.running import run_provenance

POOL, TEST, CLASSES = 60, 20, 3
SIZES = [10, 20, 30]
CLASS_NAMES = ["cat", "dog", "fox"]
POOL_LABELS = np.arange(POOL) % CLASSES
TEST_LABELS = np.random.default_rng(99).integers(0, CLASSES, TEST)
DPE = "DPE exclusive, beta=elbo (predictive_entropy)"

# ensemble_accuracy per trial and round: means 0.6, 0.7, 0.85 and 0.5, 0.55, 0.7
DPE_ACCURACY = [[0.5, 0.6, 0.8], [0.7, 0.8, 0.9]]
RANDOM_ACCURACY = [[0.45, 0.5, 0.65], [0.55, 0.6, 0.75]]


def write_run(
    folder,
    method=DPE,
    accuracy=DPE_ACCURACY,
    acquisition="predictive_entropy",
    dataset="digits",
    device="cpu:0",
    seed=0,
):
    """A results folder as run_experiment writes it: 2 trials x 3 rounds, pool 60, test 20."""
    rng = np.random.default_rng(seed)
    record = {
        "config": {
            "dataset": dataset,
            "members": 4,
            "beta": "elbo",
            "kl_form": "exclusive",
            "acquisition": acquisition,
            "name": "fake",
        },
        "method": method,
        "schedule_sizes": SIZES,
        "dataset": {
            "name": dataset,
            "provenance": "fake",
            "pool_size": POOL,
            "test_size": TEST,
            "class_names": CLASS_NAMES,
        },
        "environment": {
            "backend": "jax",
            "device": device,
            "device_name": "a CPU",
            "git_commit": None,
        },
        "sessions": [],
        "wall_seconds": 1.0,
    }
    (folder / "rounds").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(record))
    rows = []
    for trial, values in enumerate(accuracy):
        labelled = rng.choice(POOL, SIZES[0], replace=False).astype(np.int32)
        for round, n_labeled in enumerate(SIZES):
            acquired = np.empty(0, np.int32)
            scores = np.empty(0, np.float32)
            pool_scores = np.empty(0, np.float16)
            if round + 1 < len(SIZES):
                unlabelled = np.setdiff1d(np.arange(POOL), labelled)
                pool_scores = rng.random(unlabelled.size).astype(np.float16)
                chosen = np.argsort(-pool_scores.astype(np.float64), kind="stable")
                chosen = chosen[: SIZES[round + 1] - n_labeled]
                acquired = unlabelled[chosen].astype(np.int32)
                scores = pool_scores[chosen].astype(np.float32)
            np.savez_compressed(
                folder / "rounds" / f"trial{trial}_round{round}.npz",
                labelled=labelled,
                acquired=acquired,
                acquired_scores=scores,
                pool_scores=pool_scores,
                test_probs=rng.dirichlet(np.ones(CLASSES), TEST).astype(np.float16),
            )
            rows.append(
                {
                    "trial": trial,
                    "round": round,
                    "n_labeled": n_labeled,
                    "acquisition": acquisition,
                    "ensemble_accuracy": values[round],
                    "mean_member_accuracy": values[round] - 0.05,
                    "nll": 2.0 - values[round],
                    "ece": 0.1,
                    "train_seconds": 1.5,
                    "acquire_seconds": 0.5,
                    "method": method,
                    "dataset": dataset,
                }
            )
            labelled = np.concatenate([labelled, acquired])
    # written in reverse: load_run sorts by trial and round
    pd.DataFrame(rows[::-1]).to_csv(folder / "results.csv", index=False)
    return folder


@pytest.fixture
def dpe(tmp_path):
    return plots.load_run(write_run(tmp_path / "dpe"))


@pytest.fixture
def random_run(tmp_path):
    return plots.load_run(
        write_run(tmp_path / "random", "random", RANDOM_ACCURACY, acquisition="random", seed=1)
    )


# -- load_run and labels -------------------------------------------------------


def test_load_run_reads_the_folder(dpe):
    assert dpe.method == DPE
    assert dpe.config["acquisition"] == "predictive_entropy"
    assert dpe.record["schedule_sizes"] == SIZES
    assert dpe.dataset == "digits"
    assert list(dpe.results["trial"]) == [0, 0, 0, 1, 1, 1]
    assert list(dpe.results["round"]) == [0, 1, 2, 0, 1, 2]


def test_load_run_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plots.load_run(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        plots.load_run(tmp_path / "empty")

    folder = write_run(tmp_path / "run")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        plots.load_run(folder)
    (folder / "config.json").write_text(json.dumps({"config": {}}))
    with pytest.raises(ValueError, match="'method'"):
        plots.load_run(folder)

    folder = write_run(tmp_path / "run2")
    results = pd.read_csv(folder / "results.csv")
    results.drop(columns=["nll", "n_labeled"]).to_csv(folder / "results.csv", index=False)
    with pytest.raises(ValueError, match="n_labeled, nll"):
        plots.load_run(folder)
    (folder / "results.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"results\.csv"):
        plots.load_run(folder)


def test_find_runs_skips_unfinished_folders(tmp_path, dpe, random_run):
    (tmp_path / "nested" / "unfinished").mkdir(parents=True)
    (tmp_path / "nested" / "unfinished" / "config.json").write_text(
        json.dumps({"config": {}, "method": "x"})
    )
    found = plots.find_runs(tmp_path)
    assert [run.path.name for run in found] == ["dpe", "random"]
    assert plots.find_runs(tmp_path / "missing") == []
    (tmp_path / "dpe" / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"dpe/config\.json is not valid JSON"):
        plots.find_runs(tmp_path)


def test_group_runs_by_preset_and_dataset(tmp_path, dpe, random_run):
    other = plots.load_run(write_run(tmp_path / "other", dataset="cifar10", seed=2))
    groups = plots.group_runs([dpe, other, random_run])
    assert list(groups) == ["fake on digits", "fake on cifar10"]
    assert groups["fake on digits"] == [dpe, random_run]
    assert groups["fake on cifar10"] == [other]


def test_provenance_table(dpe, random_run):
    table = plots.provenance_table([dpe, random_run])
    assert list(table["method"]) == [DPE, "random"]
    row = table.iloc[0]
    assert (row["dataset"], row["device"], row["backend"], row["commit"]) == (
        "fake",
        "a CPU",
        "jax",
        "unknown",
    )
    assert (row["trials"], row["rounds"]) == (2, 3)
    assert row["wall_minutes"] == round(1.0 / 60, 1) and row["untimed_sessions"] == 0
    # a run resumed on other machines names each machine that worked on it
    dpe.record["sessions"] = [
        {"machine": "a CPU, 2 cores", "wall_seconds": 60.0, "epochs_trained": 10},
        {"machine": "Intel Xeon @ 2.80GHz, 2 cores", "wall_seconds": None},
        # only opened the finished run: did no work there
        {"machine": "AMD EPYC, 2 cores", "wall_seconds": 0.0, "epochs_trained": 0},
    ]
    assert plots.provenance_table([dpe]).iloc[0]["device"] == "a CPU; Intel Xeon @ 2.80GHz"


def test_sessions_that_recorded_no_time_are_counted(dpe, random_run):
    dpe.record["sessions"] = [{"wall_seconds": 60.0}, {"wall_seconds": None}, {}]
    assert run_provenance.untimed_sessions(dpe.record) == 2
    provenance = plots.provenance_table([dpe, random_run])
    assert list(provenance["untimed_sessions"]) == [2, 0]
    # only the run with untimed sessions gets a note
    assert plots.untimed_notes(provenance) == [
        f"{DPE} (fake): wall_minutes is a lower bound; 2 session(s) recorded no time "
        f"({run_provenance.UNTIMED_REASON})"
    ]


def test_a_captioned_table_names_itself_and_shows_missing_values_as_a_dash():
    table = pd.DataFrame({"mean": [0.12345, math.nan]}, index=pd.Index([500, 1000], name="labels"))
    html = plots.captioned(table, "DPE minus random").to_html()
    assert "<caption>DPE minus random</caption>" in html and 'class="dataframe"' in html
    assert ">0.123<" in html and ">–<" in html


def test_run_label_names_method_dataset_and_device(dpe):
    assert plots._run_label(dpe) == f"{DPE} — digits, cpu:0"


# -- learning curves and tables ------------------------------------------------


def test_learning_curves_one_line_per_run_at_the_trial_mean(dpe, random_run):
    figure = plots.learning_curves([dpe, random_run])
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_xydata(), [[10, 0.6], [20, 0.7], [30, 0.85]])
    np.testing.assert_allclose(ax.lines[1].get_xydata(), [[10, 0.5], [20, 0.55], [30, 0.7]])
    assert [line.get_label() for line in ax.lines] == [DPE, "random"]
    assert ax.get_xlabel() == "labelled images"
    assert ax.get_ylabel() == "ensemble accuracy"
    assert "digits" in ax.get_title()
    # the band of the first run spans the lowest to the highest trial
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(0.5)
    assert band[:, 1].max() == pytest.approx(0.9)


def test_coinciding_runs_stay_visible(tmp_path, dpe):
    # the same numbers twice: the second line lies exactly on the first
    twin = plots.load_run(write_run(tmp_path / "twin", method="random", acquisition="random"))
    first, second = plots.learning_curves([dpe, twin]).axes[0].lines
    np.testing.assert_allclose(first.get_xydata(), second.get_xydata())
    assert first.get_marker() != second.get_marker()
    assert first.get_linestyle() != second.get_linestyle()
    # the later marker is smaller, so the earlier one shows around it
    assert second.get_markersize() < first.get_markersize()


def test_learning_curves_other_metric_and_given_axes(dpe):
    figure = Figure()
    ax = figure.add_subplot()
    assert plots.learning_curves([dpe], metric="nll", ax=ax) is figure
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.4, 1.3, 1.15])
    assert ax.get_ylabel() == "negative log-likelihood (nats)"


def test_repeated_methods_are_told_apart(tmp_path, dpe):
    gpu = plots.load_run(write_run(tmp_path / "gpu", device="gpu:0"))
    ax = plots.learning_curves([dpe, gpu]).axes[0]
    assert [line.get_label() for line in ax.lines] == [
        f"{DPE} — digits, cpu:0",
        f"{DPE} — digits, gpu:0",
    ]
    again = plots.load_run(write_run(tmp_path / "again"))
    labels = plots.summary_table([dpe, again])["method"].unique()
    assert list(labels) == [f"{DPE} — digits, cpu:0 [dpe]", f"{DPE} — digits, cpu:0 [again]"]


def test_two_random_runs_are_named_by_what_they_train(tmp_path, random_run):
    plain = write_run(tmp_path / "plain", "random", RANDOM_ACCURACY, acquisition="random", seed=2)
    record = json.loads((plain / "config.json").read_text())
    record["config"]["beta"] = 0.0
    (plain / "config.json").write_text(json.dumps(record))
    runs = [random_run, plots.load_run(plain)]
    expected = ["DPE exclusive, beta=elbo (random)", "plain ensemble (random)"]
    assert plots.run_labels(runs) == expected
    # tables grouped by label keep the two apart (they were merged under "random")
    gaps = round_figures.confidence_gaps(runs, TEST_LABELS)
    assert list(gaps.index.get_level_values("method").unique()) == expected
    assert plots.run_labels([random_run]) == ["random"]  # alone, the short label


def test_labels_saved_are_counted_against_random_picks_with_the_same_model(
    tmp_path, dpe, random_run
):
    plain_accuracy = [[0.3, 0.4, 0.6], [0.3, 0.4, 0.6]]  # reaches 0.5 at 25 labels
    plain = write_run(tmp_path / "plain", "random", plain_accuracy, acquisition="random", seed=2)
    record = json.loads((plain / "config.json").read_text())
    record["config"]["beta"] = 0.0
    (plain / "config.json").write_text(json.dumps(record))
    # the plain ensemble's random run comes first, so "the first random run" would be it
    table = plots.labels_to_reach([plots.load_run(plain), dpe, random_run], target=0.5)
    assert list(table["labels"]) == [25, 10, 10]
    # DPE against DPE's random run (10 labels), the plain run against itself
    assert list(table["labels_saved"]) == [0, 0, 0]


@pytest.mark.parametrize("metric", ["accuracy", "trial", "n_labeled", "method"])
def test_unknown_metric_lists_the_valid_ones(dpe, metric):
    for call in (
        lambda: plots.learning_curves([dpe], metric=metric),
        lambda: plots.summary_table([dpe], metric=metric),
        lambda: plots.labels_to_reach([dpe], 0.5, metric=metric),
    ):
        with pytest.raises(ValueError, match=r"valid metrics are ensemble_accuracy, .*ece"):
            call()


def test_summary_table_by_hand(dpe, random_run):
    table = plots.summary_table([dpe, random_run])
    assert list(table.columns) == ["method", "n_labeled", "mean", "std", "trials"]
    assert list(table["method"]) == [DPE] * 3 + ["random"] * 3
    assert list(table["n_labeled"]) == SIZES * 2
    np.testing.assert_allclose(table["mean"], [0.6, 0.7, 0.85, 0.5, 0.55, 0.7])
    # two trials that differ by d have a sample std of d / sqrt(2)
    np.testing.assert_allclose(table["std"], np.array([0.2, 0.2, 0.1, 0.1, 0.1, 0.1]) / 2**0.5)
    assert list(table["trials"]) == [2] * 6


def test_labels_to_reach_interpolates_and_compares_with_random(dpe, random_run):
    table = plots.labels_to_reach([dpe, random_run], 0.65)
    assert list(table.columns) == ["method", "dataset", "labels", "labels_saved"]
    # DPE: 0.6 at 10, 0.7 at 20 -> 15; random: 0.55 at 20, 0.7 at 30 -> 20 + 10 * 0.1 / 0.15
    random_labels = 20 + 10 * 0.1 / 0.15
    np.testing.assert_allclose(table["labels"], [15.0, random_labels])
    np.testing.assert_allclose(table["labels_saved"], [random_labels - 15.0, 0.0])


def test_labels_to_reach_edges(dpe, random_run):
    # reached by DPE only at its last round, never by random
    table = plots.labels_to_reach([dpe, random_run], 0.8)
    assert table["labels"][0] == pytest.approx(20 + 10 * 0.1 / 0.15)
    assert math.isnan(table["labels"][1])
    assert table["labels_saved"].isna().all()
    # already reached at the first round: that round's labels
    assert plots.labels_to_reach([dpe], 0.55)["labels"][0] == 10
    # no random run: nothing to compare with
    assert math.isnan(plots.labels_to_reach([dpe], 0.65)["labels_saved"][0])
    # NLL is reached from above: 1.4, 1.3, 1.15 -> 1.2 at 20 + 10 * 0.1 / 0.15
    nll = plots.labels_to_reach([dpe], 1.2, metric="nll")
    assert nll["labels"][0] == pytest.approx(20 + 10 * 0.1 / 0.15)
    with pytest.raises(ValueError, match="target"):
        plots.labels_to_reach([dpe], "high")


# -- figures of one round ------------------------------------------------------


def test_reliability_diagram_draws_metrics_reliability(dpe):
    ax = round_figures.reliability_diagram(dpe, TEST_LABELS, bins=5).axes[0]
    probs = plots.load_round(dpe, 0, 2)["test_probs"]  # round=None is the last round
    table = metrics.reliability(probs, TEST_LABELS, 5)
    filled = table["count"] > 0
    heights = np.array([bar.get_height() for bar in ax.containers[0]])
    assert len(heights) == 5
    np.testing.assert_allclose(heights[filled], table["accuracy"][filled])
    np.testing.assert_array_equal(heights[~filled], 0.0)
    ece = metrics.expected_calibration_error(probs, TEST_LABELS, 5)
    assert f"ECE = {ece:.3f}" in ax.get_title()
    # figures count rounds from 1, files from 0
    assert "round 3 (30 labels)" in ax.get_title()
    assert (
        "round 1 (10 labels)"
        in round_figures.reliability_diagram(dpe, TEST_LABELS, round=0).axes[0].get_title()
    )


def test_confidence_gaps_are_accuracy_minus_mean_top_probability(dpe, random_run):
    gaps = round_figures.confidence_gaps([dpe, random_run], TEST_LABELS)
    # a row per finished trial of every run, in the runs' order
    assert list(gaps.index) == [
        (dpe.method, 0),
        (dpe.method, 1),
        (random_run.method, 0),
        (random_run.method, 1),
    ]
    probs = plots.load_round(dpe, 1, 2)["test_probs"].astype(np.float64)
    row = gaps.loc[(dpe.method, 1)]
    accuracy = np.mean(probs.argmax(1) == TEST_LABELS)
    assert row["labels"] == SIZES[-1]
    assert row["accuracy"] == pytest.approx(accuracy)
    assert row["mean_confidence"] == pytest.approx(probs.max(1).mean())
    assert row["accuracy_minus_confidence"] == pytest.approx(accuracy - probs.max(1).mean())
    with pytest.raises(ValueError, match="one label per test set image"):
        round_figures.confidence_gaps([dpe], TEST_LABELS[:-1])
    with pytest.raises(ValueError, match="runs is empty"):
        round_figures.confidence_gaps([], TEST_LABELS)


def test_a_trial_still_running_has_no_confidence_gap(dpe):
    (dpe.path / "rounds" / "trial1_round2.npz").unlink()
    gaps = round_figures.confidence_gaps([dpe], TEST_LABELS)
    assert list(gaps.index) == [(dpe.method, 0)]


def test_confidence_gaps_described_per_method_over_its_trials():
    def gaps(method_rows):
        index = pd.MultiIndex.from_tuples(
            [(method, trial) for method, trial, *_ in method_rows], names=["method", "trial"]
        )
        values = [row[2:] for row in method_rows]
        columns = ["accuracy", "mean_confidence", "accuracy_minus_confidence"]
        return pd.DataFrame(values, index=index, columns=columns)

    one = gaps([("DPE", 0, 0.44, 0.29, 0.15)])
    assert round_figures.describe_confidence_gaps(one) == [
        "DPE: accuracy 0.440, confidence 0.290: under-confident by 0.150 (trial 0 only)"
    ]
    three = gaps(
        [
            ("DPE", 0, 0.44, 0.29, 0.15),
            ("DPE", 1, 0.45, 0.32, 0.13),
            ("DPE", 2, 0.43, 0.26, 0.17),
            ("random", 0, 0.44, 0.41, 0.03),
            ("random", 1, 0.44, 0.46, -0.02),
            ("random", 2, 0.44, 0.40, 0.04),
            ("plain", 0, 0.40, 0.46, -0.06),
            ("plain", 1, 0.40, 0.44, -0.04),
        ]
    )
    assert round_figures.describe_confidence_gaps(three) == [
        "DPE: under-confident in all 3 trials; accuracy minus confidence +0.150 on "
        "average (+0.130 to +0.170); mean accuracy 0.440, mean confidence 0.290",
        "random: under-confident in 2 of 3 trials, over in the rest; accuracy minus "
        "confidence +0.017 on average (-0.020 to +0.040); mean accuracy 0.440, mean "
        "confidence 0.423",
        "plain: over-confident in both trials; accuracy minus confidence -0.050 on "
        "average (-0.060 to -0.040); mean accuracy 0.400, mean confidence 0.450",
    ]


def test_reliability_diagram_errors(dpe):
    with pytest.raises(ValueError, match="one label per test set image"):
        round_figures.reliability_diagram(dpe, TEST_LABELS[:5])
    with pytest.raises(FileNotFoundError, match="saved rounds are 0, 1, 2"):
        round_figures.reliability_diagram(dpe, TEST_LABELS, round=7)
    with pytest.raises(FileNotFoundError, match="saved trials are 0, 1"):
        round_figures.reliability_diagram(dpe, TEST_LABELS, trial=3)


def test_score_histograms_one_per_acquiring_round(dpe):
    ax = round_figures.score_histograms(dpe, trial=1).axes[0]
    assert len(ax.patches) == 2  # rounds 0 and 1 acquired, round 2 did not
    for patch, round, unlabelled in zip(ax.patches, [0, 1], [50, 40], strict=True):
        counts = patch.get_data().values
        assert counts.sum() == unlabelled
        assert f"round {round + 1}:" in patch.get_label()
    assert patch.get_edgecolor() != ax.patches[0].get_edgecolor()
    thresholds = [line.get_xdata()[0] for line in ax.lines]
    for threshold, round in zip(thresholds, [0, 1], strict=True):
        assert threshold == pytest.approx(plots.load_round(dpe, 1, round)["acquired_scores"].min())
    assert ax.get_xlabel() == "predictive_entropy score"


def test_class_balance_fractions(dpe):
    ax = round_figures.class_balance(dpe, POOL_LABELS, CLASS_NAMES).axes[0]
    heights = np.array([[bar.get_height() for bar in bars] for bars in ax.containers])
    assert heights.shape == (CLASSES, len(SIZES))
    np.testing.assert_allclose(heights.sum(axis=0), 1.0)
    for round in range(len(SIZES)):
        labelled = plots.load_round(dpe, 0, round)["labelled"]
        by_hand = [np.mean(POOL_LABELS[labelled] == c) for c in range(CLASSES)]
        np.testing.assert_allclose(heights[:, round], by_hand)
    assert [label.get_text() for label in ax.get_xticklabels()] == ["10", "20", "30"]
    assert [bars.get_label() for bars in ax.containers] == CLASS_NAMES
    # the classes in the book's colour-blind-safe scheme
    assert [to_hex(bars.patches[0].get_facecolor()) for bars in ax.containers] == [
        c.lower() for c in palette.categories(CLASSES)
    ]
    with pytest.raises(ValueError, match="one label per pool image"):
        round_figures.class_balance(dpe, POOL_LABELS[:10], CLASS_NAMES)
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        round_figures.class_balance(dpe, POOL_LABELS, CLASS_NAMES[:2])


def test_acquired_grid(dpe):
    images = np.random.default_rng(0).integers(0, 256, (POOL, 8, 8, 1), dtype=np.uint8)
    figure = round_figures.acquired_grid(
        dpe, images, round=1, count=4, class_names=CLASS_NAMES, pool_labels=POOL_LABELS
    )
    assert len(figure.axes) == 4
    arrays = plots.load_round(dpe, 0, 1)
    for ax, index, score in zip(
        figure.axes, arrays["acquired"][:4], arrays["acquired_scores"][:4], strict=True
    ):
        assert ax.get_title() == f"{score:.3g}\n{CLASS_NAMES[POOL_LABELS[index]]}"
        shown = ax.images[0]
        assert shown.get_cmap().name == "gray"
        np.testing.assert_array_equal(shown.get_array(), images[index, :, :, 0])
    # asking for more than the round acquired shows what it acquired
    rgb = np.zeros((POOL, 8, 8, 3), dtype=np.uint8)
    assert len(round_figures.acquired_grid(dpe, rgb, count=16).axes) == 10
    # a row of five: two rows, the images of the default grid in the same order
    row = round_figures.acquired_grid(dpe, rgb, count=10, columns=5)
    shape = {ax.get_subplotspec().get_geometry()[:2] for ax in row.axes}
    assert shape == {(2, 5)}
    assert {ax.get_subplotspec().get_geometry()[:2] for ax in figure.axes} == {(2, 2)}
    with pytest.raises(ValueError, match="columns"):
        round_figures.acquired_grid(dpe, rgb, columns=0)
    with pytest.raises(ValueError, match="acquired no images"):
        round_figures.acquired_grid(dpe, images, round=2)
    with pytest.raises(ValueError, match="uint8"):
        round_figures.acquired_grid(dpe, images.astype(np.float32))


# -- saving --------------------------------------------------------------------


def test_save_figure_writes_atomically(tmp_path, dpe):
    figure = plots.learning_curves([dpe])
    path = tmp_path / "figures" / "nested" / "curves.png"
    plots.save_figure(figure, path)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in path.parent.iterdir()] == ["curves.png"]
    svg = tmp_path / "figures" / "curves.svg"
    plots.save_figure(figure, svg)
    first = svg.read_bytes()
    plots.save_figure(figure, svg)
    assert svg.read_bytes() == first  # no dates, no random ids
    with pytest.raises(ValueError, match="suffix"):
        plots.save_figure(figure, tmp_path / "curves.jpeg")
    assert not (tmp_path / "curves.jpeg").exists()
    # permissions as open() gives them, not mkstemp's private 0o600
    reference = tmp_path / "reference"
    reference.write_bytes(b"")
    assert path.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777


def test_failed_save_keeps_the_old_file_and_no_temporary(tmp_path, dpe, monkeypatch):
    figure = plots.learning_curves([dpe])
    path = tmp_path / "curves.png"
    plots.save_figure(figure, path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        plots.save_figure(figure, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "dpe"]


def test_provenance_lists_every_sessions_commit_and_shortens_data_hashes(dpe):
    record = json.loads((dpe.path / "config.json").read_text())
    record["environment"]["git_commit"] = "a" * 40
    record["sessions"] = [{"git_commit": "a" * 40}, {"git_commit": "b" * 40 + "+dirty"}, {}]
    record["dataset"]["provenance"] = (
        "CIFAR-10 (JPEG copy): cifar10-jpeg.zip (sha256 " + "0f" * 32 + ")"
    )
    (dpe.path / "config.json").write_text(json.dumps(record))
    row = plots.provenance_table([plots.load_run(dpe.path)]).iloc[0]
    assert row["commit"] == "aaaaaaaaaa, bbbbbbbbbb"
    assert row["dataset"] == "CIFAR-10 (JPEG copy): cifar10-jpeg.zip (sha256 0f0f0f0f)"


def test_rows_put_every_run_side_by_side_with_one_legend(dpe, random_run):
    runs = [dpe, random_run]
    balance = round_figures.class_balance_row(runs, POOL_LABELS, CLASS_NAMES)
    axes = balance.axes
    assert len(axes) == 2
    assert [ax.get_title().replace("\n", " ") for ax in axes] == [r.method for r in runs]
    assert [ax.get_legend() is not None for ax in axes] == [False, True]
    # the same bars as one figure per run
    alone = round_figures.class_balance(random_run, POOL_LABELS, CLASS_NAMES).axes[0]
    assert [b.get_height() for b in axes[1].containers[0]] == [
        b.get_height() for b in alone.containers[0]
    ]
    calibration = round_figures.reliability_row(runs, TEST_LABELS)
    assert len(calibration.axes) == 2 and len(calibration.legends) == 1
    assert all(ax.get_legend() is None for ax in calibration.axes)
    assert [ax.get_xlabel() for ax in calibration.axes] == ["confidence"] * 2
    assert [ax.get_ylabel() for ax in calibration.axes] == ["accuracy", ""]
    # one run is not stretched across the page; several fill at most the full width
    one = round_figures.class_balance_row([dpe], POOL_LABELS, CLASS_NAMES)
    assert one.get_figwidth() == pytest.approx(palette.PANEL_WIDTH)
    many = round_figures.reliability_row([dpe, random_run, dpe, random_run], TEST_LABELS)
    assert many.get_figwidth() == pytest.approx(palette.MAX_WIDTH)
    with pytest.raises(ValueError, match="runs is empty"):
        round_figures.reliability_row([], TEST_LABELS)


def test_class_tilt_counts_each_trial_s_last_labelled_set_against_the_pool(dpe, random_run):
    from dpe_tutorial.studies import class_tilt

    shares = class_tilt.last_round_shares([dpe, random_run], POOL_LABELS, CLASS_NAMES)
    assert shares.loc[("pool", -1), CLASS_NAMES].tolist() == pytest.approx([1 / 3] * 3)
    for run in (dpe, random_run):
        labelled = plots.load_round(run, 0, len(SIZES) - 1)["labelled"]
        by_hand = [np.mean(POOL_LABELS[labelled] == c) for c in range(CLASSES)]
        row = shares.loc[(run.method, 0)]
        assert row[CLASS_NAMES].tolist() == pytest.approx(by_hand)
        assert row["labels"] == len(labelled) and 0 <= row["chi2_p"] <= 1
    sentences = class_tilt.describe(shares, ("cat", "dog"))
    assert sentences[0] == "cat and dog: 67% of the pool."
    assert sentences[1].startswith(f"{dpe.method}: ")
    assert "chi-square against the pool's class mix, largest p = " in sentences[1]
    with pytest.raises(ValueError, match=r"classes \['ship'\] are not among"):
        class_tilt.describe(shares, ("ship",))


def test_a_labelled_set_of_one_class_is_far_from_the_pool_s_mix(monkeypatch):
    import pandas as pd

    from dpe_tutorial.studies import class_tilt

    class OneClass:  # the least a Run needs here: a method and its results' trials
        method = "all cats"
        results = pd.DataFrame({"trial": [0]})

    labelled = np.flatnonzero(POOL_LABELS == 0)[:15]
    monkeypatch.setattr(class_tilt, "load_round", lambda run, trial, round: {"labelled": labelled})
    monkeypatch.setattr(class_tilt, "saved_rounds", lambda run, trial: [0])
    shares = class_tilt.last_round_shares([OneClass()], POOL_LABELS, CLASS_NAMES)
    assert shares.loc[("all cats", 0), "cat"] == 1.0
    assert shares.loc[("all cats", 0), "chi2_p"] < 1e-5


def test_a_kind_of_method_keeps_its_style_in_every_figure():
    dpe = {"beta": "elbo*0.1", "acquisition": "predictive_entropy"}
    random = {"beta": "elbo*0.1", "acquisition": "random"}
    plain = {"beta": 0.0, "acquisition": "predictive_entropy"}
    bald = {"beta": "elbo", "acquisition": "mutual_information"}
    # the CPU study's four methods and the book build's three, in other orders
    four = palette.method_indices([bald, dpe, random, plain])
    three = palette.method_indices([dpe, random, plain])
    assert dict(zip(["bald", "dpe", "random", "plain"], four, strict=True)) == {
        "bald": 1,
        "dpe": 0,
        "random": 2,
        "plain": 3,
    }
    assert three == [0, 2, 3]
    # two runs of one kind (two betas) still get two styles; unknown kinds the free ones
    assert palette.method_indices([dpe, {**dpe, "beta": "elbo"}]) == [0, 1]
    assert palette.method_indices([{}, random, {}]) == [0, 2, 1]
