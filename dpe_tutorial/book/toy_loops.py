"""Several active-learning curves on one toy problem, training each shared round once.

:func:`dpe_tutorial.running.toy.active_learning_curve` runs one acquisition score. Two
scores run with the same seed start from the same labelled set and train the
same first ensemble, and the book's chapter 2 has already trained that
ensemble for its figures. :func:`active_learning_curves` runs the same loop
(:func:`dpe_tutorial.running.active.run_trial` with :class:`dpe_tutorial.running.toy.ToyLearner`)
for each score, but trains a round only once per (seed, labelled points):
:func:`dpe_tutorial.running.toy.train_ensemble` sets Keras' seed before it builds the
model, so a second training on the same points with the same seed and
settings would return the same ensemble. The tables are the ones
:func:`~dpe_tutorial.running.toy.active_learning_curve` returns, at a fraction of the
cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..running import toy


def _key(seed: int, images, labels) -> tuple:
    images = np.ascontiguousarray(images, dtype=np.float32)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    return (int(seed), images.shape, images.tobytes(), labels.tobytes())


class SharedToyLearner(toy.ToyLearner):
    """A :class:`~dpe_tutorial.running.toy.ToyLearner` that looks its ensemble up before training.

    ``trained`` maps ``(seed, points, labels)`` keys to ensembles; one trained
    here is added to it.
    """

    def __init__(self, trained: dict, n_classes: int, seed: int = 0, **settings):
        super().__init__(n_classes, seed=seed, **settings)
        self.trained = trained

    def fit(self, images, labels) -> None:
        key = _key(self.seed, images, labels)
        if key not in self.trained:
            super().fit(images, labels)
            self.trained[key] = self.model
        self.model = self.trained[key]


def active_learning_curves(
    data: toy.ToyData,
    sizes,
    acquisition_names: Sequence[str],
    seed: int = 0,
    reuse: Sequence[tuple] = (),
    **settings,
) -> dict[str, pd.DataFrame]:
    """One trial of the loop per acquisition score: name -> the table of
    :func:`dpe_tutorial.running.toy.active_learning_curve`.

    ``reuse`` holds ``(x, y, model)`` triples: ensembles already trained by
    :func:`dpe_tutorial.running.toy.train_ensemble` on the points ``x``, labels ``y``
    with ``seed=1000 * seed`` and the same ``settings``, which is how the loop
    trains its first round; a round on exactly those points uses the model
    instead of training it again.
    """
    if isinstance(acquisition_names, str) or not acquisition_names:
        raise ValueError("acquisition_names must be a non-empty list of score names")
    if len(set(acquisition_names)) != len(acquisition_names):
        raise ValueError(f"acquisition_names repeats a name: {list(acquisition_names)}")
    trained = {}
    for item in reuse:
        if len(item) != 3:
            raise ValueError("reuse holds (x, y, model) triples")
        x, y, model = item
        trained[_key(1000 * seed, x, y)] = model
    return {
        name: toy.trial_table(
            data,
            sizes,
            name,
            seed,
            lambda round_index, _: SharedToyLearner(
                trained, data.n_classes, seed=1000 * seed + round_index, **settings
            ),
        )
        for name in acquisition_names
    }
