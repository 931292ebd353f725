"""What chapter 5 reads off its two ensembles on the digits.

The chapter trains a deep probabilistic ensemble and a plain one (``beta=0``)
of small CNNs on scikit-learn's digits, and compares them on five groups of
images (:func:`dpe_tutorial.book.experiment_figures.shifted_groups`). The tables it
reads its findings from are built here, so that the tests check those findings
on the same numbers (tests/test_book_findings.py):

================================== ===========================================
``group_scores(group_probs)``       predictive entropy and mutual information
                                    of every image, by model and group
``weight_spreads(models, names)``   each regularised tensor's spread across
                                    the members, in units of its prior's
================================== ===========================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from keras import ops

from ..method import acquisition, kl

SCORES = ("predictive entropy", "mutual information")


def group_scores(group_probs: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """A row per image: ``model``, ``group`` and the two scores of :data:`SCORES`.

    ``group_probs`` maps a model's name to its member probabilities
    ``(images, members, classes)`` on each group of images. The scores are
    :func:`dpe_tutorial.method.acquisition.predictive_entropy` and
    :func:`dpe_tutorial.method.acquisition.mutual_information`; the rows keep the
    order of the models, the groups and the images.
    """
    tables = [
        pd.DataFrame(
            {
                "model": model,
                "group": group,
                SCORES[0]: acquisition.predictive_entropy(probs),
                SCORES[1]: acquisition.mutual_information(probs),
            }
        )
        for model, per_group in group_probs.items()
        for group, probs in per_group.items()
    ]
    if not tables:
        raise ValueError("group_probs is empty: give model -> group -> probabilities")
    return pd.concat(tables, ignore_index=True)


def weight_spreads(
    models: Mapping[str, object], names: Sequence[str] | None = None
) -> pd.DataFrame:
    """The typical spread of a weight across the members, over the prior's: a column per model.

    For each regularised tensor of each
    :class:`~dpe_tutorial.method.ensemble.DeepProbabilisticEnsemble` in ``models``,
    the variance of every weight over the members
    (:func:`dpe_tutorial.method.kl.pooled_moments`), averaged over the tensor's
    weights and divided by the prior variance, and its square root:
    ``s / sigma_p``, 1 where the members spread like the prior. A row per
    tensor, named by ``names`` (default: the tensors' own names); the models
    must have the same tensors.
    """
    columns = {}
    for model_name, model in models.items():
        columns[model_name] = [
            float(
                np.sqrt(
                    np.mean(ops.convert_to_numpy(kl.pooled_moments(w.member_values())[1]))
                    / w.prior_var
                )
            )
            for w in model.regularised
        ]
    if not columns:
        raise ValueError("models is empty: give name -> ensemble")
    sizes = {len(column) for column in columns.values()}
    if len(sizes) != 1:
        raise ValueError(f"the models have different numbers of regularised tensors: {sizes}")
    if names is None:
        names = [w.name for w in next(iter(models.values())).regularised]
    if len(names) != sizes.pop():
        raise ValueError(f"{len(names)} names for {len(next(iter(columns.values())))} tensors")
    return pd.DataFrame(columns, index=list(names))
