"""`mtrank init`: a curated schema (TFDV's inference plus the project's rules) and a starter configuration
that loads, from one CSV file of a data set the project has never seen."""

import math
import random

import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

from mtrank import cli
from mtrank import config as config_lib
from mtrank import starter_config


@pytest.fixture(scope="module")
def shop_csv(tmp_path_factory):
    """A shop's own export: a header, a user id, a few categories, a price, a count and two labels, one of
    them text. Written here, read by nothing but `mtrank init`."""
    rng = random.Random(3)
    path = tmp_path_factory.mktemp("shop") / "export.csv"
    lines = ["user-id,Device,country,price,past orders,outcome,clicked,shop_id"]
    for i in range(400):
        clicked = int(rng.random() < 0.3)
        outcome = "bought" if clicked and rng.random() < 0.4 else rng.choice(["viewed", "left"])
        lines.append(f"u{rng.randrange(300)},{rng.choice(['ios', 'android', 'web'])},"
                     f"{rng.choice(['de', 'fr', 'it', 'es', 'nl'])},{rng.uniform(1, 200):.2f},"
                     f"{rng.choice([0] * 8 + [1, 2, 500])},{outcome},{clicked},{rng.randrange(20)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def initialised(shop_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("init")
    code = cli.main(["init", "shop", "--csv", str(shop_csv), "--label", "clicked", "--label", "bought = outcome == bought",
                     "--config-out", str(out / "configs" / "shop.yaml"),
                     "--schema-out", str(out / "schemas" / "shop" / "schema.pbtxt"),
                     "--data-root", str(out / "data")])
    assert code == 0
    schema = io_utils.parse_pbtxt_file(str(out / "schemas" / "shop" / "schema.pbtxt"), schema_pb2.Schema())
    return out, schema, config_lib.load(out / "configs" / "shop.yaml")


def _feature(schema, name):
    return next(f for f in schema.feature if f.name == name)


def test_labels_are_0_1_and_not_served(initialised):
    _, schema, cfg = initialised
    assert [t.label for t in cfg.tasks] == ["clicked", "bought"]  # as given: the first carries the score
    assert [t.score_weight for t in cfg.tasks] == [1.0, 0.0]
    for label in ("bought", "clicked"):
        f = _feature(schema, label)
        assert f.type == schema_pb2.INT and (f.int_domain.min, f.int_domain.max) == (0, 1)
        assert list(f.not_in_environment) == ["SERVING"]
    assert "outcome" not in {f.name for f in schema.feature}  # a label's source is not imported at all


def test_ids_are_tagged_and_left_out_of_the_features(initialised, shop_csv):
    out, schema, cfg = initialised
    user = _feature(schema, "user_id")
    assert list(user.annotation.tag) == ["id"] and not user.HasField("domain")
    assert "user_id" not in cfg.input_columns
    assert list(_feature(schema, "shop_id").annotation.tag) == ["id"]  # an id number is no quantity
    assert "shop_id" not in cfg.input_columns
    text = (out / "configs" / "shop.yaml").read_text()
    assert "ids left out" in text
    users = {line.split(",")[0] for line in shop_csv.read_text().splitlines()[1:]}
    assert f"user_id (hash_buckets: {starter_config.hash_buckets(len(users))})" in text  # 20x the distinct ids


@pytest.mark.parametrize("distinct", [1, 7, 220, 5_739, 2_300, 123_456])
def test_suggested_hash_buckets_leave_about_one_id_in_twenty_sharing_a_row(distinct):
    buckets = starter_config.hash_buckets(distinct)
    assert 1 - math.exp(-distinct / buckets) <= 0.05  # the share of ids whose row another id also hashes to
    assert buckets < 1.1 * 20 * distinct  # and not much larger than needed


def test_domains_tolerate_a_little_drift_and_numbers_keep_their_sign(initialised):
    _, schema, cfg = initialised
    assert _feature(schema, "Device").distribution_constraints.min_domain_mass == pytest.approx(0.99)
    price = _feature(schema, "price")
    assert price.float_domain.min == 0 and price.float_domain.disallow_nan and not price.float_domain.HasField("max")
    assert _feature(schema, "past_orders").int_domain.min == 0
    kinds = {f.name: (f.kind, f.log1p) for f in cfg.features}
    assert kinds == {"Device": ("categorical", False), "country": ("categorical", False),
                     "price": ("numeric", False), "past_orders": ("numeric", True)}
    assert cfg.evaluation.slices == ["Device", "country"]
    assert cfg.serving.model_name == "shop"


@pytest.mark.integration
def test_the_schema_accepts_the_data_it_came_from_for_training_and_serving(initialised, shop_csv, tmp_path):
    """The contract must pass on its own sample: no anomaly in TRAINING, and serving rows (no labels) too."""
    out, schema, cfg = initialised
    assert cli.main(["import", "--config", str(out / "configs" / "shop.yaml"), "--day", "2026-05-01",
                     str(shop_csv)]) == 0
    day = out / "data" / "2026-05-01" / "export.csv"
    stats = tfdv.generate_statistics_from_csv(str(day))
    assert not tfdv.validate_statistics(stats, schema, environment="TRAINING").anomaly_info
    serving_rows = tmp_path / "serving.csv"
    with open(day) as f:
        rows = [line.rstrip("\n").split(",") for line in f]
    keep = [i for i, c in enumerate(rows[0]) if c not in cfg.label_columns]
    serving_rows.write_text("\n".join(",".join(r[i] for i in keep) for r in rows) + "\n")
    serving_stats = tfdv.generate_statistics_from_csv(str(serving_rows))
    assert not tfdv.validate_statistics(serving_stats, schema, environment="SERVING").anomaly_info


def test_settings_yaml_would_misread_are_written_so_they_load(shop_csv, tmp_path):
    """A ';'-separated file with a '#' comment prefix, a data set named like a YAML boolean."""
    semicolons = tmp_path / "semi.txt"
    semicolons.write_text("# exported\n" + shop_csv.read_text().replace(",", ";"))
    config = tmp_path / "yes.yaml"
    assert cli.main(["init", "yes", "--csv", str(semicolons), "--delimiter", ";", "--comment", "#",
                     "--label", "clicked", "--id", "user-id", "--config-out", str(config),
                     "--schema-out", str(tmp_path / "schema.pbtxt"), "--data-root", str(tmp_path / "data")]) == 0
    cfg = config_lib.load(config)
    assert (cfg.data.raw.delimiter, cfg.data.raw.comment, cfg.serving.model_name) == (";", "#", "yes")


def test_a_text_label_must_be_derived_and_nothing_is_overwritten(initialised, shop_csv, capsys):
    out, _, _ = initialised
    args = ["init", "shop", "--csv", str(shop_csv), "--config-out", str(out / "other.yaml"),
            "--schema-out", str(out / "other.pbtxt")]
    assert cli.main(args + ["--label", "outcome"]) == 2
    assert "label 'outcome' is not a 0/1 column in the sample; declare it as derived" in capsys.readouterr().err
    assert not (out / "other.yaml").exists()
    assert cli.main(["init", "shop", "--csv", str(shop_csv), "--label", "clicked",
                     "--config-out", str(out / "configs" / "shop.yaml")]) == 2
    assert "already exist(s); pass --force" in capsys.readouterr().err
