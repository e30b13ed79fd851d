"""Bad data stops the run before training, and the message names the day, file and column.

Structural faults (malformed rows, missing or renamed columns, empty files, an empty span) are caught by
DayWindow's pre-checks (components/input_checks.py); content faults (a type change, negative prices,
NaN, empty values, unseen categories above the tolerated share, labels outside {0, 1}) by
ExampleValidator against the curated schema and the DataGate (components/data_gate.py). Two real runs
of the pipeline (one per kind, stopped early, ~30 s together) show that Transform and Trainer never run
and nothing is pushed; the rest are unit tests of the same functions.
"""

import dataclasses
import datetime as dt
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv

from components import data_gate, input_checks
from mtrank import simulate

START = dt.date(2026, 9, 1)
ROWS = 400
SCHEMA = os.path.join(os.path.dirname(__file__), "..", "schemas", "impressions", "schema.pbtxt")

# Defects over a three-day window (train_2, train_1, eval), each in its own rows (5 % each):
# name -> (day index, rows mod 20, column, bad value, anomaly types of which the gate must report one).
CONTENT_DEFECTS = {
    "type changed (text in a float column)": (0, 3, "price", "n/a",
                                              ("UNEXPECTED_DATA_TYPE", "FLOAT_TYPE_STRING_NOT_FLOAT")),
    "label outside {0, 1}": (0, 7, "click", "2", ("INT_TYPE_BIG_INT",)),
    "empty values": (0, 11, "device", "", ("FEATURE_TYPE_LOW_FRACTION_PRESENT", "INVALID_FEATURE_SHAPE")),
    "negative prices": (1, 3, "price", "-12.5", ("FLOAT_TYPE_SMALL_FLOAT",)),
    "unseen category above the tolerated 1 %": (1, 7, "category", "c_new", ("ENUM_TYPE_UNEXPECTED_STRING_VALUES",)),
    "NaN values": (2, 3, "price", "nan", ("FLOAT_TYPE_HAS_NAN",)),
}


def _frame(data_root, day):
    return pd.read_csv(data_root / day.isoformat() / "impressions.csv", keep_default_na=False, dtype=str)


def _write(frame, data_root, day):
    frame.to_csv(data_root / day.isoformat() / "impressions.csv", index=False)


def _break(frame: pd.DataFrame, index: int) -> pd.DataFrame:
    rows = np.arange(len(frame))
    for day_index, residue, column, value, _ in CONTENT_DEFECTS.values():
        if day_index == index:
            frame.loc[rows[rows % 20 == residue], column] = value
    return frame


def _run(cfg, tmp_path, data_root, day, train_days):
    from pipeline import local_runner, results

    workspace = local_runner.Workspace(tmp_path / "workspace")
    with pytest.raises(Exception) as caught:
        local_runner.run(cfg, workspace, run_date=day.isoformat(), train_days=train_days, data_root=str(data_root))
    result = results.latest_run(str(workspace.metadata_path), local_runner.pipeline_name(cfg), cfg)
    model_dir = workspace.serving_root / cfg.serving.model_name
    return str(caught.value), result, model_dir


def _assert_stopped_before_training(result, model_dir, failed_at):
    states = {node: run.state for node, run in result.components.items()}
    assert states.get(failed_at) == "FAILED", states
    for later in ("Transform", "Trainer", "Evaluator", "Pusher"):
        assert later not in states, (later, states)
    assert result.pushed_path is None
    assert not model_dir.exists() or not os.listdir(model_dir)


@pytest.fixture(scope="module")
def content_run(cfg, tmp_path_factory):
    """One run of the real pipeline over a three-day window whose days carry the defects above."""
    tmp = tmp_path_factory.mktemp("content")
    data_root = tmp / "data"
    simulate.simulate(data_root, START, 3, ROWS)
    for index in (0, 1, 2):
        day = START + dt.timedelta(days=index)
        _write(_break(_frame(data_root, day), index), data_root, day)
    small = cfg.replace(evaluation=dataclasses.replace(cfg.evaluation, min_rows=0, min_positives=0))  # 400-row days
    return _run(small, tmp, data_root, START + dt.timedelta(days=2), train_days=2)


@pytest.mark.integration
@pytest.mark.parametrize("defect", sorted(CONTENT_DEFECTS))
def test_content_defect_is_named_with_day_file_and_column(content_run, defect):
    message, _, _ = content_run
    index, _, column, _, kinds = CONTENT_DEFECTS[defect]
    day = (START + dt.timedelta(days=index)).isoformat()
    lines = [line for line in message.splitlines() if f"day {day} " in line and f"column '{column}'" in line]
    assert any(kind in line and f"{day}/*.csv" in line for line in lines for kind in kinds), \
        f"{defect}: expected day {day}, column {column!r} and one of {kinds} in:\n{message}"


@pytest.mark.integration
def test_content_defects_stop_the_pipeline_at_the_gate(content_run):
    message, result, model_dir = content_run
    assert "the run stops before Transform" in message
    _assert_stopped_before_training(result, model_dir, failed_at="DataGate")


def test_malformed_rows_stop_the_pipeline_in_day_window(cfg, tmp_path):
    data_root = tmp_path / "data"
    simulate.simulate(data_root, START, 2, ROWS)
    day = START + dt.timedelta(days=1)
    path = data_root / day.isoformat() / "impressions.csv"
    lines = path.read_text().splitlines()
    lines[10] = lines[10] + ",surplus"  # line 11 of the file
    path.write_text("\n".join(lines) + "\n")
    message, result, model_dir = _run(cfg, tmp_path, data_root, day, train_days=1)
    assert f"day {day}" in message and str(path) in message and f"line 11 has {len(simulate.COLUMNS) + 1} fields" in message
    _assert_stopped_before_training(result, model_dir, failed_at="DayWindow")
    assert "CsvExampleGen" not in result.components


def test_transform_and_trainer_take_their_schema_from_the_gate(cfg, tmp_path):
    from pipeline.pipeline import create_pipeline

    built = create_pipeline(pipeline_name="gate-order", pipeline_root=str(tmp_path), cfg=cfg, data_root=str(tmp_path),
                            schema_path=SCHEMA, serving_root=str(tmp_path / "serving"))
    nodes = {c.id: c for c in built.components}
    for node in ("Transform", "Trainer"):  # a real artifact dependency: nothing after the gate runs if it fails
        assert nodes[node].inputs["schema"].producer_component_id == "DataGate", node


# ---- pre-checks, without a pipeline ------------------------------------------------------------------------
@pytest.fixture()
def two_days(tmp_path):
    data_root = tmp_path / "data"
    simulate.simulate(data_root, START, 2, 50)
    patterns = {(START + dt.timedelta(days=k)).isoformat(): f"{(START + dt.timedelta(days=k)).isoformat()}/*.csv"
                for k in (0, 1)}
    return data_root, patterns, START + dt.timedelta(days=1)


def _precheck_error(data_root, patterns):
    with pytest.raises(input_checks.BadInputError) as caught:
        input_checks.check_window(str(data_root), patterns)
    return str(caught.value)


def test_missing_column_is_named(two_days):
    data_root, patterns, day = two_days
    _write(_frame(data_root, day).drop(columns=["price"]), data_root, day)
    message = _precheck_error(data_root, patterns)
    assert f"day {day}" in message and "['price']" in message


def test_renamed_column_is_named(two_days):
    data_root, patterns, day = two_days
    _write(_frame(data_root, day).rename(columns={"device": "platform"}), data_root, day)
    message = _precheck_error(data_root, patterns)
    assert "['device']" in message and "['platform']" in message and "renamed" in message


def test_empty_file_and_empty_span_are_named(two_days):
    data_root, patterns, day = two_days
    path = data_root / day.isoformat() / "impressions.csv"
    header = path.read_text().splitlines()[0]
    path.write_text(header + "\n")
    message = _precheck_error(data_root, patterns)
    assert f"day {day}" in message and "no rows" in message and "empty span" in message
    path.write_text("")
    message = _precheck_error(data_root, patterns)
    assert str(path) in message and "is empty" in message


def test_window_input_config_runs_the_prechecks(two_days):
    from components import window

    data_root, _, day = two_days
    path = data_root / day.isoformat() / "impressions.csv"
    path.write_text(path.read_text() + "1,2,3\n")
    with pytest.raises(input_checks.BadInputError, match="malformed"):
        window.window_input_config(str(data_root), "{YYYY}-{MM}-{DD}/*.csv", day.isoformat(), 1)


# ---- the gate's tolerance, on statistics computed in process -------------------------------------------------
def _gate_lines(frame: pd.DataFrame, tolerated=()):
    schema = tfdv.load_schema_text(SCHEMA)
    stats = tfdv.generate_statistics_from_dataframe(frame)
    anomalies = tfdv.validate_statistics(stats, schema)
    return data_gate.anomaly_lines({"eval": anomalies}, {"eval": "2026-09-07/*.csv"}, list(tolerated))


@pytest.fixture(scope="module")
def clean_frame(tmp_path_factory):
    data_root = tmp_path_factory.mktemp("frame")
    files = simulate.simulate(data_root, START, 1, 2000)
    return pd.read_csv(files[0])


def test_a_small_share_of_unseen_categories_is_tolerated_a_large_one_is_not(clean_frame):
    assert _gate_lines(clean_frame) == ([], [])
    frame = clean_frame.copy()
    frame.loc[frame.index[:10], "category"] = "c_new"  # 0.5 %: under the schema's 1 % (min_domain_mass 0.99)
    assert _gate_lines(frame)[0] == []
    frame.loc[frame.index[:100], "category"] = "c_new"  # 5 %
    blocking, _ = _gate_lines(frame)
    assert any("column 'category'" in line and "ENUM_TYPE_UNEXPECTED_STRING_VALUES" in line for line in blocking)
    blocking, allowed = _gate_lines(frame, tolerated=["ENUM_TYPE_UNEXPECTED_STRING_VALUES"])  # the config's knob
    assert blocking == [] and len(allowed) == 1


def test_a_column_missing_from_every_day_is_named(clean_frame):
    blocking, _ = _gate_lines(clean_frame.drop(columns=["hour"]))
    assert any("day 2026-09-07" in line and "column 'hour'" in line and "SCHEMA_MISSING_COLUMN" in line
               for line in blocking), blocking


# ---- training faults ---------------------------------------------------------------------------------------
def _tiny_fit(callbacks, tmp_path, export_after=True):
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(256, 3)).astype("float32")
    x[100, 1] = np.nan  # one NaN reaching the model (e.g. a numeric column the gate did not cover)
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", run_eagerly=True)  # no tracing: seconds, not tens
    export = tmp_path / "serving_model"
    history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=callbacks)
    if export_after:
        model.save(str(export), save_format="tf")  # the Trainer exports only after fit returns
    return history, export


def test_a_nan_loss_stops_training_before_anything_is_exported(tmp_path):
    from components.trainer import StopOnNonFiniteLoss

    with pytest.raises(FloatingPointError, match="training loss became nan .* not exported"):
        _tiny_fit([StopOnNonFiniteLoss(every=1)], tmp_path)
    assert not (tmp_path / "serving_model").exists()
    # Without the callback Keras trains on to the end with a NaN loss (and the Trainer would export it).
    history, _ = _tiny_fit([], tmp_path, export_after=False)
    assert np.isnan(history.history["loss"][-1])


def test_the_trainer_fits_with_the_nan_guard_before_exporting():
    import inspect

    from components import trainer

    source = inspect.getsource(trainer.train)
    assert "StopOnNonFiniteLoss()" in source
    assert source.index(".fit(") < source.index(".save(")  # fit raises first, so nothing is saved
