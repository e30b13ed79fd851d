"""Ranking metrics computed outside TFMA (the oracle's AUC on the same rows as the model's)."""

from __future__ import annotations

import numpy as np

# TFMA metric keys that are undefined on a slice holding one class (TFMA reports them as 0.0 there).
UNDEFINED_WITH_ONE_CLASS = ("auc", "auc_precision_recall", "gauc")
MEAN_LABEL = "mean_label"


def one_class(metrics: dict) -> bool:
    """A slice's metrics of one binary output, where the mean label says every label was 0, or every one 1."""
    mean = metrics.get(MEAN_LABEL)
    return mean is not None and (mean <= 0.0 or mean >= 1.0)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula, ties counted half; NaN when only one class is present."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    # average ranks over tied groups
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [scores.size]])
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))
