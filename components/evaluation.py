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

With `evaluation.confidence_intervals`, TFMA's jackknife gives every metric and every change against the
model in production a 95 % interval; a threshold marked `significant` then refuses only a drop whose whole
interval lies beyond `max_drop` (components/change_bound.py).
"""

from __future__ import annotations

import json
from typing import Dict, List

import mtrank  # noqa: F401
import tensorflow_model_analysis as tfma

from components import change_bound, ranking_metric, tfma_fixes  # noqa: F401  (tfma_fixes corrects TFMA on import)
from mtrank import config as config_lib
from mtrank import metrics as metrics_lib
from mtrank.export_contract import SERVING_SIGNATURE, TRANSFORM_SIGNATURE


def _settings(cfg: config_lib.Config) -> Dict[str, object]:
    """The evaluation settings a metric may be configured with (`metrics.Metric.settings` names its own)."""
    return {"num_bins": cfg.evaluation.ece_bins, "num_buckets": cfg.evaluation.ece_bins,
            "group_key": cfg.evaluation.group_column}


def slicing_specs(cfg: config_lib.Config) -> List[tfma.SlicingSpec]:
    specs = [tfma.SlicingSpec()]
    for entry in cfg.evaluation.slices:
        specs.append(tfma.SlicingSpec(feature_keys=[c.strip() for c in entry.split("*")]))
    return specs


def _threshold(th: config_lib.ThresholdSpec) -> "tfma.MetricThreshold | None":
    """The metric's own threshold: its floor, and its largest drop unless the drop must be significant
    (that one sits on the metric's change bound, `_change_bound_config`). None when nothing is left."""
    lower_better = metrics_lib.lower_is_better(th.metric)
    threshold = tfma.MetricThreshold()
    if th.lower_bound is not None:
        bound = {"upper_bound" if lower_better else "lower_bound": {"value": th.lower_bound}}
        threshold.value_threshold.CopyFrom(tfma.GenericValueThreshold(**bound))
    if th.max_drop is not None and not th.significant:
        direction = tfma.MetricDirection.LOWER_IS_BETTER if lower_better else tfma.MetricDirection.HIGHER_IS_BETTER
        allowed = th.max_drop if lower_better else -th.max_drop
        threshold.change_threshold.CopyFrom(
            tfma.GenericChangeThreshold(direction=direction, absolute={"value": allowed}))
    return threshold if threshold.ListFields() else None


def _overall(metric: tfma.MetricConfig, threshold: "tfma.MetricThreshold | None") -> tfma.MetricConfig:
    """Thresholds hold on the overall slice only (a metric can be undefined on a small slice)."""
    if threshold is not None:
        metric.per_slice_thresholds.append(
            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold))
    return metric


def _change_bound_config(th: config_lib.ThresholdSpec) -> tfma.MetricConfig:
    """A significant threshold's rule: the favourable 95 % bound of the change stays within max_drop."""
    higher_better = not metrics_lib.lower_is_better(th.metric)
    metric = tfma.MetricConfig(class_name="ChangeBound", module=change_bound.__name__, config=json.dumps(
        {"metric": metrics_lib.key_name(th.metric), "higher_is_better": higher_better}))
    bound = {"lower_bound": {"value": -th.max_drop}} if higher_better else {"upper_bound": {"value": th.max_drop}}
    return _overall(metric, tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(**bound)))


def _metric_config(cfg: config_lib.Config, metric: metrics_lib.Metric) -> tfma.MetricConfig:
    """A MetricConfig with this project's settings: the module of its own metrics, bins, the group column
    (a metric that needs the group column never gets here without one: the configuration refuses it)."""
    values = _settings(cfg)
    settings = {name: values[name] for name in metric.settings}
    return tfma.MetricConfig(class_name=metric.tfma_class, module=metric.module,
                             config=json.dumps(settings) if settings else "")


def task_metrics(cfg: config_lib.Config, task: config_lib.TaskSpec) -> List[metrics_lib.Metric]:
    """The metrics computed for a task (thresholded ones come on top of these)."""
    return metrics_lib.computed(task.type, cfg.evaluation.group_column)


def metrics_spec(cfg: config_lib.Config, task: config_lib.TaskSpec) -> tfma.MetricsSpec:
    metrics = task_metrics(cfg, task)
    ranking_names = {name for _, _, name in ranking_metric.metric_names(cfg)}
    mine = [th for th in cfg.evaluation.thresholds if th.task == task.name and th.metric not in ranking_names]
    thresholds = {metrics_lib.BY_NAME[th.metric].key: _threshold(th) for th in mine}
    metrics += [metrics_lib.BY_NAME[th.metric] for th in mine if metrics_lib.BY_NAME[th.metric] not in metrics]
    configs = [_overall(_metric_config(cfg, m), thresholds.get(m.key)) for m in metrics]
    configs += [_change_bound_config(th) for th in mine if th.significant]
    return tfma.MetricsSpec(output_names=[task.name], metrics=configs)


def _ranking_config(cfg: config_lib.Config, objective: str, measure: str,
                    threshold: "config_lib.ThresholdSpec | None" = None) -> tfma.MetricConfig:
    metric = tfma.MetricConfig(class_name="RankingMetric", module=ranking_metric.__name__, config=json.dumps(
        {"measure": measure, "objective": objective, "settings": ranking_metric.settings(cfg)}))
    return _overall(metric, _threshold(threshold) if threshold is not None else None)


def ranking_specs(cfg: config_lib.Config) -> List[tfma.MetricsSpec]:
    """Per-request ranking metrics (components/ranking_metric.py) for the fused score and every task output;
    a thresholded one also in a spec of its own output, so its threshold holds for that output only."""
    names = ranking_metric.metric_names(cfg)
    if not names:
        return []
    # Unweighted everywhere: a spec is weighted by default when one of its outputs has a weight key (dwell),
    # and the shared combiner of every row is keyed by that flag; one flag keeps it one combiner.
    unweighted = tfma.ExampleWeightOptions(unweighted=True)
    specs = [tfma.MetricsSpec(output_names=ranking_metric.ranked_outputs(cfg), example_weights=unweighted,
                              metrics=[_ranking_config(cfg, o, m) for o, m, _ in names])]
    by_name = {name: (o, m) for o, m, name in names}
    for th in cfg.evaluation.thresholds:
        if th.metric in by_name:
            metrics = [_ranking_config(cfg, *by_name[th.metric], threshold=th)]
            if th.significant:
                metrics.append(_change_bound_config(th))
            specs.append(tfma.MetricsSpec(output_names=[th.task], metrics=metrics, example_weights=unweighted))
    return specs


def eval_config(cfg: config_lib.Config) -> tfma.EvalConfig:
    model_spec = tfma.ModelSpec(
        signature_name=SERVING_SIGNATURE,
        preprocessing_function_names=[TRANSFORM_SIGNATURE],
        label_keys={t.name: t.transformed_label for t in cfg.tasks},
        example_weight_keys={t.name: t.transformed_weight for t in cfg.tasks if t.weight_by},
    )
    config = tfma.EvalConfig(
        model_specs=[model_spec],
        slicing_specs=slicing_specs(cfg),
        metrics_specs=[metrics_spec(cfg, t) for t in cfg.tasks] + ranking_specs(cfg),
    )
    if cfg.evaluation.confidence_intervals:
        config.options.compute_confidence_intervals.value = True
        config.options.confidence_intervals.method = tfma.ConfidenceIntervalOptions.JACKKNIFE
    return config
