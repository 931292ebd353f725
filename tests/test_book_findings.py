"""What chapters 2 and 5 read off the ensembles they train, asserted on the same runs.

The chapters print these findings for the reader and say in their prose what
the numbers show; they assert nothing. These tests train the chapters'
ensembles as the chapters do (the same data, seeds and settings, which
``test_the_chapters_still_train_as_these_tests_do`` keeps in step) and assert
each finding the prose relies on, so a change that breaks one fails here
instead of leaving a chapter that contradicts its own output.
"""

from __future__ import annotations

from pathlib import Path

import keras
import nbformat
import numpy as np
import pandas as pd
import pytest

from dpe_tutorial.book import digits_readings, experiment_figures
from dpe_tutorial.method import acquisition, metrics
from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble
from dpe_tutorial.running import data, toy

BOOK = Path(__file__).resolve().parents[1] / "book"

# chapter 2: the toy ensemble of the figures
TOY_SETTINGS = {"n_members": 8, "width": 32, "depth": 2, "steps": 300, "learning_rate": 0.01}
# chapter 5: the two ensembles on the digits
DIGITS_MEMBERS = {"n_members": 4, "member": "small_cnn", "member_kwargs": {"width": 8}}
EPOCHS, BATCH_SIZE, LEARNING_RATE = 12, 128, 5e-3
TENSOR_NAMES = [
    "conv 1 kernel", "BN 1 scale", "BN 1 offset",
    "conv 2 kernel", "BN 2 scale", "BN 2 offset",
    "conv 3 kernel", "BN 3 scale", "BN 3 offset",
    "dense kernel",
]  # fmt: skip
DIGIT_GROUPS, UNFAMILIAR = ["seen", "unseen"], ["shuffled", "inverted", "noise"]


def chapter_code(name: str) -> str:
    cells = nbformat.read(BOOK / f"{name}.ipynb", as_version=4).cells
    return "\n".join(cell.source for cell in cells if cell.cell_type == "code")


def test_the_chapters_still_train_as_these_tests_do():
    toy_chapter = chapter_code("02_active_learning")
    for line in [
        "data = toy.two_moons(n_train=500, n_test=1_000, noise=0.25, seed=0)",
        "n_initial = 24",
        "labelled = np.random.default_rng(0).choice(",
        *(f'"{key}": {value},' for key, value in TOY_SETTINGS.items()),
        "x_labelled, y_labelled, data.n_classes, seed=0, **settings",
    ]:
        assert line in toy_chapter, f"chapter 2 no longer has {line!r}: update this test"
    digits_chapter = chapter_code("05_keras_ensemble")
    for line in [
        "n_members=4,",
        'member="small_cnn",',
        'member_kwargs={"width": 8},',
        'kl_form="exclusive",  # the ELBO\'s divergence',
        f"EPOCHS, BATCH_SIZE = {EPOCHS}, {BATCH_SIZE}",
        "keras.utils.set_random_seed(0)\ndpe = DeepProbabilisticEnsemble(**ENSEMBLE, "
        'beta="elbo")\ndpe.compile(keras.optimizers.Adam(5e-3))',
        "keras.utils.set_random_seed(0)\nplain = DeepProbabilisticEnsemble(**ENSEMBLE, "
        "beta=0.0)\nplain.compile(keras.optimizers.Adam(5e-3))",
        "digits.train.images, digits.test.images, np.random.default_rng(0)",
        str(TENSOR_NAMES[:3])[1:-1].replace("'", '"'),
    ]:
        assert line in digits_chapter, f"chapter 5 no longer has {line!r}: update this test"


@pytest.mark.slow
def test_chapter_2_toy_uncertainty_is_mostly_not_disagreement_and_grows_away_from_labels():
    moons = toy.two_moons(n_train=500, n_test=1_000, noise=0.25, seed=0)
    labelled = np.random.default_rng(0).choice(len(moons.x_train), size=24, replace=False)
    pool = np.setdiff1d(np.arange(len(moons.x_train)), labelled)
    x_labelled, y_labelled = moons.x_train[labelled], moons.y_train[labelled]
    model = toy.train_ensemble(x_labelled, y_labelled, moons.n_classes, seed=0, **TOY_SETTINGS)
    pool_points = moons.x_train[pool]
    distance = toy.nearest_label_distance(pool_points, x_labelled)
    reading = toy.disagreement_by_distance(model.predict_members(pool_points), distance)
    assert reading["share"] < 0.5
    assert reading["far"] > reading["near"]


@pytest.fixture(scope="module")
def digits_pair():
    """Chapter 5's DPE and plain ensemble, trained on the digits, and what they predict."""
    digits = data.load_digits()
    pixel_mean, pixel_std = data.channel_statistics(digits.train.images)
    ensemble = dict(
        input_shape=digits.train.image_shape,
        n_classes=10,
        kl_form="exclusive",
        input_mean=pixel_mean,
        input_std=pixel_std,
        **DIGITS_MEMBERS,
    )
    models, histories = {}, {}
    for name, beta in [("DPE", "elbo"), ("plain", 0.0)]:
        keras.utils.set_random_seed(0)
        model = DeepProbabilisticEnsemble(**ensemble, beta=beta)
        model.compile(keras.optimizers.Adam(LEARNING_RATE))
        histories[name] = model.fit(
            digits.train.images,
            digits.train.labels,
            epochs=EPOCHS,
            batch_size=BATCH_SIZE,
            verbose=0,
        ).history
        models[name] = model
    groups = experiment_figures.shifted_groups(
        digits.train.images, digits.test.images, np.random.default_rng(0)
    )
    all_images = np.concatenate(list(groups.values()))
    group_probs = {}
    for name, model in models.items():
        probs = model.predict_members(all_images, batch_size=len(all_images))
        group_probs[name] = dict(zip(groups, np.split(probs, len(groups)), strict=True))
    return digits, models, histories, group_probs


@pytest.mark.slow
def test_chapter_5_training_sets_beta_to_e_over_n_and_the_plain_penalty_ends_about_tenfold(
    digits_pair,
):
    digits, _, histories, group_probs = digits_pair
    np.testing.assert_allclose(histories["DPE"]["beta"][-1], 4 / len(digits.train), rtol=1e-6)
    ratio = histories["plain"]["kl"][-1] / histories["DPE"]["kl"][-1]
    assert 5 < ratio < 20, "the penalties no longer differ about tenfold"
    for per_group in group_probs.values():
        for probs in per_group.values():
            np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_chapter_5_the_dpe_is_accurate_but_cautious_on_the_test_digits(digits_pair):
    digits, _, histories, group_probs = digits_pair
    table = pd.DataFrame(
        {
            name: {
                **metrics.evaluate(per_group["unseen"], digits.test.labels),
                "confidence": per_group["unseen"].mean(axis=1).max(axis=1).mean(),
            }
            for name, per_group in group_probs.items()
        }
    ).T
    assert table["ensemble_accuracy"].min() > 0.9  # chance is 0.1
    dpe, plain = table.loc["DPE"], table.loc["plain"]
    assert dpe["confidence"] < plain["confidence"]
    assert dpe["confidence"] < dpe["ensemble_accuracy"]  # underconfident
    assert dpe["nll"] > plain["nll"]
    assert dpe["ece"] > plain["ece"]
    last = {name: values[-1] for name, values in histories["DPE"].items()}
    assert last["beta"] * last["kl"] > 0.25 * last["loss"]


@pytest.mark.slow
def test_chapter_5_the_members_disagree_most_on_unfamiliar_images(digits_pair):
    digits, _, _, group_probs = digits_pair
    scores = digits_readings.group_scores(group_probs)
    means = scores.groupby(["group", "model"], sort=False).mean().unstack("model")
    dpe_means = means.xs("DPE", axis=1, level="model")
    for score in digits_readings.SCORES:
        assert dpe_means.loc["seen", score] < dpe_means.loc["unseen", score], score
        for group in UNFAMILIAR:
            assert dpe_means.loc[group, score] > 2 * dpe_means.loc["unseen", score], (group, score)
    # on the digits the DPE's members disagree more, and it is less certain, than the plain's
    information = means["mutual information"]
    assert (information.loc[DIGIT_GROUPS, "DPE"] > information.loc[DIGIT_GROUPS, "plain"]).all()
    entropy = means["predictive entropy"].loc[DIGIT_GROUPS]
    assert (entropy["DPE"] > entropy["plain"]).all()
    # away from the data, both disagree by amounts of the same order
    ratio = information.loc[UNFAMILIAR, "DPE"] / information.loc[UNFAMILIAR, "plain"]
    assert ratio.between(0.5, 2.0).all(), ratio
    # the least-disagreed test digits: all four members vote alike
    test_probs = group_probs["DPE"]["unseen"]
    least = acquisition.select(-acquisition.mutual_information(test_probs), 6)
    votes = test_probs.argmax(axis=-1)
    assert (votes[least] == votes[least][:, :1]).all()
    assert len(digits.test) == len(test_probs)


@pytest.mark.slow
def test_chapter_5_the_penalty_holds_most_weight_spreads_near_the_priors(digits_pair):
    _, models, _, _ = digits_pair
    spreads = digits_readings.weight_spreads(models, TENSOR_NAMES)
    distance = np.abs(np.log(spreads))
    closer = distance["DPE"] < distance["plain"]
    assert len(closer) / 2 < closer.sum() < len(closer), (
        "the DPE is no longer closer to the prior in most but not all tensors"
    )
    assert distance["DPE"].mean() < distance["plain"].mean()
    assert (spreads.loc["dense kernel"] > 1).all()
    assert (spreads.idxmax() == "dense kernel").all(), "the classifier kernel is no longer widest"
    kernels = [name for name in TENSOR_NAMES if name.startswith("conv")]
    assert spreads.loc[kernels].stack().between(0.7, 1.3).all()
