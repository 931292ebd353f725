"""A round's training state after its last saved epoch: what lets a stopped round go on.

:class:`EpochCheckpoint` writes every variable training reads or changes (the
model's weights, batch-norm statistics and seed-generator states, and the
optimizer's step count and momenta) to one ``.npz`` file, replaced atomically,
with the identity of the round it belongs to; reading it back checks that
identity and every variable's shape and dtype, so a file of another round or a
damaged one is never resumed from. :class:`EpochSaver` is the Keras callback
that decides when to save.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from . import results
from .files import atomic_write


def round_identity(where: str, images, labels, epochs: int, seed: int) -> dict:
    """What an epoch checkpoint must have been saved for to be resumed from."""
    return {
        "where": where,
        "n_labelled": len(images),
        "epochs": epochs,
        "seed": seed,
        "data": _digest(images, labels),
    }


class EpochCheckpoint:
    """The epoch checkpoint at ``path`` (None: nothing is saved or resumed) of round ``where``.

    ``session`` (a dict, or None) records each resume under ``"resumed"``.
    """

    def __init__(self, path, where: str, session: dict | None = None):
        self.path = None if path is None else Path(path)
        self.where = where
        self.session = session

    def save(self, variables: list, epoch: int, identity: dict) -> None:
        if self.path is None:
            return
        arrays = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(variables)}
        arrays["meta"] = np.array(json.dumps({**identity, "epoch": epoch}))
        # one file, replaced atomically: the epoch and the values it describes never disagree
        atomic_write(self.path, lambda handle: np.savez(handle, **arrays))

    def restore(self, variables: list, identity: dict) -> int:
        """The number of epochs already trained, after loading their state; 0 when none."""
        if self.path is None or not self.path.exists():
            return 0
        try:
            epoch, values = read_epoch_checkpoint(self.path, identity, variables)
        except ValueError as problem:
            results.note(
                f"epoch checkpoint {self.path} is unusable ({problem}); {self.where} restarts "
                "from its first epoch and replaces it"
            )
            return 0
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        if self.session is not None:
            self.session["resumed"].append({"round": self.where, "from_epoch": epoch})
        return epoch


def read_epoch_checkpoint(path: Path, identity: dict, variables: list) -> tuple[int, list]:
    """(epochs trained, values in the order of ``variables``); ValueError says what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            names = set(stored.files) - {"meta"}
            values = [stored[f"v{i}"] for i in range(min(len(variables), len(names)))]
    except Exception as error:  # zipfile, zlib, numpy and json each raise their own
        raise ValueError(f"{type(error).__name__}: {error}") from None
    if not isinstance(meta, dict) or {k: meta.get(k) for k in identity} != identity:
        raise ValueError("it was saved for another round or labelled set")
    epoch = meta.get("epoch")
    if not isinstance(epoch, int) or not 1 <= epoch <= identity["epochs"]:
        raise ValueError(f"its epoch {epoch!r} is not in 1..{identity['epochs']}")
    if len(names) != len(variables):
        raise ValueError(f"it holds {len(names)} variables, the model has {len(variables)}")
    for variable, value in zip(variables, values, strict=True):
        if value.shape != tuple(variable.shape) or value.dtype != np.dtype(variable.dtype):
            raise ValueError(
                f"{variable.path} is {value.dtype}{list(value.shape)} there, "
                f"{variable.dtype}{list(variable.shape)} in the model"
            )
    return epoch, values


def _digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    return digest.hexdigest()


class EpochSaver(keras.callbacks.Callback):
    """Calls ``save(epochs done)`` after the first and last epochs, and at most once an interval.

    ``learner`` gives the interval (``checkpoint_interval``, seconds) and the
    ``session`` whose ``"epochs_trained"`` it counts.
    """

    def __init__(self, save: Callable[[int], None], epochs: int, learner):
        super().__init__()
        self.save, self.epochs, self.learner = save, epochs, learner
        self.last_save = None

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        now = time.monotonic()
        due = self.last_save is None or now - self.last_save >= self.learner.checkpoint_interval
        if self.learner.session is not None:  # counted first: a save records the count
            self.learner.session["epochs_trained"] += 1
        if due or done == self.epochs:
            self.save(done)
            self.last_save = now
