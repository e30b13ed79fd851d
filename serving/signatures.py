"""What the serving signatures share: the input guard, the raw-feature signature (one tensor per input
column, for callers that build no tf.Examples), and the ranking-request signature (the request's shared
columns once, as a context tf.Example heading the candidates' own).

The raw-feature signature runs the same Transform layer and model as `serving_default`; only the parsing
step differs, so the two signatures give the same answers for the same rows (tested).

The input guard refuses what cannot be scored: a NaN, an infinity, or a number outside the range the
curated schema gives its column (the range training data was held to). Without it a NaN price became
a score of 1.35 against 0.03-0.07 for normal candidates and was ranked first. The guard is in the
signature itself, so the official TF Serving image refuses the same requests with the same
INVALID_ARGUMENT message (feature, range, candidate indexes) as the development server.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import mtrank  # noqa: F401
import tensorflow as tf

from mtrank.export_contract import (CONTEXT_FLAG_INPUT, CONTEXT_SIGNATURE, EXAMPLES_INPUT,  # noqa: F401 (re-exported)
                                     RAW_SIGNATURE, SCORE_OUTPUT)

Bounds = Dict[str, Tuple[Optional[float], Optional[float]]]
MAX_INDEXES_NAMED = 10



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


def schema_bounds(schema_path: str, columns: List[str]) -> Bounds:
    """(min, max) of each numeric column among `columns`, from the schema's float_domain / int_domain; a
    numeric column without a domain gets (None, None): it is still checked for NaN and infinity."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    with tf.io.gfile.GFile(schema_path) as f:
        schema = text_format.Parse(f.read(), schema_pb2.Schema())
    bounds: Bounds = {}
    for feature in schema.feature:
        if feature.name not in columns or feature.type not in (schema_pb2.FLOAT, schema_pb2.INT):
            continue
        domain = feature.float_domain if feature.HasField("float_domain") else \
            feature.int_domain if feature.HasField("int_domain") else None
        low = domain.min if domain is not None and domain.HasField("min") else None
        high = domain.max if domain is not None and domain.HasField("max") else None
        bounds[feature.name] = (low, high)
    return bounds


def guard_inputs(raw: Mapping[str, tf.Tensor], bounds: Bounds) -> None:
    """Fails the request (InvalidArgumentError) when a numeric input is NaN, infinite or out of its range,
    naming the feature, the range and the first candidate indexes at fault. Call inside the signature."""
    for column, (low, high) in sorted(bounds.items()):
        if column not in raw:
            continue
        values = tf.cast(tf.reshape(raw[column], [-1]), tf.float64)
        ok = tf.math.is_finite(values)
        if low is not None:
            ok = tf.logical_and(ok, values >= low)
        if high is not None:
            ok = tf.logical_and(ok, values <= high)
        bad = tf.reshape(tf.where(tf.logical_not(ok)), [-1])
        span = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
        tf.debugging.Assert(
            tf.reduce_all(ok),
            # No quotes in the text: TensorFlow escapes them when it formats the assertion's data.
            [f"input {column} cannot be scored: NaN, infinite or outside the range {span} of the schema at "
             "candidate index(es)", bad[:MAX_INDEXES_NAMED], "of", tf.size(values)], summarize=MAX_INDEXES_NAMED)


def scored_outputs(model, raw: Mapping[str, tf.Tensor], input_keys: List[str], fusion) -> Dict[str, tf.Tensor]:
    """Parsed request columns -> the model's outputs, one value per example, and the fused `score`
    (mtrank/fusion.py): the one place both signatures run the Transform layer, the model and the fusion."""
    transformed = model.tft_layer(raw)
    outputs = model({k: transformed[k] for k in input_keys}, training=False)
    outputs = {name: tf.squeeze(value, axis=-1) for name, value in outputs.items()}
    outputs[SCORE_OUTPUT] = fusion.tensorflow(outputs, raw)
    return outputs


def raw_features_signature(model, parse_spec: Mapping[str, tf.io.FixedLenFeature], input_keys: List[str],
                           bounds: Optional[Bounds], fusion):
    """A tf.function taking `{column: [N] tensor}` with the dtypes of `parse_spec` (what `serving_default`
    parses), guarding them (`guard_inputs`), applying `model.tft_layer`, the model and `fusion`; outputs are
    one value per example."""
    shapes = {column: _per_example_shape(column, spec) for column, spec in parse_spec.items()}
    signature = {column: tf.TensorSpec(shape=[None], dtype=spec.dtype, name=column)
                 for column, spec in parse_spec.items()}

    @tf.function(input_signature=[signature])
    def serve_raw_features(features: Dict[str, tf.Tensor]):
        raw = {column: tf.reshape(features[column], [-1] + shapes[column]) for column in shapes}
        guard_inputs(raw, bounds or {})
        return scored_outputs(model, raw, input_keys, fusion)

    return serve_raw_features


def ranking_request_signature(serve_examples):
    """A tf.function taking `examples`, one request's rows (its context first, then its candidates) and
    `is_context`, true on the context rows; outputs are `serve_examples`'s, one row per input row, NaN on
    context rows.

    The context is one serialized tf.Example with the columns every candidate shares (the user, device,
    hour); a candidate row holds only its own. Each candidate is scored as the bytes of the nearest context
    row above it followed by its own: two serialized protobuf messages one after the other parse as one
    merged message, so the merged tf.Example holds the union of the features, and a column given in both
    takes the candidate's value. The model, the guard and the fusion are serving_default's own, so answers
    equal serving_default's on the full rows (tested).

    Why context rows travel in the same [N] inputs instead of a separate scalar: TF Serving's request
    batching (--enable_batching) concatenates the requests it merges along the first dimension and refuses
    inputs without one, or of unequal first dimensions. With a context row heading each request, a merged
    batch of several requests is still scored right: each candidate takes the context above it."""

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name=EXAMPLES_INPUT),
                                  tf.TensorSpec(shape=[None], dtype=tf.bool, name=CONTEXT_FLAG_INPUT)])
    def serve_ranking_request(examples, is_context):
        owner = tf.cumsum(tf.cast(is_context, tf.int32)) - 1  # each row's context, counted among context rows
        candidate = tf.logical_not(is_context)
        checks = [tf.debugging.assert_equal(tf.size(examples), tf.size(is_context),
                                            message="examples and is_context must have one value per row"),
                  tf.debugging.assert_non_negative(owner, message="the first row of a ranking request must be its "
                                                                  "context (is_context true), followed by its candidates")]
        # Ordered before the gather: a graph runs independent ops in any order, and a gather at index -1
        # would otherwise answer first with a message about indices instead of what is wrong with the request.
        with tf.control_dependencies(checks):
            contexts = tf.boolean_mask(examples, is_context)
            merged = tf.strings.join([tf.gather(contexts, tf.boolean_mask(owner, candidate)),
                                      tf.boolean_mask(examples, candidate)])
        scored = serve_examples(merged)
        rows = tf.where(candidate)
        return {name: tf.tensor_scatter_nd_update(tf.fill(tf.shape(examples), tf.constant(float("nan"), value.dtype)),
                                                  rows, value)
                for name, value in scored.items()}

    return serve_ranking_request
