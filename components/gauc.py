"""GAUC as a TFMA metric: AUC within each group (user), averaged with the groups' impression weights.

Overall AUC mixes users: a model can rank heavy clickers above light ones and score well without
ordering any one user's items. Ranking serves one user at a time, so e-commerce ranking reports GAUC
(Zhou et al., DIN, KDD 2018): Σ_u w_u · AUC_u / Σ_u w_u, with w_u the user's impressions (summed
example weights) and users whose impressions hold one class only skipped (their AUC is undefined).

The grouping column is a raw feature (`evaluation.group_column`, e.g. user_id) read from TFMA's
`features` extracts, so it need not be a model input. The combiner keeps (group, label, prediction,
weight) of every example of the slice: memory grows with the evaluated rows, fine for a day of
impressions; it runs inside the Evaluator on every slice like any built-in metric.

    tfma.MetricConfig(class_name="GAUC", module="components.gauc", config='{"group_key": "user_id"}')
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

import mtrank  # noqa: F401
import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

from mtrank import metrics as metrics_lib

GAUC_NAME = "gauc"
GROUPS_NAME = "gauc_groups"  # how many groups (users) held both classes and entered the average


def gauc(groups: Iterable, labels: Iterable[float], predictions: Iterable[float],
         weights: Optional[Iterable[float]] = None) -> Tuple[float, int]:
    """(GAUC, number of groups used) of flat arrays; NaN when no group holds both classes."""
    groups = np.asarray(list(groups), dtype=object)
    labels = np.asarray(list(labels), dtype=np.float64) > 0.5
    predictions = np.asarray(list(predictions), dtype=np.float64)
    weights = np.ones(len(labels)) if weights is None else np.asarray(list(weights), dtype=np.float64)
    total, weight_sum, used = 0.0, 0.0, 0
    order = np.argsort(groups.astype(str), kind="mergesort")
    keys = groups[order].astype(str)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(keys)]):
        rows = order[start:end]
        y = labels[rows]
        if y.all() or not y.any():
            continue
        w = float(weights[rows].sum())
        total += w * metrics_lib.auc(y, predictions[rows])
        weight_sum += w
        used += 1
    return (total / weight_sum if weight_sum > 0 else float("nan")), used


class GAUC(metric_types.Metric):
    """Impression-weighted mean of per-group AUC; `group_key` names the raw feature to group by."""

    def __init__(self, group_key: str = "user_id", name: str = GAUC_NAME):
        super().__init__(_gauc_computations, group_key=group_key, name=name)


metric_types.register_metric(GAUC)


def _gauc_computations(group_key: str, name: str = GAUC_NAME,
                       eval_config: Optional[config_pb2.EvalConfig] = None,
                       model_names: Optional[List[str]] = None, output_names: Optional[List[str]] = None,
                       sub_keys=None, example_weighted: bool = False) -> metric_types.MetricComputations:
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            keys = [metric_types.MetricKey(name=n, model_name=model_name, output_name=output_name,
                                           example_weighted=example_weighted)
                    for n in (name, GROUPS_NAME if name == GAUC_NAME else f"{name}_groups")]
            computations.append(metric_types.MetricComputation(
                keys=keys,
                preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[group_key])],
                combiner=_GAUCCombiner(keys, group_key, eval_config, example_weighted)))
    return computations


class _GAUCCombiner(beam.CombineFn):
    """Accumulates (group, label, prediction, weight) lists; AUC per group only at the end."""

    def __init__(self, keys: List[metric_types.MetricKey], group_key: str,
                 eval_config: Optional[config_pb2.EvalConfig], example_weighted: bool):
        self._keys, self._group_key = keys, group_key
        self._eval_config, self._example_weighted = eval_config, example_weighted

    def create_accumulator(self) -> Dict[str, list]:
        return {"group": [], "label": [], "prediction": [], "weight": []}

    def _group_of(self, element: metric_types.StandardMetricInputs):
        features = element.features or {}
        if self._group_key not in features:
            raise ValueError(f"GAUC: column {self._group_key!r} (evaluation.group_column) is not among the "
                             f"evaluated features {sorted(features)}; it must be a column of the eval data")
        value = np.asarray(features[self._group_key]).ravel()
        value = value[0] if value.size else b""
        return value.decode() if isinstance(value, bytes) else str(value)

    def add_input(self, accumulator: Dict[str, list], element: metric_types.StandardMetricInputs):
        key = self._keys[0]
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=key.model_name, output_name=key.output_name,
                example_weighted=self._example_weighted, flatten=True, require_single_example_weight=True):
            accumulator["group"].append(self._group_of(element))
            accumulator["label"].append(float(np.asarray(label).ravel()[0]))
            accumulator["prediction"].append(float(np.asarray(prediction).ravel()[0]))
            accumulator["weight"].append(float(np.asarray(weight).ravel()[0]))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[Dict[str, list]]) -> Dict[str, list]:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for other in accumulators:
            for k in result:
                result[k].extend(other[k])
        return result

    def extract_output(self, accumulator: Dict[str, list]) -> Dict[metric_types.MetricKey, float]:
        value, used = gauc(accumulator["group"], accumulator["label"], accumulator["prediction"],
                           accumulator["weight"])
        return {self._keys[0]: value, self._keys[1]: float(used)}
