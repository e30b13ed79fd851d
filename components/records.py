"""Reading TFX's example files (gzipped TFRecords) where a component needs the records, not the features."""

from typing import List

import mtrank  # noqa: F401
import numpy as np
import tensorflow as tf


def record_dataset(files: List[str]) -> tf.data.Dataset:
    """Serialized records of `files`, gzipped or not (TFX writes `.gz`)."""
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    return tf.data.TFRecordDataset(files, compression_type=compression, num_parallel_reads=tf.data.AUTOTUNE)


def count_records(files: List[str]) -> int:
    """Records in `files`; one pass over them (about 50k rows/s on one core for gzipped examples)."""
    return int(record_dataset(files).reduce(np.int64(0), lambda n, _: n + 1))
