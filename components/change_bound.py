"""How far a metric may really have moved against the model in production: a TFMA metric for a gate that
knows its own noise.

TFMA checks a change threshold on the point estimate of candidate − baseline, so on a 20,000-row sample two
models trained from the same data with different seeds refuse each other by chance. With
`evaluation.confidence_intervals`, TFMA's jackknife computes every metric, and every change against the
baseline, on 20 delete-d buckets of the same rows: the change's interval is paired (both models are scored
on each bucket). This metric runs after that (a TFMA `CIDerivedMetricComputation`, the only hook that sees
the intervals before TFMA validates) and reports the change's bound on the favourable side: the upper bound
of the change for a higher-is-better metric, the lower one otherwise. A value threshold at −max_drop (or
+max_drop) on it refuses a model only when the whole 95 % interval lies beyond the tolerated drop.

Without a baseline (nothing in production) there is no change: the bound is 0. Without intervals it is the
point change, so the rule is then the plain change threshold. With a baseline and no change of that name
(a misnamed metric) it is NaN, and the threshold fails rather than pass unseen.
"""

from __future__ import annotations

import math
from typing import List, Optional

import mtrank  # noqa: F401
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.utils import math_util, model_util

from mtrank import metrics as metrics_lib

SUFFIX = metrics_lib.CHANGE_BOUND_SUFFIX


def bound_name(metric_name: str) -> str:
    """`auc` -> `auc_change_bound`: the key a significant threshold is placed on."""
    return metric_name + SUFFIX


def favourable_bound(change, higher_is_better: bool) -> float:
    """The interval's end on the favourable side (TFMA's own 95 % t-interval), the point change without one."""
    if isinstance(change, types.ValueWithTDistribution):
        _, lower, upper = math_util.calculate_confidence_interval(change)
        bound = float(upper if higher_is_better else lower)
        if math.isfinite(bound):
            return bound
    return float(change)


class ChangeBound(metric_types.Metric):
    """Favourable 95 % bound of (candidate − baseline) of the metric named `metric` (TFMA's key name)."""

    def __init__(self, metric: str = "auc", higher_is_better: bool = True, name: str = ""):
        super().__init__(_computations, metric=metric, higher_is_better=higher_is_better,
                         name=name or bound_name(metric))


metric_types.register_metric(ChangeBound)


def _computations(metric: str, higher_is_better: bool, name: str,
                  eval_config: Optional[config_pb2.EvalConfig] = None, model_names: Optional[List[str]] = None,
                  output_names: Optional[List[str]] = None, sub_keys=None,
                  example_weighted: bool = False) -> metric_types.MetricComputations:
    computations: metric_types.MetricComputations = []
    baseline = model_util.get_baseline_model_spec(eval_config) if eval_config else None
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                         example_weighted=example_weighted)

            def result(metrics, key=key, model_name=model_name, output_name=output_name):
                changes = [v for k, v in metrics.items() if k.is_diff and k.name == metric
                           and k.model_name == model_name and k.output_name == output_name and not k.sub_key
                           and k.example_weighted == example_weighted]
                if changes:
                    return {key: favourable_bound(changes[0], higher_is_better)}
                # No change: nothing in production (0, the rule passes), or a metric name that matches no
                # computed metric (NaN: the threshold fails and its reason names this key).
                judged = baseline is not None and model_name != baseline.name
                return {key: math.nan if judged else 0.0}

            computations.append(metric_types.CIDerivedMetricComputation(keys=[key], result=result))
    return computations
