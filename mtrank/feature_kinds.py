"""What the project knows about each feature kind and each raw column type, in one place.

A feature kind (id, categorical, numeric, bucketized) says which raw types it takes, which size option it
needs, how Transform turns a raw column into a model input, what that input's dtype is, how big its
embedding table is and whether Transform writes a vocabulary for it (which a warm start remaps by value).
A raw type (string, int, float) says how a request value is parsed, how it is written into a tf.Example,
its numpy and TensorFlow dtypes and the synthetic value TF Serving's warm-up sends. The configuration's
checks, `preprocessing_fn`, the model's inputs and embedding sizes, the Trainer's warm start and serving's
request parsing and warm-up all read these two registries; adding a kind or a type is a class here (plus its
tests). TensorFlow is imported inside the methods that need it, so the configuration loads without it.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import numpy as np


# ---------------------------------------------------------------- raw column types (the CSV's and the request's)

class RawType:
    """A raw column's type: how a value arrives, is checked and is written."""

    name: str = ""
    numpy_dtype: Any = object
    tf_dtype_name: str = ""  # tf.string, tf.int64, tf.float32
    example_list: str = ""  # the tf.train.Feature field: bytes_list, int64_list, float_list

    def parse(self, value: Any) -> Any:
        """A request's value (JSON or CSV text) -> the Python value of an Example; ValueError says why not."""
        raise NotImplementedError

    def warmup_value(self, i: int) -> Any:
        """Row `i` of the synthetic warm-up requests: values that vary by row, so batches are not constant."""
        raise NotImplementedError

    @property
    def tf_dtype(self):
        import tensorflow as tf

        return getattr(tf, self.tf_dtype_name)

    def feature(self, value: Any):
        """One parsed value as a tf.train.Feature."""
        import tensorflow as tf

        return tf.train.Feature(**{self.example_list: {"value": [value]}})


class StringType(RawType):
    name, numpy_dtype, tf_dtype_name, example_list = "string", object, "string", "bytes_list"

    def parse(self, value: Any) -> bytes:
        return value if isinstance(value, bytes) else str(value).encode()

    def warmup_value(self, i: int) -> str:
        return f"warmup-{i % 7}"


class IntType(RawType):
    name, numpy_dtype, tf_dtype_name, example_list = "int", np.int64, "int64", "int64_list"

    def parse(self, value: Any) -> int:
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(number)

    def warmup_value(self, i: int) -> int:
        return i % 24


class FloatType(RawType):
    name, numpy_dtype, tf_dtype_name, example_list = "float", np.float32, "float32", "float_list"

    def parse(self, value: Any) -> float:
        number = float(value)
        if not math.isfinite(number):  # NaN is never ranked (serving refuses it in the graph too)
            raise ValueError(f"{value!r} is not finite")
        return number

    def warmup_value(self, i: int) -> float:
        return float(i % 50) + 0.5


RAW_TYPES: Dict[str, RawType] = {t.name: t for t in (StringType(), IntType(), FloatType())}


# ---------------------------------------------------------------- feature kinds (how a column becomes an input)

class FeatureKind:
    """How one kind of feature is checked, transformed, fed to the model and sized."""

    name: str = ""
    raw_types: Tuple[str, ...] = tuple(RAW_TYPES)
    embedded: bool = True  # looked up in an embedding table (so it can carry `bias` and interactions)
    size_option: Optional[str] = None  # the FeatureSpec field that must be > 1
    vocabulary: bool = False  # Transform writes a vocabulary file named after the feature
    input_dtype_name: str = "int64"  # the transformed input's dtype, as the model's Keras input takes it
    takes_min_count: bool = False  # rare values share a row (the FeatureSpec's min_count)

    def transform(self, feature, x):
        """tf.Transform: a dense [batch] raw column -> the model input `<name>_xf` (inside preprocessing_fn)."""
        raise NotImplementedError

    def cardinality(self, feature, vocabulary_size: int) -> int:
        """Rows of the feature's embedding table (`vocabulary_size`: Transform's, for a vocabulary kind)."""
        raise NotImplementedError

    @property
    def input_dtype(self):
        import tensorflow as tf

        return getattr(tf, self.input_dtype_name)

    def check(self, feature) -> Optional[str]:
        """What is wrong with this feature's options, or None."""
        if feature.dtype not in self.raw_types:
            return f"{self.name} feature {feature.name!r} must have dtype {' or '.join(self.raw_types)}"
        if self.size_option and getattr(feature, self.size_option) <= 1:
            return f"{self.name} feature {feature.name!r} needs {self.size_option} > 1"
        if feature.min_count < 0 or (feature.min_count and not self.takes_min_count):
            kinds = [k.name for k in KINDS.values() if k.takes_min_count]
            return (f"{self.name} feature {feature.name!r} has min_count {feature.min_count}; min_count is a count "
                    f">= 0 and only kinds {kinds} take it")
        return None


def _as_string(x):
    import tensorflow as tf

    return x if x.dtype == tf.string else tf.strings.as_string(x)


class IdKind(FeatureKind):
    """Hashed into a fixed number of rows: no vocabulary to warm-start, and a row never moves between days.

    `min_count` is applied in the model, not here (mtrank/models/layers.py, IdAdmission): an id's row is
    looked up once the model has trained on `min_count` of its impressions, counted over a warm-started
    chain, and rarer or unseen ids share row 0. Transform only hashes, so changing `min_count` does not
    re-run it, and an id's row is the same with or without the threshold.
    """

    name, size_option, takes_min_count = "id", "hash_buckets", True

    def transform(self, feature, x):
        import tensorflow_transform as tft

        return tft.hash_strings(_as_string(x), feature.hash_buckets)

    def cardinality(self, feature, vocabulary_size: int) -> int:
        return feature.hash_buckets



class CategoricalKind(FeatureKind):
    """A vocabulary computed by Transform (top_k, OOV buckets); a warm start remaps its rows by value."""

    name, vocabulary = "categorical", True

    def transform(self, feature, x):
        import tensorflow_transform as tft

        return tft.compute_and_apply_vocabulary(_as_string(x), top_k=feature.top_k or None,
                                                num_oov_buckets=feature.num_oov_buckets, vocab_filename=feature.name)

    def cardinality(self, feature, vocabulary_size: int) -> int:
        return vocabulary_size + feature.num_oov_buckets


class NumericKind(FeatureKind):
    """A z-scored float (log1p first for heavy tails); not embedded."""

    name, raw_types, embedded, input_dtype_name = "numeric", ("int", "float"), False, "float32"

    def transform(self, feature, x):
        import tensorflow as tf
        import tensorflow_transform as tft

        x = tf.cast(x, tf.float32)
        if feature.log1p:
            x = tf.math.log1p(tf.maximum(x, 0.0))
        return tft.scale_to_z_score(x)

    def cardinality(self, feature, vocabulary_size: int) -> int:
        raise ValueError(f"numeric feature {feature.name!r} has no embedding table")


class BucketizedKind(FeatureKind):
    """Quantile buckets of a number (Transform's analyzer), embedded like a category."""

    name, raw_types, size_option = "bucketized", ("int", "float"), "num_buckets"

    def transform(self, feature, x):
        import tensorflow as tf
        import tensorflow_transform as tft

        return tft.bucketize(tf.cast(x, tf.float32), feature.num_buckets)

    def cardinality(self, feature, vocabulary_size: int) -> int:
        return feature.num_buckets + 1


KINDS: Dict[str, FeatureKind] = {k.name: k for k in (IdKind(), CategoricalKind(), NumericKind(), BucketizedKind())}


def embedded_kinds() -> Tuple[str, ...]:
    return tuple(name for name, kind in KINDS.items() if kind.embedded)


def of(feature) -> FeatureKind:
    """The kind of a configured feature (the configuration has checked that it exists)."""
    return KINDS[feature.kind]


def raw_type(name: str) -> RawType:
    return RAW_TYPES[name]

