"""A correction to TFMA 0.47 that the Evaluator needs before any Beam pipeline runs.

Four TFMA combiners merge with ``result = next(iter(accs)); for acc in accs: result.merge(acc)``.
When Beam hands them a list (it does whenever a slice's rows arrive in more than one bundle), the
first accumulator is merged into itself and counted twice. Measured on a 20k-row evaluation: the
dwell MSE of the slice device=desktop × position=10 came out 0.96 instead of 0.81 (the weighted mean
of the rows' squared errors), with the same slice's mean label and mean prediction exact. The
overall slice of a small run is usually one bundle, so the error shows on slices and on larger data.

No released TFMA fixes it (checked up to 0.47, the version the TFX 1.16 line pins), so the corrected
``merge_accumulators`` is set on the affected classes here, once, from the modules that run TFMA.
On a distributed runner the workers import this module through the Evaluator's executor as well.
"""
from typing import Iterable

from tensorflow_model_analysis.metrics import cross_entropy_metrics, flip_metrics, mean_regression_error
from tensorflow_model_analysis.metrics import model_cosine_similarity

AFFECTED = (
    mean_regression_error._MeanRegressionErrorCombiner,          # MSE, MAE, MAPE, MSLE
    cross_entropy_metrics._CrossEntropyCombiner,                 # BinaryCrossEntropy, CategoricalCrossEntropy
    flip_metrics._BooleanFlipCountsCombiner,
    model_cosine_similarity._ModelCosineSimilarityCombiner,
)


def _merge_each_once(self, accumulators: Iterable):
    accumulators = iter(accumulators)
    result = next(accumulators)
    for accumulator in accumulators:
        result.merge(accumulator)
    return result


def apply() -> None:
    """Idempotent: sets the merge that counts every accumulator once on each affected combiner."""
    for combiner in AFFECTED:
        combiner.merge_accumulators = _merge_each_once


apply()
