import tensorflow_model_analysis as tfma

from components import evaluation


def test_one_metrics_spec_per_task_with_labels_from_transform(cfg):
    config = evaluation.eval_config(cfg)
    assert [s.output_names[0] for s in config.metrics_specs] == [t.name for t in cfg.tasks]
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
    assert [list(s.feature_keys) for s in specs[1:]] == [["device"], ["category"]]
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
    dwell_metrics = config.metrics_specs[2].metrics
    assert not any(m.per_slice_thresholds for m in dwell_metrics)


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
