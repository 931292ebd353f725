"""How long a round trains: epochs, or optimizer steps, and a warning when they are too few.

Kept apart from :mod:`dpe_tutorial.method.training` (which builds Keras optimizers) so
that the query can size and check a round before any backend is imported.
"""

from __future__ import annotations

import math


def round_epochs(n_labelled: int, batch_size: int, epochs: int, steps: int | None) -> int:
    """Epochs a round trains: ``epochs``, or with ``steps`` set, enough for that many steps.

    A fixed number of epochs gives 20 labels one optimizer step an epoch and
    2,000 labels sixty-three: the small labelled sets, where active learning
    starts, barely train. ``steps`` fixes the number of updates instead,
    rounded up to whole epochs (rounds resume at an epoch boundary).
    """
    if steps is None:
        return epochs
    return math.ceil(steps / math.ceil(n_labelled / batch_size))


# fewer optimizer steps a round than this leave an ensemble barely trained from few labels
# (results/mnist-recipe: 100 steps left every model under-confident, 300 fixed most of it)
MIN_STEPS = 100


def round_steps(n_labelled: int, batch_size: int, epochs: int, steps: int | None) -> int:
    """Optimizer steps a round takes: its :func:`round_epochs` times the batches an epoch."""
    batches = math.ceil(n_labelled / batch_size)
    return round_epochs(n_labelled, batch_size, epochs, steps) * batches


def few_steps_warning(n_labelled: int, batch_size: int, epochs: int, steps: int | None):
    """A sentence when a round would take fewer than :data:`MIN_STEPS` optimizer steps; else None.

    A fixed number of epochs over a few labels is a few updates: 15 epochs of
    20 labels at batch 32 are 15 steps, and the ensemble predicts little
    better than chance. ``steps`` (the few-labels recipe) fixes the updates.
    """
    taken = round_steps(n_labelled, batch_size, epochs, steps)
    if taken >= MIN_STEPS:
        return None
    if steps is not None:
        setting = f"steps {steps}"
    else:
        setting = f"{n_labelled} labels at batch_size {batch_size} for {epochs} epoch(s)"
    return (
        f"warning: {setting} make {taken} optimizer step(s) a round, under {MIN_STEPS}: the "
        "ensemble will barely train; set steps (the few-labels preset trains 300) or more epochs"
    )
