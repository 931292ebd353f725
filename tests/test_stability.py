"""Every KL form trains without blowing up: near-identical members and the smoke preset."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import backend_gradients
from keras import ops

from dpe_tutorial.method import kl
from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble
from dpe_tutorial.running import experiment

SPREAD = 1e-6


def collapsed_ensemble(form: str, layout: str, mixed_precision: bool):
    """An ensemble whose members differ by about SPREAD in every regularised weight."""
    model = DeepProbabilisticEnsemble(
        (8, 8, 1),
        10,
        n_members=4,
        member="small_cnn",
        member_kwargs={"width": 4},
        layout=layout,
        beta="elbo",
        kl_form=form,
        labeled_size=100,
        mixed_precision=mixed_precision,
    )
    rng = np.random.default_rng(0)
    for weight in model.regularised:
        for variable in weight.variables:
            shape = tuple(variable.shape)
            centre = np.full(shape, weight.prior_mean, dtype=np.float32)
            variable.assign(centre + SPREAD * rng.standard_normal(shape).astype(np.float32))
    return model


@pytest.mark.keras_backend
@pytest.mark.parametrize(
    "form, layout, mixed_precision",
    [(form, "branches", mixed) for form in kl.FORMS for mixed in (False, True)]
    + [("paper", "grouped", True)],  # the grouped layout reads its members another way
)
def test_near_identical_members_give_finite_loss_and_gradients(form, layout, mixed_precision):
    model = collapsed_ensemble(form, layout, mixed_precision)
    rng = np.random.default_rng(1)
    images = rng.random((16, 8, 8, 1), dtype=np.float32)
    labels = rng.integers(0, 10, 16)
    variables = model.trainable_variables

    def loss():
        logits = model(images, training=True)
        return model.compute_loss(x=images, y=labels, y_pred=logits)

    value = float(ops.convert_to_numpy(loss()))
    gradients = backend_gradients(loss, variables)
    assert math.isfinite(value)
    # the penalty is large here (the spread is far below the prior's), but it is a number
    assert value > 0
    for variable, gradient in zip(variables, gradients, strict=True):
        assert np.all(np.isfinite(gradient)), variable.path


@pytest.mark.keras_backend
@pytest.mark.parametrize("form", kl.FORMS)
def test_the_penalty_of_near_identical_members_is_finite_in_float32(form):
    stacked = np.float32(0.3) + np.float32(SPREAD) * np.random.default_rng(0).standard_normal(
        (8, 3, 3, 16, 32)
    ).astype(np.float32)
    value = float(ops.convert_to_numpy(kl.gaussian_kl(stacked, 2.0 / (9 * 32), form=form)))
    assert math.isfinite(value) and value > 0


def smoke_run(tmp_path, **overrides):
    config = experiment.configure("smoke", **overrides)
    return experiment.run_experiment(config, tmp_path / experiment.run_slug(config), quiet=True)


@pytest.fixture(scope="module")
def plain_ensemble(tmp_path_factory):
    return smoke_run(tmp_path_factory.mktemp("plain"), beta=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("beta", ["default", "elbo"])
@pytest.mark.parametrize("form", kl.FORMS)
def test_every_form_trains_on_the_smoke_preset(form, beta, plain_ensemble, tmp_path):
    default_beta = experiment.preset("smoke").beta
    if beta == "default":
        beta = default_beta
    elif beta == default_beta:
        pytest.skip("the default beta is E / N: covered by the other case")
    table = smoke_run(tmp_path, kl_form=form, beta=beta)
    # finite and no worse than a uniform guess over the 10 classes, at every round
    assert np.all(np.isfinite(table["nll"]))
    assert np.all(table["nll"] < math.log(10)), table["nll"].tolist()
    if beta == default_beta:
        final = table["ensemble_accuracy"].iloc[-1]
        plain_final = plain_ensemble["ensemble_accuracy"].iloc[-1]
        assert final >= plain_final - 0.03, (final, plain_final)
