"""The TFX pipeline: a window of daily impressions to a pushed multi-task ranking model.

    DayWindow -> CsvExampleGen -> StatisticsGen -> ImportSchemaGen (curated schema) -> ExampleValidator
                  -> DataGate (anomalies stop the run) -> Transform -> Trainer
                  -> [EvalSample: at most evaluation.max_eval_rows rows of the day]
                  -> Evaluator (vs. the model in production) -> [blessed?] Pusher (atomic: staging folder, rename)
    ProductionModel (the version being served) -> Trainer's warm start, Evaluator's baseline

No resolver node: the same graph runs under LocalDagRunner, on open-source Kubeflow Pipelines (whose
backend refuses resolvers) and on Vertex AI (components/production_model.py says why).

Every setting is an argument; runners (local, Kubeflow) only choose values and call a runner.
"""

from __future__ import annotations

import os
from typing import List, Optional, Union

import mtrank  # noqa: F401
from tfx import v1 as tfx

from components import atomic_pusher, data_gate, evaluation, label_checks, production_model, window
from components import evaluator as evaluator_lib
from components import eval_sample as eval_sample_lib
from components import preprocessing
from components.preprocessing import CONFIG_KEY
from mtrank import config as config_lib

# Nodes that read the outside world, so the same parameters can mean another answer: the data folder
# (DayWindow; with an empty run_date, the newest day) and the serving root (ProductionModel). A Kubeflow spec
# is compiled once, so there they run uncached. Locally the run date is always given, ExampleGen's input
# fingerprint catches a changed file, and ProductionModel's cache key holds the version served when the run
# was built (`served_version`): both stay cached, so everything after them (Transform) can be reused.
UNCACHED_ON_KUBEFLOW = ("DayWindow", "ProductionModel")
PREPROCESSING_FN = "components.preprocessing.preprocessing_fn"
RUN_FN = "components.trainer.run_fn"


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    cfg: config_lib.Config,
    data_root: str,
    schema_path: str,
    serving_root: str,
    metadata_connection_config=None,
    beam_pipeline_args: Optional[List[str]] = None,
    run_date: Union[str, tfx.dsl.experimental.RuntimeParameter] = "",
    train_days: Optional[int] = None,
    enable_cache: bool = True,
    served_version: str = "",
) -> tfx.dsl.Pipeline:
    """The pipeline for one day: `run_date` (YYYY-MM-DD; empty = the newest day folder) is evaluated
    on, the `train_days` days before it (default: the configuration's `data.train_days`) are trained on.
    `served_version`: the version in production now, ProductionModel's local cache key (see there)."""
    custom_config = {CONFIG_KEY: cfg.to_json()}
    train_days = train_days or cfg.data.train_days
    train_splits = window.train_splits(train_days)

    day_window = window.DayWindow(data_root=data_root, span_pattern=cfg.data.span_pattern, run_date=run_date,
                                  train_days=train_days,
                                  label_rules=label_checks.LabelRules.from_config(cfg).to_json())
    example_gen = tfx.components.CsvExampleGen(
        input_base=data_root, input_config=day_window.outputs["input_config"].future()[0].value,
        output_config=tfx.proto.Output())  # empty: one output split per input split (per day)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    # The data gate: any anomaly not tolerated fails the run here. Transform and Trainer read the schema
    # from the gate's output, so nothing after it runs on data that broke the schema (components/data_gate.py).
    gate = data_gate.DataGate(
        anomalies=example_validator.outputs["anomalies"], schema=schema_gen.outputs["schema"],
        input_config=day_window.outputs["input_config"],
        tolerated_anomalies=",".join(cfg.data.tolerated_anomalies))
    validated_schema = gate.outputs["validated_schema"]

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=validated_schema,
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=tfx.proto.SplitsConfig(analyze=train_splits, transform=train_splits + [window.EVAL_SPLIT]),
        # Only what preprocessing reads: a model-only change reuses Transform (its cache key, preprocessing.py).
        custom_config={CONFIG_KEY: preprocessing.transform_key(cfg)})

    # The model in production, read from where the Pusher publishes: warm start of the Trainer and baseline
    # of the Evaluator's change thresholds, so a model is judged against the one it would replace.
    model_dir = os.path.join(serving_root, cfg.serving.model_name)
    in_production = production_model.ProductionModel(base_directory=model_dir, run_date=run_date,
                                                     served_version=served_version)

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=validated_schema,
        base_model=in_production.outputs["model"],
        train_args=tfx.proto.TrainArgs(splits=train_splits),
        eval_args=tfx.proto.EvalArgs(splits=[window.EVAL_SPLIT]),
        custom_config=custom_config)

    # TFMA costs about 4 ms per evaluated row here: a large day is evaluated on a hash sample of it.
    eval_sample = (eval_sample_lib.EvalSample(examples=example_gen.outputs["examples"], split=window.EVAL_SPLIT,
                                              max_rows=cfg.evaluation.max_eval_rows,
                                              group_column=cfg.ranking.request_column or "")
                   if cfg.evaluation.max_eval_rows else None)
    evaluator = evaluator_lib.Evaluator(
        examples=eval_sample.outputs["sample"] if eval_sample else example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=in_production.outputs["model"],
        example_splits=[window.EVAL_SPLIT],
        eval_config=evaluation.eval_config(cfg))

    # The gate: only a blessed model reaches serving.
    with tfx.dsl.Cond(evaluator.outputs["blessing"].future()[0].custom_property("blessed") == 1):
        # Written to a staging folder and renamed into <model>/<version>: never half-visible to a server.
        pusher = atomic_pusher.AtomicPusher(
            model=trainer.outputs["model"],
            base_directory=model_dir).with_id("Pusher")

    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[day_window, example_gen, statistics_gen, schema_gen, example_validator, gate, transform,
                    in_production, trainer] + ([eval_sample] if eval_sample else []) + [evaluator, pusher],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
