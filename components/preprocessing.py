"""Transform's `preprocessing_fn`, generated from the configuration.

Each configured feature becomes `<name>_xf`; each task's label becomes `<task>_label` (float, log1p
for regression tasks that ask for it) and, for tasks observed on a subset only, `<task>_weight`. With `model.position_bias`, the position column
becomes `<column>_xf`, read only by the training model's bias tower. With `ranking.request_column`, a hash
of the request (`request_key`) and raw copies of the columns the Trainer's weight search measures.
Labels are transformed here rather than in the Trainer so that TFMA, which evaluates through the
`transform_features` signature, sees exactly the labels the model was trained on.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import mtrank  # noqa: F401
import tensorflow as tf

from mtrank import config as config_lib
from mtrank import feature_kinds
from mtrank.export_contract import REQUEST_KEY, raw_copy_name

CONFIG_KEY = "mtrank_config"


def ranking_columns(cfg: config_lib.Config) -> List[str]:
    """Raw columns the Trainer's weight search reads: each objective's label and value, the fusion's value."""
    r = cfg.ranking
    columns = [c for o in r.objectives for c in (o.label, o.value) if c] + ([r.fusion.value] if r.fusion.value else [])
    return list(dict.fromkeys(columns))


# What preprocessing_fn reads of a feature and of a task: the only fields Transform receives.
FEATURE_READS = ("name", "kind", "dtype", "column", "hash_buckets", "top_k", "num_oov_buckets", "num_buckets", "log1p")
TASK_READS = ("name", "label", "type", "follows", "weight_by", "label_log1p")


def transform_config(cfg: config_lib.Config) -> config_lib.Config:
    """The configuration as `preprocessing_fn` reads it, and nothing more: what Transform receives as
    `custom_config`. TFX reuses a component's earlier output when its inputs and exec properties are
    unchanged, so Transform's cache key is (the window's examples, the validated schema, this view): a change
    to the model, its embedding sizes or levers, the evaluation, serving, the fusion weights or Kubeflow
    settings re-runs the Trainer onwards and reuses Transform (163-227 s of a run on 50,000-row days)."""
    features = [config_lib.FeatureSpec(**{k: getattr(f, k) for k in FEATURE_READS}) for f in cfg.features]
    tasks = [config_lib.TaskSpec(**{k: getattr(t, k) for k in TASK_READS}) for t in cfg.tasks]
    pb = cfg.model.position_bias
    r = cfg.ranking
    return config_lib.Config(
        data=config_lib.DataSpec(root=cfg.data.root, span_pattern=cfg.data.span_pattern, schema=cfg.data.schema),
        features=features, tasks=tasks,
        model=config_lib.ModelSpec(position_bias=pb and config_lib.PositionBiasSpec(
            column=pb.column, task=pb.task, num_buckets=pb.num_buckets)),
        ranking=config_lib.RankingSpec(
            request_column=r.request_column,
            objectives=[config_lib.ObjectiveSpec(name=o.name, label=o.label, value=o.value) for o in r.objectives],
            fusion=config_lib.FusionSpec(value=r.fusion.value)),
        source=cfg.source)


def transform_key(cfg: config_lib.Config) -> str:
    """Transform's `custom_config` value: `transform_config` without its default values (what Transform
    parses), beside every value preprocessing reads, defaults included. A configuration field added later
    with a default leaves the key, and so every existing Transform cache, as it was; a changed default of a
    value preprocessing reads changes it."""
    view = transform_config(cfg)
    payload = json.loads(view.to_json(compact=True))
    pb, r = view.model.position_bias, view.ranking
    payload["reads"] = {
        "data": [view.data.root, view.data.span_pattern, view.data.schema],
        "features": [[getattr(f, k) for k in FEATURE_READS] for f in view.features],
        "tasks": [[getattr(t, k) for k in TASK_READS] for t in view.tasks],
        "position_bias": pb and [pb.column, pb.task, pb.num_buckets],
        "ranking": [r.request_column, [[o.name, o.label, o.value] for o in r.objectives], r.fusion.value]}
    return json.dumps(payload, sort_keys=True)


def _dense(x: tf.Tensor) -> tf.Tensor:
    """Inputs are [batch, 1] (the schema fixes their shape); models want [batch]."""
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(x, default_value="" if x.dtype == tf.string else 0)
    return tf.reshape(x, [-1])


def _as_string(x: tf.Tensor) -> tf.Tensor:
    return x if x.dtype == tf.string else tf.strings.as_string(x)


def transform_feature(feature: config_lib.FeatureSpec, x: tf.Tensor) -> tf.Tensor:
    """The feature's kind says how (mtrank/feature_kinds.py)."""
    return feature_kinds.of(feature).transform(feature, _dense(x))


def transform_label(task: config_lib.TaskSpec, y: tf.Tensor) -> tf.Tensor:
    y = tf.cast(_dense(y), tf.float32)
    if task.label_log1p:
        y = tf.math.log1p(tf.maximum(y, 0.0))
    return y


def transform_position(spec: config_lib.PositionBiasSpec, x: tf.Tensor) -> tf.Tensor:
    """Shown position -> bucket in [0, num_buckets]; no analyzer, so the column may be absent at serving."""
    return tf.clip_by_value(tf.cast(_dense(x), tf.int64), 0, spec.num_buckets)


def build_preprocessing_fn(cfg: config_lib.Config):
    def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        outputs = {}
        for feature in cfg.features:
            outputs[feature.transformed_name] = transform_feature(feature, inputs[feature.source])
        for task in cfg.tasks:
            if task.label in inputs:  # absent at serving time
                outputs[task.transformed_label] = transform_label(task, inputs[task.label])
            if task.weight_by and task.weight_by in inputs:
                outputs[task.transformed_weight] = tf.cast(_dense(inputs[task.weight_by]), tf.float32)
        position = cfg.model.position_bias
        if position is not None and position.column in inputs:  # training only, like the labels
            outputs[position.transformed_name] = transform_position(position, inputs[position.column])
        request = cfg.ranking.request_column
        if request and request in inputs:  # training and evaluation only
            outputs[REQUEST_KEY] = tf.strings.to_hash_bucket_fast(_as_string(_dense(inputs[request])), 2 ** 62)
            for column in ranking_columns(cfg):
                outputs[raw_copy_name(column)] = tf.cast(_dense(inputs[column]), tf.float32)
        return outputs

    return preprocessing_fn


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Dict[str, Any]) -> Dict[str, tf.Tensor]:
    """Entry point named in the pipeline (`components.preprocessing.preprocessing_fn`)."""
    cfg = config_lib.from_json(custom_config[CONFIG_KEY])
    return build_preprocessing_fn(cfg)(inputs)
