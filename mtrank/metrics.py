"""What the project knows about each metric (configuration name, TFMA class, key name, direction), and the
metrics computed outside TFMA (the oracle's AUC on the same rows as the model's)."""

from __future__ import annotations

import numpy as np

# Configuration metric names -> TFMA metric class names (a ranking metric keeps its configured name).
METRIC_CLASS = {"auc": "AUC", "pr_auc": "AUCPrecisionRecall", "log_loss": "BinaryCrossentropy",
                "mse": "MeanSquaredError", "mae": "MeanAbsoluteError", "ece": "ExpectedCalibrationError",
                "gauc": "GAUC"}
LOWER_IS_BETTER = {"BinaryCrossentropy", "MeanSquaredError", "MeanAbsoluteError", "ExpectedCalibrationError"}
# TFMA class -> the key name TFMA writes its values under.
KEY_NAME = {"AUC": "auc", "AUCPrecisionRecall": "auc_precision_recall", "BinaryCrossentropy": "binary_crossentropy",
            "MeanSquaredError": "mean_squared_error", "MeanAbsoluteError": "mean_absolute_error",
            "ExpectedCalibrationError": "expected_calibration_error", "GAUC": "gauc", "Calibration": "calibration"}
# A significant threshold sits on `<key name><this>`: the favourable 95 % bound of the change
# (components/change_bound.py).
CHANGE_BOUND_SUFFIX = "_change_bound"


def key_name(metric: str) -> str:
    """A configured metric name (auc, mse, revenue_ndcg@3, ...) -> the name TFMA writes its values under."""
    class_name = METRIC_CLASS.get(metric, metric)
    return KEY_NAME.get(class_name, metric)


def lower_is_better(metric: str) -> bool:
    return METRIC_CLASS.get(metric, metric) in LOWER_IS_BETTER

# TFMA metric keys that are undefined on a slice holding one class (TFMA reports them as 0.0 there).
UNDEFINED_WITH_ONE_CLASS = ("auc", "auc_precision_recall", "gauc")
MEAN_LABEL = "mean_label"


def one_class(metrics: dict) -> bool:
    """A slice's metrics of one binary output, where the mean label says every label was 0, or every one 1."""
    mean = metrics.get(MEAN_LABEL)
    return mean is not None and (mean <= 0.0 or mean >= 1.0)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula, ties counted half; NaN when only one class is present.

    Equal to sklearn's `roc_auc_score` (tests/test_gauc.py), which GAUC would otherwise call once per user:
    measured on 1,936 ten-row groups, 45 µs a call here against 1.6 ms for sklearn's input validation
    (0.09 s against 3.1 s), and 2.3x faster on one 200,000-row call. Hence our own, in numpy."""
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
