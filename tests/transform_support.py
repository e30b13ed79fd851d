"""Runs the project's preprocessing_fn through tf.Transform's Beam API on in-memory rows, as the
Transform component does; shared by the preprocessing tests of every data set. Not a test module."""

import os
import tempfile
from typing import Dict, List

import apache_beam as beam
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import metadata_io, schema_utils

from components import preprocessing
from mtrank import config as config_lib


def model_columns(cfg: config_lib.Config) -> List[str]:
    return cfg.input_columns + cfg.label_columns


def feature_spec(schema: schema_pb2.Schema) -> Dict:
    return schema_utils.schema_as_feature_spec(schema).feature_spec


def transform_rows(cfg: config_lib.Config, schema: schema_pb2.Schema, rows: List[Dict]) -> List[Dict]:
    """rows: {column: [value]} for the configuration's input and label columns -> transformed rows."""
    spec = feature_spec(schema)
    metadata = tft.DatasetMetadata.from_feature_spec({c: spec[c] for c in model_columns(cfg)})
    with tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        (result, _), _ = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, {preprocessing.CONFIG_KEY: preprocessing.transform_config(cfg).to_json()}),
            output_record_batches=False)
    return result


def analyze_rows(cfg: config_lib.Config, schema: schema_pb2.Schema, rows: List[Dict], output_dir: str) -> tft.TFTransformOutput:
    """Analyzes rows as the Transform component does and writes its transform graph (vocabularies
    included) to output_dir; returns it as the Trainer reads it."""
    spec = feature_spec(schema)
    metadata = tft.DatasetMetadata.from_feature_spec({c: spec[c] for c in model_columns(cfg)})
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=tempfile.mkdtemp()):
        transform_fn = (pipeline | beam.Create(rows), metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: preprocessing.preprocessing_fn(inputs, {preprocessing.CONFIG_KEY: preprocessing.transform_config(cfg).to_json()}))
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    metadata_io.write_metadata(metadata, os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return tft.TFTransformOutput(output_dir)
