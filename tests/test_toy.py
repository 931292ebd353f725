"""The book's 2-D toy problem, the MLP member, and the ensemble on feature vectors."""

from __future__ import annotations

import numpy as np
import pytest
from keras import layers, ops

from dpe_tutorial.method import models
from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble
from dpe_tutorial.running import active, toy


def numpy_of(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


# -- the MLP member ------------------------------------------------------------


@pytest.mark.keras_backend
@pytest.mark.parametrize("members", [1, 3])
def test_mlp_shapes_and_parameter_count(members):
    model = models.mlp((2,), 4, width=8, depth=2, members=members)
    out = numpy_of(model(np.zeros((5, 2), dtype="float32")))
    assert out.shape == ((5, 4) if members == 1 else (5, members, 4))
    one = (2 * 8 + 8) + (8 * 8 + 8) + (8 * 4 + 4)  # two hidden layers and the classifier
    assert model.count_params() == members * one


@pytest.mark.keras_backend
def test_mlp_depth_zero_is_logistic_regression_and_images_are_flattened():
    model = models.mlp((3, 3, 2), 5, depth=0)
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    assert len(dense) == 1 and tuple(dense[0].kernel.shape) == (18, 5)
    assert numpy_of(model(np.zeros((2, 3, 3, 2), dtype="float32"))).shape == (2, 5)


@pytest.mark.keras_backend
def test_grouped_mlp_is_e_independent_mlps():
    # copy each member's block of the grouped weights into a plain MLP: same logits
    E, width = 3, 6
    grouped = models.mlp((2,), 3, width=width, depth=2, members=E)
    x = np.random.default_rng(0).normal(size=(7, 2)).astype("float32")
    out = numpy_of(grouped(x))
    member_dense = [layer for layer in grouped.layers if isinstance(layer, models.MemberDense)]
    assert len(member_dense) == 3
    for e in range(E):
        single = models.mlp((2,), 3, width=width, depth=2)
        plain = [layer for layer in single.layers if isinstance(layer, layers.Dense)]
        for source, target in zip(member_dense, plain, strict=True):
            target.kernel.assign(numpy_of(source.kernel.value)[e])
            target.bias.assign(numpy_of(source.bias.value)[e])
        np.testing.assert_allclose(numpy_of(single(x)), out[:, e], rtol=1e-5, atol=1e-5)


@pytest.mark.keras_backend
def test_mlp_kernels_start_from_the_he_fan_out_prior():
    for members in (1, 4):
        model = models.mlp((64,), 3, width=256, depth=2, members=members)
        kernels = [
            numpy_of(layer.kernel.value)
            for layer in model.layers
            if isinstance(layer, (layers.Dense, models.MemberDense))
        ]
        hidden = kernels[1]  # 256 -> 256: 65,536 draws per member
        # sample variance of n normal draws has relative standard error sqrt(2 / n) < 0.6 %
        assert hidden.var() == pytest.approx(2.0 / 256, rel=0.03)


def test_mlp_is_a_registered_member():
    assert models.get_member("mlp") is models.mlp


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": ()}, "input_shape must be"),
        ({"input_shape": (0,)}, "input_shape must be"),
        ({"n_classes": 1}, "n_classes must be a whole number >= 2"),
        ({"width": 0}, "width must be a whole number >= 1"),
        ({"depth": -1}, "depth must be"),
        ({"depth": 1.5}, "depth must be"),
        ({"members": 0}, "members must be a whole number >= 1"),
    ],
)
def test_mlp_bad_arguments_raise(kwargs, message):
    arguments = {"input_shape": (2,), "n_classes": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        models.mlp(**arguments)


# -- the ensemble on feature vectors -------------------------------------------


def hand_exclusive_kl(stacked_kernels):
    """KL(q || p) of dense kernels (E, n_in, n_out) against N(0, 2 / n_out), in float64."""
    total = 0.0
    for stacked in stacked_kernels:
        stacked = stacked.astype(np.float64)
        prior_var = 2.0 / stacked.shape[-1]
        mu, var = stacked.mean(axis=0), stacked.var(axis=0) + 1e-8
        total += (0.5 * (np.log(prior_var / var) + (var + mu**2) / prior_var - 1)).sum()
    return total


@pytest.mark.keras_backend
@pytest.mark.parametrize("layout", ["branches", "grouped"])
def test_ensemble_on_2d_features(layout):
    model = DeepProbabilisticEnsemble(
        (2,),
        2,
        n_members=4,
        member="mlp",
        member_kwargs={"width": 8, "depth": 1},
        layout=layout,
        beta=0.1,
        kl_form="exclusive",  # the form hand_exclusive_kl computes
        input_mean=[0.5, 0.25],
        input_std=[0.9, 0.5],
    )
    x = np.random.default_rng(0).normal(size=(6, 2)).astype("float32")
    assert model.predict_members(x).shape == (6, 4, 2)
    if layout == "branches":
        kernels = [
            np.stack(
                [numpy_of(m.layers[i].kernel.value) for m in model.members]  # same layer per member
            )
            for i, layer in enumerate(model.members[0].layers)
            if isinstance(layer, layers.Dense)
        ]
    else:
        kernels = [
            numpy_of(layer.kernel.value)
            for layer in model.body.layers
            if isinstance(layer, models.MemberDense)
        ]
    assert [k.shape for k in kernels] == [(4, 2, 8), (4, 8, 2)]
    assert len(model.regularised) == 2  # the two kernels; biases are not regularised
    expected = hand_exclusive_kl(kernels)
    assert float(numpy_of(model.kl_penalty())) == pytest.approx(expected, rel=1e-4)
    # inputs are standardised per feature inside the model
    shifted = DeepProbabilisticEnsemble(
        (2,), 2, n_members=4, member="mlp", member_kwargs={"width": 8, "depth": 1},
        layout=layout, beta=0.1,
    )  # fmt: skip
    shifted.set_weights(model.get_weights())
    standardised = (x - np.array([0.5, 0.25])) / np.array([0.9, 0.5])
    np.testing.assert_allclose(
        numpy_of(shifted(standardised.astype("float32"))), numpy_of(model(x)), rtol=1e-5, atol=1e-5
    )


def test_augmentation_needs_images():
    with pytest.raises(ValueError, match=r"augment=True .* needs an input_shape of"):
        DeepProbabilisticEnsemble((2,), 2, n_members=4, member="mlp", augment=True)


# -- the toy data ----------------------------------------------------------------


def test_two_moons_shapes_types_and_determinism():
    data = toy.two_moons(n_train=50, n_test=30, noise=0.1, seed=3)
    assert data.x_train.shape == (50, 2) and data.x_test.shape == (30, 2)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert set(np.unique(data.y_train)) == {0, 1} and data.n_classes == 2
    again = toy.two_moons(n_train=50, n_test=30, noise=0.1, seed=3)
    np.testing.assert_array_equal(data.x_train, again.x_train)
    np.testing.assert_array_equal(data.y_test, again.y_test)
    other = toy.two_moons(n_train=50, n_test=30, noise=0.1, seed=4)
    assert not np.allclose(data.x_train, other.x_train)
    assert "seed=3" in data.description and "noise=0.1" in repr(data)


def test_noise_free_moons_lie_on_two_unit_half_circles():
    data = toy.two_moons(n_train=200, n_test=2, noise=0.0)
    x, y = data.x_train, data.y_train
    upper = np.hypot(x[y == 0, 0], x[y == 0, 1])  # centre (0, 0), y >= 0
    lower = np.hypot(x[y == 1, 0] - 1.0, x[y == 1, 1] - 0.5)  # centre (1, 0.5), y <= 0.5
    np.testing.assert_allclose(upper, 1.0, atol=1e-6)
    np.testing.assert_allclose(lower, 1.0, atol=1e-6)
    assert (x[y == 0, 1] >= -1e-6).all() and (x[y == 1, 1] <= 0.5 + 1e-6).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_train": 1}, "n_train must be a whole number >= 2"),
        ({"n_test": 2.5}, "n_test must be a whole number >= 2"),
        ({"noise": -0.1}, "noise must be a finite number >= 0"),
        ({"noise": float("nan")}, "noise must be a finite number >= 0"),
        ({"seed": -1}, "seed must be a whole number >= 0"),
    ],
)
def test_two_moons_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        toy.two_moons(**kwargs)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("x_train", np.zeros((4, 3)), r"x_train must have shape \(n, 2\)"),
        ("y_test", np.zeros(3, dtype=int), r"y_test must be integers of shape \(4,\)"),
        ("y_train", np.array([0, 1, 2, 0]), r"y_train must lie in \[0, 2\)"),
        ("x_test", np.full((4, 2), np.nan), "x_test contains NaN"),
        ("n_classes", 1, "n_classes must be a whole number >= 2"),
    ],
)
def test_toy_data_validates(field, value, message):
    fields = {
        "x_train": np.zeros((4, 2)),
        "y_train": np.array([0, 1, 0, 1]),
        "x_test": np.zeros((4, 2)),
        "y_test": np.array([1, 1, 0, 0]),
        "n_classes": 2,
        "description": "test",
    }
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        toy.ToyData(**fields)


def test_plane_grid_covers_the_points_with_the_margin():
    points = np.random.default_rng(0).normal(size=(40, 2)) * [3.0, 0.5] + [1.0, -2.0]
    xx, yy, grid = toy.plane_grid(points, resolution=30, margin=0.25)
    assert xx.shape == yy.shape == (30, 30) and grid.shape == (900, 2)
    assert grid.dtype == np.float32
    np.testing.assert_allclose(grid.min(axis=0), points.min(axis=0) - 0.25, rtol=1e-6)
    np.testing.assert_allclose(grid.max(axis=0), points.max(axis=0) + 0.25, rtol=1e-6)
    # row-major: a score on the grid reshapes to the meshgrid's layout
    np.testing.assert_array_equal(grid[:, 0].reshape(xx.shape), xx.astype(np.float32))
    np.testing.assert_array_equal(grid[:, 1].reshape(yy.shape), yy.astype(np.float32))
    # every point lies inside a grid cell
    assert (points.min(axis=0) > grid.min(axis=0)).all()
    assert (points.max(axis=0) < grid.max(axis=0)).all()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros((5, 3)),), {}, r"points must have shape \(n, 2\)"),
        ((np.zeros((0, 2)),), {}, r"points must have shape \(n, 2\)"),
        ((np.full((2, 2), np.inf),), {}, "points contains NaN or inf"),
        ((np.zeros((2, 2)),), {"resolution": 1}, "resolution must be a whole number >= 2"),
        ((np.zeros((2, 2)),), {"resolution": 10.0}, "resolution must be a whole number"),
        ((np.zeros((2, 2)),), {"margin": -1.0}, "margin must be a finite number >= 0"),
    ],
)
def test_plane_grid_bad_arguments_raise(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        toy.plane_grid(*args, **kwargs)


# -- training on the toy problem ---------------------------------------------------


@pytest.mark.keras_backend
def test_ensemble_learns_the_moons():
    data = toy.two_moons(n_train=200, n_test=500, noise=0.2, seed=1)
    model = toy.train_ensemble(data.x_train, data.y_train, 2, n_members=4, steps=150, seed=0)
    assert model.n_members == 4 and model.layout == "grouped" and model.labeled_size == 200
    probs = model.predict_members(data.x_test)
    accuracy = (probs.mean(axis=1).argmax(axis=1) == data.y_test).mean()
    # a linear boundary gets about 0.85 on noisy moons; the MLP ensemble bends around them
    assert accuracy > 0.9


@pytest.mark.keras_backend
def test_train_ensemble_is_deterministic_under_a_seed():
    data = toy.two_moons(n_train=40, n_test=2, seed=0)
    grid = toy.plane_grid(data.x_train, resolution=5)[2]
    first, second, other = (
        toy.train_ensemble(data.x_train, data.y_train, 2, n_members=2, steps=3, seed=seed)
        for seed in (5, 5, 6)
    )
    np.testing.assert_array_equal(first.predict_members(grid), second.predict_members(grid))
    assert not np.allclose(first.predict_members(grid), other.predict_members(grid))


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((np.zeros((4, 2)), np.zeros(3, dtype=int)), {}, r"y must be integers of shape \(4,\)"),
        ((np.zeros((4, 2)), np.zeros(4)), {}, r"y must be integers"),
        ((np.zeros(4), np.zeros(4, dtype=int)), {}, r"x must have shape \(n, features\)"),
        (
            (np.zeros((4, 2)), np.zeros(4, dtype=int)),
            {"steps": 0},
            "steps must be a whole number >= 1",
        ),
        ((np.zeros((4, 2)), np.zeros(4, dtype=int)), {"learning_rate": 0}, "learning_rate"),
    ],
)
def test_train_ensemble_bad_arguments_raise(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        toy.train_ensemble(*args, 2, **kwargs)


def test_toy_learner_needs_fitting_first():
    learner = toy.ToyLearner(2)
    assert isinstance(learner, active.Learner)
    with pytest.raises(ValueError, match="fit the learner"):
        learner.predict_members(np.zeros((1, 2), dtype="float32"))


@pytest.mark.keras_backend
def test_active_learning_curve_runs_the_loop():
    data = toy.two_moons(n_train=60, n_test=40, seed=0)
    settings = {"n_members": 2, "width": 4, "depth": 1, "steps": 2}
    table = toy.active_learning_curve(data, [10, 15], "predictive_entropy", seed=2, **settings)
    assert list(table["n_labeled"]) == [10, 15]
    assert list(table["round"]) == [0, 1]
    assert (table["acquisition"] == "predictive_entropy").all()
    assert {"ensemble_accuracy", "nll", "ece", "train_seconds"} <= set(table.columns)
    first, last = table["acquired"]
    assert len(first) == 5 and len(set(first)) == 5 and len(last) == 0
    # the first labelled set is the run_trial draw: the acquired points are new ones
    initial = np.random.default_rng(2).choice(60, size=10, replace=False)
    assert not set(first) & set(initial)
    # same seed, same first labelled set and same first model: same first row
    random_table = toy.active_learning_curve(data, [10, 15], "random", seed=2, **settings)
    assert random_table["ensemble_accuracy"][0] == table["ensemble_accuracy"][0]
    assert random_table["nll"][0] == pytest.approx(table["nll"][0], rel=1e-6)


# -- reading the toy ensemble (chapter 2) ------------------------------------


def test_nearest_label_distance_and_where_the_disagreement_lies():
    points = np.array([[0.0, 0.0], [3.0, 4.0]])
    labelled = np.array([[0.0, 1.0], [3.0, 0.0]])
    distance = toy.nearest_label_distance(points, labelled)
    np.testing.assert_allclose(distance, [1.0, 4.0])
    # near: members that agree on a hedge; far: members that are sure of different classes
    probs = np.array([[[0.5, 0.5], [0.5, 0.5]], [[1.0, 0.0], [0.0, 1.0]]])
    reading = toy.disagreement_by_distance(probs, distance)
    assert reading == pytest.approx({"share": 0.5, "near": 0.0, "far": np.log(2)})
    with pytest.raises(ValueError, match="shape"):
        toy.nearest_label_distance(points, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="2 points of probs but"):
        toy.disagreement_by_distance(probs, distance[:1])
