"""TFMA evaluation set-up, generated from the configuration.

One MetricsSpec per task output (the model is multi-output), labels read from the transformed
features so evaluation and training agree, slices overall plus each configured slice column (a
`a*b` entry is a cross), and blessing thresholds placed on the overall slice only: a threshold on
every slice would fail wherever a metric is undefined (AUC on a slice holding one class).

Binary tasks also get two metrics of this project, run by TFMA like its own: the expected calibration
error (`components/ece.py`) and, when `evaluation.group_column` is set, GAUC (`components/gauc.py`),
plus TFMA's calibration plot (`evaluation.ece_bins` buckets), which the run report draws.

With `ranking.request_column`, the ranked lists are measured too (components/ranking_metric.py): gain@K,
NDCG@K and, on simulated data, the share of the oracle's gain, for the fused score and each task output.
A threshold on one of them names the output as its `task` (`score` for the fused score).
"""

from __future__ import annotations

import json
from typing import Dict, List

import mtrank  # noqa: F401
import tensorflow_model_analysis as tfma

from components import ranking_metric
from components.trainer import SERVING_SIGNATURE, TRANSFORM_SIGNATURE
from mtrank import config as config_lib

BINARY_METRICS = ["ExampleCount", "AUC", "AUCPrecisionRecall", "BinaryCrossentropy", "Calibration",
                  "MeanLabel", "MeanPrediction"]
REGRESSION_METRICS = ["ExampleCount", "MeanSquaredError", "MeanAbsoluteError", "MeanLabel", "MeanPrediction"]

# Configuration metric names -> TFMA metric class names.
METRIC_CLASS = {"auc": "AUC", "pr_auc": "AUCPrecisionRecall", "log_loss": "BinaryCrossentropy",
                "mse": "MeanSquaredError", "mae": "MeanAbsoluteError", "ece": "ExpectedCalibrationError",
                "gauc": "GAUC"}
LOWER_IS_BETTER = {"BinaryCrossentropy", "MeanSquaredError", "MeanAbsoluteError", "ExpectedCalibrationError"}
# Metrics of this project: TFMA imports the module named in the MetricConfig (inside the Evaluator too).
CUSTOM_MODULES = {"ExpectedCalibrationError": "components.ece", "GAUC": "components.gauc"}
CALIBRATION_PLOT = "CalibrationPlot"


def slicing_specs(cfg: config_lib.Config) -> List[tfma.SlicingSpec]:
    specs = [tfma.SlicingSpec()]
    for entry in cfg.evaluation.slices:
        specs.append(tfma.SlicingSpec(feature_keys=[c.strip() for c in entry.split("*")]))
    return specs


def _threshold(th: config_lib.ThresholdSpec) -> tfma.MetricThreshold:
    class_name = METRIC_CLASS.get(th.metric, th.metric)
    lower_better = class_name in LOWER_IS_BETTER
    threshold = tfma.MetricThreshold()
    if th.lower_bound is not None:
        bound = {"upper_bound" if lower_better else "lower_bound": {"value": th.lower_bound}}
        threshold.value_threshold.CopyFrom(tfma.GenericValueThreshold(**bound))
    if th.max_drop is not None:
        direction = tfma.MetricDirection.LOWER_IS_BETTER if lower_better else tfma.MetricDirection.HIGHER_IS_BETTER
        allowed = th.max_drop if lower_better else -th.max_drop
        threshold.change_threshold.CopyFrom(
            tfma.GenericChangeThreshold(direction=direction, absolute={"value": allowed}))
    return threshold


def _metric_config(cfg: config_lib.Config, class_name: str) -> tfma.MetricConfig:
    """A MetricConfig with this project's settings: module of custom metrics, bins, the group column."""
    settings: Dict[str, object] = {}
    if class_name == "ExpectedCalibrationError":
        settings = {"num_bins": cfg.evaluation.ece_bins}
    elif class_name == CALIBRATION_PLOT:
        settings = {"num_buckets": cfg.evaluation.ece_bins}
    elif class_name == "GAUC":
        if not cfg.evaluation.group_column:
            raise config_lib.ConfigError(f"{cfg.source}: a GAUC threshold needs evaluation.group_column")
        settings = {"group_key": cfg.evaluation.group_column}
    return tfma.MetricConfig(class_name=class_name, module=CUSTOM_MODULES.get(class_name, ""),
                             config=json.dumps(settings) if settings else "")


def task_metric_names(cfg: config_lib.Config, task: config_lib.TaskSpec) -> List[str]:
    """TFMA metric classes computed for a task (thresholded ones come on top of these)."""
    if task.type != "binary":
        return list(REGRESSION_METRICS)
    names = list(BINARY_METRICS) + ["ExpectedCalibrationError", CALIBRATION_PLOT]
    if cfg.evaluation.group_column:
        names.append("GAUC")
    return names


def metrics_spec(cfg: config_lib.Config, task: config_lib.TaskSpec) -> tfma.MetricsSpec:
    names = task_metric_names(cfg, task)
    ranking_names = {name for _, _, name in ranking_metric.metric_names(cfg)}
    thresholds: Dict[str, tfma.MetricThreshold] = {
        METRIC_CLASS.get(th.metric, th.metric): _threshold(th) for th in cfg.evaluation.thresholds
        if th.task == task.name and th.metric not in ranking_names
    }
    metrics = []
    for name in list(names) + [n for n in thresholds if n not in names]:
        metric = _metric_config(cfg, name)
        if name in thresholds:
            metric.per_slice_thresholds.append(
                tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=thresholds[name]))
        metrics.append(metric)
    return tfma.MetricsSpec(output_names=[task.name], metrics=metrics)


def _ranking_config(cfg: config_lib.Config, objective: str, measure: str,
                    threshold: "config_lib.ThresholdSpec | None" = None) -> tfma.MetricConfig:
    metric = tfma.MetricConfig(class_name="RankingMetric", module=ranking_metric.__name__, config=json.dumps(
        {"measure": measure, "objective": objective, "settings": ranking_metric.settings(cfg)}))
    if threshold is not None:
        metric.per_slice_thresholds.append(
            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=_threshold(threshold)))
    return metric


def ranking_specs(cfg: config_lib.Config) -> List[tfma.MetricsSpec]:
    """Per-request ranking metrics (components/ranking_metric.py) for the fused score and every task output;
    a thresholded one also in a spec of its own output, so its threshold holds for that output only."""
    names = ranking_metric.metric_names(cfg)
    if not names:
        return []
    specs = [tfma.MetricsSpec(output_names=ranking_metric.ranked_outputs(cfg),
                              metrics=[_ranking_config(cfg, o, m) for o, m, _ in names])]
    by_name = {name: (o, m) for o, m, name in names}
    for th in cfg.evaluation.thresholds:
        if th.metric in by_name:
            specs.append(tfma.MetricsSpec(output_names=[th.task],
                                          metrics=[_ranking_config(cfg, *by_name[th.metric], threshold=th)]))
    return specs


def eval_config(cfg: config_lib.Config) -> tfma.EvalConfig:
    model_spec = tfma.ModelSpec(
        signature_name=SERVING_SIGNATURE,
        preprocessing_function_names=[TRANSFORM_SIGNATURE],
        label_keys={t.name: t.transformed_label for t in cfg.tasks},
        example_weight_keys={t.name: t.transformed_weight for t in cfg.tasks if t.weight_by},
    )
    return tfma.EvalConfig(
        model_specs=[model_spec],
        slicing_specs=slicing_specs(cfg),
        metrics_specs=[metrics_spec(cfg, t) for t in cfg.tasks] + ranking_specs(cfg),
    )
