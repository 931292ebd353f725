"""DeepProbabilisticEnsemble: the objective by hand, gradients, training, saving, bad configs."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from conftest import backend_gradients
from keras import layers, ops
from sklearn.datasets import load_digits

from dpe_tutorial.method import kl, models
from dpe_tutorial.method.choices import DEFAULT_KL_FORM
from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble

pytestmark = pytest.mark.keras_backend

SHAPE = (8, 8, 1)
N_CLASSES = 10


def make(layout="branches", n_members=3, **kwargs):
    kwargs.setdefault("member", "small_cnn")
    kwargs.setdefault("kl_form", "exclusive")  # three members: the papers' form needs four
    kwargs.setdefault("member_kwargs", {"width": 4})
    kwargs.setdefault("beta", 0.01)
    return DeepProbabilisticEnsemble(SHAPE, N_CLASSES, n_members=n_members, layout=layout, **kwargs)


def numpy_of(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    images = (data.images[..., None] / 16.0).astype("float32")
    return images, data.target.astype("int32")


def member_tensors(model):
    """Per-member numpy weights with their priors, gathered without the package's own walk.

    Returns a list of (stacked (E, ...) array, prior variance, prior mean).
    """
    E = model.n_members
    out = []
    if model.layout == "branches":
        per_member = []
        for member in model.members:
            items = []
            for layer in member.layers:
                if isinstance(layer, (layers.Conv2D, layers.Dense)):
                    k = numpy_of(layer.kernel.value)
                    fan_out = math.prod(k.shape[:-2]) * k.shape[-1]
                    items.append((k, 2.0 / fan_out, 0.0))
                elif isinstance(layer, layers.BatchNormalization):
                    bn_var = models.BATCHNORM_PRIOR_VARIANCE
                    items.append((numpy_of(layer.gamma.value), bn_var, 1.0))
                    items.append((numpy_of(layer.beta.value), bn_var, 0.0))
            per_member.append(items)
        for corresponding in zip(*per_member, strict=True):
            out.append(
                (np.stack([c[0] for c in corresponding]), corresponding[0][1], corresponding[0][2])
            )
        return out
    for layer in model.body.layers:
        if isinstance(layer, layers.Conv2D):
            k = numpy_of(layer.kernel.value)  # (kh, kw, in, E * out)
            out_per_member = k.shape[-1] // E
            blocks = np.stack(
                [k[..., e * out_per_member : (e + 1) * out_per_member] for e in range(E)]
            )
            out.append((blocks, 2.0 / (k.shape[0] * k.shape[1] * out_per_member), 0.0))
        elif isinstance(layer, layers.BatchNormalization):
            for values, mean in ((layer.gamma, 1.0), (layer.beta, 0.0)):
                v = numpy_of(values.value)
                out.append((v.reshape(E, -1), models.BATCHNORM_PRIOR_VARIANCE, mean))
        elif hasattr(layer, "kernel") and layer.kernel.shape[0] == E:  # MemberDense
            k = numpy_of(layer.kernel.value)
            out.append((k, 2.0 / k.shape[-1], 0.0))
    return out


def hand_kl(model, form):
    total = 0.0
    for stacked, prior_var, prior_mean in member_tensors(model):
        mu = stacked.astype(np.float64).mean(axis=0)
        var = stacked.astype(np.float64).var(axis=0) + kl.DEFAULT_EPS
        d2 = (mu - prior_mean) ** 2
        if form == "exclusive":  # KL(q || p)
            terms = 0.5 * (np.log(prior_var / var) + (var + d2) / prior_var - 1)
        elif form == "inclusive":  # KL(p || q)
            terms = 0.5 * (np.log(var / prior_var) + (prior_var + d2) / var - 1)
        else:
            terms = np.log(var) + (prior_var + d2) / var
        total += terms.sum()
    return total


def hand_cross_entropy(logits, labels):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    per_member = -np.take_along_axis(log_probs, labels[:, None, None], axis=-1)[..., 0]
    return per_member.mean(axis=0).sum()


@pytest.mark.parametrize("layout", ["branches", "grouped"])
def test_members_are_initialised_independently(layout):
    model = make(layout)
    stacked = [s for s, _, _ in member_tensors(model) if s.ndim > 2]  # conv kernels
    for kernels in stacked:
        assert not np.allclose(kernels[0], kernels[1])
    # batch-norm scales and offsets too: every member draws its own from the prior
    batchnorm = [s for s, _, _ in member_tensors(model) if s.ndim == 2]
    assert len(batchnorm) == 2 * 3
    for values in batchnorm:
        assert not np.allclose(values[0], values[1])
        assert np.all(kl.pooled_moments(values)[1] > 0)
    x = np.random.default_rng(0).random((4, *SHAPE), dtype=np.float32)
    out = numpy_of(model(x))
    assert out.shape == (4, 3, N_CLASSES)
    assert not np.allclose(out[:, 0], out[:, 1])


@pytest.mark.parametrize("layout", ["branches", "grouped"])
@pytest.mark.parametrize("form", kl.FORMS)
def test_loss_equals_a_hand_computation(layout, form, digits):
    images, labels = digits
    model = make(layout, n_members=4, beta=0.003, kl_form=form)
    x, y = images[:16], labels[:16]
    logits = numpy_of(model(x))
    loss = float(numpy_of(model.compute_loss(x, y, logits)))
    expected = hand_cross_entropy(logits, y) + 0.003 * hand_kl(model, form)
    assert loss == pytest.approx(expected, rel=1e-4)
    assert float(numpy_of(model.kl_penalty())) == pytest.approx(hand_kl(model, form), rel=1e-4)


def test_without_batchnorm_priors_only_kernels_are_regularised():
    with_bn = make(regularize_batchnorm=True)
    without = make(regularize_batchnorm=False)
    assert len(with_bn.regularised) == 4 + 2 * 3  # 3 convs + 1 dense; gamma and beta of 3 BNs
    assert len(without.regularised) == 4
    # each is named by its variable's path (chapters 4 and 5 list them by name)
    names = [w.name for w in with_bn.regularised]
    assert sum(n.endswith("kernel") for n in names) == 4
    assert sum(n.endswith(("gamma", "beta")) for n in names) == 6


def test_beta_zero_is_a_plain_ensemble(digits):
    images, labels = digits
    model = make(beta=0.0)
    x, y = images[:32], labels[:32]
    logits = numpy_of(model(x))
    loss = float(numpy_of(model.compute_loss(x, y, logits)))
    assert loss == pytest.approx(hand_cross_entropy(logits, y), rel=1e-5)
    # and its gradient is the plain ensemble's: the KL penalty contributes nothing
    variables = model.trainable_variables
    x_tensor, y_tensor = ops.convert_to_tensor(x), ops.convert_to_tensor(y)

    def objective():
        return model.compute_loss(x_tensor, y_tensor, model(x_tensor, training=False))

    def cross_entropy_only():
        logits = model(x_tensor, training=False)
        ce = keras.losses.sparse_categorical_crossentropy(
            ops.repeat(ops.expand_dims(y_tensor, 1), 3, axis=1), logits, from_logits=True
        )
        return ops.sum(ops.mean(ce, axis=0))

    for a, b in zip(
        backend_gradients(objective, variables),
        backend_gradients(cross_entropy_only, variables),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("layout", ["branches", "grouped"])
def test_kl_gradient_reaches_every_regularised_weight(layout):
    model = make(layout)
    variables = model.trainable_variables
    # no need to spread the members first: batch-norm scales and offsets start as independent
    # draws from their priors, so no tensor has identical members (where the gradient would
    # vanish by symmetry)
    grads = backend_gradients(model.kl_penalty, variables)
    regularised = {id(v) for w in model.regularised for v in w.variables}
    expected_count = len(model.regularised) * (3 if layout == "branches" else 1)
    assert len(regularised) == expected_count
    for variable, grad in zip(variables, grads, strict=True):
        if id(variable) in regularised:
            assert np.all(np.isfinite(grad)), variable.path
            assert np.abs(grad).max() > 0, variable.path
        else:  # biases carry no prior
            assert np.all(grad == 0), variable.path
            assert variable.path.endswith("bias"), variable.path


def test_elbo_beta_is_members_over_labelled_size(digits):
    images, labels = digits
    model = make(n_members=4, beta="elbo", labeled_size=500)
    assert float(numpy_of(model.beta_variable.value)) == pytest.approx(4 / 500)
    model.set_labeled_size(1000)
    assert float(numpy_of(model.beta_variable.value)) == pytest.approx(4 / 1000)

    unset = make(n_members=4, beta="elbo")
    unset.compile(keras.optimizers.SGD(0.01))
    unset.fit(images[:200], labels[:200], epochs=1, batch_size=100, verbose=0)
    assert unset.labeled_size == 200
    assert float(numpy_of(unset.beta_variable.value)) == pytest.approx(4 / 200)


def test_tempered_elbo_beta_is_a_multiple_of_members_over_labelled_size():
    model = make(n_members=4, beta="elbo*0.1", labeled_size=500)
    assert float(numpy_of(model.beta_variable.value)) == pytest.approx(0.1 * 4 / 500)
    model.set_labeled_size(1000)
    assert float(numpy_of(model.beta_variable.value)) == pytest.approx(0.1 * 4 / 1000)


def test_the_default_kl_form_is_the_package_default():
    model = DeepProbabilisticEnsemble(SHAPE, N_CLASSES, n_members=4, member="small_cnn")
    assert model.kl_form == DEFAULT_KL_FORM
    assert model.get_config()["kl_form"] == DEFAULT_KL_FORM


def test_elbo_beta_on_a_generator_needs_the_labelled_size(digits):
    images, labels = digits
    model = make(beta="elbo")
    model.compile(keras.optimizers.SGD(0.01))

    def batches():
        while True:
            yield images[:50], labels[:50]

    with pytest.raises(ValueError, match="needs the labelled-set size N"):
        model.fit(batches(), steps_per_epoch=1, epochs=1, verbose=0)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["branches", "grouped"])
def test_training_on_digits_scores_far_above_chance(layout, digits):
    images, labels = digits
    keras.utils.set_random_seed(0)
    model = make(layout, n_members=4, member_kwargs={"width": 8}, beta="elbo")
    model.compile(keras.optimizers.Adam(3e-3))
    history = model.fit(images[:1400], labels[:1400], epochs=8, batch_size=64, verbose=0)
    for metric in ("loss", "cross_entropy", "kl", "beta", "ensemble_accuracy", "member_accuracy"):
        assert metric in history.history
    assert history.history["cross_entropy"][-1] < history.history["cross_entropy"][0]
    probs = model.predict_members(images[1400:])
    assert probs.shape == (len(images) - 1400, 4, N_CLASSES)
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    accuracy = (probs.mean(axis=1).argmax(axis=1) == labels[1400:]).mean()
    assert accuracy > 0.8  # chance is 0.1


@pytest.mark.parametrize("layout", ["branches", "grouped"])
def test_save_and_load_round_trip(layout, tmp_path, digits):
    images, labels = digits
    model = make(
        layout,
        n_members=4,
        beta="elbo",
        kl_form="paper",
        labeled_size=64,
        input_mean=[0.4],
        input_std=[0.3],
        augment=True,
    )
    model.compile(keras.optimizers.SGD(0.01))
    model.fit(images[:64], labels[:64], epochs=1, batch_size=32, verbose=0)  # moves BN statistics
    path = tmp_path / "ensemble.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, DeepProbabilisticEnsemble)
    assert loaded.compiled and loaded.optimizer.name == model.optimizer.name
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(
        loaded.predict_members(images[:40]), model.predict_members(images[:40])
    )
    assert float(numpy_of(loaded.kl_penalty())) == pytest.approx(
        float(numpy_of(model.kl_penalty())), rel=1e-6
    )


def test_mixed_precision_keeps_logits_loss_and_variables_in_float32(digits):
    images, labels = digits
    model = make(mixed_precision=True)
    convs = [x for x in model.members[0].layers if isinstance(x, layers.Conv2D)]
    assert convs[0].compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    logits = model(images[:8])
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    model.compile(keras.optimizers.SGD(0.01))
    history = model.fit(images[:64], labels[:64], epochs=1, batch_size=32, verbose=0)
    assert math.isfinite(history.history["loss"][-1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_members": 1, "beta": 0.1}, "n_members must be at least 2 when beta is not 0"),
        ({"n_members": 1, "beta": "elbo"}, "n_members must be at least 2 when beta is not 0"),
        ({"n_members": 0, "beta": 0.0}, "n_members must be a whole number >= 1"),
        ({"n_members": 2.5}, "n_members must be a whole number"),
        (
            {"n_members": 3, "kl_form": "paper"},
            "n_members must be at least 4 for kl_form 'paper', got 3: it divides",
        ),
        (
            {"n_members": 2, "kl_form": "inclusive", "beta": "elbo"},
            "n_members must be at least 4 for kl_form 'inclusive'",
        ),
        ({"kl_form": "kl"}, "kl_form must be one of exclusive, inclusive, paper, got 'kl'"),
        ({"kl_form": "forward"}, "kl_form 'forward' was renamed: use 'exclusive'"),
        ({"kl_form": "reverse"}, "kl_form 'reverse' was renamed: use 'inclusive'"),
        ({"beta": -0.1}, "beta must be a finite number >= 0"),
        ({"beta": float("nan")}, "beta must be a finite number >= 0"),
        ({"beta": "1e-5"}, 'beta must be a finite number >= 0, "elbo"'),
        ({"beta": "elbo*0"}, 'or "elbo\\*F" with a number F > 0'),
        ({"beta": "elbo*x"}, 'or "elbo\\*F" with a number F > 0'),
        ({"layout": "vmap"}, "layout must be one of branches, grouped, got 'vmap'"),
        ({"member": "vgg"}, "member architecture must be one of .*, got 'vgg'"),
        ({"labeled_size": 0}, "labeled_size must be a whole number >= 1"),
    ],
)
def test_bad_configurations_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_a_single_network_trains_without_the_penalty(digits):
    images, labels = digits
    model = make(n_members=1, beta=0.0)
    assert float(numpy_of(model.kl_penalty())) == 0.0
    out = numpy_of(model(images[:2]))
    assert out.shape == (2, 1, N_CLASSES)
    model.compile(keras.optimizers.SGD(0.01))
    history = model.fit(images[:64], labels[:64], epochs=1, batch_size=32, verbose=0)
    assert history.history["kl"] == [0.0]


def test_compile_rejects_a_loss():
    with pytest.raises(ValueError, match="objective built in"):
        make().compile(optimizer="sgd", loss="mse")


def test_inputs_are_standardised_inside_the_model():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(6, *SHAPE)).astype("uint8")
    mean, std = [120.0], [60.0]
    with_stats = make(input_mean=mean, input_std=std)
    plain = make()
    plain.set_weights(with_stats.get_weights())
    standardised = (raw.astype("float32") - 120.0) / 60.0
    np.testing.assert_allclose(
        numpy_of(with_stats(raw)), numpy_of(plain(standardised)), rtol=1e-5, atol=1e-5
    )


def test_augmentation_only_when_training():
    rng = np.random.default_rng(1)
    x = rng.random((8, *SHAPE), dtype=np.float32)
    augmented = make(augment=True)
    # training-mode outputs differ between calls only through random crops and flips
    assert not np.allclose(
        numpy_of(augmented(x, training=True)), numpy_of(augmented(x, training=True))
    )
    np.testing.assert_array_equal(
        numpy_of(augmented(x, training=False)), numpy_of(augmented(x, training=False))
    )
    plain = make(augment=False)
    np.testing.assert_array_equal(
        numpy_of(plain(x, training=True)), numpy_of(plain(x, training=True))
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_mean": [1.0]}, "both input_mean and input_std"),
        ({"input_mean": [1.0, 2.0], "input_std": [1.0, 1.0]}, "one value per channel"),
        ({"input_mean": [1.0], "input_std": [0.0]}, "input_std positive"),
    ],
)
def test_bad_input_statistics_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_mc_dropout_stacks_its_passes_as_members():
    model = DeepProbabilisticEnsemble(
        (28, 28, 1),
        10,
        n_members=1,
        member="gal_cnn",
        member_kwargs={"width": 4, "stochastic": True},
        beta=0.0,
    )
    x = np.random.default_rng(0).integers(0, 255, size=(6, 28, 28, 1)).astype("uint8")
    probs = model.predict_members(x, passes=5)
    assert probs.shape == (6, 5, 10)
    np.testing.assert_allclose(probs.sum(axis=2), 1.0, rtol=1e-5)
    assert not np.allclose(probs[:, 0], probs[:, 1])  # each pass draws its own dropout masks
