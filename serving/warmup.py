"""Warm-up requests written beside the SavedModel, so TF Serving's first real request is fast.

TF Serving replays `assets.extra/tf_serving_warmup_requests` (a TFRecord of PredictionLog) when it
loads a version, before the version takes traffic; the built-in server does the same. The requests
carry synthetic rows built from the configuration: warm-up exercises the graph and its batch sizes,
not the model's quality.
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import mtrank  # noqa: F401
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from mtrank import config as config_lib
from mtrank import feature_kinds
from mtrank.export_contract import CONTEXT_SIGNATURE, EXAMPLES_INPUT, RAW_SIGNATURE, SERVED_SIGNATURES, WARMUP_FILE
from serving import candidates

MAX_WARMUP_RECORDS = 1000  # TF Serving's own limit on replayed records
BATCH_SIZES = (1, 100, 1000)  # one request's candidate counts, from a single item to a full page


def synthetic_rows(cfg: config_lib.Config, n: int):
    """`n` rows with every input column filled: strings, whole numbers and floats that vary by row."""
    types = {c: feature_kinds.raw_type(cfg.feature_dtype(c)) for c in cfg.input_columns}
    return [{c: t.warmup_value(i) for c, t in types.items()} for i in range(n)]


def warmup_requests(cfg: config_lib.Config, model_name: str, signature_names: Sequence[str],
                    batch_sizes: Sequence[int] = BATCH_SIZES) -> Iterator[predict_pb2.PredictRequest]:
    """PredictRequests for each signature and batch size (serialized examples or raw columns)."""
    for signature in signature_names:
        for n in batch_sizes:
            rows = synthetic_rows(cfg, n)
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
            if signature == RAW_SIGNATURE:
                for column, values in candidates.to_raw_columns(cfg, rows).items():
                    request.inputs[column].CopyFrom(tf.make_tensor_proto(values))
            elif signature == CONTEXT_SIGNATURE:  # an empty context: every column is the candidates' own
                for name, values in candidates.to_ranking_request(cfg, {}, rows).items():
                    request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
            else:
                request.inputs[EXAMPLES_INPUT].CopyFrom(
                    tf.make_tensor_proto(candidates.to_serialized_examples(cfg, rows)))
            yield request


def write_warmup_requests(export_dir: str, cfg: config_lib.Config,
                          signature_names: Sequence[str] = SERVED_SIGNATURES,
                          batch_sizes: Sequence[int] = BATCH_SIZES) -> str:
    """Writes the warm-up file into `export_dir` (a SavedModel folder) and returns its path."""
    path = os.path.join(export_dir, WARMUP_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for request in warmup_requests(cfg, cfg.serving.model_name, signature_names, batch_sizes):
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir: str, limit: int = MAX_WARMUP_RECORDS) -> Iterator[predict_pb2.PredictRequest]:
    """The PredictRequests of a version's warm-up file (none when there is no file), at most `limit`."""
    path = os.path.join(version_dir, WARMUP_FILE)
    if not tf.io.gfile.exists(path):
        return
    for i, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
        if i >= limit:
            raise ValueError(f"{path} holds more than {limit} warm-up records; TF Serving refuses such a file")
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: record {i} is a {log.WhichOneof('log_type')}; only predict_log is replayed")
        yield log.predict_log.request
