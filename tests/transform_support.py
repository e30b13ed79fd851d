"""Runs the project's preprocessing_fn through tf.Transform's Beam API on in-memory rows, as the Transform
component does (components/transform_in_memory.py); shared by the preprocessing tests of every data set."""

import tempfile
from typing import Dict, List

import tensorflow_transform as tft
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import schema_utils

from components import transform_in_memory
from mtrank import config as config_lib


def model_columns(cfg: config_lib.Config) -> List[str]:
    return cfg.input_columns + cfg.label_columns


def feature_spec(schema: schema_pb2.Schema) -> Dict:
    return schema_utils.schema_as_feature_spec(schema).feature_spec


def transform_rows(cfg: config_lib.Config, schema: schema_pb2.Schema, rows: List[Dict]) -> List[Dict]:
    """rows: {column: [value]} for the configuration's input and label columns -> transformed rows."""
    _, transformed, _ = transform_in_memory.analyze_and_transform(cfg, schema, rows, tempfile.mkdtemp())
    return transformed


def analyze_rows(cfg: config_lib.Config, schema: schema_pb2.Schema, rows: List[Dict], output_dir: str) -> tft.TFTransformOutput:
    """Analyzes rows as the Transform component does and writes its transform graph (vocabularies
    included) to output_dir; returns it as the Trainer reads it."""
    return transform_in_memory.analyze_and_transform(cfg, schema, rows, output_dir)[0]
