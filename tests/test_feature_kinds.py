"""A feature kind and a raw column type are each described once (mtrank/feature_kinds.py): a new kind added
there alone is accepted by the configuration, transformed by Transform, fed to the model and sized."""

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


@pytest.mark.integration
def test_ids_seen_fewer_than_min_count_times_share_row_zero_and_the_others_keep_their_hashed_rows(cfg, tmp_path):
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils

    from components import transform_in_memory

    new = _config_with(cfg, tmp_path, {"name": "frequent_user", "kind": "id", "column": "user_id",
                                       "hash_buckets": 64, "min_count": 3, "embedding_dim": 4})
    schema = io_utils.parse_pbtxt_file(new.resolve_path(new.data.schema), schema_pb2.Schema())
    spec = transform_support.feature_spec(schema)
    filler = {tf.string: b"x", tf.int64: 0, tf.float32: 1.0}
    base = {c: [filler[spec[c].dtype]] for c in transform_support.model_columns(new)}

    def rows(users):
        return [{**base, "user_id": [u.encode()]} for u in users]

    window = rows(["often"] * 3 + ["twice"] * 2 + ["once"])
    _, fitted, (served,) = transform_in_memory.analyze_and_transform(
        new, schema, window, str(tmp_path / "transform"), others=[rows(["often", "twice", "never seen"])])
    code = {u: int(np.ravel(r["frequent_user_xf"])[0]) for u, r in zip(["often", "twice", "never seen"], served)}
    # The row it has without min_count, whatever the window holds: a warm start across a min_count change
    # restores the frequent ids' own rows.
    own_row = int(tf.strings.to_hash_bucket_fast("often", 64))
    assert own_row != 0  # (else the test could not tell the frequent id from the rare ones)
    assert code == {"often": own_row, "twice": 0, "never seen": 0}
    assert [int(np.ravel(r["frequent_user_xf"])[0]) for r in fitted] == [own_row] * 3 + [0] * 3


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
