"""Keep TensorFlow's "frequent retracing" warning out of the book's outputs, and only it.

The active-learning loop trains a *fresh* ensemble every round, by design
(see chapter 2), and each fresh Keras model traces its own ``tf.function`` for
training and prediction, once per input shape (the pool shrinks every round).
TensorFlow's frequent-tracing detector counts traces per Python code object,
and every Keras model shares the code of ``TensorFlowTrainer.make_predict_function``,
so after a few rounds it logs ``WARNING:tensorflow:5 out of the last 64 calls
to <function TensorFlowTrainer.make_predict_function.<locals>...> triggered
tf.function retracing``. No function is retraced needlessly: each model's is
traced once per shape, as it must be. The warning therefore says nothing
about the code, and :func:`silence_retracing_warning` drops exactly that
record from the ``tensorflow`` logger; every other TensorFlow message still
shows. On the JAX and PyTorch backends nothing logs it and the filter is idle.
"""

from __future__ import annotations

import logging

RETRACING = "triggered tf.function retracing"


class _DropRetracing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING not in record.getMessage()


def silence_retracing_warning() -> logging.Filter:
    """Drop TensorFlow's retracing warning (see the module's docstring); idempotent.

    Returns the filter installed on the ``tensorflow`` logger.
    """
    logger = logging.getLogger("tensorflow")
    for existing in logger.filters:
        if isinstance(existing, _DropRetracing):
            return existing
    dropper = _DropRetracing()
    logger.addFilter(dropper)
    return dropper
