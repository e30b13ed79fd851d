"""The Evaluator's metrics beyond its gates, measured from materialized predictions.

Why not TFMA for them: TFMA 0.47 unbatches before slicing and runs every metric's Python combiner once per
example and per slicing. Profiled on the default configuration, `to_label_prediction_example_weight` alone
ran 22 times per row and slicing, and the three report slicings cost 2.7x the overall slice on its own
(bench/results/evaluator_throughput.md). The report's slices, and the overall metrics no threshold reads,
feed the run report only. So the Evaluator (components/evaluator.py) gives TFMA the overall slice with the
metrics that gate (`gates`: their thresholds, their change against the model in production, their
intervals, the calibration plot) and this module measures the rest of the same EvalConfig:

1. one pass of the candidate model over the same rows: its `transform_features` signature gives the labels
   and example weights TFMA reads (the ModelSpec's label and weight keys), its serving signature the
   predictions TFMA judges; the raw columns the slices and the ranking metrics name are read from the rows;
2. every metric of each MetricsSpec, per slice, in numpy with TFMA's definitions (`DEFINITIONS`; ROC and
   PR AUC by TFMA's own area formula on a confusion matrix at its 10,000 thresholds, each row counted
   where TFMA's calibration histogram puts it; GAUC, ECE and the ranking metrics by the same functions
   their TFMA combiners call);
3. the values written as TFMA's own MetricsForSlice records beside TFMA's (`SLICES_FILE`, matched by
   TFMA's `metrics*` reader), the overall slice's joined to TFMA's own overall record, so
   `tfma.load_eval_result` and TFMA's notebook views read one result with one overall slice.

tests/test_pipeline_e2e.py holds this path to TFMA: on a trained model's rows, every metric of every slice
equals TFMA's own value for that slice.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import mtrank  # noqa: F401
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import binary_confusion_matrices, calibration_histogram
from tensorflow_model_analysis.proto import metrics_for_slice_pb2
from tensorflow_model_analysis.writers import eval_config_writer

from components import ece, gauc, ranking_metric, tfma_fixes  # noqa: F401  (corrects TFMA on import)
from mtrank import metrics as metrics_lib
from mtrank import ranking
from mtrank.export_contract import EXAMPLES_INPUT, TRANSFORM_SIGNATURE

SLICES_FILE = "metrics-slices.tfrecord"  # TFMA reads <evaluation>/metrics*.tfrecord
BATCH_ROWS = 4096
AUC_THRESHOLDS = 10_000  # TFMA's AUC and AUCPrecisionRecall default (their confusion matrices' thresholds)
# Computed on the overall slice by TFMA only: a plot, and the gate's change bound (thresholds are overall).
OVERALL_ONLY = ("CalibrationPlot", "ChangeBound")
RANKING_METRIC = ranking_metric.RankingMetric.__name__  # measured here by the functions its combiner calls


# ---- the metrics, in numpy: (labels, predictions, weights, settings, raw columns) -> {key: value}
def _tfma_threshold_counts(p: np.ndarray, rebinned: np.ndarray) -> np.ndarray:
    """For each prediction, at how many thresholds (from the first) TFMA counts the row as positive;
    `rebinned` is _rebinned(thresholds), computed once per metric, not per slice.

    TFMA does not compare a prediction with the thresholds: it puts it in one of its calibration histogram's
    10,000 buckets (calibration_histogram._bucket_index, in float64 as it does), then rebins each bucket by
    its left edge onto the thresholds moved up by epsilon (binary_confusion_matrices, calibration_histogram.rebin).
    Comparing with the thresholds directly moved AUC by up to 0.0014 (0.3 %) on a category slice (measured against
    TFMA on identical predictions). Both rules are replayed here, vectorized."""
    n = calibration_histogram.DEFAULT_NUM_BUCKETS
    bucket = np.clip((p - 0.0) / 1.0 * n + 1, 0, n + 1).astype(np.int64)  # int() of _bucket_index; NaN never gets here
    left_edge = np.where(bucket == 0, -np.inf, np.where(bucket >= n + 1, np.inf, (bucket - 1) / n * 1.0 + 0.0))
    return np.maximum(np.searchsorted(rebinned, left_edge, side="right") - 1, 0) + 1


def _rebinned(thresholds: np.ndarray) -> np.ndarray:
    """The thresholds as TFMA rebins its histogram onto them (binary_confusion_matrices: moved up by epsilon)."""
    return np.where(thresholds != 0, thresholds + binary_confusion_matrices._EPSILON, thresholds)


def _tfma_auc(curve: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
    """TFMA's own AUC on TFMA's own thresholds, from a confusion matrix counted in numpy.

    The curve's area is TFMA's `AUC._metric_value` (ROC and PR, interpolation) and the rows are counted at
    each threshold by TFMA's rule (_tfma_threshold_counts); only the counting is done here, in one pass,
    because TFMA counts it in a per-example combiner. (Keras' AUC gives the same area but costs 50 ms a
    call eagerly: 20 of 25 s on 67 slices, profiled.)"""
    thresholds = np.asarray(binary_confusion_matrices._interpolated_thresholds(AUC_THRESHOLDS))
    # The shape TFMA's _histogram_to_binary_confusion_matrices takes for these thresholds: no -epsilon bucket
    # to add (the first is below 0), none above (the last is 1 + epsilon, where TFMA counts no row positive).
    assert thresholds[0] < 0 and thresholds[-1] >= 1.0 + binary_confusion_matrices._EPSILON, thresholds[[0, -1]]
    rebinned = _rebinned(thresholds)
    definition = tfma.metrics.AUC(num_thresholds=AUC_THRESHOLDS)

    def value(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
        if y.min() == y.max():  # one class: undefined (TFMA writes 0.0 there; the report shows it as undefined)
            return 0.0
        counted = _tfma_threshold_counts(p, rebinned)  # a row is predicted positive at thresholds[:counted]
        per_bucket = [np.bincount(counted, weights=w * part, minlength=len(thresholds) + 1) for part in (y, 1 - y)]
        positives, negatives = ((part.sum() - np.cumsum(part))[:-1] for part in per_bucket)
        positives[-1] = negatives[-1] = 0.0  # above 1 + epsilon: TFMA counts none
        matrices = binary_confusion_matrices.Matrices(
            thresholds=thresholds, tp=positives, fp=negatives, tn=per_bucket[1].sum() - negatives,
            fn=per_bucket[0].sum() - positives)
        with np.errstate(divide="ignore", invalid="ignore"):  # TFMA's formula divides by empty buckets, then nansums
            return float(definition._metric_value(curve, "interpolation", None, matrices))
    return value


_ROC, _PR = _tfma_auc("ROC"), _tfma_auc("PR")


def _mean(values: np.ndarray, w: np.ndarray) -> float:
    total = w.sum()
    return float((values * w).sum() / total) if total > 0 else float("nan")


def _log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = -np.where(y > 0, y * np.log(p), 0.0) - np.where(y < 1, (1 - y) * np.log1p(-p), 0.0)
    return _mean(loss, w)


Definition = Callable[[np.ndarray, np.ndarray, np.ndarray, Dict, Dict[str, np.ndarray]], Dict[str, float]]
DEFINITIONS: Dict[str, Definition] = {
    "AUC": lambda y, p, w, s, c: {"auc": _ROC(y, p, w)},
    "AUCPrecisionRecall": lambda y, p, w, s, c: {"auc_precision_recall": _PR(y, p, w)},
    "BinaryCrossentropy": lambda y, p, w, s, c: {"binary_crossentropy": _log_loss(y, p, w)},
    "Calibration": lambda y, p, w, s, c: {"calibration": float((p * w).sum() / (y * w).sum())
                                          if (y * w).sum() else float("nan")},
    "ExpectedCalibrationError": lambda y, p, w, s, c: {ece.ECE_NAME: ece.expected_calibration_error(
        y, p, w, num_bins=s.get("num_bins", 10))},
    "GAUC": lambda y, p, w, s, c: dict(zip((gauc.GAUC_NAME, gauc.GROUPS_NAME), gauc.gauc(
        c[s.get("group_key", "user_id")], y, p, w))),
    "MeanSquaredError": lambda y, p, w, s, c: {"mean_squared_error": _mean((y - p) ** 2, w)},
    "MeanAbsoluteError": lambda y, p, w, s, c: {"mean_absolute_error": _mean(np.abs(y - p), w)},
    "MeanLabel": lambda y, p, w, s, c: {"mean_label": _mean(y, w)},
    "MeanPrediction": lambda y, p, w, s, c: {"mean_prediction": _mean(p, w)},
    "ExampleCount": lambda y, p, w, s, c: {"example_count": float(w.sum())},
}


# ---- the EvalConfig split
def _moved(spec: tfma.SlicingSpec) -> bool:
    """A slicing by feature columns alone (what the configuration writes) is measured here."""
    return bool(spec.feature_keys) and not spec.feature_values and not spec.slice_keys_sql


def _overall(spec: tfma.SlicingSpec) -> bool:
    return not spec.feature_keys and not spec.feature_values and not spec.slice_keys_sql


def _keys(metric: tfma.MetricConfig) -> List[str]:
    """The names a metric writes its values under (what a ChangeBound's `metric` names)."""
    settings = _settings(metric)
    if metric.class_name == RANKING_METRIC:
        return [ranking.metric_name(settings["objective"], settings["measure"], settings["settings"]["top_k"])]
    return [key for key, m in metrics_lib.BY_KEY.items() if m.tfma_class == metric.class_name]


def gates(spec: tfma.MetricsSpec, metric: tfma.MetricConfig) -> bool:
    """Whether TFMA computes this metric on the overall slice: it carries a threshold (its own, or one of its
    spec's by name), a change bound of its spec reads its change against the model in production, or it is
    TFMA's alone (OVERALL_ONLY)."""
    if metric.class_name in OVERALL_ONLY or metric.per_slice_thresholds or metric.cross_slice_thresholds \
            or metric.HasField("threshold"):
        return True
    named = {_settings(m).get("metric") for m in spec.metrics if m.class_name == "ChangeBound"}
    named |= set(spec.thresholds) | set(spec.per_slice_thresholds) | set(spec.cross_slice_thresholds)
    return bool(named.intersection(_keys(metric)))


def _measurable(metric: tfma.MetricConfig) -> bool:
    return metric.class_name in DEFINITIONS or metric.class_name == RANKING_METRIC


def tfma_keeps(spec: tfma.MetricsSpec, metric: tfma.MetricConfig) -> bool:
    """Whether TFMA computes the metric on the overall slice: it gates, or this module has no definition of it."""
    return gates(spec, metric) or not _measurable(metric)


def split(eval_config: tfma.EvalConfig) -> Tuple[tfma.EvalConfig, List[tfma.SlicingSpec]]:
    """(the EvalConfig TFMA runs, the slicing specs measured here).

    TFMA keeps the overall slice with the metrics that gate (`gates`): their thresholds, their changes against
    the model in production, their intervals. Every other metric of the overall slice, and every metric of the
    other slicings, is measured here; the overall slice is then among the slicings returned, and its values
    join TFMA's own overall record (`evaluate_slices`). Refuses, before any work, a metric that the feature
    slices could not measure (one without a definition here stays TFMA's when there are none)."""
    moved = [s for s in eval_config.slicing_specs if _moved(s)]
    unknown = sorted({m.class_name for spec in eval_config.metrics_specs for m in spec.metrics
                      if m.class_name not in OVERALL_ONLY and not _measurable(m)})
    if moved and unknown:
        raise ValueError(f"metric {', '.join(unknown)} has no per-slice definition in components/slice_metrics.py "
                         "DEFINITIONS: add one there (tests/test_pipeline_e2e.py holds it to TFMA's value)")
    kept = tfma.EvalConfig()
    kept.CopyFrom(eval_config)
    del kept.slicing_specs[:]
    kept.slicing_specs.extend(s for s in eval_config.slicing_specs if not _moved(s))
    if any(not _overall(s) for s in kept.slicing_specs):  # slices by value or SQL: TFMA measures every metric
        return kept, moved
    del kept.metrics_specs[:]
    overall_moves = False
    for spec in eval_config.metrics_specs:
        tfmas = [m for m in spec.metrics if tfma_keeps(spec, m)]
        overall_moves |= len(tfmas) < len(spec.metrics)
        if tfmas:
            kept.metrics_specs.add().CopyFrom(spec)
            del kept.metrics_specs[-1].metrics[:]
            kept.metrics_specs[-1].metrics.extend(tfmas)
    if overall_moves:
        moved = [s for s in eval_config.slicing_specs if _overall(s)][:1] + moved
    return kept, moved


def _candidate(eval_config: tfma.EvalConfig) -> tfma.ModelSpec:
    return next((m for m in eval_config.model_specs if not m.is_baseline), eval_config.model_specs[0])


# ---- one pass of the model
class Rows:
    """The evaluated rows: raw columns, and per output its label, weight and prediction."""

    def __init__(self, columns: Dict[str, np.ndarray], labels: Dict[str, np.ndarray],
                 weights: Dict[str, np.ndarray], predictions: Dict[str, np.ndarray]):
        self.columns, self.labels, self.weights, self.predictions = columns, labels, weights, predictions

    def __len__(self) -> int:
        return len(next(iter(self.predictions.values()))) if self.predictions else 0


def _files(patterns: Union[str, Sequence[str]]) -> List[str]:
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    files = sorted(f for p in patterns for f in tf.io.gfile.glob(p))
    if not files:
        raise FileNotFoundError(f"{', '.join(patterns)}: no evaluated rows there")
    return files


def _raw_value(feature: tf.train.Feature):
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else ()
    if not values:
        return None
    value = values[0]
    return value.decode() if isinstance(value, bytes) else value


def materialize(model_path: str, model_spec: tfma.ModelSpec, data_pattern: Union[str, Sequence[str]], columns: Sequence[str]) -> Rows:
    """Runs the model over the rows once: labels and weights from its transform signature (the ModelSpec's
    preprocessing function), predictions from its serving signature, and the named raw columns."""
    model = tf.saved_model.load(model_path)
    serve = model.signatures[model_spec.signature_name or "serving_default"]
    transform = model.signatures[(list(model_spec.preprocessing_function_names) or [TRANSFORM_SIGNATURE])[0]]
    out: Dict[str, list] = {"columns": {c: [] for c in columns}, "labels": {}, "weights": {}, "predictions": {}}
    files = _files(data_pattern)
    compression = "GZIP" if files[0].endswith(".gz") else ""
    dataset = tf.data.TFRecordDataset(files, compression_type=compression).batch(BATCH_ROWS)
    for batch in dataset:
        predicted = serve(**{EXAMPLES_INPUT: batch})
        transformed = transform(**{EXAMPLES_INPUT: batch})
        for output, tensor in predicted.items():
            out["predictions"].setdefault(output, []).append(tf.reshape(tensor, [-1]).numpy().astype(np.float64))
        for output, key in model_spec.label_keys.items():
            out["labels"].setdefault(output, []).append(
                tf.reshape(tf.cast(transformed[key], tf.float64), [-1]).numpy())
        for output, key in model_spec.example_weight_keys.items():
            out["weights"].setdefault(output, []).append(
                tf.reshape(tf.cast(transformed[key], tf.float64), [-1]).numpy())
        if columns:
            for record in batch.numpy():
                features = tf.train.Example.FromString(record).features.feature
                for c in columns:
                    out["columns"][c].append(_raw_value(features[c]) if c in features else None)
    return Rows(columns={c: np.asarray(v, dtype=object) for c, v in out["columns"].items()},
                **{part: {k: np.concatenate(v) for k, v in out[part].items()}
                   for part in ("labels", "weights", "predictions")})


# ---- what each MetricsSpec asks for
def _settings(metric: tfma.MetricConfig) -> Dict:
    return json.loads(metric.config) if metric.config else {}


def _weightings(spec: tfma.MetricsSpec, model_spec: tfma.ModelSpec) -> List[bool]:
    """TFMA's rule (metric_specs._example_weight_options): as the spec says, else weighted when one of its
    outputs has an example weight key."""
    if spec.HasField("example_weights"):
        return [flag for flag, on in ((True, spec.example_weights.weighted), (False, spec.example_weights.unweighted))
                if on]
    return [bool(model_spec.example_weight_key) or any(o in model_spec.example_weight_keys for o in spec.output_names)]


def columns_needed(eval_config: tfma.EvalConfig, slicings: Iterable[tfma.SlicingSpec]) -> List[str]:
    """Raw columns the slices and the metrics (GAUC's group, the ranking metrics' request and gains) read."""
    needed = [k for s in slicings for k in s.feature_keys]
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            settings = _settings(metric)
            if metric.class_name == "GAUC":
                needed.append(settings.get("group_key", "user_id"))
            elif metric.class_name == RANKING_METRIC:
                needed += ranking_metric._columns(settings["settings"])  # noqa: SLF001 (the combiner's own columns)
    return list(dict.fromkeys(needed))


def slice_metrics(eval_config: tfma.EvalConfig, rows: Rows, mask: np.ndarray,
                  beside_tfma: bool = False) -> Dict[Tuple[str, bool], Dict[str, float]]:
    """{(output, example weighted): {metric: value}} of the rows where `mask` holds; `beside_tfma`: only the
    metrics TFMA does not compute on the overall slice (`tfma_keeps`)."""
    model_spec = _candidate(eval_config)
    columns = {c: v[mask] for c, v in rows.columns.items()}
    out: Dict[Tuple[str, bool], Dict[str, float]] = {}
    ranked: Dict[str, Dict] = {}  # the ranking metrics' shared lists, once per settings
    for spec in eval_config.metrics_specs:
        for metric in spec.metrics:
            if metric.class_name in OVERALL_ONLY or (beside_tfma and tfma_keeps(spec, metric)):
                continue
            settings = _settings(metric)
            if metric.class_name == RANKING_METRIC:
                for weighted in _weightings(spec, model_spec):
                    _ranking(spec, settings, rows, mask, columns, ranked, out, weighted)
                continue
            for output, weighted in ((o, f) for o in spec.output_names for f in _weightings(spec, model_spec)):
                y, p = rows.labels[output][mask], rows.predictions[output][mask]
                w = rows.weights[output][mask] if weighted and output in rows.weights else np.ones_like(y)
                if weighted and output in rows.weights and metric.class_name != "ExampleCount":
                    y, p, w = y[w > 0], p[w > 0], w[w > 0]
                    group = {c: v[rows.weights[output][mask] > 0] for c, v in columns.items()}
                else:
                    group = columns
                if not len(y):
                    continue
                out.setdefault((output, weighted), {}).update(DEFINITIONS[metric.class_name](y, p, w, settings, group))
    return out


def _ranking(spec, settings, rows, mask, columns, ranked, out, weighted) -> None:
    shared = settings["settings"]
    key = json.dumps(shared, sort_keys=True)
    if key not in ranked:
        outputs = {o: rows.predictions[o][mask] for o in shared["outputs"]}
        ranked[key] = ranking_metric.rank_lists(outputs, {c: columns[c] for c in ranking_metric._columns(shared)},  # noqa: SLF001
                                                shared)
    lists = ranked[key]
    name = ranking.metric_name(settings["objective"], settings["measure"], shared["top_k"])
    for output in spec.output_names:
        for ranked_output in [output] + ([ranking_metric.CONFIGURED_OUTPUT]
                                         if output == ranking_metric.export_contract.SCORE_OUTPUT else []):
            value = lists.get((ranked_output, settings["objective"]), {}).get(settings["measure"])
            out.setdefault((ranked_output, weighted), {})[name] = float("nan") if value is None else float(value)


# ---- slices and TFMA's records
def slices(rows: Rows, slicings: Iterable[tfma.SlicingSpec]) -> List[Tuple[Tuple[Tuple[str, object], ...], np.ndarray]]:
    """(TFMA's slice key, row mask) of every value (or cross of values) present, as TFMA's slicer makes them."""
    out = []
    for spec in slicings:
        keys = list(spec.feature_keys)
        values = [rows.columns[k] for k in keys]
        present = np.ones(len(rows), dtype=bool)  # the overall slice (no keys) too: a row mask, not a scalar
        for column in values:
            present &= np.asarray([v is not None for v in column], dtype=bool)
        combos = sorted({tuple(column[i] for column in values) for i in np.flatnonzero(present)}, key=str)
        for combo in combos:
            mask = present.copy()
            for column, value in zip(values, combo):
                mask &= column == value
            out.append((tuple(sorted(zip(keys, combo))), mask))
    return out


def _record(slice_key, metrics: Dict[Tuple[str, bool], Dict[str, float]], model_name: str):
    record = metrics_for_slice_pb2.MetricsForSlice(slice_key=tfma.slicer.serialize_slice_key(slice_key))
    for (output, weighted), values in sorted(metrics.items()):
        for name, value in sorted(values.items()):
            entry = record.metric_keys_and_values.add()
            entry.key.name, entry.key.output_name, entry.key.model_name = name, output, model_name
            entry.key.example_weighted.value = weighted
            entry.value.double_value.value = value
    return record


def _tfma_records(output_path: str) -> List[str]:
    return sorted(f for f in tf.io.gfile.glob(os.path.join(output_path, "metrics*"))
                  if os.path.basename(f) != SLICES_FILE)


def _model_name(output_path: str, default: str) -> str:
    """The candidate's name in TFMA's records: TFX's Evaluator renames the models (`candidate`, `baseline`)
    when there is a baseline, and TFMA writes the EvalConfig it ran beside its records."""
    ran = eval_config_writer.load_eval_run(output_path)[0]
    return _candidate(ran).name if ran is not None and ran.model_specs else default


def _join_overall(output_path: str, record: metrics_for_slice_pb2.MetricsForSlice) -> bool:
    """Adds the overall slice's values measured here to TFMA's own overall record, so a reader sees one
    overall slice (TFMA's value stands where both have a key). False when TFMA wrote no overall record."""
    for path in _tfma_records(output_path):
        compression = "GZIP" if path.endswith(".gz") else ""
        records = [metrics_for_slice_pb2.MetricsForSlice.FromString(r.numpy())
                   for r in tf.data.TFRecordDataset(path, compression_type=compression)]
        overall = next((r for r in records if not r.slice_key.single_slice_keys and not r.HasField("cross_slice_key")),
                       None)
        if overall is None:
            continue
        present = {entry.key.SerializeToString(deterministic=True) for entry in overall.metric_keys_and_values}
        overall.metric_keys_and_values.extend(entry for entry in record.metric_keys_and_values
                                              if entry.key.SerializeToString(deterministic=True) not in present)
        options = tf.io.TFRecordOptions(compression_type=compression)
        with tf.io.TFRecordWriter(path + ".joined", options) as writer:
            for r in records:
                writer.write(r.SerializeToString())
        tf.io.gfile.rename(path + ".joined", path, overwrite=True)
        return True
    return False


def evaluate_slices(eval_config: tfma.EvalConfig, slicings: Sequence[tfma.SlicingSpec], model_path: str,
                    data_pattern: Union[str, Sequence[str]], output_path: str) -> int:
    """Measures `slicings` of `eval_config`'s metrics on the rows with the model and writes TFMA's records into
    `output_path` (an Evaluator's evaluation folder, TFMA's run done); the overall slice gets only what TFMA
    did not measure, joined to TFMA's record. Returns the number of slices measured."""
    if not slicings:
        return 0
    model_spec = _candidate(eval_config)
    rows = materialize(model_path, model_spec, data_pattern, columns_needed(eval_config, slicings))
    model_name = _model_name(output_path, model_spec.name)
    written = 0
    with tf.io.TFRecordWriter(os.path.join(output_path, SLICES_FILE)) as writer:
        for slice_key, mask in slices(rows, slicings):
            overall = not slice_key
            record = _record(slice_key, slice_metrics(eval_config, rows, mask, beside_tfma=overall), model_name)
            if not (overall and _join_overall(output_path, record)):
                writer.write(record.SerializeToString())
            written += 1
    return written


def run_model_analysis(eval_config: tfma.EvalConfig, model_path: str, data_pattern: str, output_path: str,
                       shared_model: Optional[object] = None) -> None:
    """What the Evaluator does, outside a pipeline (bench, tests): TFMA on the slicings it keeps, then the
    others from materialized predictions."""
    kept, moved = split(eval_config)
    shared_model = shared_model or tfma.default_eval_shared_model(eval_saved_model_path=model_path, eval_config=kept)
    tfma.run_model_analysis(eval_shared_model=shared_model, eval_config=kept, data_location=data_pattern,
                            output_path=output_path, file_format="tfrecords")
    evaluate_slices(eval_config, moved, model_path, data_pattern, output_path)
