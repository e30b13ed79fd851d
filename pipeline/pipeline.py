"""The TFX pipeline: impressions of one day (a span) to a pushed multi-task ranking model.

    CsvExampleGen -> StatisticsGen -> ImportSchemaGen (curated schema) -> ExampleValidator
                  -> Transform -> Trainer -> Evaluator (vs. last blessed model) -> [blessed?] Pusher

Every setting is an argument; runners (local, Kubeflow) only choose values and call a runner.
"""

from __future__ import annotations

import os
from typing import List, Optional

import mtrank  # noqa: F401
from tfx import v1 as tfx
from tfx.proto import example_gen_pb2, range_config_pb2

from components import evaluation
from components.preprocessing import CONFIG_KEY
from mtrank import config as config_lib

PREPROCESSING_FN = "components.preprocessing.preprocessing_fn"
RUN_FN = "components.trainer.run_fn"


def example_gen_configs(cfg: config_lib.Config, span: Optional[int]):
    """Input, output and range configuration of ExampleGen.

    Without a span, ExampleGen takes the newest day folder; with one, exactly that day. Rows of one
    request (one user's list) stay in the same split, so evaluation never sees half of a list that
    training saw.
    """
    input_config = example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name="impressions", pattern=cfg.data.span_pattern)])
    output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
        splits=[example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=cfg.data.train_buckets),
                example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=cfg.data.eval_buckets)],
        partition_feature_name=cfg.data.partition_column or ""))
    range_config = None
    if span is not None:
        range_config = range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span))
    return input_config, output_config, range_config


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
    span: Optional[int] = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    custom_config = {CONFIG_KEY: cfg.to_json()}
    input_config, output_config, range_config = example_gen_configs(cfg, span)

    example_gen = tfx.components.CsvExampleGen(
        input_base=data_root, input_config=input_config, output_config=output_config,
        range_config=range_config)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=custom_config)

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        custom_config=custom_config)

    # The model in production: baseline of the Evaluator's change thresholds.
    latest_blessed_model = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=latest_blessed_model.outputs["model"],
        eval_config=evaluation.eval_config(cfg))

    # The gate: only a blessed model reaches serving.
    with tfx.dsl.Cond(evaluator.outputs["blessing"].future()[0].custom_property("blessed") == 1):
        pusher = tfx.components.Pusher(
            model=trainer.outputs["model"],
            push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=os.path.join(serving_root, cfg.serving.model_name))))

    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator, transform, trainer,
                    latest_blessed_model, evaluator, pusher],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
