"""The project's `preprocessing_fn` through tf.Transform's Beam API on in-memory rows, called as the
Transform component calls it: the same `custom_config` view of the configuration, the transform graph written
with the raw metadata beside it (the serving signatures read it). For studies and tests that train outside
the pipeline (bench/id_features.py, tests/transform_support.py); the pipeline itself runs the component.
Not the component because these callers hold numpy arrays, not an ExampleGen artifact, and want the
transformed rows back in memory."""

from __future__ import annotations

import os
import tempfile
from typing import Dict, List, Mapping, Sequence, Tuple

import mtrank  # noqa: F401
import numpy as np
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import metadata_io, schema_utils

from components import preprocessing
from mtrank import config as config_lib

Row = Dict[str, list]  # {column: [value]}, as a tf.Example would hold it


def raw_columns(cfg: config_lib.Config) -> List[str]:
    """Every raw column `preprocessing_fn` reads: inputs, labels, and with ranking the request and what the
    Trainer's weight search measures."""
    ranking = [cfg.ranking.request_column] + preprocessing.ranking_columns(cfg) if cfg.ranking.request_column else []
    return list(dict.fromkeys(cfg.input_columns + cfg.label_columns + ranking))


def rows_of(arrays: Mapping[str, np.ndarray], columns: Sequence[str]) -> List[Row]:
    """Column arrays -> rows of one-value lists (strings as bytes)."""
    lists = {c: [[v] for v in (arrays[c].astype(bytes) if arrays[c].dtype.kind == "U" else arrays[c]).tolist()]
             for c in columns}
    return [{c: lists[c][i] for c in columns} for i in range(len(arrays[columns[0]]))]


def arrays_of(rows: Sequence[Mapping[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Transformed rows -> one [N] array per output."""
    return {k: np.asarray([r[k] for r in rows]).reshape(len(rows), -1).squeeze(-1) for k in rows[0]}


def analyze_and_transform(cfg: config_lib.Config, schema: schema_pb2.Schema, rows: List[Row], output_dir: str,
                          others: Sequence[List[Row]] = ()) -> Tuple[tft.TFTransformOutput, list, List[list]]:
    """Analyzes `rows` (the training window), transforms them and each of `others` with what was learned,
    and writes the transform graph to `output_dir` as the Transform component does. The columns are the rows'
    own, typed by the schema. Returns (the graph as the Trainer reads it, transformed rows, transformed others)."""
    spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    metadata = tft.DatasetMetadata.from_feature_spec({c: spec[c] for c in rows[0]})
    custom_config = {preprocessing.CONFIG_KEY: preprocessing.transform_key(cfg)}
    fn = lambda inputs: preprocessing.preprocessing_fn(inputs, custom_config)  # noqa: E731
    # A list piped into a Beam transform runs at once (Beam's eager mode), so the temporary folder may go after.
    with tempfile.TemporaryDirectory() as scratch, tft_beam.Context(temp_dir=scratch):
        (transformed, _), transform_fn = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(
            fn, output_record_batches=False)
        applied = [((other, metadata), transform_fn) | tft_beam.TransformDataset(output_record_batches=False)
                   for other in others]
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    metadata_io.write_metadata(metadata, os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
    return tft.TFTransformOutput(output_dir), transformed, [out for out, _ in applied]
