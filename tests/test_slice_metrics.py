"""The Evaluator's split of one EvalConfig between TFMA (overall slice, gates) and the report slices measured
from predictions, and the TFMA correction it runs with. Held to TFMA's own values on a trained model in
tests/test_pipeline_e2e.py."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from sklearn.metrics import average_precision_score, roc_auc_score
from tensorflow_model_analysis.metrics import cross_entropy_metrics, mean_regression_error

from components import evaluation, slice_metrics, tfma_fixes
from mtrank import metrics as metrics_lib


def _kept(config: tfma.EvalConfig) -> set:
    return {(tuple(spec.output_names), m.class_name) for spec in config.metrics_specs for m in spec.metrics}


def test_tfma_keeps_the_overall_slice_with_the_gating_metrics_and_everything_else_moves(cfg):
    config = evaluation.eval_config(cfg)
    kept, moved = slice_metrics.split(config)
    assert [list(s.feature_keys) for s in kept.slicing_specs] == [[]]  # the overall slice, where thresholds hold
    assert [list(s.feature_keys) for s in moved] == [[]] + [[k] for k in cfg.evaluation.slices]
    assert kept.model_specs == config.model_specs
    gated = {((th.task,), metrics_lib.tfma_class(th.metric)) for th in cfg.evaluation.thresholds}
    plots = {((t.name,), "CalibrationPlot") for t in cfg.tasks if t.type == metrics_lib.BINARY}
    assert gated and _kept(kept) == gated | plots  # the ranking metrics, GAUC, ECE, log loss, ... are measured here
    for spec in kept.metrics_specs:  # each kept metric as configured, its threshold included
        original = next(s for s in config.metrics_specs if s.output_names == spec.output_names)
        assert all(m in original.metrics for m in spec.metrics)
        assert spec.example_weights == original.example_weights


def test_a_significant_drop_keeps_its_metric_in_tfma_without_a_floor(cfg):
    """The change bound reads the metric's change against production, which TFMA alone computes."""
    thresholds = [dataclasses.replace(th, significant=True, lower_bound=None) if th.task == "purchase" else th
                  for th in cfg.evaluation.thresholds]
    config = evaluation.eval_config(cfg.replace(evaluation=dataclasses.replace(cfg.evaluation, thresholds=thresholds)))
    purchase = next(s for s in config.metrics_specs if list(s.output_names) == ["purchase"])
    auc = next(m for m in purchase.metrics if m.class_name == "AUC")
    assert not auc.per_slice_thresholds  # no floor, the drop sits on the change bound
    kept, _ = slice_metrics.split(config)
    assert {(("purchase",), "AUC"), (("purchase",), "ChangeBound")} <= _kept(kept)


def test_a_metric_without_a_per_slice_definition_is_refused_before_any_work(cfg):
    config = evaluation.eval_config(cfg)
    config.metrics_specs[0].metrics.add(class_name="MeanAbsolutePercentageError")
    with pytest.raises(ValueError, match="MeanAbsolutePercentageError has no per-slice definition"):
        slice_metrics.split(config)
    del config.slicing_specs[1:]  # the overall slice alone: TFMA measures it, nothing to refuse
    kept, moved = slice_metrics.split(config)
    assert "MeanAbsolutePercentageError" in {m.class_name for m in kept.metrics_specs[0].metrics}
    assert [list(s.feature_keys) for s in moved] == [[]]


def test_the_overall_values_join_tfmas_own_record_and_tfmas_value_stands(tmp_path):
    from tensorflow_model_analysis.proto import metrics_for_slice_pb2
    from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as writer

    def record(slice_key, values):
        return slice_metrics._record(slice_key, {("click", False): values}, "candidate")

    tfmas = tmp_path / "metrics-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(tfmas)) as out:
        out.write(record((), {"auc": 0.7}).SerializeToString())
        out.write(record((("device", "mobile"),), {"auc": 0.6}).SerializeToString())
    assert slice_metrics._join_overall(str(tmp_path), record((), {"auc": 0.1, "mean_label": 0.08}))
    read = {tfma.slicer.deserialize_slice_key(r.slice_key): {e.key.name: e.value.double_value.value
                                                              for e in r.metric_keys_and_values}
            for r in writer.load_and_deserialize_metrics(str(tmp_path))}
    assert read == {(): {"auc": 0.7, "mean_label": 0.08}, (("device", "mobile"),): {"auc": 0.6}}
    assert len(list(writer.load_and_deserialize_metrics(str(tmp_path)))) == 2  # one overall record
    assert not slice_metrics._join_overall(str(tmp_path / "none"), metrics_for_slice_pb2.MetricsForSlice())


def test_the_values_measured_here_carry_the_candidates_name_as_tfma_wrote_it(tmp_path):
    """With a baseline, TFX's Evaluator renames the models (candidate, baseline) before TFMA runs; an entry
    under the configuration's empty name would be taken by TFMA's reader as every model's, over TFMA's own."""
    from tensorflow_model_analysis.writers import eval_config_writer

    assert slice_metrics._model_name(str(tmp_path), "") == ""  # TFMA has not run here: the configured name
    config = tfma.EvalConfig(model_specs=[tfma.ModelSpec(name="candidate"),
                                          tfma.ModelSpec(name="baseline", is_baseline=True)])
    with open(tmp_path / "eval_config.json", "w") as f:
        f.write(eval_config_writer._serialize_eval_run(config, "rows", "tfrecords", {"candidate": "m1", "baseline": "m0"}))
    assert slice_metrics._model_name(str(tmp_path), "") == "candidate"


def test_slices_by_value_keep_every_metric_in_tfma(cfg):
    """TFMA alone can measure a slicing by value or SQL: there it measures every metric, the overall slice too."""
    config = evaluation.eval_config(cfg)
    config.slicing_specs.add(feature_values={"device": "mobile"})
    kept, moved = slice_metrics.split(config)
    assert [list(s.feature_keys) for s in moved] == [[k] for k in cfg.evaluation.slices]
    assert kept.metrics_specs == config.metrics_specs


def test_slices_follow_tfmas_keys_crosses_included_and_rows_without_the_column_left_out():
    rows = slice_metrics.Rows(columns={"device": np.array(["a", "b", "a", None], dtype=object),
                                       "position": np.array([1, 1, 2, 2], dtype=object)},
                              labels={}, weights={}, predictions={"p": np.zeros(4)})
    got = {key: mask.tolist() for key, mask in slice_metrics.slices(
        rows, [tfma.SlicingSpec(feature_keys=["device"]), tfma.SlicingSpec(feature_keys=["device", "position"])])}
    assert got == {(("device", "a"),): [True, False, True, False], (("device", "b"),): [False, True, False, False],
                   (("device", "a"), ("position", 1)): [True, False, False, False],
                   (("device", "a"), ("position", 2)): [False, False, True, False],
                   (("device", "b"), ("position", 1)): [False, True, False, False]}
    (overall, mask), = slice_metrics.slices(rows, [tfma.SlicingSpec()])
    assert overall == () and mask.tolist() == [True] * 4  # a row mask, not one True that numpy broadcasts


def test_areas_are_tfmas_thresholded_areas_close_to_the_exact_ones():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=5000)
    y = (rng.uniform(size=5000) < p).astype(float)
    w = rng.uniform(0.5, 2.0, size=5000)
    values = slice_metrics.DEFINITIONS["AUC"](y, p, w, {}, {})["auc"], \
        slice_metrics.DEFINITIONS["AUCPrecisionRecall"](y, p, w, {}, {})["auc_precision_recall"]
    assert values[0] == pytest.approx(roc_auc_score(y, p, sample_weight=w), abs=1e-4)
    assert values[1] == pytest.approx(average_precision_score(y, p, sample_weight=w), abs=5e-3)
    assert slice_metrics.DEFINITIONS["AUC"](np.ones(3), p[:3], w[:3], {}, {})["auc"] == 0.0  # one class, as TFMA


def test_areas_count_rows_at_the_thresholds_as_tfma_does_where_a_row_sits_on_an_edge(tmp_path):
    """TFMA buckets a prediction into 10,000 calibration buckets, then rebins the buckets onto its 9,999-step
    thresholds: predictions on a threshold, on a bucket edge between two thresholds, at 0 and at 1 are where
    counting against the thresholds directly disagrees with it. TFMA itself measures the same rows here."""
    import tensorflow as tf
    from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as writer

    rng = np.random.default_rng(1)
    thresholds = np.arange(1, 9999) / 9999
    edges = np.arange(1, 10000) / 10000
    p = np.float32(np.concatenate([rng.choice(thresholds, 300), rng.choice(edges, 300), np.nextafter(
        rng.choice(edges, 200), 0), [0.0, 1.0, 1.0, 0.0], rng.uniform(size=200)])).astype(np.float64)
    y = (rng.uniform(size=len(p)) < np.clip(p + 0.2, 0, 1)).astype(float)
    w = rng.choice([0.5, 1.0, 2.0], size=len(p))
    with tf.io.TFRecordWriter(str(tmp_path / "rows.tfrecord")) as out:
        for label, prediction, weight in zip(y, p, w):
            out.write(tf.train.Example(features=tf.train.Features(feature={
                name: tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                for name, value in (("y", label), ("p", prediction), ("w", weight))})).SerializeToString())
    config = tfma.EvalConfig(model_specs=[tfma.ModelSpec(label_key="y", prediction_key="p", example_weight_key="w")],
                             metrics_specs=tfma.metrics.specs_from_metrics([tfma.metrics.AUC(),
                                                                            tfma.metrics.AUCPrecisionRecall()]),
                             slicing_specs=[tfma.SlicingSpec()])
    tfma.run_model_analysis(eval_config=config, data_location=str(tmp_path / "rows.tfrecord"),
                            output_path=str(tmp_path / "tfma"), file_format="tfrecords")
    theirs = {e.key.name: e.value.double_value.value
              for r in writer.load_and_deserialize_metrics(str(tmp_path / "tfma")) for e in r.metric_keys_and_values}
    assert slice_metrics.DEFINITIONS["AUC"](y, p, w, {}, {})["auc"] == pytest.approx(theirs["auc"], rel=1e-12)
    assert slice_metrics.DEFINITIONS["AUCPrecisionRecall"](y, p, w, {}, {})["auc_precision_recall"] == \
        pytest.approx(theirs["auc_precision_recall"], rel=1e-12)


@pytest.mark.parametrize("combiner, accumulator", [
    (mean_regression_error._MeanSquaredErrorCombiner, mean_regression_error._MeanRegressionErrorAccumulator),
    (cross_entropy_metrics._BinaryCrossEntropyCombiner, cross_entropy_metrics._CrossEntropyAccumulator),
])
def test_tfma_merges_count_each_bundle_once(combiner, accumulator):
    assert combiner.merge_accumulators is tfma_fixes._merge_each_once  # set on import by the Evaluator's modules
    parts = [accumulator(), accumulator()]
    for part in parts:
        for field in vars(part):
            setattr(part, field, 1.0)  # one row of weight 1 and error (or loss) 1 in each bundle
    merged = combiner.merge_accumulators(None, parts)
    assert set(vars(merged).values()) == {2.0}  # unpatched TFMA 0.47: 3.0, the first bundle counted twice
