"""Bring your own CSV: UCI Adult imported as day folders by its configuration alone (`data.raw`), its schema,
and Transform on it."""

import csv
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

import transform_support
from components import evaluation
from mtrank import config as config_lib
from mtrank import csv_import

REPO = Path(__file__).resolve().parent.parent
ADULT_CONFIG = REPO / "configs" / "adult.yaml"
# The published files when ../shared is beside the clone, else their first rows kept in tests/data (never skipped).
ADULT_SRC = next(p for p in (REPO.parent / "shared" / "datasets" / "adult", REPO / "tests" / "data" / "uci_adult")
                 if (p / "adult.data").exists())
ROWS = 300
ADULT_DAYS = {"2026-01-01": "adult.data", "2026-01-02": "adult.test"}  # the published split: train, then test


@pytest.fixture(scope="module")
def adult_cfg():
    return config_lib.load(ADULT_CONFIG)


@pytest.fixture(scope="module")
def adult_schema(adult_cfg):
    return io_utils.parse_pbtxt_file(adult_cfg.resolve_path(adult_cfg.data.schema), schema_pb2.Schema())


OUTPUT_COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "occupation", "relationship", "race",
                  "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income_gt_50k",
                  "never_married"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, adult_cfg):
    out = tmp_path_factory.mktemp("adult")
    written = {day: csv_import.import_file(adult_cfg.data.raw, ADULT_SRC / name, out / day, limit=ROWS).rows
               for day, name in ADULT_DAYS.items()}
    return out, written


def test_configuration_validates_and_keeps_labels_out_of_the_inputs(adult_cfg):
    assert [t.name for t in adult_cfg.tasks] == ["income", "never_married"]
    for task in adult_cfg.tasks:
        assert task.label not in adult_cfg.input_columns
    assert "marital_status" not in adult_cfg.input_columns and "income" not in adult_cfg.input_columns
    config = evaluation.eval_config(adult_cfg)  # the TFMA set-up builds from it, with no GAUC (no group column)
    assert [s.output_names[0] for s in config.metrics_specs] == ["income", "never_married"]
    assert not any(m.class_name == "GAUC" for s in config.metrics_specs for m in s.metrics)


def test_schema_names_every_column_of_the_prepared_files(adult_cfg, adult_schema):
    names = {f.name for f in adult_schema.feature}
    assert names == set(OUTPUT_COLUMNS)
    assert set(adult_cfg.input_columns) | set(adult_cfg.label_columns) <= names
    for f in adult_schema.feature:
        if f.name in adult_cfg.label_columns:
            assert list(f.not_in_environment) == ["SERVING"], f.name


def test_prepare_writes_day_folders_with_a_header_and_0_1_labels(prepared):
    out, written = prepared
    assert written == {"2026-01-01": ROWS, "2026-01-02": ROWS}
    with open(out / "2026-01-02" / "adult.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == OUTPUT_COLUMNS
    assert {r["income_gt_50k"] for r in rows} == {"0", "1"}
    assert {r["never_married"] for r in rows} == {"0", "1"}
    assert all(not v.startswith(" ") for r in rows for v in r.values())  # ", " separators are stripped


def test_labels_with_a_trailing_dot_and_the_cross_validator_line_are_handled(tmp_path, adult_cfg):
    src = tmp_path / "src"
    src.mkdir()
    line = "25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, {}\n"
    (src / "adult.test").write_text("|1x3 Cross validator\n" + line.format(">50K.") + line.format("<=50K.") + "\n")
    csv_import.import_file(adult_cfg.data.raw, src / "adult.test", tmp_path / "out")
    with open(tmp_path / "out" / "adult.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["income_gt_50k"] for r in rows] == ["1", "0"]
    (src / "adult.data").write_text("1, 2, 3\n")
    with pytest.raises(ValueError, match=r"adult\.data:1: expected 15 fields"):
        csv_import.import_file(adult_cfg.data.raw, src / "adult.data", tmp_path / "out2")
    assert not (tmp_path / "out2" / "adult.csv").exists()


def test_the_configured_columns_are_those_of_the_uci_names_file(adult_cfg):
    """configs/adult.yaml's data.raw.columns is what `mtrank init --names adult.names` reads from the real file."""
    assert csv_import.read_names_file(ADULT_SRC / "adult.names") == adult_cfg.data.raw.columns


@pytest.mark.integration
def test_adult_runs_through_transform(adult_cfg, adult_schema, prepared):
    out, _ = prepared
    spec = transform_support.feature_spec(adult_schema)
    rows = []
    with open(out / "2026-01-01" / "adult.csv") as f:
        for raw in csv.DictReader(f):
            row = {}
            for c in transform_support.model_columns(adult_cfg):
                dtype = spec[c].dtype
                row[c] = [raw[c].encode()] if dtype == tf.string else [int(raw[c])] if dtype == tf.int64 else [float(raw[c])]
            rows.append(row)
    result = transform_support.transform_rows(adult_cfg, adult_schema, rows)
    expected = {f.transformed_name for f in adult_cfg.features} | {t.transformed_label for t in adult_cfg.tasks}
    assert set(result[0]) == expected
    income = np.array([r["income_label"] for r in result]).ravel()
    np.testing.assert_array_equal(income, [float(r["income_gt_50k"][0]) for r in rows])
    age = np.array([r["age_xf"] for r in result]).ravel()
    assert abs(age.mean()) < 1e-3 and abs(age.std() - 1.0) < 1e-2
