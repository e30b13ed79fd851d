"""Helpers shared by the serving tests (no tests here): a tiny SavedModel built from the configuration in
about a second, a serving root in TF Serving's layout, and a running server on a free local port.

The tiny model has the pushed model's interface (serving_default over serialized tf.Examples of the
configured input columns, the raw-feature signature, one output per task and `score`), so server and
client are tested without waiting for a pipeline run; the slow tests repeat the checks on the real model.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Dict  # noqa: E402

import numpy as np  # noqa: E402
import portpicker  # noqa: E402
import tensorflow as tf  # noqa: E402

from mtrank import config as config_lib  # noqa: E402
from serving import candidates  # noqa: E402
from serving.server import ModelServer  # noqa: E402
from serving.signatures import (CONTEXT_SIGNATURE, EXAMPLES_INPUT, RAW_SIGNATURE, guard_inputs,  # noqa: E402
                                ranking_request_signature, schema_bounds)
from serving.versions import ModelConfig, VersionPolicy  # noqa: E402

TF_DTYPES = {"string": tf.string, "int": tf.int64, "float": tf.float32}

# "Equal" for scores from two graphs of the same model (serving_default and the raw signature, a server's
# batch and the in-process call): a few float32 ulps. The raw signature skips tf.Example parsing, so
# Grappler fuses a different graph and one score of 300 came out 1.9e-6 (4 ulps at 4-8) from the other's;
# a wrong row, feature or version moves a score by orders of magnitude more.
FLOAT32_EQUAL = {"rtol": 1e-6, "atol": 1e-6}


class _TinyRanker(tf.Module):
    def __init__(self, cfg: config_lib.Config, scale: float):
        super().__init__()
        self.cfg = cfg
        self.weights = tf.Variable(np.linspace(0.3, -0.2, len(cfg.input_columns)).astype(np.float32) * scale)

    def _features(self, raw: Dict[str, tf.Tensor]) -> tf.Tensor:
        columns = []
        for column in self.cfg.input_columns:
            x = tf.reshape(raw[column], [-1])
            if x.dtype == tf.string:
                x = tf.cast(tf.strings.to_hash_bucket_fast(x, 97), tf.float32) / 97.0
            else:
                x = tf.math.log1p(tf.abs(tf.cast(x, tf.float32)))
            columns.append(x)
        return tf.stack(columns, axis=1)

    def outputs(self, raw: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
        z = tf.reduce_sum(self._features(raw) * self.weights, axis=1)
        out, score = {}, tf.zeros_like(z)
        for i, task in enumerate(self.cfg.tasks):
            value = tf.sigmoid(z - 0.5 * i) if task.type == "binary" else z + float(i)
            out[task.name] = value
            score += task.score_weight * value
        out["score"] = score
        return out


def build_tiny_model(cfg: config_lib.Config, path: Path, scale: float = 1.0) -> Path:
    """Saves a tiny ranker with `serving_default`, the raw-feature and the ranking-request signatures at
    `path`, guarded by the schema's ranges as the Trainer's export is (serving/signatures.py)."""
    model = _TinyRanker(cfg, scale)
    spec = {c: tf.io.FixedLenFeature([1], TF_DTYPES[cfg.feature_dtype(c)]) for c in cfg.input_columns}
    bounds = schema_bounds(cfg.resolve_path(cfg.data.schema), cfg.input_columns)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(examples):
        raw = tf.io.parse_example(examples, spec)
        guard_inputs(raw, bounds)
        return model.outputs(raw)

    raw_spec = {c: tf.TensorSpec([None], TF_DTYPES[cfg.feature_dtype(c)], name=c) for c in cfg.input_columns}

    @tf.function(input_signature=[raw_spec])
    def serve_raw(features):
        guard_inputs(features, bounds)
        return model.outputs(features)

    tf.saved_model.save(model, str(path), signatures={"serving_default": serve_examples, RAW_SIGNATURE: serve_raw,
                                                      CONTEXT_SIGNATURE: ranking_request_signature(serve_examples)})
    return path


def publish(source: Path, model_dir: Path, version: int) -> Path:
    """Publishes a version the way TF Serving expects: copy under a temporary name, then rename into place."""
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".staging-{version}"
    shutil.copytree(source, staging)
    target = model_dir / str(version)
    os.rename(staging, target)
    return target


def sample_rows(cfg: config_lib.Config, n: int, seed: int = 0):
    """Rows with every input column, plus an `item` column that identifies them in printed output."""
    rng = np.random.default_rng(seed)
    makers = {"string": lambda: f"v{rng.integers(0, 20)}", "int": lambda: int(rng.integers(0, 24)),
              "float": lambda: float(np.round(rng.gamma(2.0, 20.0), 2))}
    return [{"item": f"item-{i}", **{c: makers[cfg.feature_dtype(c)]() for c in cfg.input_columns}}
            for i in range(n)]


def in_process(version_dir: Path, cfg: config_lib.Config, rows, signature: str = "serving_default"):
    """The SavedModel's answer without any server: the reference the gRPC answers must equal."""
    model = tf.saved_model.load(str(version_dir))
    if signature == RAW_SIGNATURE:
        inputs = {k: tf.constant(v) for k, v in candidates.to_raw_columns(cfg, rows).items()}
    else:
        inputs = {EXAMPLES_INPUT: tf.constant(candidates.to_serialized_examples(cfg, rows))}
    return {k: v.numpy() for k, v in model.signatures[signature](**inputs).items()}


def start_server(model_name: str, model_dir: Path, num_versions: int = 1, labels=None,
                 poll_seconds: float = 0.1, wait_s: float = 30.0, metrics_path=None) -> ModelServer:
    """gRPC and REST on free ports; Prometheus metrics at `metrics_path` when given."""
    config = ModelConfig(name=model_name, base_path=str(model_dir),
                         policy=VersionPolicy("latest", num_versions=num_versions), labels=dict(labels or {}))
    return ModelServer([config], port=portpicker.pick_unused_port(), host="127.0.0.1", poll_seconds=poll_seconds,
                       rest_port=0, metrics_path=metrics_path).start(wait_for_models_s=wait_s)
