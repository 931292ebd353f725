"""A 2-D toy problem for the book: active learning you can look at.

Two interleaving half-moons (scikit-learn's ``make_moons``) make a pool and a
test set of points in the plane; a small deep probabilistic ensemble of MLPs
learns them from a few dozen labels in seconds, and every acquisition score
can be drawn as a map over the plane.

=============================== ===============================================
``two_moons(...)``              the pool and the test set, as :class:`ToyData`
``plane_grid(points, ...)``     a regular grid covering some points, for maps
``train_ensemble(x, y, ...)``   a :class:`~dpe_tutorial.method.ensemble.DeepProbabilisticEnsemble`
                                of ``"mlp"`` members trained for a fixed
                                number of steps
``ToyLearner``                  the same, as a :class:`~dpe_tutorial.running.active.Learner`
``active_learning_curve(...)``  one trial of the active-learning loop
                                (:func:`dpe_tutorial.running.active.run_trial`) on a
                                :class:`ToyData`, as a table
``nearest_label_distance(...)`` each point's distance to the nearest label
``disagreement_by_distance``    how much of the uncertainty is disagreement,
                                near the labels and far from them
=============================== ===============================================

The images of :mod:`dpe_tutorial.running.data` are ``uint8`` pixels; the toy
features are real coordinates, hence a container of their own.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from ..method import acquisition, checks, training
from . import active


@dataclass(frozen=True, eq=False, repr=False)
class ToyData:
    """A pool (``x_train``, ``y_train``) and a test set of 2-D points with integer labels.

    Features are ``float32`` with shape ``(n, 2)``; labels are ``int64`` with
    shape ``(n,)`` and values in ``[0, n_classes)``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    description: str

    def __post_init__(self) -> None:
        checks.whole_number("n_classes", self.n_classes, minimum=2)
        for split in ("train", "test"):
            x = np.asarray(getattr(self, f"x_{split}"))
            y = np.asarray(getattr(self, f"y_{split}"))
            if x.ndim != 2 or x.shape[1] != 2:
                raise ValueError(f"x_{split} must have shape (n, 2), got {x.shape}")
            if not np.isfinite(x).all():
                raise ValueError(f"x_{split} contains NaN or inf")
            if not np.issubdtype(y.dtype, np.integer) or y.shape != (x.shape[0],):
                raise ValueError(
                    f"y_{split} must be integers of shape ({x.shape[0]},), got {y.dtype} {y.shape}"
                )
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(f"y_{split} must lie in [0, {self.n_classes})")
            object.__setattr__(self, f"x_{split}", np.ascontiguousarray(x, dtype=np.float32))
            object.__setattr__(self, f"y_{split}", y.astype(np.int64))
        object.__setattr__(self, "n_classes", int(self.n_classes))

    def __repr__(self) -> str:
        return (
            f"ToyData(n_train={len(self.y_train)}, n_test={len(self.y_test)}, "
            f"classes={self.n_classes}, description={self.description!r})"
        )


def two_moons(n_train: int = 500, n_test: int = 1000, noise: float = 0.2, seed: int = 0) -> ToyData:
    """Two interleaving half-moons, two classes, as a pool and a test set.

    One call of ``sklearn.datasets.make_moons`` with ``n_train + n_test``
    points, Gaussian noise of standard deviation ``noise`` on each coordinate
    and ``random_state=seed``; it shuffles the points, and the first
    ``n_train`` form the pool. The same arguments give the same points.
    """
    from sklearn.datasets import make_moons

    checks.whole_number("n_train", n_train, minimum=2)
    checks.whole_number("n_test", n_test, minimum=2)
    checks.finite_number("noise", noise, minimum=0)
    checks.whole_number("seed", seed, minimum=0)
    x, y = make_moons(n_train + n_test, noise=noise, shuffle=True, random_state=int(seed))
    return ToyData(
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        n_classes=2,
        description=f"two moons (scikit-learn make_moons, noise={noise}, seed={seed})",
    )


def plane_grid(points, resolution: int = 100, margin: float = 0.5):
    """A regular ``resolution`` x ``resolution`` grid over the bounding box of ``points``.

    The box is widened by ``margin`` on every side. Returns ``(xx, yy, grid)``:
    the two coordinate arrays of shape ``(resolution, resolution)`` (as
    ``numpy.meshgrid`` makes them, for ``contourf``) and the grid points
    ``(resolution ** 2, 2)`` in ``float32``, row-major, so a score ``s``
    computed on ``grid`` is drawn as ``s.reshape(xx.shape)``.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 1:
        raise ValueError(f"points must have shape (n, 2) with n >= 1, got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("points contains NaN or inf")
    checks.whole_number("resolution", resolution, minimum=2)
    checks.finite_number("margin", margin, minimum=0)
    low = points.min(axis=0) - margin
    high = points.max(axis=0) + margin
    xx, yy = np.meshgrid(
        np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution)
    )
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    return xx, yy, grid


def train_ensemble(
    x,
    y,
    n_classes: int,
    *,
    n_members: int = 8,
    width: int = 32,
    depth: int = 2,
    steps: int = 200,
    batch_size: int = 32,
    learning_rate: float = 0.01,
    beta: float | str = "elbo",
    kl_form: str = "exclusive",
    dropout: float = 0.0,
    seed: int = 0,
):
    """A deep probabilistic ensemble of ``"mlp"`` members trained on the points ``(x, y)``.

    The E members run as one grouped network (one member: a plain one).
    Training is ``steps`` steps of Adam on minibatches of
    ``min(batch_size, len(x))`` points, drawn as successive shuffles of the
    data (so a tiny labelled set costs as much as a large one, not ``steps``
    Keras epochs). ``beta="elbo"`` is E / N with N
    the number of points. ``dropout`` > 0 puts Monte Carlo dropout after each
    hidden layer (dropping when predicting too: pass ``passes`` to
    ``predict_members`` for that many stochastic passes). Keras' random seed
    is set to ``seed`` first, so the same arguments train the same ensemble
    on a given backend.
    """
    from ..method.ensemble import DeepProbabilisticEnsemble

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"x must have shape (n, features) with n >= 1, got {x.shape}")
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integers of shape ({x.shape[0]},), got {y.dtype} {y.shape}")
    checks.whole_number("steps", steps, minimum=1)
    checks.whole_number("batch_size", batch_size, minimum=1)
    checks.finite_number("learning_rate", learning_rate, minimum=0, strict=True)
    keras.utils.set_random_seed(int(seed))
    model = DeepProbabilisticEnsemble(
        (x.shape[1],),
        n_classes,
        n_members=n_members,
        member="mlp",
        member_kwargs={
            "width": width,
            "depth": depth,
            "dropout": dropout,
            "stochastic": dropout > 0,
        },
        layout="grouped" if n_members > 1 else "branches",  # one network: no member axis
        beta=beta,
        kl_form=kl_form,
        labeled_size=x.shape[0],
    )
    training.compile_for_training(model, training.optimizer("adam", learning_rate))
    batch = min(int(batch_size), x.shape[0])
    rng = np.random.default_rng(seed)
    n_epochs = math.ceil(steps * batch / x.shape[0])
    order = np.concatenate([rng.permutation(x.shape[0]) for _ in range(n_epochs)])
    order = order[: steps * batch]
    model.fit(x[order], y[order], epochs=1, batch_size=batch, shuffle=False, verbose=0)
    return model


class ToyLearner(active.Learner):
    """:func:`train_ensemble` as an :class:`~.active.Learner`, for the round loop."""

    def __init__(self, n_classes: int, seed: int = 0, **settings):
        self.n_classes = n_classes
        self.seed = seed
        self.settings = settings
        self.model = None

    def fit(self, images, labels) -> None:
        self.model = train_ensemble(images, labels, self.n_classes, seed=self.seed, **self.settings)

    def predict_members(self, images) -> np.ndarray:
        if self.model is None:
            raise ValueError("fit the learner before predicting")
        return self.model.predict_members(images, batch_size=4096)


def active_learning_curve(
    data: ToyData, sizes, acquisition_name: str, seed: int = 0, **settings
) -> pd.DataFrame:
    """One trial of the active-learning loop on ``data``: a row per labelled-set size.

    Runs :func:`dpe_tutorial.running.active.run_trial` with a :class:`ToyLearner`
    (``settings`` go to :func:`train_ensemble`) and a throw-away checkpoint.
    ``seed`` draws the first labelled set and, with the round number, seeds
    each round's training: two acquisition scores run with the same seed
    start from the same labels and train the same first ensemble. The table
    has the columns of :data:`dpe_tutorial.running.active.RESULT_COLUMNS` but
    ``trial``, and ``acquired``: the pool indices labelled after each round.
    """
    return trial_table(
        data,
        sizes,
        acquisition_name,
        seed,
        lambda round_index, _: ToyLearner(
            data.n_classes, seed=1000 * seed + round_index, **settings
        ),
    )


def trial_table(
    data: ToyData, sizes, acquisition_name: str, seed: int, make_learner
) -> pd.DataFrame:
    """:func:`~.active.run_trial` on ``data``, with a throw-away checkpoint, as a table.

    ``make_learner(round_index, labelled)`` trains each round; the table has a
    row per round and the column ``acquired``: the pool indices labelled after it.
    """
    acquired = []
    with tempfile.TemporaryDirectory() as folder:
        rows = active.run_trial(
            train_images=data.x_train,
            train_labels=data.y_train,
            test_images=data.x_test,
            test_labels=data.y_test,
            sizes=sizes,
            make_learner=make_learner,
            acquisition_name=acquisition_name,
            seed=seed,
            checkpoint=Path(folder) / "checkpoint.json",
            on_round=lambda row, output: acquired.append(output.acquired.astype(np.int64)),
        )
    table = pd.DataFrame(rows)
    table["acquired"] = acquired
    return table


def nearest_label_distance(points, labelled) -> np.ndarray:
    """The distance from each of ``points`` ``(n, 2)`` to the nearest of ``labelled`` ``(m, 2)``."""
    points = np.asarray(points, dtype=np.float64)
    labelled = np.asarray(labelled, dtype=np.float64)
    if points.ndim != 2 or labelled.ndim != 2 or len(labelled) == 0:
        raise ValueError(
            f"points and labelled must have shape (n, d), labelled with n >= 1; "
            f"got {points.shape} and {labelled.shape}"
        )
    return np.linalg.norm(points[:, None] - labelled[None], axis=2).min(axis=1)


def disagreement_by_distance(probs, distance) -> dict[str, float]:
    """How much of the members' uncertainty is disagreement, and where it lies.

    ``probs`` are member probabilities ``(n, members, classes)`` of n points,
    ``distance`` their distances to the nearest label
    (:func:`nearest_label_distance`). Returns ``share``, the share of the
    points' summed predictive entropy that is mutual information, and the
    mean mutual information of the points nearer than the median distance
    (``near``) and farther (``far``). Chapter 2 reads its toy ensemble with
    these: mostly not disagreement, and more of it far from the labels.
    """
    distance = np.asarray(distance, dtype=np.float64)
    information = acquisition.mutual_information(probs)
    if information.shape != distance.shape:
        raise ValueError(f"{len(information)} points of probs but {distance.shape} distances")
    far = distance > np.median(distance)
    return {
        "share": float(information.sum() / acquisition.predictive_entropy(probs).sum()),
        "near": float(information[~far].mean()),
        "far": float(information[far].mean()),
    }
