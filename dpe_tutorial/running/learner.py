"""One round's ensemble: :class:`EnsembleLearner` builds, trains and scores it.

Training is resumable after any epoch (:mod:`dpe_tutorial.running.epoch_checkpoint`):
:class:`EpochOrder` draws each epoch's order of the labelled set from the
round's seed, so a resumed round visits the images as an uninterrupted one
would, and :class:`DivergenceCheck` stops a round whose loss is no longer
finite. :mod:`dpe_tutorial.running.experiment` runs the rounds of a trial with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from ..method import distribution, training
from . import active, precision, progress, round_length
from .config import ExperimentConfig, beta_label
from .epoch_checkpoint import EpochCheckpoint, EpochSaver, round_identity


class EnsembleLearner(active.Learner):
    """A fresh DeepProbabilisticEnsemble per round, trained as the config says.

    Training visits the labelled set in an order drawn from ``seed`` and the
    epoch (:class:`EpochOrder`), so that it can stop after an epoch and go on
    later, in another process, exactly as if it had not stopped. With
    ``epoch_checkpoint`` set, every variable of the model (the weights, the
    batch-norm statistics, the augmentation layers' seed-generator states) and
    of the optimizer (its step count, which drives the learning-rate schedule,
    and its momenta) is saved there after the first and the last epoch and
    after any epoch that ends ``checkpoint_interval`` seconds or more after the
    last save (a full-size ensemble's state is large; a stop loses at most
    that much training), and ``fit`` starts from what it finds. ``where``
    names the round in messages, ``diverged`` says what divergence leaves
    and leads into what to change; ``session`` (a dict) counts the epochs
    trained and the resumed rounds for ``config.json``; ``on_save`` is called
    after each epoch save (to record the session's progress with it).
    """

    def __init__(
        self,
        config: ExperimentConfig,
        input_shape,
        n_classes,
        mean,
        std,
        quiet: bool,
        *,
        seed: int = 0,
        epoch_checkpoint=None,
        where: str = "this round",
        diverged: str = "no row was saved for it. Rerun into a new output folder with",
        session: dict | None = None,
        on_save: Callable[[], None] | None = None,
    ):
        self.config = config
        self.input_shape = input_shape
        self.n_classes = n_classes
        self.mean, self.std = mean, std
        self.quiet = quiet
        self.seed = int(seed)
        self.epoch_checkpoint = None if epoch_checkpoint is None else Path(epoch_checkpoint)
        self.where, self.diverged = where, diverged
        self.session = session
        self.on_save = on_save
        self.model = None

    checkpoint_interval = 60.0  # seconds of training a stop may lose, at most

    def fit(self, images, labels):
        c = self.config
        self.model = self._build(len(images))
        identity = self._identity(images, labels)
        first = self._restore(identity)
        if first == self.epochs:
            return
        bar = None if self.quiet else progress.EpochBar(self.epochs, first)
        saver = EpochSaver(lambda epoch: self._save(epoch, identity), self.epochs, self)
        callbacks = [DivergenceCheck(self._divergence_message), saver] + ([bar] if bar else [])
        batches = EpochOrder(images, labels, c.batch_size, self.seed, first)
        try:
            # one fit call for the whole round: a call per epoch costs seconds of set-up each
            with distribution.scope(self._distribution):
                self.model.fit(
                    batches,
                    steps_per_epoch=len(batches),
                    shuffle=False,  # the batches are already in their epoch's order
                    initial_epoch=first,
                    epochs=self.epochs,
                    verbose=0,
                    callbacks=callbacks,
                )
        finally:
            if bar is not None:
                bar.close()

    def predict_members(self, images):
        chunk = 8192
        parts = []
        starts = range(0, len(images), chunk)
        for start in progress.bar(starts, self.quiet, "predicting", unit="chunk"):
            batch = images[start : start + chunk]
            with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf is checked below
                parts.append(
                    self.model.predict_members(
                        batch, batch_size=self.config.eval_batch_size, passes=self.config.passes
                    )
                )
        probs = (
            np.concatenate(parts)
            if parts
            else np.empty((0, self.config.members * self.config.passes, self.n_classes))
        )
        if not np.isfinite(probs).all():
            raise active.TrainingDiverged(
                f"training diverged in {self.where}: after epoch {self.epochs} of "
                f"{self.epochs} its predictions contain NaN or inf; {self.diverged} "
                f"{self._what_to_change()}"
            )
        return probs

    def _build(self, n_labelled: int):
        c = self.config
        # the variables are laid out over the devices as they are created, so the model is
        # built (and trained, in fit) inside the distribution's scope
        self._distribution = distribution.make(c.distribution, c.layout, c.members)
        with distribution.scope(self._distribution):
            return self._build_here(n_labelled)

    def _build_here(self, n_labelled: int):
        from ..method.ensemble import DeepProbabilisticEnsemble

        c = self.config
        model = DeepProbabilisticEnsemble(
            self.input_shape,
            self.n_classes,
            n_members=c.members,
            member=c.member,
            member_kwargs={"width": c.width, **({"stochastic": True} if c.passes > 1 else {})},
            layout=c.layout,
            beta=c.beta,
            kl_form=c.kl_form,
            regularize_batchnorm=c.regularize_batchnorm,
            mixed_precision=precision.use_bfloat16(c.mixed_precision),
            labeled_size=n_labelled,
            input_mean=self.mean,
            input_std=self.std,
            augment=c.augment,
        )
        self.epochs = round_length.round_epochs(n_labelled, c.batch_size, c.epochs, c.steps)
        steps = math.ceil(n_labelled / c.batch_size) * self.epochs
        chosen = training.optimizer(
            c.optimizer,
            c.learning_rate,
            schedule=c.lr_schedule,
            steps=steps,
            momentum=c.momentum,
            weight_decay=c.weight_decay,
        )
        return training.compile_for_training(model, chosen)

    def _identity(self, images, labels) -> dict:
        return round_identity(self.where, images, labels, self.epochs, self.seed)

    def _state(self) -> list:
        """Every variable training reads or changes; model.variables includes the seed states."""
        return [*self.model.variables, *self.model.optimizer.variables]

    def _save(self, epoch: int, identity: dict) -> None:
        EpochCheckpoint(self.epoch_checkpoint, self.where).save(self._state(), epoch, identity)
        if self.on_save is not None:
            self.on_save()

    def _restore(self, identity: dict) -> int:
        """The number of epochs already trained, after loading their state; 0 when none."""
        checkpoint = EpochCheckpoint(self.epoch_checkpoint, self.where, self.session)
        return checkpoint.restore(self._state(), identity)

    def _divergence_message(self, epoch: int, loss: float) -> str:
        return (
            f"training diverged in {self.where}, epoch {epoch} of {self.epochs} "
            f"(loss {loss}); {self.diverged} {self._what_to_change()}"
        )

    def _what_to_change(self) -> str:
        c = self.config
        change = f"a lower learning_rate (now {c.learning_rate:g})"
        if c.beta != 0:
            change += f" or a smaller beta (now {beta_label(c.beta)})"
        return change


class EpochOrder(keras.utils.PyDataset):
    """The labelled set in batches, shuffled by an order drawn from (seed, epoch).

    Our order rather than ``fit``'s shuffle: a round resumed at epoch ``first``
    sees exactly the batches the uninterrupted round would have seen. Batches
    are numbered across epochs (``fit`` needs ``steps_per_epoch=len(self)``,
    ``num_batches`` is None), so a batch's content depends on its number
    alone, not on when a prefetching pipeline asks for it.
    """

    def __init__(self, images, labels, batch_size: int, seed: int, first: int = 0):
        super().__init__()  # one worker: no enqueuer threads
        self.images, self.labels = images, labels
        self.batch_size, self.seed, self.first = batch_size, seed, first
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self):
        """Batches per epoch."""
        return math.ceil(len(self.images) / self.batch_size)

    @property
    def num_batches(self):
        return None  # an endless stream; fit stops it after its epochs

    def __getitem__(self, index):
        epoch, batch = divmod(index, len(self))
        epoch += self.first
        if epoch not in self._orders:
            rng = np.random.default_rng([self.seed, epoch])
            self._orders = {epoch: rng.permutation(len(self.images))}  # the current epoch only
        chosen = self._orders[epoch][batch * self.batch_size : (batch + 1) * self.batch_size]
        return self.images[chosen], self.labels[chosen]


class DivergenceCheck(keras.callbacks.Callback):
    """Raises TrainingDiverged at the end of an epoch whose loss is NaN or infinite."""

    def __init__(self, message: Callable[[int, float], str]):
        super().__init__()
        self.message = message

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise active.TrainingDiverged(self.message(epoch + 1, float(loss)))
