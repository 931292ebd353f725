"""Identities the book's chapters show holding, asserted here so the chapters can show them quietly.

Chapter 2 prints the largest deviation of the mutual information from its
definition, chapter 4 the chain-rule gradient of every penalty against finite
differences and the spread each form prefers, chapter 5 the two layouts'
parameter counts, the order of the small CNN's regularised tensors and what
an untrained ensemble's penalty costs per weight; the assertions they used to
carry live here (the others are in test_acquisition, test_active, test_conjugate,
test_ensemble, test_kl and test_models; what the chapters read off their
trained ensembles is in test_book_findings).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from dpe_tutorial.method import acquisition, kl
from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble
from dpe_tutorial.running import data


def test_mutual_information_is_the_information_between_label_and_member():
    probs = np.random.default_rng(0).dirichlet(np.full(10, 0.3), size=(500, 8))
    joint = probs / probs.shape[1]  # p(e, y)
    marginal_y = joint.sum(axis=1, keepdims=True)
    marginal_e = joint.sum(axis=2, keepdims=True)
    definition = (joint * np.log(np.maximum(joint, 1e-300) / (marginal_e * marginal_y))).sum(
        axis=(1, 2)
    )
    mi = acquisition.mutual_information(probs)
    np.testing.assert_allclose(mi, definition, atol=1e-10)
    np.testing.assert_allclose(
        acquisition.predictive_entropy(probs), acquisition.expected_entropy(probs) + mi, atol=1e-10
    )
    assert mi.min() >= 0 and mi.max() <= np.log(8)


def test_the_hand_made_cases_of_chapter_2_have_their_closed_forms():
    probs = np.array(
        [
            [[1 / 3, 1 / 3, 1 / 3]] * 3,
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            [[0.9, 0.05, 0.05]] * 3,
        ]
    )
    np.testing.assert_allclose(acquisition.predictive_entropy(probs)[:2], np.log(3))
    np.testing.assert_allclose(acquisition.mutual_information(probs), [0, np.log(3), 0], atol=1e-12)
    np.testing.assert_allclose(acquisition.expected_entropy(probs)[:2], [np.log(3), 0], atol=1e-12)
    np.testing.assert_allclose(acquisition.variation_ratio(probs), [0, 2 / 3, 0], atol=1e-12)


@pytest.mark.parametrize("form", kl.FORMS)
def test_the_chain_rule_gradient_of_chapter_4_matches_finite_differences(form):
    rng = np.random.default_rng(0)
    prior_var = np.float64(2.0 / 72)
    sigma_p = np.sqrt(prior_var)
    members = rng.normal(0.3 * sigma_p, 0.5 * sigma_p, size=(8, 5))
    direction = rng.normal(size=members.shape)
    mu = members.mean(axis=0)
    s2 = members.var(axis=0) + kl.DEFAULT_EPS
    d_mu = {"exclusive": mu / prior_var, "inclusive": mu / s2}
    d_s2 = {
        "exclusive": 0.5 * (1 / prior_var - 1 / s2),
        "inclusive": 0.5 * (1 / s2 - (prior_var + mu**2) / s2**2),
    }
    d_mu["paper"], d_s2["paper"] = 2 * d_mu["inclusive"], 2 * d_s2["inclusive"]
    gradient = (d_mu[form] + 2 * (members - mu) * d_s2[form]) / members.shape[0]
    precision = ops.convert_to_numpy(kl.kl_terms(np.zeros(1), np.ones(1), 1.0)).dtype
    step, rtol = (1e-6, 1e-6) if precision == np.float64 else (1e-4, 1e-3)
    up = kl.gaussian_kl(members + step * direction, prior_var, 0.0, form=form)
    down = kl.gaussian_kl(members - step * direction, prior_var, 0.0, form=form)
    finite_difference = float(ops.convert_to_numpy(up - down)) / (2 * step)
    np.testing.assert_allclose(finite_difference, np.sum(gradient * direction), rtol=rtol)


def test_the_spread_each_form_prefers_at_a_held_mean():
    prior_var = np.float64(0.02)
    sigma_p = np.sqrt(prior_var)
    u = np.linspace(-2.5, 2.5, 41)
    t = np.geomspace(0.1, 10.0, 2001)
    uu, tt = np.meshgrid(u, t)
    best = {
        form: t[
            np.argmin(
                ops.convert_to_numpy(
                    kl.kl_terms(uu * sigma_p, (tt * sigma_p) ** 2, prior_var, 0.0, form)
                ),
                axis=0,
            )
        ]
        for form in kl.FORMS
    }
    np.testing.assert_allclose(best["exclusive"], 1.0, rtol=5e-3)
    for form in ["inclusive", "paper"]:
        np.testing.assert_allclose(best[form], np.sqrt(1.0 + u**2), rtol=5e-3)


def test_the_two_layouts_of_chapter_5_have_the_same_parameters():
    settings = dict(n_members=3, member="small_cnn", member_kwargs={"width": 4})
    branches = DeepProbabilisticEnsemble((8, 8, 1), 10, kl_form="exclusive", **settings)
    grouped = DeepProbabilisticEnsemble(
        (8, 8, 1), 10, kl_form="exclusive", layout="grouped", **settings
    )
    assert branches.count_params() == grouped.count_params()


def test_the_small_cnn_regularises_its_tensors_in_the_order_chapter_5_names_them():
    model = DeepProbabilisticEnsemble(
        (8, 8, 1), 10, n_members=4, member="small_cnn", member_kwargs={"width": 8}
    )
    # conv 1 kernel, BN 1 scale, BN 1 offset, ..., conv 3 ..., dense kernel
    kinds = [w.name.split("/")[-1] for w in model.regularised]
    assert kinds == ["kernel", "gamma", "beta"] * 3 + ["kernel"]
    dimensions = [len(w.member_values().shape) - 1 for w in model.regularised]
    assert dimensions == [4, 1, 1] * 3 + [2]


def test_an_untrained_ensemble_of_chapter_5_pays_its_sampling_noise_only():
    """Identical copies cost the closed form at s^2 = eps; members drawn from the prior far less."""
    identical = 0.5 * (np.log(0.01 / kl.DEFAULT_EPS) + kl.DEFAULT_EPS / 0.01 - 1)
    copies = np.ones((3, 4), dtype="float32")
    per_copy = float(ops.convert_to_numpy(kl.gaussian_kl(copies, 0.01, 1.0, form="exclusive")))
    np.testing.assert_allclose(per_copy / 4, identical, rtol=1e-4)

    digits = data.load_digits()
    pixel_mean, pixel_std = data.channel_statistics(digits.train.images)
    keras.utils.set_random_seed(1)  # the chapter's ensemble for checking the loss by hand
    model = DeepProbabilisticEnsemble(
        digits.train.image_shape,
        10,
        n_members=3,
        member="small_cnn",
        member_kwargs={"width": 4},
        beta="elbo",
        kl_form="exclusive",
        labeled_size=len(digits.train),
        input_mean=pixel_mean,
        input_std=pixel_std,
    )
    for w in model.regularised:
        values = w.member_values()
        penalty = kl.gaussian_kl(values, w.prior_var, w.prior_mean, form="exclusive")
        per_weight = float(ops.convert_to_numpy(penalty)) / int(np.prod(values.shape[1:]))
        if w.name.endswith("kernel"):
            assert 0.3 < per_weight < 0.7, w.name  # "about half a nat"
        else:  # a batch-norm scale or offset
            assert per_weight < identical / 3, w.name
