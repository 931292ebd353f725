"""Evaluation of an ensemble from its member probabilities.

Everything takes member probabilities ``(n, members, classes)`` (what
``DeepProbabilisticEnsemble.predict_members`` returns) or the ensemble's mean
prediction ``(n, classes)``, and integer labels. The ensemble's prediction is
the mean of the members' probabilities: its accuracy is not the mean member
accuracy (the seed post reported the latter under the former's name).
"""

from __future__ import annotations

import numpy as np

from .acquisition import mutual_information, predictive_entropy

ECE_BINS = 15
_TINY = np.finfo(np.float64).tiny


def evaluate(member_probs, labels) -> dict[str, float]:
    """Accuracy, calibration and uncertainty of an ensemble on a labelled test set.

    ``ensemble_accuracy``, ``mean_member_accuracy``, ``nll`` and ``ece`` (of the
    mean prediction); ``brier`` (squared error of the mean prediction against
    the one-hot label, summed over classes); ``mutual_information`` (its mean
    over the test set: how much the members disagree); and ``error_auroc``
    (how well the predictive entropy ranks the misclassified test images
    above the correct ones: 0.5 is chance, 1 perfect).
    """
    member_probs, labels = _check(member_probs, labels)
    mean = member_probs.mean(axis=1, dtype=np.float64)
    member_correct = member_probs.argmax(axis=2) == labels[:, None]
    wrong = mean.argmax(axis=1) != labels
    one_hot = np.eye(mean.shape[1])[labels]
    entropy = predictive_entropy(member_probs)
    return {
        "ensemble_accuracy": float(1.0 - wrong.mean()),
        "mean_member_accuracy": float(member_correct.mean()),
        "nll": negative_log_likelihood(mean, labels),
        "ece": expected_calibration_error(mean, labels),
        "brier": float(np.square(mean - one_hot).sum(axis=1).mean()),
        "mutual_information": float(mutual_information(member_probs).mean()),
        "error_auroc": auroc(entropy[wrong], entropy[~wrong]),
    }


def auroc(positive_scores, negative_scores) -> float:
    """Area under the ROC curve: P(a positive scores above a negative), ties counted half.

    NaN when either group is empty.
    """
    positive = np.asarray(positive_scores, dtype=np.float64).ravel()
    negative = np.asarray(negative_scores, dtype=np.float64).ravel()
    if positive.size == 0 or negative.size == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([positive, negative]))  # average ranks handle ties
    rank_sum = ranks[: positive.size].sum() - positive.size * (positive.size + 1) / 2
    return float(rank_sum / (positive.size * negative.size))


def separation_auroc(test_member_probs, shifted_member_probs) -> float:
    """How well mutual information tells shifted inputs from test images (AUROC, 0.5 = chance)."""
    return auroc(mutual_information(shifted_member_probs), mutual_information(test_member_probs))


def negative_log_likelihood(probs, labels) -> float:
    """Mean of -log p(true class) under ``probs`` of shape ``(n, classes)``."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    picked = probs[np.arange(labels.shape[0]), labels]
    return float(-np.log(np.maximum(picked, _TINY)).mean())


def reliability(probs, labels, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per confidence bin: mean confidence, accuracy and count (equal-width bins on [0, 1])."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    # bin b holds confidences in (b / bins, (b + 1) / bins]; a confidence of 0 goes to bin 0
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(which, confidence, minlength=bins) / counts
        accuracy = np.bincount(which, correct.astype(np.float64), minlength=bins) / counts
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {
        "lower": edges[:-1],
        "upper": edges[1:],
        "confidence": mean_confidence,
        "accuracy": accuracy,
        "count": counts,
    }


def expected_calibration_error(probs, labels, bins: int = ECE_BINS) -> float:
    """Count-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    table = reliability(probs, labels, bins)
    filled = table["count"] > 0
    gaps = np.abs(table["accuracy"][filled] - table["confidence"][filled])
    return float((gaps * table["count"][filled]).sum() / table["count"].sum())


def _check(member_probs, labels):
    member_probs = np.asarray(member_probs)
    labels = np.asarray(labels)
    if member_probs.ndim != 3:
        raise ValueError(
            f"member_probs must have shape (n, members, classes), got {member_probs.shape}"
        )
    if labels.shape != (member_probs.shape[0],):
        raise ValueError(f"labels must have shape ({member_probs.shape[0]},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= member_probs.shape[2]):
        raise ValueError(f"labels must lie in [0, {member_probs.shape[2]})")
    return member_probs, labels.astype(np.int64)
