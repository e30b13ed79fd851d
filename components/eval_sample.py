"""EvalSample: at most `max_rows` rows of the evaluated day, drawn by a hash of each row, for the Evaluator.

Why: TFMA computes metrics example by example in Python, once per slicing. With this project's metrics
(AUC, GAUC, ECE, calibration, three outputs) and five slicings that is about 4 ms per row on one core
(measured: 40.7 s for 9.7k rows; 11.6 s with the overall slice only), so a 500k-row day would keep the
Evaluator busy for half an hour while every other component takes minutes (bench/results/pipeline_scaling.md).
A uniform sample of 20k rows gives the overall click AUC to about ±0.007 (one standard error at an 8%
click rate); the blessing compares candidate and baseline on the same rows, whose difference is far
tighter. Slices get proportionally fewer rows: raise `evaluation.max_eval_rows` when slices matter more
than the Evaluator's minutes. The draw depends only on each row's bytes (or, with a group column, on the group's value): a re-run evaluates the same rows.

A day at or under `max_rows` is copied whole; `max_rows` 0 turns the component off in the pipeline.
"""

import os
import zlib

import mtrank  # noqa: F401
import tensorflow as tf
from tfx import v1 as tfx
from tfx.components.util import examples_utils
from tfx.types import artifact_utils

from components import records

HASH_BUCKETS = 1_000_000


def _files(examples_uri: str, split: str):
    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    if not files:
        raise FileNotFoundError(f"{examples_uri}: no Split-{split} files; ExampleGen wrote no {split!r} split")
    return files


def _group_bucket(record: bytes, column: str) -> int:
    """Hash bucket of the value of `column` in a serialized tf.Example (bytes or int64 feature)."""
    feature = tf.train.Example.FromString(record).features.feature.get(column)
    if feature is None:
        raise ValueError(f"EvalSample: a row of the evaluated day has no column {column!r} "
                         "(ranking.request_column); every row must name its request")
    kind = feature.WhichOneof("kind")
    values = getattr(feature, kind).value if kind else []
    key = values[0] if len(values) else b""
    return zlib.crc32(key if isinstance(key, bytes) else str(key).encode()) % HASH_BUCKETS


def sample_split(examples_uri: str, out_uri: str, split: str, max_rows: int, group_column: str = "") -> tuple:
    """Writes the sampled split under `out_uri/Split-<split>/`; returns (rows in the day, rows kept).

    With `group_column` whole groups are kept or dropped (a request's list stays whole, so the ranking
    metrics rank complete lists), by a hash of the group's value; else each row by a hash of its bytes."""
    files = _files(examples_uri, split)
    total = records.count_records(files)
    out_dir = os.path.join(out_uri, f"Split-{split}")
    tf.io.gfile.makedirs(out_dir)
    if total <= max_rows:
        for f in files:
            tf.io.gfile.copy(f, os.path.join(out_dir, os.path.basename(f)), overwrite=True)
        return total, total
    keep_below = int(HASH_BUCKETS * max_rows / total)
    dataset = records.record_dataset(files)
    if not group_column:
        dataset = dataset.filter(lambda r: tf.strings.to_hash_bucket_fast(r, HASH_BUCKETS) < keep_below)
    path = os.path.join(out_dir, "data_tfrecord-00000-of-00001.gz")
    writer = tf.io.TFRecordWriter(path, options=tf.io.TFRecordOptions(compression_type="GZIP"))
    count = 0
    with writer:
        for batch in dataset.batch(4096):
            for record in batch.numpy():
                if group_column and _group_bucket(record, group_column) >= keep_below:
                    continue
                writer.write(record)
                count += 1
    return total, count


@tfx.dsl.components.component
def EvalSample(
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    sample: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Examples],
    split: tfx.dsl.components.Parameter[str] = "eval",
    max_rows: tfx.dsl.components.Parameter[int] = 20_000,
    group_column: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """The `split` of `examples` with about `max_rows` rows (hash sample; whole groups of `group_column`
    when given), as an Examples artifact."""
    total, kept = sample_split(examples.uri, sample.uri, split, max_rows, group_column)
    sample.split_names = artifact_utils.encode_split_names([split])
    sample.span = examples.span
    examples_utils.set_payload_format(sample, examples_utils.get_payload_format(examples))
    examples_utils.set_file_format(sample, examples_utils.get_file_format(examples))
    sample.set_int_custom_property("rows_in_day", total)
    sample.set_int_custom_property("rows_evaluated", kept)
    print(f"[EvalSample] {kept:,} of {total:,} rows of split {split!r} go to the Evaluator", flush=True)
