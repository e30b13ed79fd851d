"""A feature kind and a raw column type are each described once (mtrank/feature_kinds.py): a new kind added
there alone is accepted by the configuration, transformed by Transform, fed to the model and sized."""

import dataclasses

import numpy as np
import pytest
import yaml

import transform_support
from mtrank import config as config_lib
from mtrank import feature_kinds


class CaseFoldedId(feature_kinds.IdKind):
    """A kind that exists only in this test: ids hashed after folding case (`Sku-1` is `sku-1`)."""

    name = "case_folded_id"

    def transform(self, feature, x):
        import tensorflow as tf

        return super().transform(feature, tf.strings.lower(x))


@pytest.fixture
def case_folded(monkeypatch):
    monkeypatch.setitem(feature_kinds.KINDS, CaseFoldedId.name, CaseFoldedId())


def _config_with(cfg, tmp_path, feature):
    raw = cfg.to_dict()
    raw["features"].append(feature)
    raw["data"]["schema"] = str(cfg.resolve_path(cfg.data.schema))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return config_lib.load(path)


@pytest.mark.integration
def test_a_kind_added_in_the_registry_alone_is_configured_transformed_and_modelled(cfg, tmp_path, case_folded):
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils

    from mtrank.models import builder, layers

    new = _config_with(cfg, tmp_path, {"name": "folded_item", "kind": "case_folded_id", "column": "item_id",
                                       "hash_buckets": 64, "embedding_dim": 4})
    feature = new.features[-1]
    assert feature.is_embedded and builder.cardinality(feature, 0) == 64
    assert layers.feature_inputs(new)["folded_item_xf"].dtype == tf.int64

    schema = io_utils.parse_pbtxt_file(new.resolve_path(new.data.schema), schema_pb2.Schema())
    spec = transform_support.feature_spec(schema)
    filler = {tf.string: b"x", tf.int64: 0, tf.float32: 1.0}
    base = {c: [filler[spec[c].dtype]] for c in transform_support.model_columns(new)}
    rows = [{**base, "item_id": [item.encode()]} for item in ("Sku-1", "sku-1", "SKU-1", "sku-2") * 3]
    out = transform_support.transform_rows(new, schema, rows)
    codes = [int(np.ravel(r["folded_item_xf"])[0]) for r in out[:4]]
    assert codes[0] == codes[1] == codes[2] != codes[3]  # the kind's own transform ran inside Transform
    assert all(0 <= c < 64 for c in codes)

    model = builder.build(new, builder.default_cardinalities(new))
    inputs = {name: tf.zeros([3], dtype=spec.dtype) for name, spec in layers.feature_inputs(new).items()}
    assert {t.name for t in new.tasks} <= set(model.model(inputs))


def test_an_id_gets_its_own_row_once_the_model_has_trained_on_min_count_of_its_impressions(cfg, tmp_path):
    """min_count is applied in the model (layers.IdAdmission): counts of the impressions trained on, saved
    with the model and carried by a warm start, so a daily chain admits an id once its runs together have
    seen it often enough. Transform only hashes: the row is the one the id has without min_count."""
    import tensorflow as tf

    from components import warm_start
    from mtrank.models import builder, layers

    new = cfg.replace(features=[dataclasses.replace(f, min_count=3) if f.name == "user_id" else f
                                for f in cfg.features])
    user = next(f for f in new.features if f.name == "user_id")
    assert feature_kinds.of(user).transform(user, tf.constant([b"u1"])).numpy()[0] == \
        tf.strings.to_hash_bucket_fast("u1", user.hash_buckets).numpy()
    sizes = builder.default_cardinalities(new)
    inputs = {name: np.zeros([4], dtype=spec.dtype.as_numpy_dtype) for name, spec in layers.feature_inputs(new).items()}
    inputs[user.transformed_name] = np.array([5, 9, 11, 0])  # 5: trained on 3 times, 9: twice, 11: never

    def fitted_on(users):  # a run's training batches: (features, labels)
        rows = {**{k: np.repeat(v[:1], len(users)) for k, v in inputs.items()}, user.transformed_name: np.array(users)}
        return tf.data.Dataset.from_tensors((rows, {}))

    first = builder.build(new, sizes)
    counted = layers.add_admission_counts(new, first.model, fitted_on([5, 9, 5, 5, 9, 0, 0, 0]))
    # row 0 is the shared row: ids hashed to it never have one of their own, however often they are seen
    assert counted["user_id"]["admitted_rows"] == 1 and counted["user_id"]["impressions_on_own_row"] == 0.375
    admit = first.model.get_layer(layers.admission_layer_name(user))
    assert admit(tf.constant(inputs[user.transformed_name])).numpy().tolist() == [5, 0, 0, 0]
    click = first.model(inputs)["click"].numpy().ravel()
    assert click[1] == click[2] == click[3] != click[0]  # 9 and the unseen 11 share row 0; 5 has its own

    served = str(tmp_path / "served")
    first.model.save(served, save_format="tf")
    serving = tf.saved_model.load(served).signatures["serving_default"]
    scored = serving(**{k: tf.constant(v) for k, v in inputs.items()})["click"].numpy().ravel()
    np.testing.assert_allclose(scored, click, rtol=1e-6)  # the served model applies the same admission

    second = builder.build(new, sizes)
    start = warm_start.restore(second.model, served)
    assert start.warm, start.reason
    layers.add_admission_counts(new, second.model, fitted_on([9]))  # the next day: 9's third impression
    assert second.model.get_layer(layers.admission_layer_name(user))(
        tf.constant(inputs[user.transformed_name])).numpy().tolist() == [5, 9, 0, 0]


@pytest.mark.parametrize("feature, message", [
    ({"name": "p", "kind": "case_folded_id", "column": "item_id"}, "case_folded_id feature 'p' needs hash_buckets > 1"),
    ({"name": "p", "kind": "bucketized", "column": "device", "num_buckets": 4}, "must have dtype int or float"),
    ({"name": "p", "kind": "numeric", "column": "price", "dtype": "double"}, "use one of ('string', 'int', 'float')"),
    ({"name": "p", "kind": "categorical", "column": "device", "min_count": 5}, "has min_count 5; min_count is a count >= 0 and only kinds"),
    ({"name": "p", "kind": "id", "column": "user_id", "hash_buckets": 8, "min_count": -1}, "min_count -1"),
])
def test_a_kind_s_own_rules_are_checked_by_the_configuration(cfg, tmp_path, case_folded, feature, message):
    with pytest.raises(config_lib.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _config_with(cfg, tmp_path, feature)


def test_raw_types_parse_what_a_request_sends_and_refuse_what_cannot_be_scored():
    string, whole, number = (feature_kinds.raw_type(n) for n in ("string", "int", "float"))
    assert string.parse("mobile") == b"mobile" and whole.parse("3") == 3 and whole.parse(4.0) == 4
    assert number.parse("2.5") == 2.5
    for raw_type, bad in ((whole, "2.5"), (whole, "abc"), (number, "nan"), (number, float("inf"))):
        with pytest.raises(ValueError):
            raw_type.parse(bad)
    for raw_type in feature_kinds.RAW_TYPES.values():  # warm-up rows are requests the model accepts
        values = [raw_type.parse(raw_type.warmup_value(i)) for i in range(60)]
        assert len(set(values)) > 1
        feature = raw_type.feature(values[0])
        assert feature.WhichOneof("kind") == raw_type.example_list
        assert np.array(values, dtype=raw_type.numpy_dtype).dtype == np.dtype(raw_type.numpy_dtype)
