"""Schedules, the labelled pool, and the resumable round loop (with a fast numpy learner)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from dpe_tutorial.method import acquisition
from dpe_tutorial.running import active


@pytest.mark.parametrize(
    ("spec", "budget", "expected"),
    [
        ("linear-4", 16000, [4000, 8000, 12000, 16000]),
        ("linear-3", 1000, [333, 667, 1000]),
        ("linear-1", 50, [50]),
        ("exponential-3", 400, [100, 200, 400]),
        ([10, 20, 45], None, [10, 20, 45]),
        ([10, 20, 45], 45, [10, 20, 45]),
    ],
)
def test_schedules(spec, budget, expected):
    assert active.schedule(spec, budget) == expected


@pytest.mark.parametrize(
    ("spec", "budget", "pool", "message"),
    [
        ("linear-0", 100, None, "at least one round"),
        ("linear-x", 100, None, "unknown schedule 'linear-x'"),
        ("cosine-4", 100, None, "unknown schedule"),
        ("linear-4", None, None, "needs a positive whole budget"),
        ("linear-4", 0, None, "needs a positive whole budget"),
        ("linear-4", 2, None, "positive"),  # 0.5, 1, 1.5, 2 rounds to 0, 1, 2, 2
        ("linear-4", 3, None, "strictly increasing"),  # rounds to 1, 2, 2, 3
        ([10, 10, 20], None, None, "strictly increasing"),
        ([0, 10], None, None, "positive"),
        ([], None, None, "at least one size"),
        ([1.5, 3], None, None, "whole numbers"),
        ([10, 20], 30, None, "differs from the budget"),
        ("linear-4", 400, 300, "larger than the pool \\(300 samples\\)"),
    ],
)
def test_bad_schedules(spec, budget, pool, message):
    with pytest.raises(ValueError, match=message):
        active.schedule(spec, budget, pool_size=pool)


def test_labelled_pool_keeps_acquisition_order():
    pool = active.LabelledPool(10, [7, 2])
    pool.add([5, 0])
    assert pool.labelled == [7, 2, 5, 0]
    np.testing.assert_array_equal(pool.unlabelled(), [1, 3, 4, 6, 8, 9])
    for bad in ([5], [1, 1], [10]):
        with pytest.raises(ValueError):
            pool.add(bad)
    with pytest.raises(ValueError):
        active.LabelledPool(3, [1, 1])


class NumpyLearner(active.Learner):
    """Nearest class mean on flattened images; members are noisy copies. Deterministic."""

    def __init__(self, seed: int, n_classes: int = 3, members: int = 4):
        self.rng = np.random.default_rng(seed)
        self.n_classes = n_classes
        self.members = members

    def fit(self, images, labels):
        flat = images.reshape(len(images), -1).astype(np.float64)
        self.means = np.stack([flat[labels == c].mean(axis=0) for c in range(self.n_classes)])
        self.noise = self.rng.normal(0, 0.5, size=(self.members, self.n_classes))

    def predict_members(self, images):
        flat = images.reshape(len(images), -1).astype(np.float64)
        distance = ((flat[:, None, :] - self.means[None]) ** 2).sum(axis=-1) / flat.shape[1]
        logits = -distance[:, None, :] + self.noise[None]
        logits -= logits.max(axis=-1, keepdims=True)
        probs = np.exp(logits)
        return (probs / probs.sum(axis=-1, keepdims=True)).astype(np.float32)


def toy_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = (rng.normal(0, 1, size=(n, 4, 4, 1)) + labels[:, None, None, None]).astype(np.float32)
    return images, labels


def run(
    tmp_path,
    acquisition_name="predictive_entropy",
    fail_at=None,
    outputs=None,
    name="t",
    **options,
):
    train_images, train_labels = toy_data(300, 0)
    test_images, test_labels = toy_data(90, 1)

    def make_learner(round_index, n_labelled):
        if fail_at is not None and round_index == fail_at:
            raise RuntimeError("simulated crash")
        return NumpyLearner(seed=round_index)

    return active.run_trial(
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        sizes=[30, 60, 90],
        make_learner=make_learner,
        acquisition_name=acquisition_name,
        seed=5,
        checkpoint=tmp_path / f"{name}.json",
        on_round=None if outputs is None else (lambda row, out: outputs.append(out)),
        **options,
    )


def without_timings(rows):
    return [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in rows]


def test_a_model_is_trained_at_every_size_and_the_top_scores_are_acquired(tmp_path):
    outputs = []
    rows = run(tmp_path, outputs=outputs)
    assert [r["n_labeled"] for r in rows] == [30, 60, 90]  # the last size is trained too
    assert [r["round"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert 0 <= row["ensemble_accuracy"] <= 1 and row["nll"] > 0
    for before, after in itertools.pairwise(outputs):
        # the next labelled set is this one plus the acquired batch, in that order
        np.testing.assert_array_equal(
            after.labelled, np.concatenate([before.labelled, before.acquired])
        )
        # which were the highest-scoring unlabelled samples
        expected = before.pool_indices[acquisition.select(before.pool_scores, 30)]
        np.testing.assert_array_equal(before.acquired, expected)
        assert (
            before.acquired_scores.min()
            >= np.delete(
                before.pool_scores, np.searchsorted(before.pool_indices, before.acquired)
            ).max()
        )
    assert outputs[-1].acquired.size == 0


def test_random_acquisition_is_reproducible_and_differs_from_entropy(tmp_path):
    a = run(tmp_path, "random", outputs=(first := []), name="a")
    b = run(tmp_path, "random", outputs=(second := []), name="b")
    assert without_timings(a) == without_timings(b)
    np.testing.assert_array_equal(first[0].acquired, second[0].acquired)
    run(tmp_path, "predictive_entropy", outputs=(entropy := []), name="c")
    assert set(first[0].acquired) != set(entropy[0].acquired)


def test_a_crashed_trial_resumes_to_the_uninterrupted_result(tmp_path):
    reference = run(tmp_path, "random", name="reference")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path, "random", fail_at=2, name="resumed")
    state = json.loads((tmp_path / "resumed.json").read_text())
    assert len(state["rows"]) == 2  # two complete rounds were checkpointed
    resumed = run(tmp_path, "random", name="resumed")
    assert without_timings(resumed) == without_timings(reference)
    final = json.loads((tmp_path / "resumed.json").read_text())
    assert final["labelled"] == json.loads((tmp_path / "reference.json").read_text())["labelled"]


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    run(tmp_path, "random", name="x")
    with pytest.raises(ValueError, match="belongs to another run"):
        run(tmp_path, "predictive_entropy", name="x")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        run(tmp_path, "random", name="x")


def test_a_balanced_draw_takes_every_class_equally_often():
    labels = np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 110, 120, 130, 140])
    rng = np.random.default_rng(0)
    chosen = active.balanced_draw(labels, 20, rng)
    assert len(set(chosen.tolist())) == 20
    np.testing.assert_array_equal(np.bincount(labels[chosen], minlength=10), [2] * 10)
    counts = np.bincount(labels[active.balanced_draw(labels, 25, rng)], minlength=10)
    assert sorted(counts.tolist()) == [2] * 5 + [3] * 5  # the remainder to random classes
    with pytest.raises(ValueError, match="needs 6 samples of class 0; the pool has 5"):
        active.balanced_draw(np.repeat(np.arange(2), [5, 100]), 12, rng)


def test_balanced_start_pool_subset_and_member_predictions(tmp_path):
    outputs = []
    rows = run(
        tmp_path,
        "mutual_information",
        outputs=outputs,
        initial_labels="balanced",
        pool_subset=50,
        member_predictions=True,
    )
    train_labels = toy_data(300, 0)[1]
    np.testing.assert_array_equal(np.bincount(train_labels[outputs[0].labelled]), [10, 10, 10])
    for output in outputs[:-1]:
        assert output.pool_indices.size == 50  # only the subset was scored
        assert set(output.acquired) <= set(output.pool_indices)
        assert not set(output.pool_indices) & set(output.labelled)
    assert outputs[0].test_member_probs.shape == (90, 4, 3)
    np.testing.assert_allclose(outputs[0].test_member_probs.mean(axis=1), outputs[0].test_probs)
    assert len(rows) == 3


def test_power_selection_samples_instead_of_taking_the_top(tmp_path):
    top, power = [], []
    run(tmp_path, "mutual_information", outputs=top, name="top")
    run(tmp_path, "mutual_information", outputs=power, name="power", selection="power")
    np.testing.assert_array_equal(top[0].labelled, power[0].labelled)  # same first set
    assert set(top[0].acquired) != set(power[0].acquired)
    again = []
    run(tmp_path, "mutual_information", outputs=again, name="again", selection="power")
    np.testing.assert_array_equal(power[0].acquired, again[0].acquired)  # seeded
