"""How a deep probabilistic ensemble is trained: its optimizer and learning-rate schedule.

The experiment's :class:`~dpe_tutorial.running.experiment.EnsembleLearner` and the
toy problem's :func:`~dpe_tutorial.running.toy.train_ensemble` both compile their
ensembles here, so the two differ only in the settings they pass.
"""

from __future__ import annotations

import keras

from .choices import LR_SCHEDULES, OPTIMIZERS


def optimizer(
    name: str,
    learning_rate: float,
    *,
    schedule: str = "constant",
    steps: int | None = None,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> keras.optimizers.Optimizer:
    """A fresh optimizer: SGD with ``momentum`` or Adam, at a constant or cosine-decayed rate.

    ``schedule="cosine"`` decays ``learning_rate`` to 0 over ``steps``
    optimizer steps (the whole training run); ``weight_decay`` 0 means none.
    """
    rate = learning_rate
    if schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    elif schedule != "constant":
        raise ValueError(f"schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")
    decay = weight_decay or None
    if name == "sgd":
        return keras.optimizers.SGD(rate, momentum=momentum, weight_decay=decay)
    if name == "adam":
        return keras.optimizers.Adam(rate, weight_decay=decay)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def compile_for_training(model: keras.Model, chosen: keras.optimizers.Optimizer) -> keras.Model:
    """Compile ``model`` with ``chosen`` and create the optimizer's variables now.

    Now, not at the first step: a resumed round restores these variables
    (step count, momenta) before it trains.
    """
    model.compile(chosen)
    model.optimizer.build(model.trainable_variables)
    return model
