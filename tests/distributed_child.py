"""Run by tests/test_distribution.py in a JAX process with 4 virtual CPU devices.

Trains one SGD step (learning rate 1, no momentum, so the update is minus the
gradient) of the same grouped ensemble with each distribution mode and prints,
as JSON, the loss, the gradients and where each member's weights live.
"""

from __future__ import annotations

import contextlib
import json
import sys

import keras
import numpy as np

from dpe_tutorial.method import distribution
from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble

MEMBERS = 8


def one_step(mode: str) -> dict:
    strategy = distribution.make(mode, "grouped", MEMBERS)
    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    with strategy.scope() if strategy else contextlib.nullcontext():
        keras.utils.set_random_seed(0)
        model = DeepProbabilisticEnsemble(
            (8, 8, 1),
            10,
            n_members=MEMBERS,
            member="small_cnn",
            member_kwargs={"width": 2},
            layout="grouped",
            beta=0.01,
        )
        model.compile(keras.optimizers.SGD(1.0))
        before = [np.asarray(v.value) for v in model.trainable_variables]
        loss = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["loss"]
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
        after = [np.asarray(v.value) for v in model.trainable_variables]
        placement = {}
        for variable in model.trainable_variables:
            shards = variable.value.addressable_shards
            placement[variable.path] = [
                [str(s.device), [None if i.start is None else [i.start, i.stop] for i in s.index]]
                for s in shards
            ]
    return {
        "loss": float(loss),
        "gradients": [(b - a).ravel().tolist() for b, a in zip(before, after, strict=True)],
        "placement": placement,
        "shapes": [list(v.shape) for v in model.trainable_variables],
        "described": distribution.describe(strategy),
    }


if __name__ == "__main__":
    print(json.dumps({mode: one_step(mode) for mode in sys.argv[1:]}))
