"""Member architectures: shapes, the CIFAR stem, the grouped layout and FLOP counts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from dpe_tutorial.method import models


def _benchmark(name: str):
    """A script of benchmarks/ as a module: the FLOP count is benchmark code, not the package's."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


training_flops_per_image = _benchmark("bench_ensemble").training_flops_per_image

pytestmark = pytest.mark.keras_backend


def test_resnet18_is_the_cifar_variant_with_the_standard_size():
    model = models.resnet18((32, 32, 3), 10)
    # the usual CIFAR ResNet-18: bias-free convs, batch norm, one dense layer
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 11_173_962
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    stem = convs[0]
    assert tuple(stem.kernel.shape) == (3, 3, 3, 64)
    assert stem.strides == (1, 1)
    assert not any(isinstance(layer, layers.MaxPooling2D) for layer in model.layers)
    assert len(convs) == 1 + 16 + 3  # stem, two convs per block, three projection shortcuts
    assert tuple(model.output.shape) == (None, 10)


@pytest.mark.parametrize("builder", [models.resnet18, models.gal_cnn, models.small_cnn])
def test_any_input_shape_and_class_count(builder):
    model = builder((20, 24, 1), 7, width=4)
    out = model(np.zeros((2, 20, 24, 1), dtype="float32"))
    assert tuple(out.shape) == (2, 7)


@pytest.mark.parametrize("builder", [models.resnet18, models.gal_cnn, models.small_cnn])
def test_grouped_layout_is_e_copies_of_one_member(builder):
    single = builder((16, 16, 3), 5, width=4)
    grouped = builder((16, 16, 3), 5, width=4, members=3)
    assert grouped.count_params() == 3 * single.count_params()
    out = grouped(np.zeros((2, 16, 16, 3), dtype="float32"))
    assert tuple(out.shape) == (2, 3, 5)
    assert training_flops_per_image(grouped) == pytest.approx(3 * training_flops_per_image(single))


@pytest.mark.parametrize("builder", [models.small_cnn, models.gal_cnn])
def test_grouped_members_are_independent(builder):
    model = builder((12, 12, 3), 4, width=4, members=3)
    x = np.random.default_rng(0).normal(size=(5, 12, 12, 3)).astype("float32")
    before = keras.ops.convert_to_numpy(model(x))
    # perturb member 0's block of every grouped kernel
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            kernel = keras.ops.convert_to_numpy(layer.kernel.value).copy()
            block = kernel.shape[-1] // 3
            kernel[..., :block] += 0.5
            layer.kernel.assign(kernel)
    after = keras.ops.convert_to_numpy(model(x))
    assert not np.allclose(after[:, 0], before[:, 0])
    np.testing.assert_array_equal(after[:, 1:], before[:, 1:])


def test_gal_cnn_is_gal_et_al_s_mnist_network():
    model = models.gal_cnn((28, 28, 1), 10)
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    assert [tuple(c.kernel.shape) for c in convs] == [(4, 4, 1, 32), (4, 4, 32, 32)]
    rates = [layer.rate for layer in model.layers if isinstance(layer, layers.Dropout)]
    assert rates == [0.25, 0.5]
    # 544 + 16,416 (convs) + 495,744 (dense 3,872 -> 128) + 1,290 (classifier)
    assert model.count_params() == 513_994


def test_stochastic_gal_cnn_keeps_dropout_on_when_predicting():
    x = np.random.default_rng(0).normal(size=(4, 28, 28, 1)).astype("float32")
    deterministic = models.gal_cnn((28, 28, 1), 10, width=8)
    np.testing.assert_array_equal(deterministic.predict(x, verbose=0), deterministic(x))
    stochastic = models.gal_cnn((28, 28, 1), 10, width=8, stochastic=True)
    first, second = stochastic.predict(x, verbose=0), stochastic.predict(x, verbose=0)
    assert not np.allclose(first, second)  # two draws of the dropout masks


def test_kernels_start_from_the_he_fan_out_prior():
    for members in (1, 4):
        model = models.resnet18((32, 32, 3), 10, width=16, members=members)
        layer = [x for x in model.layers if isinstance(x, layers.Conv2D)][-2]
        kernel = keras.ops.convert_to_numpy(layer.kernel.value)
        kh, kw, _, out = kernel.shape
        prior_var = 2.0 / (kh * kw * out // members)
        # Keras rescales its truncated normal so that the variance is the target one
        assert kernel.var() == pytest.approx(prior_var, rel=0.05)


@pytest.mark.parametrize("members", [1, 4])
def test_batchnorm_scales_and_offsets_start_from_their_priors(members):
    # N(1, 0.01) for scales and N(0, 0.01) for offsets, drawn independently per channel, so
    # the members of an ensemble start spread like the prior rather than as identical copies
    assert models.BATCHNORM_PRIOR_VARIANCE == 0.01
    model = models.resnet18((32, 32, 3), 10, width=16, members=members)
    norms = [x for x in model.layers if isinstance(x, layers.BatchNormalization)]
    gamma = np.concatenate([keras.ops.convert_to_numpy(x.gamma.value) for x in norms])
    beta = np.concatenate([keras.ops.convert_to_numpy(x.beta.value) for x in norms])
    std = models.BATCHNORM_PRIOR_VARIANCE**0.5  # 0.1
    for values, mean in ((gamma, 1.0), (beta, 0.0)):
        assert values.size > 1000
        # five standard errors of a mean and a standard deviation of values.size draws
        assert abs(values.mean() - mean) < 5 * std / np.sqrt(values.size)
        assert values.std() == pytest.approx(std, abs=5 * std / np.sqrt(2 * values.size))
    assert not np.allclose(gamma[: len(gamma) // 2], gamma[len(gamma) // 2 :])
    if members > 1:  # the grouped layout: member e owns the e-th block of every layer's channels
        first = keras.ops.convert_to_numpy(norms[0].gamma.value).reshape(members, -1)
        assert not np.allclose(first[0], first[1])
    # the initializer itself: a draw with the prior's mean and variance
    draw = keras.ops.convert_to_numpy(models.batchnorm_prior_initializer(1.0)((20_000,)))
    assert draw.mean() == pytest.approx(1.0, abs=5 * std / np.sqrt(draw.size))
    assert draw.std() == pytest.approx(std, rel=0.03)


def test_training_flops_of_resnet18_on_cifar():
    flops = training_flops_per_image(models.resnet18((32, 32, 3), 10))
    # 0.56 G multiply-adds forward, x2 FLOPs per multiply-add, x3 for training
    assert flops == pytest.approx(3 * 2 * 0.5566e9, rel=0.01)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (((32, 32), 10), "input_shape must be"),
        (((32, 32, 3), 1), "n_classes must be a whole number >= 2"),
        (((32, 32, 3), 10, 0), "width must be a whole number >= 1"),
    ],
)
def test_bad_shapes_raise(args, message):
    with pytest.raises(ValueError, match=message):
        models.small_cnn(*args)


def test_member_registry():
    assert models.get_member("resnet18") is models.resnet18
    with pytest.raises(
        ValueError,
        match=r"member architecture must be one of resnet18, gal_cnn, small_cnn.*got 'vgg'",
    ):
        models.get_member("vgg")

    @models.register_member("tiny_test_member")
    def tiny(input_shape, n_classes, width=2, members=1, dtype=None, name=None):
        return models.small_cnn(input_shape, n_classes, width, members, dtype, name)

    try:
        assert models.get_member("tiny_test_member") is tiny
    finally:
        del models.MEMBERS["tiny_test_member"]
