"""The tables chapter 5 reads its two digits ensembles from (the findings: test_book_findings)."""

from __future__ import annotations

import numpy as np
import pytest
from keras import ops

from dpe_tutorial.book import digits_readings
from dpe_tutorial.method import acquisition, kl
from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble


def test_group_scores_has_a_row_per_image_in_order():
    rng = np.random.default_rng(0)
    probs = {
        model: {group: rng.dirichlet(np.ones(3), size=(n, 2)) for group, n in [("a", 4), ("b", 2)]}
        for model in ["DPE", "plain"]
    }
    scores = digits_readings.group_scores(probs)
    assert list(scores.columns) == ["model", "group", *digits_readings.SCORES]
    assert scores[["model", "group"]].apply(tuple, axis=1).tolist() == (
        [("DPE", "a")] * 4 + [("DPE", "b")] * 2 + [("plain", "a")] * 4 + [("plain", "b")] * 2
    )
    np.testing.assert_allclose(
        scores["mutual information"][4:6], acquisition.mutual_information(probs["DPE"]["b"])
    )
    with pytest.raises(ValueError, match="empty"):
        digits_readings.group_scores({})


def test_weight_spreads_are_the_pooled_spread_over_the_priors():
    settings = dict(n_members=3, member="small_cnn", member_kwargs={"width": 4})
    model = DeepProbabilisticEnsemble((8, 8, 1), 10, kl_form="exclusive", **settings)
    spreads = digits_readings.weight_spreads({"one": model, "same": model})
    assert list(spreads.index) == [w.name for w in model.regularised]
    first = model.regularised[0]
    variance = ops.convert_to_numpy(kl.pooled_moments(first.member_values())[1])
    expected = np.sqrt(np.mean(variance) / first.prior_var)
    assert spreads.iloc[0].tolist() == pytest.approx([expected, expected], rel=1e-6)
    with pytest.raises(ValueError, match="3 names for 10 tensors"):
        digits_readings.weight_spreads({"one": model}, ["a", "b", "c"])
