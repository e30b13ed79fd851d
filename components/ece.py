"""Expected calibration error (ECE) as a TFMA metric.

Calibration (mean prediction / mean label) can be 1.0 while every score is wrong: over-confident
at the top and under-confident at the bottom cancel out. ECE (Naeini et al. 2015; Guo et al. 2017)
does not let them cancel: predictions are put in `num_bins` equal-width bins over [0, 1] and
ECE = Σ_b (w_b / W) · |mean prediction_b − mean label_b|. Ranked bids and budgets use the
probabilities themselves, so a ranking model must be calibrated too, not only well ordered.
The accumulator is three sums per bin, so it is cheap on any slice.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import mtrank  # noqa: F401
import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

ECE_NAME = "expected_calibration_error"


def expected_calibration_error(labels: Iterable[float], predictions: Iterable[float],
                               weights: Optional[Iterable[float]] = None, num_bins: int = 10) -> float:
    """ECE of flat arrays (the same formula as the TFMA metric), NaN on no weight."""
    labels = np.asarray(list(labels), dtype=np.float64)
    predictions = np.asarray(list(predictions), dtype=np.float64)
    weights = np.ones_like(labels) if weights is None else np.asarray(list(weights), dtype=np.float64)
    sums = np.zeros((3, num_bins))
    np.add.at(sums, (slice(None), _bins(predictions, num_bins)),
              np.stack([weights, weights * predictions, weights * labels]))
    return _ece(sums)


def _bins(predictions: np.ndarray, num_bins: int) -> np.ndarray:
    return np.clip((np.asarray(predictions) * num_bins).astype(int), 0, num_bins - 1)


def _ece(sums: np.ndarray) -> float:
    weight, prediction, label = sums
    total = weight.sum()
    if total <= 0:
        return float("nan")
    return float(np.abs(prediction - label).sum() / total)  # Σ w_b/W · |p̄_b − ȳ_b| = Σ |Σp − Σy| / W


class ExpectedCalibrationError(metric_types.Metric):
    """ECE over `num_bins` equal-width prediction bins."""

    def __init__(self, num_bins: int = 10, name: str = ECE_NAME):
        super().__init__(_ece_computations, num_bins=num_bins, name=name)


metric_types.register_metric(ExpectedCalibrationError)


def _ece_computations(num_bins: int = 10, name: str = ECE_NAME, eval_config: Optional[config_pb2.EvalConfig] = None,
                      model_names: Optional[List[str]] = None, output_names: Optional[List[str]] = None,
                      sub_keys=None, example_weighted: bool = False) -> metric_types.MetricComputations:
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                         example_weighted=example_weighted)
            computations.append(metric_types.MetricComputation(
                keys=[key], preprocessors=None,
                combiner=_ECECombiner(key, num_bins, eval_config, example_weighted)))
    return computations


class _ECECombiner(beam.CombineFn):
    def __init__(self, key: metric_types.MetricKey, num_bins: int, eval_config: Optional[config_pb2.EvalConfig],
                 example_weighted: bool):
        self._key, self._num_bins = key, num_bins
        self._eval_config, self._example_weighted = eval_config, example_weighted

    def create_accumulator(self) -> np.ndarray:
        return np.zeros((3, self._num_bins))

    def add_input(self, accumulator: np.ndarray, element: metric_types.StandardMetricInputs) -> np.ndarray:
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._key.model_name,
                output_name=self._key.output_name, example_weighted=self._example_weighted, flatten=True):
            p = float(np.asarray(prediction).ravel()[0])
            w = float(np.asarray(weight).ravel()[0])
            b = _bins(np.array([p]), self._num_bins)[0]
            accumulator[:, b] += (w, w * p, w * float(np.asarray(label).ravel()[0]))
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[np.ndarray]) -> np.ndarray:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for other in accumulators:
            result = result + other
        return result

    def extract_output(self, accumulator: np.ndarray) -> Dict[metric_types.MetricKey, float]:
        return {self._key: _ece(accumulator)}
