import dataclasses
import math

import pytest
import tensorflow_model_analysis as tfma

from components import evaluation
from mtrank import config as config_lib


def test_one_metrics_spec_per_task_with_labels_from_transform(cfg):
    config = evaluation.eval_config(cfg)
    assert [s.output_names[0] for s in config.metrics_specs[:3]] == [t.name for t in cfg.tasks]
    # Then the ranked lists: the fused score and every task output (components/ranking_metric.py).
    assert list(config.metrics_specs[3].output_names) == ["score", "click", "purchase", "dwell"]
    assert {m.class_name for m in config.metrics_specs[3].metrics} == {"RankingMetric"}
    (model_spec,) = config.model_specs
    assert dict(model_spec.label_keys) == {"click": "click_label", "purchase": "purchase_label",
                                           "dwell": "dwell_label"}
    assert dict(model_spec.example_weight_keys) == {"dwell": "dwell_weight"}
    assert list(model_spec.preprocessing_function_names) == ["transform_features"]
    binary = {m.class_name for m in config.metrics_specs[0].metrics}
    assert {"AUC", "AUCPrecisionRecall", "BinaryCrossentropy", "Calibration", "ExampleCount"} <= binary
    regression = {m.class_name for m in config.metrics_specs[2].metrics}
    assert {"MeanSquaredError", "MeanAbsoluteError"} <= regression


def test_slices_are_overall_plus_configured_columns(cfg):
    specs = evaluation.slicing_specs(cfg)
    assert specs[0] == tfma.SlicingSpec()
    assert [list(s.feature_keys) for s in specs[1:]] == [["device"], ["category"], ["position"]]
    crossed = cfg.replace(evaluation=cfg.evaluation.__class__(slices=["device*category"]))
    assert list(evaluation.slicing_specs(crossed)[1].feature_keys) == ["device", "category"]


def test_thresholds_gate_on_the_overall_slice_only(cfg):
    config = evaluation.eval_config(cfg)
    click_auc = next(m for m in config.metrics_specs[0].metrics if m.class_name == "AUC")
    assert not click_auc.HasField("threshold")  # a global threshold would fail on one-class slices
    (per_slice,) = click_auc.per_slice_thresholds
    assert list(per_slice.slicing_specs) == [tfma.SlicingSpec()]
    threshold = per_slice.threshold
    assert threshold.value_threshold.lower_bound.value == 0.6
    assert threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert threshold.change_threshold.absolute.value == -0.01
    for spec in config.metrics_specs:  # every task's gate, regression included, sits on the overall slice only
        for m in spec.metrics:
            assert not m.HasField("threshold")
            assert all(list(p.slicing_specs) == [tfma.SlicingSpec()] for p in m.per_slice_thresholds)


def test_lower_is_better_metrics_get_upper_bounds(cfg):
    from mtrank.config import EvaluationSpec, ThresholdSpec

    strict = cfg.replace(evaluation=EvaluationSpec(thresholds=[
        ThresholdSpec(task="dwell", metric="mse", lower_bound=1.0, max_drop=0.05)]))
    config = evaluation.eval_config(strict)
    mse = next(m for m in config.metrics_specs[2].metrics if m.class_name == "MeanSquaredError")
    threshold = mse.per_slice_thresholds[0].threshold
    assert threshold.value_threshold.upper_bound.value == 1.0
    assert threshold.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert threshold.change_threshold.absolute.value == 0.05


# ---- blessing at the TFMA level: two "models" given as prediction columns, no training ------------------


def test_every_task_gets_a_floor_and_a_change_threshold_from_the_configuration(cfg):
    config = evaluation.eval_config(cfg)
    for spec in config.metrics_specs[:len(cfg.tasks)]:  # the ranked lists' spec follows, ungated here
        (task,) = spec.output_names
        gated = [m for m in spec.metrics if m.per_slice_thresholds]
        assert gated, f"task {task} has no blessing threshold"
        for m in gated:
            threshold = m.per_slice_thresholds[0].threshold
            assert threshold.HasField("value_threshold") and threshold.HasField("change_threshold"), (task, m.class_name)


def test_binary_tasks_get_ece_calibration_plot_and_gauc(cfg):
    config = evaluation.eval_config(cfg)
    click = {m.class_name: m for m in config.metrics_specs[0].metrics}
    assert {"ExpectedCalibrationError", "CalibrationPlot", "GAUC"} <= set(click)
    assert click["GAUC"].module == "components.gauc" and "user_id" in click["GAUC"].config
    assert list(evaluation.slicing_specs(cfg)[-1].feature_keys) == ["position"]


def test_every_metric_of_the_table_is_computed_configured_and_reported_as_it_says(cfg):
    """The metric table (mtrank/metrics.py) is the one place a metric is described: what the Evaluator
    computes for each task type, the module of a metric of ours, and the report's columns all follow it."""
    from mtrank import metrics as metrics_lib
    from pipeline import report

    config = evaluation.eval_config(cfg)
    by_task = {s.output_names[0]: {m.class_name: m for m in s.metrics} for s in config.metrics_specs[:3]}
    for task in cfg.tasks:
        expected = {m.tfma_class for m in metrics_lib.METRICS if task.type in m.task_types}
        assert expected <= set(by_task[task.name]), task.name
        for m in metrics_lib.METRICS:
            if m.tfma_class in by_task[task.name] and m.module:
                assert by_task[task.name][m.tfma_class].module == m.module
                __import__(m.module)  # TFMA imports it by this name inside the Evaluator
    assert [key for _, key, _ in report.binary_columns(cfg)] == [
        key for m in metrics_lib.METRICS if "binary" in m.task_types for _, key, _ in m.columns]
    ungrouped = cfg.replace(evaluation=dataclasses.replace(cfg.evaluation, group_column=None))
    assert "gauc" not in [key for _, key, _ in report.binary_columns(ungrouped)]
    assert "GAUC" not in {m.class_name for m in evaluation.eval_config(ungrouped).metrics_specs[0].metrics}
    # Directions: a lower-is-better metric gets an upper bound as its floor.
    for name, metric in metrics_lib.BY_NAME.items():
        assert metrics_lib.lower_is_better(name) == metric.lower_is_better
        assert metrics_lib.key_name(name) == metric.key


def _write_examples(path, columns):
    import tensorflow as tf

    n = len(next(iter(columns.values())))
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(n):
            feature = {}
            for name, values in columns.items():
                v = values[i]
                if isinstance(v, str):
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
                else:
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _validate(cfg, tmp_path, monkeypatch, worse_task, one_class=None, output=None, noisier=None):
    """Candidate = baseline except `worse_task`, whose predictions are shuffled; returns TFMA's validation.
    `one_class`: a task whose labels are all 0; `output`: a list that receives TFMA's output folder;
    `noisier`: a task whose candidate predictions carry a little more noise than the baseline's."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = 800
    columns = {"user_id": [f"u{i % 40}" for i in range(n)], "device": ["mobile"] * n, "position": [1.0] * n}
    for task in cfg.tasks:
        if task.type == "binary":
            truth = rng.uniform(0.05, 0.95, n)
            label = (rng.uniform(size=n) < truth).astype(float) * (task.name != one_class)
            good = np.clip(truth + rng.normal(0, 0.05, n), 0.01, 0.99)
        else:
            label = rng.normal(2.0, 1.0, n)
            good = label + rng.normal(0, 0.3, n)
        columns[task.transformed_label] = label
        columns[f"{task.name}_baseline"] = good
        columns[f"{task.name}_candidate"] = rng.permutation(good) if task.name == worse_task else good
        if task.name == noisier:
            columns[f"{task.name}_candidate"] = np.clip(good + rng.normal(0, 0.04, n), 0.01, 0.99)
        if task.weight_by:
            columns[task.transformed_weight] = np.ones(n)
    data = str(tmp_path / f"worse_{worse_task}_{noisier}.tfrecord")
    _write_examples(data, columns)
    config = evaluation.eval_config(cfg.replace(ranking=config_lib.RankingSpec()))  # per-task gates only
    del config.model_specs[:]
    del config.slicing_specs[1:]  # the gate reads the overall slice only; keep the run short
    for name, baseline in (("candidate", False), ("baseline", True)):
        config.model_specs.append(tfma.ModelSpec(
            name=name, is_baseline=baseline,
            label_keys={t.name: t.transformed_label for t in cfg.tasks},
            prediction_keys={t.name: f"{t.name}_{name}" for t in cfg.tasks},
            example_weight_keys={t.name: t.transformed_weight for t in cfg.tasks if t.weight_by}))
    out = str(tmp_path / f"out_{worse_task}_{noisier}")
    # run_model_analysis decides "there is a baseline" from the number of model objects it is given; with
    # predictions read from the data there are none, so it would drop the baseline. Keep both ModelSpecs.
    from tensorflow_model_analysis.api import model_eval_lib
    from tensorflow_model_analysis.utils import config_util

    monkeypatch.setattr(model_eval_lib, "_update_eval_config_with_defaults",
                        lambda c, _: config_util.update_eval_config_with_defaults(c, has_baseline=None, rubber_stamp=True))
    tfma.run_model_analysis(eval_config=config, data_location=data, output_path=out)
    if output is not None:
        output.append(out)
    return tfma.load_validation_result(out)


@pytest.mark.integration
def test_a_model_made_worse_on_one_binary_task_is_not_blessed(cfg, tmp_path, monkeypatch):
    validation = _validate(cfg, tmp_path, monkeypatch, worse_task="purchase")
    assert not validation.validation_ok
    failed = {(f.metric_key.output_name, f.metric_key.name, f.metric_key.is_diff)
              for s in validation.metric_validations_per_slice for f in s.failures}
    assert ("purchase", "auc", True) in failed  # the drop against the model in production
    assert ("purchase", "auc", False) in failed  # and the absolute floor
    assert {task for task, _, _ in failed} == {"purchase"}  # click is as good as before: no seesaw excuse


@pytest.mark.integration
def test_a_model_made_worse_on_the_regression_task_is_not_blessed(cfg, tmp_path, monkeypatch):
    validation = _validate(cfg, tmp_path, monkeypatch, worse_task="dwell")
    assert not validation.validation_ok
    failed = {(f.metric_key.output_name, f.metric_key.name, f.metric_key.is_diff)
              for s in validation.metric_validations_per_slice for f in s.failures}
    assert ("dwell", "mean_squared_error", True) in failed  # lower is better: a rise beyond max_drop fails
    assert {task for task, _, _ in failed} == {"dwell"}


@pytest.mark.integration
def test_an_auc_on_one_class_is_undefined_not_zero_and_fails_its_floor_saying_so(cfg, tmp_path, monkeypatch):
    from pipeline import results

    out = []
    _validate(cfg, tmp_path, monkeypatch, worse_task=None, one_class="click", output=out)
    metrics, ok, failures, _ = results.read_tfma(out[0])
    overall = metrics["Overall"]
    assert overall["click"]["mean_label"] == 0.0 and math.isnan(overall["click"]["auc"])  # TFMA wrote 0.0
    assert not math.isnan(overall["purchase"]["auc"])
    assert not ok
    assert "click auc is undefined on slice Overall: every label is 0 (one class), so its threshold fails" in failures


# ---- a gate that knows its own noise: TFMA's jackknife intervals and significant drops ------------------


def _significant(cfg, max_drop, significant=True, purchase_only=False):
    """The configuration with intervals on and the purchase AUC drop required to be significant;
    `purchase_only`: that task alone (TFMA's jackknife repeats every combiner 21 times: a shorter run)."""
    import dataclasses

    thresholds = [dataclasses.replace(th, significant=significant, max_drop=max_drop)
                  if (th.task, th.metric) == ("purchase", "auc") else th for th in cfg.evaluation.thresholds]
    if purchase_only:
        thresholds = [th for th in thresholds if th.task == "purchase"]
        cfg = cfg.replace(tasks=[t for t in cfg.tasks if t.name == "purchase"])
    return cfg.replace(evaluation=dataclasses.replace(cfg.evaluation, thresholds=thresholds,
                                                      confidence_intervals=True))


def test_a_significant_threshold_sits_on_the_change_bound_and_turns_intervals_on(cfg):
    config = evaluation.eval_config(_significant(cfg, 0.02))
    assert config.options.compute_confidence_intervals.value
    assert config.options.confidence_intervals.method == tfma.ConfidenceIntervalOptions.JACKKNIFE
    purchase = {m.class_name: m for m in config.metrics_specs[1].metrics}
    auc = purchase["AUC"].per_slice_thresholds[0].threshold
    assert auc.value_threshold.lower_bound.value == 0.6 and not auc.HasField("change_threshold")
    bound = purchase["ChangeBound"]
    assert bound.module == "components.change_bound" and '"metric": "auc"' in bound.config
    assert bound.per_slice_thresholds[0].threshold.value_threshold.lower_bound.value == -0.02
    click = {m.class_name for m in config.metrics_specs[0].metrics}
    assert "ChangeBound" not in click  # the click threshold keeps its plain change threshold
    raw = cfg.to_dict()
    raw["evaluation"]["thresholds"][0]["significant"] = True  # without confidence_intervals: refused
    with pytest.raises(config_lib.ConfigError, match="needs max_drop and evaluation.confidence_intervals"):
        config_lib.from_dict(raw, "x.yaml")


@pytest.mark.integration
def test_a_chance_drop_refused_by_the_point_rule_passes_when_the_drop_must_be_significant(cfg, tmp_path,
                                                                                          monkeypatch):
    """Same signal, a little more noise: the point change is below −max_drop, its interval is not."""
    from pipeline import results

    import dataclasses

    plain = _significant(cfg, 0.002, significant=False, purchase_only=True)
    plain = plain.replace(evaluation=dataclasses.replace(plain.evaluation, confidence_intervals=False))
    assert not _validate(plain, tmp_path, monkeypatch, worse_task=None, noisier="purchase").validation_ok
    out = []
    (tmp_path / "significant").mkdir()
    validation = _validate(_significant(cfg, 0.002, purchase_only=True), tmp_path / "significant", monkeypatch, worse_task=None,
                           noisier="purchase", output=out)
    metrics, ok, failures, intervals = results.read_tfma(out[0])
    change = metrics["Overall"]["purchase"]["auc_diff"]
    low, high = intervals["Overall"]["purchase"]["auc_diff"]
    assert change < -0.002 and low < -0.002 < high, (change, low, high)
    assert validation.validation_ok and ok, failures
    assert metrics["Overall"]["purchase"]["auc_change_bound"] == pytest.approx(high, abs=1e-9)


@pytest.mark.integration
def test_a_really_worse_model_is_refused_by_the_significant_rule_and_the_reason_says_so(cfg, tmp_path,
                                                                                          monkeypatch):
    from pipeline import results

    out = []
    validation = _validate(_significant(cfg, 0.02, purchase_only=True), tmp_path, monkeypatch, worse_task="purchase",
                           output=out)
    assert not validation.validation_ok
    metrics, _, failures, intervals = results.read_tfma(out[0])
    low, high = intervals["Overall"]["purchase"]["auc_diff"]
    assert high < -0.02  # shuffled predictions: the whole interval lies beyond the tolerated drop
    low, high = intervals["Overall"]["purchase"]["auc"]
    assert low < metrics["Overall"]["purchase"]["auc"] < high
    assert any("purchase auc_change_bound change vs. the model in production, its 95 % bound" in f for f in failures)
