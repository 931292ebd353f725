"""The deep probabilistic ensemble: E members trained jointly with the DPE objective.

The objective is the sum over members of the cross-entropy (a batch mean,
computed from float32 logits) plus beta times the KL penalty summed over every
regularised weight tensor: each conv and dense kernel, read across the
members, against its He-by-fan-out prior N(0, 2 / fan_out), and optionally the
batch-norm scales and offsets against N(1, 0.01) and N(0, 0.01) as in the
papers (:mod:`dpe_tutorial.method.priors` decides which weight gets which prior).
Biases are not regularised.

On beta: the negative ELBO of the labelled set of size N is
N * E_q[mean cross-entropy] + KL(q || p). The ensemble estimates the
expectation by the mean over its E members; multiplying by E / N gives
sum_e mean CE_e + (E / N) KL, which is this objective with beta = E / N.
``beta="elbo"`` uses that value; ``beta="elbo*0.01"`` a tempered one, a
multiple of E / N (as in the cold-posterior and KL-annealing literature), that
also follows N as the labelled set grows; a plain number fixes beta (the seed
post uses 1e-5).

The arguments of :class:`DeepProbabilisticEnsemble`:

input_shape: ``(height, width, channels)`` of the images, or
    ``(features,)`` for feature vectors (with the ``"mlp"`` member).
n_classes: number of classes.
n_members: E, the number of members (at least 2 when beta > 0, and at least
    4 with the inclusive and papers' forms, which divide by the spread:
    :data:`~dpe_tutorial.method.choices.MIN_MEMBERS_DIVIDING_FORMS`).
member: name of a member builder in :mod:`dpe_tutorial.method.models`
    (``"resnet18"``, ``"small_cnn"``, ``"mlp"``, or one added with
    :func:`~dpe_tutorial.method.models.register_member`).
member_kwargs: extra arguments for the builder, such as ``{"width": 16}``.
layout: ``"branches"`` builds E separate member networks side by side
    (what the seed did); ``"grouped"`` fuses them into one network
    with grouped convolutions. Same model, different speed.
beta: weight of the KL penalty: a number >= 0 (0 is a plain
    ensemble), ``"elbo"`` for E / N, or ``"elbo*F"`` for F times E / N
    (a tempered ELBO; "On beta" above).
kl_form: ``"exclusive"`` KL(q||p), ``"inclusive"`` KL(p||q) or
    ``"paper"`` (:mod:`dpe_tutorial.method.kl`).
regularize_batchnorm: also put the papers' priors on batch-norm
    scales (mean 1) and offsets (mean 0), variance 0.01.
mixed_precision: compute in bfloat16 (for GPUs); variables, logits
    and the loss stay float32.
labeled_size: N for ``beta="elbo"``. When None, ``fit`` takes the
    number of training samples it is given.
input_mean, input_std: per-channel statistics of the training images
    (pixel units), or per-feature ones for feature vectors; inputs,
    which may be ``uint8``, are standardised with them inside the
    model, so raw images go in everywhere.
augment: when training, pad by 4 pixels, crop back at random and flip
    horizontally (Keras preprocessing layers: on the device, every
    backend). Never applied when predicting or evaluating. Images only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
from keras import layers, ops

from . import checks, kl, models, priors
from .choices import (
    DEFAULT_BETA,
    DEFAULT_KL_FORM,
    LAYOUTS,
    check_members,
    elbo_multiple,
)

# What training reports, in the order compute_loss hands them to the trackers.
_TRACKED = ("cross_entropy", "kl", "beta", "ensemble_accuracy", "member_accuracy")


@keras.saving.register_keras_serializable(package="dpe_tutorial")
class DeepProbabilisticEnsemble(keras.Model):
    """An ensemble of E networks whose output stacks their logits to ``(batch, E, classes)``.

    The arguments are described in the module docstring ("The arguments").

    Compile it with an optimizer only: the loss is the DPE objective. Training
    reports ``cross_entropy``, ``kl`` (the unweighted penalty), ``beta``,
    ``ensemble_accuracy`` (of the mean prediction) and ``member_accuracy``.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        n_classes: int,
        n_members: int = 8,
        member: str = "resnet18",
        member_kwargs: dict | None = None,
        layout: str = "branches",
        beta: float | str = DEFAULT_BETA,
        kl_form: str = DEFAULT_KL_FORM,
        regularize_batchnorm: bool = True,
        mixed_precision: bool = False,
        labeled_size: int | None = None,
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
        augment: bool = False,
        **kwargs,
    ):
        kwargs.setdefault("name", "deep_probabilistic_ensemble")
        super().__init__(**kwargs)
        _check_config(n_members, layout, beta, kl_form, labeled_size)
        builder = models.get_member(member)
        self.image_shape = tuple(int(d) for d in input_shape)
        self.n_classes = int(n_classes)
        self.n_members = int(n_members)
        self.member = member
        self.member_kwargs = dict(member_kwargs or {})
        self.layout = layout
        self.beta = beta
        self.kl_form = kl_form
        self.regularize_batchnorm = bool(regularize_batchnorm)
        self.mixed_precision = bool(mixed_precision)
        self.labeled_size = None
        self.input_mean, self.input_std = _check_statistics(input_mean, input_std, input_shape)
        self.augment = bool(augment)
        if self.augment:
            self.augmentation = _augmentation(self.image_shape)
        dtype = "mixed_bfloat16" if self.mixed_precision else None
        network = _build_members(builder, self.image_shape, self.n_classes, self, dtype)
        if layout == "branches":
            self.members = network
        else:
            self.body = network
        self.regularised = priors.regularised_weights(
            network, self.n_members, self.regularize_batchnorm
        )

        # A variable, not a Python number: the compiled train step reads its
        # current value, so set_labeled_size works without recompiling.
        self.beta_variable = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="beta", dtype="float32"
        )
        self.elbo_multiple = elbo_multiple(beta)
        if self.elbo_multiple is None:
            self.beta_variable.assign(float(beta))
        if labeled_size is not None:
            self.set_labeled_size(labeled_size)

        for name in _TRACKED:  # self.cross_entropy_tracker, ...: what training reports
            setattr(self, f"{name}_tracker", keras.metrics.Mean(name=name))
        self.build((None, *self.image_shape))

    # -- the model ---------------------------------------------------------

    def build(self, input_shape):
        # every variable was created with the members in __init__
        self.built = True

    def call(self, inputs, training=False):
        inputs = ops.cast(inputs, "float32")
        if self.input_mean is not None:
            mean = ops.convert_to_tensor(self.input_mean, "float32")
            std = ops.convert_to_tensor(self.input_std, "float32")
            inputs = (inputs - mean) / std
        if training and self.augment:
            inputs = self.augmentation(inputs, training=True)
        if self.layout == "branches":
            return ops.stack([m(inputs, training=training) for m in self.members], axis=1)
        return self.body(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_members, self.n_classes)

    def set_labeled_size(self, n: int) -> None:
        """Set N, the labelled-set size; with ``beta="elbo*F"`` beta becomes F * E / N."""
        self.labeled_size = checks.whole_number("labeled_size", n, minimum=1)
        if self.elbo_multiple is not None:
            self.beta_variable.assign(self.elbo_multiple * self.n_members / self.labeled_size)

    # -- the objective -----------------------------------------------------

    def kl_penalty(self):
        """The KL penalty summed over every regularised weight tensor (no beta).

        Zero for a single network (beta must then be 0): one member has no spread.
        """
        if self.n_members < 2:
            return ops.zeros((), dtype="float32")
        return priors.kl_penalty(self.regularised, self.kl_form)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The DPE objective: sum_e mean CE_e + beta * KL (beta="elbo*F": F * E / N * KL)."""
        logits = ops.cast(y_pred, "float32")  # (batch, members, classes)
        labels = ops.cast(ops.reshape(y, (-1,)), "int32")
        cross_entropy = _summed_member_cross_entropy(logits, labels, sample_weight)
        kl_penalty = self.kl_penalty()
        beta = ops.cast(self.beta_variable.value, "float32")  # F * E / N, or the fixed number
        self._track(logits, labels, cross_entropy, kl_penalty, beta)
        return cross_entropy + beta * kl_penalty

    def _track(self, logits, labels, cross_entropy, penalty, beta) -> None:
        values = (cross_entropy, penalty, beta, *_accuracies(logits, labels))
        for name, value in zip(_TRACKED, values, strict=True):
            getattr(self, f"{name}_tracker").update_state(value)

    def compile(self, optimizer="adam", loss=None, **kwargs):
        """Compile with an optimizer; the loss is the DPE objective and cannot be replaced."""
        if loss is not None:
            raise ValueError(
                "DeepProbabilisticEnsemble has its objective built in; compile it without `loss`"
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips compiling on load when compile() is overridden; ours only adds a check
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, *args, **kwargs):
        if self.elbo_multiple is not None and self.labeled_size is None:
            self.set_labeled_size(_training_size(x, kwargs.get("validation_split")))
        return super().fit(x, y, *args, **kwargs)

    # -- prediction --------------------------------------------------------

    def predict_members(self, x, batch_size: int = 256, passes: int = 1) -> np.ndarray:
        """Member probabilities, shape ``(n, members * passes, classes)``, float32.

        ``passes`` > 1 predicts that many times and stacks the passes as
        members: with stochastic members (Monte Carlo dropout) each pass is a
        draw from the approximate posterior. Deterministic members would give
        identical copies, so ``passes`` is only for stochastic ones.
        """
        logits = np.concatenate(
            [
                np.asarray(self.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
                for _ in range(passes)
            ],
            axis=1,
        )
        return _softmax_in_place(logits)

    # -- saving ------------------------------------------------------------

    def get_config(self):
        settings = {name: getattr(self, name) for name in _SETTINGS}
        return {"name": self.name, "input_shape": list(self.image_shape), **settings}


# What get_config saves besides the name and input shape: the constructor's arguments.
_SETTINGS = (
    "n_classes",
    "n_members",
    "member",
    "member_kwargs",
    "layout",
    "beta",
    "kl_form",
    "regularize_batchnorm",
    "mixed_precision",
    "labeled_size",
    "input_mean",
    "input_std",
    "augment",
)


def _augmentation(image_shape: tuple) -> keras.Sequential:
    """Pad by 4 pixels, crop back at random and flip horizontally: images only."""
    if len(image_shape) != 3:
        raise ValueError(
            "augment=True pads, crops and flips images: it needs an input_shape of "
            f"(height, width, channels), got {image_shape}"
        )
    height, width = image_shape[:2]
    return keras.Sequential(
        [
            layers.ZeroPadding2D(4),
            layers.RandomCrop(height, width),
            layers.RandomFlip("horizontal"),
        ],
        name="augmentation",
    )


def _build_members(builder, image_shape, n_classes, ensemble, dtype):
    """E member networks side by side (``branches``), or one grouped network of E."""
    kwargs = ensemble.member_kwargs
    if ensemble.layout == "branches":
        return [
            builder(image_shape, n_classes, members=1, dtype=dtype, name=f"member_{e}", **kwargs)
            for e in range(ensemble.n_members)
        ]
    n = ensemble.n_members
    return builder(image_shape, n_classes, members=n, dtype=dtype, name="members", **kwargs)


def _accuracies(logits, labels):
    """Batch accuracy of the ensemble's mean prediction, and the members' mean accuracy."""
    ensemble_prediction = ops.argmax(ops.mean(ops.softmax(logits, axis=-1), axis=1), axis=-1)
    member_predictions = ops.argmax(logits, axis=-1)
    return (
        ops.mean(ops.cast(ops.equal(ensemble_prediction, labels), "float32")),
        ops.mean(ops.cast(ops.equal(member_predictions, ops.expand_dims(labels, 1)), "float32")),
    )


def _softmax_in_place(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, overwriting ``logits``: a pool's logits may be large."""
    logits -= logits.max(axis=-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=-1, keepdims=True)
    return logits


def _training_size(x, validation_split) -> int:
    """N for beta="elbo": the samples ``fit`` trains on (without a validation split)."""
    n = _sample_count(x)
    if n is None:
        raise ValueError(
            'beta="elbo" needs the labelled-set size N: pass labeled_size= or call '
            "set_labeled_size(n) before fitting on a dataset or generator"
        )
    return max(1, int(n * (1.0 - (validation_split or 0.0))))


def _summed_member_cross_entropy(logits, labels, sample_weight=None):
    """Sum over members of each member's (weighted) batch-mean cross-entropy."""
    n_members = logits.shape[1]
    per_member = keras.losses.sparse_categorical_crossentropy(
        ops.repeat(ops.expand_dims(labels, 1), n_members, axis=1), logits, from_logits=True
    )  # (batch, members)
    if sample_weight is None:
        return ops.sum(ops.mean(per_member, axis=0))
    weights = ops.cast(ops.reshape(sample_weight, (-1, 1)), "float32")
    return ops.sum(per_member * weights) / ops.maximum(ops.sum(weights), 1e-12)


def _check_config(n_members, layout, beta, kl_form, labeled_size) -> None:
    elbo_multiple(beta)
    kl.check_form(kl_form, "kl_form")
    check_members(n_members, beta, kl_form=kl_form)
    checks.one_of("layout", layout, LAYOUTS)
    checks.whole_number("labeled_size", labeled_size, minimum=1, optional=True)


def _check_statistics(mean, std, input_shape):
    if mean is None and std is None:
        return None, None
    if mean is None or std is None:
        raise ValueError("give both input_mean and input_std, or neither")
    channels = int(input_shape[-1])
    mean = [float(v) for v in np.ravel(mean)]
    std = [float(v) for v in np.ravel(std)]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"input_mean and input_std need one value per channel ({channels})")
    if not all(math.isfinite(v) for v in mean) or not all(math.isfinite(v) and v > 0 for v in std):
        raise ValueError("input_mean must be finite and input_std positive and finite")
    return mean, std


def _sample_count(x) -> int | None:
    """Number of samples in array-like x, or None for datasets and generators."""
    if isinstance(x, dict):
        x = next(iter(x.values()), None)
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) > 0 and shape[0] is not None:
        return int(shape[0])
    return None
