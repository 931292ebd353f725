"""Ensemble members: the CIFAR ResNet-18, Gal et al.'s MNIST CNN, a small CNN, and an MLP.

Each builder returns a functional ``keras.Model`` that maps images (or, for
:func:`mlp`, feature vectors) to logits.
With ``members=1`` (the default) it is one plain network, shape
``(batch, classes)``. With ``members=E`` it is E independent networks fused in
one graph, shape ``(batch, E, classes)``: the input is repeated E times along
the channels, every convolution is grouped (``groups=E``, so member e only
sees its own channels), batch norm is per channel (so per member), and the
classifier is a :class:`MemberDense` (so are the MLP's hidden layers). This
"grouped" layout runs the members as one wide network instead of E branches;
the ensemble offers both.

Every parameter the DPE penalty regularises starts as a draw from its prior:
kernels from the He-by-fan-out prior N(0, 2 / fan_out), batch-norm scales from
N(1, 0.01) and offsets from N(0, 0.01). Identical starting values would give
the members a zero spread, which the penalties that divide by the spread
(``inclusive`` and ``paper``) cannot survive. Only ``keras.layers`` and
``keras.ops``: every backend works.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import layers, ops

from . import checks

MemberBuilder = Callable[..., keras.Model]

BATCHNORM_PRIOR_VARIANCE = 0.01  # the papers' prior on batch-norm scales (mean 1) and offsets (0)


def prior_initializer(members: int = 1) -> keras.initializers.Initializer:
    """He initialisation by fan-out: draws kernels from the DPE prior N(0, 2 / fan_out).

    Keras counts the fan-out of a grouped kernel over all E members' output
    channels; scaling by E gives each member the variance 2 / fan_out of its
    own kernel.
    """
    return keras.initializers.VarianceScaling(
        2.0 * members, mode="fan_out", distribution="untruncated_normal"
    )


def batchnorm_prior_initializer(mean: float) -> keras.initializers.Initializer:
    """Draws batch-norm scales (mean 1) or offsets (mean 0) from the papers' prior N(mean, 0.01).

    Every channel, so every member, gets its own draw: the members start
    spread like the prior instead of as identical copies.
    """
    return keras.initializers.RandomNormal(mean=mean, stddev=BATCHNORM_PRIOR_VARIANCE**0.5)


@keras.saving.register_keras_serializable(package="dpe_tutorial")
class RepeatChannels(layers.Layer):
    """Repeats the input E times along the channel axis: one copy per member."""

    def __init__(self, members: int, **kwargs):
        super().__init__(**kwargs)
        self.members = members

    def call(self, x):
        return ops.tile(x, [1] * (len(x.shape) - 1) + [self.members])

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] * self.members)

    def get_config(self):
        return {**super().get_config(), "members": self.members}


@keras.saving.register_keras_serializable(package="dpe_tutorial")
class MemberDense(layers.Layer):
    """E independent dense layers: ``(batch, E * d)`` features to ``(batch, E, units)``.

    The kernel has shape ``(E, d, units)``: its leading axis is the member
    axis, so the DPE penalty reads it as it is.
    """

    def __init__(self, members: int, units: int, **kwargs):
        super().__init__(**kwargs)
        self.members = members
        self.units = units

    def build(self, input_shape):
        features = input_shape[-1] // self.members
        self.kernel = self.add_weight(
            shape=(self.members, features, self.units),
            initializer=prior_initializer(self.members),
            name="kernel",
        )
        self.bias = self.add_weight(
            shape=(self.members, self.units), initializer="zeros", name="bias"
        )

    def call(self, x):
        x = ops.reshape(x, (-1, self.members, x.shape[-1] // self.members))
        return ops.einsum("bed,edu->beu", x, self.kernel) + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.members, self.units)

    def get_config(self):
        return {**super().get_config(), "members": self.members, "units": self.units}


class _Stack:
    """Layer factory for one builder call: plain layers, or grouped ones for E members."""

    def __init__(self, members: int, dtype):
        self.members = checks.whole_number("members", members, minimum=1)
        self.dtype = dtype

    def conv(self, x, filters: int, kernel_size: int, strides: int = 1):
        return layers.Conv2D(
            filters * self.members,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=False,
            groups=self.members,
            kernel_initializer=prior_initializer(self.members),
            dtype=self.dtype,
        )(x)

    def batch_norm(self, x):
        return layers.BatchNormalization(
            momentum=0.9,
            epsilon=1e-5,
            gamma_initializer=batchnorm_prior_initializer(1.0),
            beta_initializer=batchnorm_prior_initializer(0.0),
            dtype=self.dtype,
        )(x)

    def relu(self, x):
        return layers.ReLU(dtype=self.dtype)(x)

    def dense(self, x, units: int):
        """A dense layer per member: ``(batch, E * d)`` features to ``(batch, E * units)``."""
        if self.members == 1:
            return layers.Dense(units, kernel_initializer=prior_initializer(), dtype=self.dtype)(x)
        x = MemberDense(self.members, units, dtype=self.dtype)(x)
        return layers.Reshape((self.members * units,), dtype=self.dtype)(x)

    def head(self, x, n_classes: int):
        """Global average pooling and the classifier, with float32 logits."""
        return self.classifier(layers.GlobalAveragePooling2D(dtype=self.dtype)(x), n_classes)

    def classifier(self, x, n_classes: int):
        """The dense classifier on ``(batch, E * d)`` features, with float32 logits."""
        if self.members == 1:
            return layers.Dense(n_classes, kernel_initializer=prior_initializer(), dtype="float32")(
                x
            )
        return MemberDense(self.members, n_classes, dtype="float32")(x)

    def inputs(self, input_shape):
        inputs = keras.Input(shape=tuple(input_shape))
        x = inputs
        if self.members > 1:
            x = RepeatChannels(self.members, dtype=self.dtype)(x)
        return inputs, x


def _check_shapes(input_shape: Sequence[int], n_classes: int, width: int, image=True) -> None:
    """The arguments every builder takes: an image's (or, not ``image``, features') shape."""
    if image and len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}")
    if len(input_shape) < 1 or any(int(d) <= 0 for d in input_shape):
        expected = "(height, width, channels)" if image else "(features,)"
        raise ValueError(f"input_shape must be {expected} with positive sizes, got {input_shape}")
    checks.whole_number("n_classes", n_classes, minimum=2)
    checks.whole_number("width", width, minimum=1)


def resnet18(
    input_shape: Sequence[int],
    n_classes: int,
    width: int = 64,
    members: int = 1,
    dtype=None,
    name: str | None = None,
) -> keras.Model:
    """ResNet-18 with the CIFAR stem: a 3x3 stride-1 convolution and no max-pool.

    Basic blocks [2, 2, 2, 2] with widths w, 2w, 4w, 8w (strides 1, 2, 2, 2),
    batch norm, global average pooling and a dense classifier returning
    logits. ``width=64`` is the standard network (11.2M parameters on
    CIFAR-10); 4 to 16 keeps CPU tests and smoke runs fast. ``dtype`` is a
    Keras dtype policy such as ``"mixed_bfloat16"``; the logits stay float32.
    """
    _check_shapes(input_shape, n_classes, width)
    stack = _Stack(members, dtype)
    inputs, x = stack.inputs(input_shape)
    x = stack.relu(stack.batch_norm(stack.conv(x, width, 3)))
    channels = width
    for stage, filters in enumerate((width, 2 * width, 4 * width, 8 * width)):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = x
            y = stack.relu(stack.batch_norm(stack.conv(x, filters, 3, strides)))
            y = stack.batch_norm(stack.conv(y, filters, 3))
            if strides != 1 or channels != filters:
                shortcut = stack.batch_norm(stack.conv(x, filters, 1, strides))
            x = stack.relu(layers.Add(dtype=dtype)([y, shortcut]))
            channels = filters
    return keras.Model(inputs, stack.head(x, n_classes), name=name or "resnet18")


def small_cnn(
    input_shape: Sequence[int],
    n_classes: int,
    width: int = 16,
    members: int = 1,
    dtype=None,
    name: str | None = None,
) -> keras.Model:
    """A small CNN for fast tests and smoke runs: three conv-BN-ReLU layers.

    Widths w, 2w, 2w, the last two with stride 2, then global average pooling
    and a dense classifier returning logits. Same arguments as :func:`resnet18`.
    """
    _check_shapes(input_shape, n_classes, width)
    stack = _Stack(members, dtype)
    inputs, x = stack.inputs(input_shape)
    for filters, strides in ((width, 1), (2 * width, 2), (2 * width, 2)):
        x = stack.relu(stack.batch_norm(stack.conv(x, filters, 3, strides)))
    return keras.Model(inputs, stack.head(x, n_classes), name=name or "small_cnn")


@keras.saving.register_keras_serializable(package="dpe_tutorial")
class AlwaysDropout(layers.Dropout):
    """Dropout that also drops when predicting: Monte Carlo dropout's stochastic passes."""

    def call(self, inputs, training=False):
        return super().call(inputs, training=True)


@keras.saving.register_keras_serializable(package="dpe_tutorial")
class MemberMajorFlatten(layers.Layer):
    """``(batch, h, w, E * c)`` grouped feature maps to ``(batch, E * h * w * c)``, member-major.

    A plain Flatten would interleave the members' channels; :class:`MemberDense`
    needs member e's features in the e-th block.
    """

    def __init__(self, members: int, **kwargs):
        super().__init__(**kwargs)
        self.members = members

    def call(self, x):
        height, width, channels = x.shape[1], x.shape[2], x.shape[3] // self.members
        x = ops.reshape(x, (-1, height * width, self.members, channels))
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, self.members * height * width * channels))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] * input_shape[2] * input_shape[3])

    def get_config(self):
        return {**super().get_config(), "members": self.members}


def gal_cnn(
    input_shape: Sequence[int],
    n_classes: int,
    width: int = 32,
    members: int = 1,
    dtype=None,
    name: str | None = None,
    stochastic: bool = False,
) -> keras.Model:
    """Gal, Islam and Ghahramani's (2017) MNIST network, the member of their active learning.

    Two 4x4 'valid' convolutions of ``width`` (32) channels with ReLU, a 2x2
    max-pool, dropout 0.25, a dense layer of ``4 * width`` (128) units with
    ReLU, dropout 0.5 and the dense classifier (logits). Convolutions and
    dense layers have biases and no batch norm, as in the paper; kernels start
    from the DPE prior like every member's. ``stochastic=True`` keeps dropout
    on when predicting (:class:`AlwaysDropout`): Monte Carlo dropout.
    Other arguments as in :func:`resnet18`.
    """
    _check_shapes(input_shape, n_classes, width)
    stack = _Stack(members, dtype)
    dropout = AlwaysDropout if stochastic else layers.Dropout
    inputs, x = stack.inputs(input_shape)
    for _ in range(2):
        x = layers.Conv2D(
            width * members,
            4,
            padding="valid",
            groups=members,
            kernel_initializer=prior_initializer(members),
            activation="relu",
            dtype=dtype,
        )(x)
    x = layers.MaxPooling2D(2, dtype=dtype)(x)
    x = dropout(0.25, dtype=dtype)(x)
    if members == 1:
        x = layers.Flatten(dtype=dtype)(x)
    else:
        x = MemberMajorFlatten(members, dtype=dtype)(x)
    x = stack.relu(stack.dense(x, 4 * width))
    x = dropout(0.5, dtype=dtype)(x)
    return keras.Model(inputs, stack.classifier(x, n_classes), name=name or "gal_cnn")


def mlp(
    input_shape: Sequence[int],
    n_classes: int,
    width: int = 64,
    depth: int = 2,
    members: int = 1,
    dtype=None,
    name: str | None = None,
    dropout: float = 0.0,
    stochastic: bool = False,
) -> keras.Model:
    """A multilayer perceptron for feature vectors, such as the book's 2-D toy problems.

    ``depth`` hidden dense-ReLU layers of ``width`` units (no batch norm: it
    behaves badly on the few dozen labels of a toy problem), then a dense
    classifier returning logits; ``depth=0`` is multinomial logistic
    regression. ``input_shape`` is ``(features,)``; a longer shape such as an
    image's is flattened first. With ``members=E`` every layer is a
    :class:`MemberDense`, so the E members run as one network. ``dropout`` > 0
    drops that share of each hidden layer's units in training, and with
    ``stochastic=True`` when predicting too (Monte Carlo dropout). Other
    arguments as in :func:`resnet18`.
    """
    input_shape = tuple(input_shape)
    _check_shapes(input_shape, n_classes, width, image=False)
    checks.whole_number("depth", depth, minimum=0)
    checks.finite_number("dropout", dropout, minimum=0)
    if dropout >= 1:
        raise ValueError(f"dropout must be below 1, got {dropout}")
    drop = AlwaysDropout if stochastic else layers.Dropout
    stack = _Stack(members, dtype)
    inputs = keras.Input(shape=input_shape)
    x = inputs
    if len(input_shape) > 1:
        x = layers.Flatten(dtype=dtype)(x)
    if members > 1:
        x = RepeatChannels(members, dtype=dtype)(x)  # member-major copies of the features
    for _ in range(depth):
        x = stack.relu(stack.dense(x, width))
        if dropout:
            x = drop(dropout, dtype=dtype)(x)
    return keras.Model(inputs, stack.classifier(x, n_classes), name=name or "mlp")


MEMBERS: dict[str, MemberBuilder] = {
    "resnet18": resnet18,
    "gal_cnn": gal_cnn,
    "small_cnn": small_cnn,
    "mlp": mlp,
}


def get_member(name: str) -> MemberBuilder:
    """The member builder called ``name`` (``"resnet18"``, ``"small_cnn"``, ``"mlp"``, ...)."""
    return MEMBERS[checks.one_of("member architecture", name, MEMBERS)]


def register_member(name: str) -> Callable[[MemberBuilder], MemberBuilder]:
    """Decorator that adds a member builder, so configs and saved models can name it.

    The builder takes ``(input_shape, n_classes, width, members, dtype, name)``
    like :func:`resnet18` and returns a model emitting logits; with
    ``members > 1`` it may raise ``ValueError`` if it only supports branches.
    """

    def decorator(builder: MemberBuilder) -> MemberBuilder:
        MEMBERS[name] = builder
        return builder

    return decorator


def leaf_layers(model: keras.Model):
    """Every layer of model that is not itself a model, in order, through nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer
