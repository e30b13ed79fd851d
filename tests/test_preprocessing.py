"""preprocessing_fn run through tf.Transform's Beam API, as the Transform component runs it."""

import numpy as np
import pytest
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

import transform_support
from mtrank import simulate


@pytest.fixture(scope="module")
def transformed(cfg):
    world = simulate.build_world(simulate.SimulatorSpec(seed=5))
    day = simulate.simulate_day(world, 20_000, 400)
    schema = io_utils.parse_pbtxt_file(cfg.resolve_path(cfg.data.schema), schema_pb2.Schema())
    rows = []
    for i in range(len(day["click"])):
        row = {}
        for c in transform_support.model_columns(cfg):
            value = day[c][i]
            row[c] = [value.encode() if isinstance(value, str) else value.item()]
        rows.append(row)
    result = transform_support.transform_rows(cfg, schema, rows)
    return day, result


def _column(result, key):
    return np.array([r[key] for r in result]).ravel()


def test_every_configured_feature_and_label_is_produced(cfg, transformed):
    _, result = transformed
    expected = {f.transformed_name for f in cfg.features} | {t.transformed_label for t in cfg.tasks}
    expected |= {t.transformed_weight for t in cfg.tasks if t.weight_by}
    assert set(result[0]) == expected


def test_numeric_is_z_scored_after_log1p(transformed):
    day, result = transformed
    price = _column(result, "price_xf")
    assert abs(price.mean()) < 1e-4 and abs(price.std() - 1.0) < 1e-2
    expected = np.log1p(day["price"])
    expected = (expected - expected.mean()) / expected.std()
    np.testing.assert_allclose(price, expected, atol=1e-3)


def test_categorical_gets_a_vocabulary_and_bucketized_stays_in_range(cfg, transformed):
    day, result = transformed
    device = _column(result, "device_xf")
    assert set(device) <= {0, 1, 2, 3}  # 3 devices + 1 OOV bucket
    # Same raw value -> same index, different values -> different indices.
    mapping = {}
    for raw, idx in zip(day["device"], device):
        assert mapping.setdefault(raw, idx) == idx
    assert len(set(mapping.values())) == 3
    buckets = _column(result, "price_bucket_xf")
    assert buckets.min() >= 0 and buckets.max() < 10 and len(set(buckets)) >= 8


def test_labels_are_floats_and_regression_label_is_log1p(transformed):
    day, result = transformed
    np.testing.assert_array_equal(_column(result, "click_label"), day["click"].astype(np.float32))
    np.testing.assert_allclose(_column(result, "dwell_label"), np.log1p(day["dwell_seconds"]), rtol=1e-5)
    np.testing.assert_array_equal(_column(result, "dwell_weight"), day["click"].astype(np.float32))
