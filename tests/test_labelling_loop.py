"""The labelling-loop study without training: folders, first labels, tables, refusals."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dpe_tutorial.labelling import loop_study, simulated_loop


def fake_mnist(path, per_digit=(6, 3)):
    """A zip in the shared copy's layout: ``train/<digit>/<i>.png``, ``test/<digit>/<i>.png``."""
    with zipfile.ZipFile(path, "w") as zipped:
        for split, count in zip(("train", "test"), per_digit, strict=True):
            for digit in range(10):
                for i in range(count):
                    buffer = io.BytesIO()
                    Image.fromarray(np.full((28, 28), digit * 20, np.uint8)).save(buffer, "PNG")
                    zipped.writestr(f"{split}/{digit}/{digit * 100 + i}.png", buffer.getvalue())
    return path


def test_folders_hide_the_class_and_keep_the_truth(tmp_path):
    archive = fake_mnist(tmp_path / "mnist.zip")
    sizes = simulated_loop.LoopSizes(pool=40, held_out=20, rounds=1)
    truth = simulated_loop.write_mnist_folders(archive, tmp_path / "work", sizes, seed=3)
    pool = sorted(p.name for p in (tmp_path / "work" / "pool").iterdir())
    assert pool == sorted(truth["pool"]) and len(pool) == 40
    assert len(truth["held_out"]) == 20
    for path, digit in truth["pool"].items():  # the file is the digit the truth names
        pixel = np.asarray(Image.open(tmp_path / "work" / "pool" / path))[0, 0]
        assert pixel == int(digit) * 20
    again = simulated_loop.write_mnist_folders(archive, tmp_path / "again", sizes, seed=3)
    assert again == truth  # a seed draws the same folders


def test_first_labels_are_balanced_and_paired(tmp_path):
    truth = {"pool": {f"d{i:03d}.png": str(i % 10) for i in range(60)}}
    first = simulated_loop.first_labels(truth, per_class=2, seed=0)
    assert sorted(pd.Series(first).value_counts().tolist()) == [2] * 10
    assert first == simulated_loop.first_labels(truth, per_class=2, seed=0)
    with pytest.raises(ValueError, match="fewer than 7"):
        simulated_loop.first_labels(truth, per_class=7, seed=0)


def test_an_archive_too_small_or_unreadable_is_one_clear_error(tmp_path):
    archive = fake_mnist(tmp_path / "mnist.zip")
    with pytest.raises(ValueError, match="holds 60 train digits, fewer than the 3000"):
        simulated_loop.write_mnist_folders(archive, tmp_path / "w", simulated_loop.LoopSizes(), 0)
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(ValueError, match=r"bad\.zip cannot be read"):
        simulated_loop.write_mnist_folders(
            tmp_path / "bad.zip", tmp_path / "w", simulated_loop.LoopSizes(), 0
        )


def rows_of(accuracies: dict[str, list[list[float]]]) -> pd.DataFrame:
    """Loop rows: per arm, one list of accuracies (20, 40, ... labels) a seed."""
    records = []
    for arm, seeds in accuracies.items():
        for seed, curve in enumerate(seeds):
            for r, accuracy in enumerate(curve):
                records.append(
                    {"method": arm, "trial": seed, "round": r, "n_labeled": 20 + 20 * r,
                     "ensemble_accuracy": accuracy, "nll": 1 - accuracy, "ece": 0.05,
                     "distinct": np.nan if r == len(curve) - 1 else 5 + seed, "seconds": 1.0}
                )  # fmt: skip
    return pd.DataFrame(records, columns=list(simulated_loop.COLUMNS))


def test_the_tables_pair_seeds_and_read_the_intervals():
    rows = rows_of(
        {
            "power sampling": [[0.5, 0.7, 0.8], [0.4, 0.6, 0.82], [0.45, 0.65, 0.79]],
            "top-k": [[0.5, 0.6, 0.75], [0.4, 0.55, 0.76], [0.45, 0.6, 0.74]],
            "random": [[0.5, 0.66, 0.76], [0.4, 0.6, 0.8], [0.45, 0.6, 0.70]],
        }
    )
    paired = loop_study.paired_table(rows).set_index("comparison")
    assert list(paired.index) == ["power sampling - random", "top-k - random",
                                  "power sampling - top-k"]  # fmt: skip
    # power - top-k: +0.05, +0.06, +0.05 at the last query: an interval above zero
    assert paired.loc["power sampling - top-k", "final_ensemble_accuracy"].startswith("+0.053 [")
    assert paired.loc["power sampling - top-k", "final_ensemble_accuracy"].endswith("better")
    # power - random: +0.04, +0.02, +0.09: higher in all three, but the interval holds zero
    assert paired.loc["power sampling - random", "final_ensemble_accuracy"].endswith("holds zero")
    # NLL is lower-is-better: power's lower NLL than top-k's reads "better"
    assert paired.loc["power sampling - top-k", "final_nll"].endswith("better")
    curve = loop_study.curve_table(rows)
    assert list(curve.columns) == [20, 40, 60] and curve.loc["random", 20].startswith("0.450 [")
    assert (
        loop_study.diversity_table(rows).loc["top-k", "distinct digits a batch"].startswith("6.0")
    )


def test_a_rerun_with_other_sizes_is_refused_and_nothing_is_lost(tmp_path):
    archive = fake_mnist(tmp_path / "mnist.zip")
    folder = tmp_path / "study"
    (folder / "runs").mkdir(parents=True)
    sizes = simulated_loop.LoopSizes(pool=40, held_out=20, rounds=1)
    loop_study._check_study(folder, sizes, ["members=4"])
    done = rows_of({"random": [[0.5, 0.6]]})
    done.to_csv(folder / "runs" / "random-seed-0.csv", index=False)
    before = (folder / "study.json").read_text()
    with pytest.raises(ValueError, match=r"records .* give another --out folder"):
        loop_study.run(folder, archive, seeds=[0], sizes=sizes, overrides=["members=8"])
    assert (folder / "study.json").read_text() == before
    # a finished loop is skipped: nothing runs, so no backend is needed
    assert loop_study.run(folder, archive, [0], ["random"], sizes, ["members=4"]) == 0
    assert json.loads(before)["overrides"] == ["members=4"]
    assert "random" in loop_study.report(folder)


def test_sizes_no_pool_can_supply_are_refused_in_words():
    with pytest.raises(
        ValueError, match=r"a pool of 40 digits cannot supply 100 labels \(20 first"
    ):
        simulated_loop.LoopSizes(pool=40)
    with pytest.raises(ValueError, match="held out must be at least 1, got 0"):
        simulated_loop.LoopSizes(held_out=0)
    assert simulated_loop.LoopSizes(pool=100).sizes() == [20, 40, 60, 80, 100]


def test_unknown_arms_and_missing_archives_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown arm 'best'; the arms are: power sampling"):
        loop_study.run(tmp_path / "s", tmp_path / "mnist.zip", arms=["best"])
    with pytest.raises(ValueError, match=r"MNIST archive .*mnist\.zip does not exist"):
        loop_study.run(tmp_path / "s", tmp_path / "mnist.zip")
    assert loop_study.report(tmp_path / "s").startswith("no finished loop")


def test_progress_counts_finished_loops():
    assert "0 of the study's 15 loops" in loop_study.progress(loop_study.load("/nonexistent"))
    rows = rows_of({"random": [[0.5, 0.6], [0.4, 0.5]], "top-k": [[0.5, 0.7]]})
    assert loop_study.progress(rows).endswith("3 of the study's 15 loops (3 arms × 5 seeds); "
                                              "seeds per arm: top-k (1), random (2).")  # fmt: skip


def test_the_curves_compare_arms_on_the_seeds_all_have_finished():
    rows = rows_of({"random": [[0.5, 0.6], [0.4, 0.5]], "top-k": [[0.5, 0.7]]})
    assert set(loop_study.complete_seeds(rows)["trial"]) == {0}
    assert loop_study.curve_table(rows).loc["random", 40] == "0.600"  # seed 0 only
    assert len(loop_study.curves_figure(rows).axes) == 1


def test_pairs_are_the_seeds_both_arms_finished_and_none_is_said_plainly():
    rows = rows_of(
        {
            "power sampling": [[0.5, 0.8], [0.4, 0.7], [0.45, 0.75]],
            "random": [[0.5, 0.7], [0.4, 0.6]],  # seed 2 not finished
        }
    )
    paired = loop_study.paired_table(rows).set_index("comparison")
    assert paired.loc["power sampling - random", "pairs"] == 2
    # seeds 0 and 1 only: +0.1 both times, so no spread and an interval of one point
    assert paired.loc["power sampling - random", "final_ensemble_accuracy"].startswith("+0.100 [")
    # ECE: lower is better; here the same in both arms, so the interval holds zero
    assert paired.loc["power sampling - random", "final_ece"].endswith("holds zero")
    alone = rows_of({"top-k": [[0.5, 0.6]]})
    assert loop_study.paired_table(alone).set_index("comparison").empty
    assert loop_study.reading(alone) == "No comparison has a finished pair of seeds yet."


def test_a_study_refuses_overrides_the_arms_set_before_writing_anything(tmp_path):
    archive = fake_mnist(tmp_path / "mnist.zip")
    sizes = simulated_loop.LoopSizes(pool=40, held_out=20, rounds=1)
    with pytest.raises(ValueError, match="--set selection=top_k: the arms set selection"):
        loop_study.run(tmp_path / "s", archive, sizes=sizes, overrides=["selection=top_k"])
    with pytest.raises(ValueError, match="membres"):  # a misspelt field
        loop_study.run(tmp_path / "s", archive, sizes=sizes, overrides=["membres=4"])
    with pytest.raises(ValueError, match="fewer than the 3000"):
        loop_study.run(tmp_path / "s", archive)
    assert not (tmp_path / "s" / "study.json").exists()  # so the right rerun is not refused


def test_the_loop_refuses_a_folder_that_already_holds_digits(tmp_path):
    archive = fake_mnist(tmp_path / "mnist.zip")
    sizes = simulated_loop.LoopSizes(pool=40, held_out=20, rounds=1)
    simulated_loop.write_mnist_folders(archive, tmp_path / "work", sizes, seed=0)
    with pytest.raises(ValueError, match=r"pool is not empty: give a new folder"):
        simulated_loop.write_mnist_folders(archive, tmp_path / "work", sizes, seed=1)
