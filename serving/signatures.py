"""The raw-feature serving signature: one tensor per input column, for callers that build no tf.Examples.

It runs the same Transform layer and model as `serving_default`; only the parsing step differs, so the
two signatures give the same answers for the same rows (tested).
"""

from __future__ import annotations

from typing import Dict, List, Mapping

import mtrank  # noqa: F401
import tensorflow as tf

EXAMPLES_INPUT = "examples"  # input key of `serving_default` (serialized tf.Examples)
RAW_SIGNATURE = "raw_features"


def _per_example_shape(column: str, spec) -> List[int]:
    """The parse spec's shape of one example's value; only single values per example can be raw inputs."""
    if not isinstance(spec, tf.io.FixedLenFeature):
        raise ValueError(f"column {column!r} is not a fixed-length feature in the schema ({type(spec).__name__}); "
                         "the raw signature takes one value per example")
    shape = list(spec.shape)
    if any(d != 1 for d in shape):
        raise ValueError(f"column {column!r} has shape {shape} in the schema; the raw signature takes one "
                         "value per example")
    return shape


def raw_features_signature(model, parse_spec: Mapping[str, tf.io.FixedLenFeature], input_keys: List[str]):
    """A tf.function taking `{column: [N] tensor}` with the dtypes of `parse_spec` (what `serving_default`
    parses), applying `model.tft_layer` and the model; outputs are one value per example."""
    shapes = {column: _per_example_shape(column, spec) for column, spec in parse_spec.items()}
    signature = {column: tf.TensorSpec(shape=[None], dtype=spec.dtype, name=column)
                 for column, spec in parse_spec.items()}

    @tf.function(input_signature=[signature])
    def serve_raw_features(features: Dict[str, tf.Tensor]):
        raw = {column: tf.reshape(features[column], [-1] + shapes[column]) for column in shapes}
        transformed = model.tft_layer(raw)
        outputs = model({k: transformed[k] for k in input_keys}, training=False)
        return {name: tf.squeeze(value, axis=-1) for name, value in outputs.items()}

    return serve_raw_features
