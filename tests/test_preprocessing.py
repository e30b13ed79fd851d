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


@pytest.mark.integration
def test_every_configured_feature_and_label_is_produced(cfg, transformed):
    _, result = transformed
    expected = {f.transformed_name for f in cfg.features} | {t.transformed_label for t in cfg.tasks}
    expected |= {t.transformed_weight for t in cfg.tasks if t.weight_by}
    assert set(result[0]) == expected


@pytest.mark.integration
def test_numeric_is_z_scored_after_log1p(transformed):
    day, result = transformed
    price = _column(result, "price_xf")
    assert abs(price.mean()) < 1e-4 and abs(price.std() - 1.0) < 1e-2
    expected = np.log1p(day["price"])
    expected = (expected - expected.mean()) / expected.std()
    np.testing.assert_allclose(price, expected, atol=1e-3)


@pytest.mark.integration
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


@pytest.mark.integration
def test_labels_are_floats_and_regression_label_is_log1p(transformed):
    day, result = transformed
    np.testing.assert_array_equal(_column(result, "click_label"), day["click"].astype(np.float32))
    np.testing.assert_allclose(_column(result, "dwell_label"), np.log1p(day["dwell_seconds"]), rtol=1e-5)
    np.testing.assert_array_equal(_column(result, "dwell_weight"), day["click"].astype(np.float32))


def test_transform_cache_key_ignores_what_preprocessing_does_not_read(cfg):
    """Transform's custom_config is `transform_config(cfg)`: TFX reuses Transform when it is unchanged, so a
    model-only edit must leave it equal and an encoding or label edit must change it."""
    import dataclasses
    import json

    from components import preprocessing
    from mtrank import config as config_lib

    key = preprocessing.transform_key(cfg)
    parsed = config_lib.from_json(key)  # Transform parses and validates it, defaults filled in
    assert json.loads(parsed.to_json()) == json.loads(preprocessing.transform_config(cfg).to_json())
    # Only what differs from a default is in the key: a field added later with a default leaves it unchanged.
    assert "model" not in json.loads(key)["config"] and "warm_start_days" not in key
    # ... while every value preprocessing reads is in it, defaults included: a default changed in a later
    # version (here num_oov_buckets: 1 of a categorical feature) still changes the key.
    reads = json.loads(key)["reads"]["features"]
    oov = preprocessing.FEATURE_READS.index("num_oov_buckets")
    assert [r[oov] for r in reads if r[1] == "categorical"] == [f.num_oov_buckets for f in cfg.features
                                                                if f.kind == "categorical"]
    model_only = cfg.replace(
        model=dataclasses.replace(cfg.model, architecture="ple", expert_units=[8], epochs=1, learning_rate=0.1,
                                  interactions=[["user_segment", "category"]], early_stopping_patience=3),
        features=[dataclasses.replace(f, embedding_dim=16, l2=0.1, bias=True,
                                      min_count=7 if f.kind == "id" else f.min_count) if f.is_embedded else f
                  for f in cfg.features],  # min_count is applied in the model (layers.IdAdmission)
        tasks=[dataclasses.replace(t, score_weight=9.0, loss_weight=0.5, rate_band=None) for t in cfg.tasks],
        evaluation=dataclasses.replace(cfg.evaluation, max_eval_rows=5, slices=[]),
        serving=dataclasses.replace(cfg.serving, model_name="other"),
        ranking=dataclasses.replace(cfg.ranking, top_k=5, validation_fraction=0.2,
                                    fusion=dataclasses.replace(cfg.ranking.fusion, mode="fixed", grid_step=0.1)))
    assert preprocessing.transform_key(model_only) == key
    hashed_differently = cfg.replace(features=[dataclasses.replace(f, num_buckets=5) if f.kind == "bucketized" else f
                                               for f in cfg.features])
    relabelled = cfg.replace(tasks=[dataclasses.replace(t, label="dwell_seconds") if t.name == "click" else t
                                    for t in cfg.tasks])
    fewer = cfg.replace(features=cfg.features[:-1])
    for changed in (hashed_differently, relabelled, fewer):
        assert preprocessing.transform_key(changed) != key
