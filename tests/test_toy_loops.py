"""Several toy curves that share their first round: same tables, fewer trainings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpe_tutorial.book import toy_loops
from dpe_tutorial.running import toy

SETTINGS = {"n_members": 2, "width": 4, "depth": 1, "steps": 2}
SAME = ["n_labeled", "round", "acquisition", "ensemble_accuracy", "nll", "ece"]


@pytest.fixture(scope="module")
def data():
    return toy.two_moons(n_train=60, n_test=40, seed=0)


def test_shared_curves_equal_separate_ones_and_train_shared_rounds_once(data, monkeypatch):
    separate = {
        name: toy.active_learning_curve(data, [10, 15], name, seed=2, **SETTINGS)
        for name in ["predictive_entropy", "random"]
    }
    calls = []
    original = toy.train_ensemble
    monkeypatch.setattr(
        toy, "train_ensemble", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)
    )
    shared = toy_loops.active_learning_curves(
        data, [10, 15], ["predictive_entropy", "random"], seed=2, **SETTINGS
    )
    assert len(calls) == 3  # the first round once, then one second round per score
    for name in separate:
        pd.testing.assert_frame_equal(shared[name][SAME], separate[name][SAME])
        for a, b in zip(shared[name]["acquired"], separate[name]["acquired"], strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_model_trained_beforehand_is_reused_for_the_first_round(data, monkeypatch):
    first = np.random.default_rng(2).choice(60, size=10, replace=False)
    x, y = data.x_train[first], data.y_train[first]
    model = toy.train_ensemble(x, y, 2, seed=2000, **SETTINGS)
    calls = []
    original = toy.train_ensemble
    monkeypatch.setattr(
        toy, "train_ensemble", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)
    )
    curves = toy_loops.active_learning_curves(
        data, [10, 15], ["random"], seed=2, reuse=[(x, y, model)], **SETTINGS
    )
    assert len(calls) == 1  # only the second round trains
    accuracy = float(
        (model.predict_members(data.x_test).mean(axis=1).argmax(1) == data.y_test).mean()
    )
    assert curves["random"]["ensemble_accuracy"][0] == pytest.approx(accuracy)


@pytest.mark.parametrize(
    "names, reuse, message",
    [
        ([], (), "non-empty list"),
        ("random", (), "non-empty list"),
        (["random", "random"], (), "repeats a name"),
        (["random"], [(1, 2)], r"\(x, y, model\) triples"),
    ],
)
def test_bad_arguments_raise(data, names, reuse, message):
    with pytest.raises(ValueError, match=message):
        toy_loops.active_learning_curves(data, [10, 15], names, reuse=reuse, **SETTINGS)
