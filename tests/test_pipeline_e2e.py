"""The whole local pipeline on one simulated day: what a user sees after `mtrank run`.

Slow (about a minute and a half): it runs every TFX component for real on Beam's DirectRunner.
"""

import datetime as dt
import json
import os
import re

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mtrank import fusion as fusion_lib
from pipeline import results
from conftest import E2E_DAY as DAY
from conftest import E2E_ROWS as ROWS

pytestmark = pytest.mark.slow

ALL_NODES = {"DayWindow", "CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "DataGate", "Transform",
             "ProductionModel", "Trainer", "EvalSample", "Evaluator", "Pusher"}


@pytest.fixture(scope="module")
def run(pipeline_run):
    return pipeline_run.workspace, pipeline_run.data_root, pipeline_run.result


def test_every_component_ran(run):
    _, _, result = run
    assert set(result.components) == ALL_NODES
    assert {r.state for r in result.components.values()} == {"COMPLETE"}


def test_window_reads_the_newest_day_for_eval_and_the_day_before_for_training(run):
    _, _, result = run
    example_gen = result.components["CsvExampleGen"]
    input_config = json.loads(example_gen.exec_properties["input_config"])
    patterns = {split["name"]: split["pattern"] for split in input_config["splits"]}
    previous = DAY - dt.timedelta(days=1)
    assert patterns == {"eval": f"{DAY.isoformat()}/*.csv", "train_1": f"{previous.isoformat()}/*.csv"}
    assert result.eval_rows == ROWS  # the whole evaluated day, none of it trained on


def test_model_is_evaluated_per_task_and_slice_and_beats_chance(cfg, run):
    _, _, result = run
    assert result.metric("click", "auc") > 0.6
    assert result.metric("purchase", "auc") > 0.6
    for task in ("click", "purchase"):
        for name in ("auc_precision_recall", "binary_crossentropy", "calibration", "example_count"):
            assert np.isfinite(result.metric(task, name)), (task, name)
        assert result.oracle_auc[task] > result.metric(task, "auc")  # the oracle is the ceiling
    assert np.isfinite(result.metric("dwell", "mean_squared_error"))
    device_slices = [s for s in result.metrics if s.startswith("device=") and " * " not in s]  # crosses aside
    category_slices = [s for s in result.metrics if s.startswith("category=")]
    assert len(device_slices) == 3 and len(category_slices) >= 20
    assert "auc" in result.metrics[device_slices[0]]["click"]


def test_the_ranked_lists_are_measured_and_the_searched_weights_earn_revenue(cfg, run):
    """Per request, on the evaluated day: every ranking captures more of the oracle's gain than chance, and the
    served score (weights searched on held-out requests of the training window, price included) captures more
    of the revenue than the configured 1·pCTR + 4·pCTCVR, which ignores price. This run's search has no
    guardrails (conftest), so the served score is only held to beat a random order on clicks and purchases.

    The lead is held to be positive, not to a margin: the search sees ~200 held-out requests holding ~20
    purchases, so the weights it picks vary from run to run; one CI run measured a lead of 0.018 (0.446
    against 0.428) where a local run of the same commit passed a 0.03 margin. What the search earns on
    enough requests is bench's and the demo's figure (0.607 against 0.514 on 3 × 30,000 rows)."""
    _, _, result = run
    for output in ("score", "score_configured", "click", "purchase"):
        for objective in ("clicks", "purchases", "revenue"):
            floor = 0.0 if output == "score" and objective != "revenue" else 0.15
            assert result.metric(output, f"{objective}_oracle_share@3") > floor, (output, objective)
            assert 0 < result.metric(output, f"{objective}_ndcg@3") <= 1, (output, objective)
    assert result.metric("score", "revenue_oracle_share@3") > result.metric("score_configured", "revenue_oracle_share@3")
    one_row = result.metrics["position=1"]["score"]  # one row per request: no list to rank
    assert "clicks_ndcg@3" in one_row and np.isnan(one_row["clicks_ndcg@3"])
    text = results.format_run(cfg, result)
    assert "share of the oracle's gain captured" in text and "Served score: " in text and "price^" in text


def test_blessed_model_is_pushed_in_tf_serving_layout(cfg, run):
    workspace, _, result = run
    assert result.blessed is True and result.validation_ok is True
    assert result.pushed_path
    version_dir = os.path.normpath(result.pushed_path)
    model_dir = os.path.dirname(version_dir)
    assert model_dir == str(workspace.serving_root / cfg.serving.model_name)
    assert re.fullmatch(r"\d+", os.path.basename(version_dir))
    assert os.path.exists(os.path.join(version_dir, "saved_model.pb"))


def test_pushed_model_answers_serialized_examples(cfg, run):
    _, data_root, result = run
    frame = pd.read_csv(data_root / DAY.isoformat() / "impressions.csv").head(50)
    serialized = []
    for _, row in frame.iterrows():  # serving inputs only: no labels, no oracle columns
        feature = {}
        for column in cfg.input_columns:
            value = row[column]
            if isinstance(value, str):
                feature[column] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
            elif cfg.feature_dtype(column) == "int":
                feature[column] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
            else:
                feature[column] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        serialized.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    model = tf.saved_model.load(result.pushed_path)
    out = {k: v.numpy() for k, v in model.signatures["serving_default"](examples=tf.constant(serialized)).items()}
    assert set(out) == {"click", "purchase", "purchase_given_click", "dwell", "score"}
    for name in ("click", "purchase", "purchase_given_click"):
        assert out[name].shape == (50,)
        assert np.all((out[name] > 0) & (out[name] < 1))
    np.testing.assert_allclose(out["purchase"], out["click"] * out["purchase_given_click"], rtol=1e-5)
    # The score serves the weights the Trainer searched on held-out requests (mtrank/fusion.py), recorded
    # beside the SavedModel: pCTR^a · pCTCVR^b · price^c.
    fusion = fusion_lib.read(result.pushed_path)
    assert fusion is not None and fusion.form == "product" and set(fusion.weights) == {"click", "purchase"}
    np.testing.assert_allclose(out["score"], fusion.numpy(out, frame["price"].to_numpy()), rtol=1e-4)
    assert len(set(np.round(out["score"], 6))) > 10  # it ranks: scores differ between candidates
    # A NaN price is refused by the pushed signature itself (any TF Serving answers INVALID_ARGUMENT), never ranked.
    broken = tf.train.Example.FromString(serialized[7])
    broken.features.feature["price"].float_list.value[0] = float("nan")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"input price cannot be scored.*\[7\] \[of\] \[50\]"):
        model.signatures["serving_default"](examples=tf.constant(serialized[:7] + [broken.SerializeToString()]
                                                                  + serialized[8:]))
