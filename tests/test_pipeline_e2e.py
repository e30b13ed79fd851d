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


def test_the_evaluator_writes_one_overall_slice_holding_tfmas_gates_and_the_metrics_measured_beside_them(cfg, run):
    """TFMA measures the gating metrics of the overall slice; the others are measured from the model's
    predictions and joined to TFMA's own overall record (components/slice_metrics.py): one overall slice."""
    from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as writer

    _, _, result = run
    overall = [r for r in writer.load_and_deserialize_metrics(result.evaluation_uri) if not r.slice_key.single_slice_keys]
    assert len(overall) == 1
    names = {(e.key.output_name, e.key.name) for e in overall[0].metric_keys_and_values}
    gated = {(th.task, th.metric) for th in cfg.evaluation.thresholds}
    assert ("click", "auc") in gated and {("click", "auc"), ("click", "gauc"), ("click", "mean_label"),
                                          ("score", "revenue_ndcg@3")} <= names
    keys = [e.key.SerializeToString(deterministic=True) for e in overall[0].metric_keys_and_values]
    assert len(keys) == len(set(keys))  # nothing measured twice


def test_the_ranked_lists_are_measured_and_the_served_score_is_the_searched_one(cfg, run):
    """Per request, on the evaluated day: every ranking captures more of the oracle's gain than chance, and the
    served score is the one the Trainer's search chose (weights searched on held-out requests of the
    training window, price included), which earned at least as much revenue there as the configured
    1·pCTR + 4·pCTCVR. This run's search has no guardrails (conftest).

    Whether the searched weights also earn more on the evaluated day is not asserted here: the search sees
    ~200 held-out requests holding ~20 purchases, and with the search unchanged the evaluated day's lead
    came out +0.018 (0.446 against 0.428) on one CI run and -0.037 (0.414 against 0.451) on another after a
    change to the model alone; another run chose a point without price. What the search earns on enough
    requests is bench's and the demo's figure (0.607 against 0.514 on 3 × 30,000 rows).

    Nor is the searched score's share of purchases: without guardrails nothing keeps a revenue-searched point
    from trading purchases for price, and at 27fad6b one CI run's point captured -0.018 of the oracle's
    purchases@3 (a rerun of the same commit: above 0). Keeping them is the guardrails' job, and
    tests/test_ranking.py holds the search to them."""
    _, _, result = run
    for output in ("score", "score_configured", "click", "purchase"):
        for objective in ("clicks", "purchases", "revenue"):
            if (output, objective) != ("score", "purchases"):
                floor = 0.0 if output == "score" and objective == "clicks" else 0.15
                assert result.metric(output, f"{objective}_oracle_share@3") > floor, (output, objective)
            assert 0 < result.metric(output, f"{objective}_ndcg@3") <= 1, (output, objective)
    searched = results.fusion_summary(result)
    objective = cfg.ranking.fusion.objective
    assert searched["chosen_gain_at_k"][objective] >= searched["configured_gain_at_k"][objective]
    if searched["chosen"] == searched["configured"]:  # kept: the served score ranks as the configured one
        for objective in ("clicks", "purchases", "revenue"):
            assert result.metric("score", f"{objective}_oracle_share@3") == pytest.approx(
                result.metric("score_configured", f"{objective}_oracle_share@3"))
    one_row = result.metrics["position=1"]["score"]  # one row per request: no list to rank
    assert "clicks_ndcg@3" in one_row and np.isnan(one_row["clicks_ndcg@3"])
    text = results.format_run(cfg, result)
    assert "share of the oracle's gain captured" in text and f"Served score: {searched['chosen_formula']}," in text


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
    # beside the SavedModel: pCTR^a · pCTCVR^b · price^c, or the configured 1·pCTR + 4·pCTCVR (linear) when
    # no point of the grid earned more there (the search keeps it; test_the_ranked_lists_... allows both).
    fusion = fusion_lib.read(result.pushed_path)
    assert fusion is not None and fusion.form in ("product", "linear") and set(fusion.weights) == {"click", "purchase"}
    np.testing.assert_allclose(out["score"], fusion.numpy(out, frame["price"].to_numpy()), rtol=1e-4)
    # It ranks: scores differ between candidates. Rounded relative to the largest score, since the served
    # formula (searched product or configured linear sum) sets the scores' scale, not this test.
    assert len(set(np.round(out["score"] / out["score"].max(), 6))) > 10
    # A NaN price is refused by the pushed signature itself (any TF Serving answers INVALID_ARGUMENT), never ranked.
    broken = tf.train.Example.FromString(serialized[7])
    broken.features.feature["price"].float_list.value[0] = float("nan")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"input price cannot be scored.*\[7\] \[of\] \[50\]"):
        model.signatures["serving_default"](examples=tf.constant(serialized[:7] + [broken.SerializeToString()]
                                                                  + serialized[8:]))


def _load_metrics(path: str) -> dict:
    """{(slice, output, metric, example weighted): value} of the TFMA metrics records under `path`."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as writer

    values = {}
    for record in writer.load_and_deserialize_metrics(path):
        name = results._slice_name(tfma.slicer.deserialize_slice_key(record.slice_key))
        for entry in record.metric_keys_and_values:
            values[(name, entry.key.output_name, entry.key.name, entry.key.example_weighted.value)] = \
                entry.value.double_value.value
    return values


def _assert_equal_metrics(ours: dict, theirs: dict, rtol: float, order_atol: float = 0.0) -> None:
    """Every key on both sides, every value equal to `rtol`; TFMA takes log loss in float32, where
    log(1 - p) carries a relative error of about 6e-8 / p (CI measured 1.7e-4 on a slice of rare purchases),
    so log loss is held to 1e-3. Metrics of the order of scores may be given `order_atol` more."""
    assert set(ours) == set(theirs), set(ours) ^ set(theirs)
    for key, value in theirs.items():
        order = bool(re.search(r"^(auc|auc_precision_recall|gauc)$|@", key[2]))
        np.testing.assert_allclose(ours[key], value, rtol=1e-3 if key[2] == "binary_crossentropy" else rtol,
                                   atol=order_atol if order else 1e-12, err_msg=str(key))


def test_report_slices_measured_from_predictions_equal_tfmas_own(run, tmp_path):
    """The Evaluator measures the report's slices from one pass of the model (components/slice_metrics.py),
    TFMA the overall slice. Held against TFMA in two parts, on the same EvalConfig, model and 5,000 rows:

    1. The definitions, exactly: TFMA measures every slice of the predictions our pass made (written into the
       rows, TFMA without a model): every slice, output and metric must be there with TFMA's value to 1e-6
       relative (sums taken in another order: CI measured 2.3e-9 on a weighted MSE), AUC, GAUC and the
       per-request ranking metrics included (this caught AUC counting rows at the thresholds
       directly where TFMA buckets them first: 0.0014 AUC on a category slice).
    2. The pass itself: TFMA's own run of the model on the overall slice. The model's float32 outputs change
       in their last bits with the batch size (measured: 5 % of the rows, up to 20 float32 steps, between
       batches of 4,096 and 37), and TFMA batches as Beam bundles, so scores within a few steps may swap
       order: the metrics of the order of scores are held to 0.01 there (measured 0.0005), the others to 1e-5."""
    import tensorflow_model_analysis as tfma
    from tfx.utils import proto_utils

    from components import slice_metrics

    _, _, result = run
    config = tfma.EvalConfig()
    proto_utils.json_to_proto(result.components["Evaluator"].exec_properties["eval_config"], config)
    candidate = next(m for m in config.model_specs if not m.is_baseline)
    del config.model_specs[:]
    config.model_specs.append(candidate)
    for spec in config.metrics_specs:  # no baseline here: no change bound, no thresholds
        kept = [m for m in spec.metrics if m.class_name != "ChangeBound"]
        del spec.metrics[:]
        spec.metrics.extend(kept)
        for metric in spec.metrics:
            del metric.per_slice_thresholds[:]
            metric.ClearField("threshold")
    assert len(config.slicing_specs) >= 4
    model = result.components["Trainer"].outputs["model"][0] + "/Format-Serving"
    files = sorted(tf.io.gfile.glob(result.components["EvalSample"].outputs["sample"][0] + "/Split-eval/*"))
    data = str(tmp_path / "rows.tfrecord")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type=compression).take(5000)]
    with tf.io.TFRecordWriter(data) as out:
        for record in records:
            out.write(record)

    rows = slice_metrics.materialize(model, candidate, data, slice_metrics.columns_needed(config, config.slicing_specs))
    ours = {}
    for key, mask in slice_metrics.slices(rows, config.slicing_specs):
        name = results._slice_name(tfma.slicer.deserialize_slice_key(tfma.slicer.serialize_slice_key(key)))
        for (output, weighted), values in slice_metrics.slice_metrics(config, rows, mask).items():
            ours.update({(name, output, metric, weighted): value for metric, value in values.items()})
    assert len({k[0] for k in ours}) > 40  # overall, 3 devices, ~20 categories, 10 positions, their crosses

    # 1. TFMA on the same predictions, labels and weights, written into the rows.
    parts = {"label": rows.labels, "prediction": rows.predictions, "weight": rows.weights}
    scored = str(tmp_path / "scored.tfrecord")
    with tf.io.TFRecordWriter(scored) as out:
        for i, record in enumerate(records):
            example = tf.train.Example.FromString(record)
            for part, values in parts.items():
                for output, column in values.items():
                    example.features.feature[f"{part}__{output}"].float_list.value.append(column[i])
            out.write(example.SerializeToString())
    given = tfma.EvalConfig()
    given.CopyFrom(config)
    del given.model_specs[:]
    given.model_specs.add(name=candidate.name, label_keys={o: f"label__{o}" for o in rows.labels},
                          prediction_keys={o: f"prediction__{o}" for o in rows.predictions},
                          example_weight_keys={o: f"weight__{o}" for o in rows.weights})
    tfma.run_model_analysis(eval_config=given, data_location=scored, output_path=str(tmp_path / "given"),
                            file_format="tfrecords")
    _assert_equal_metrics(ours, _load_metrics(str(tmp_path / "given")), rtol=1e-6)

    # 2. TFMA's own pass of the model, overall.
    overall = tfma.EvalConfig()
    overall.CopyFrom(config)
    del overall.slicing_specs[:]
    overall.slicing_specs.add()
    tfma.run_model_analysis(eval_shared_model=tfma.default_eval_shared_model(eval_saved_model_path=model,
                                                                              eval_config=overall),
                            eval_config=overall, data_location=data, output_path=str(tmp_path / "model"),
                            file_format="tfrecords")
    _assert_equal_metrics({k: v for k, v in ours.items() if k[0] == "Overall"},
                          _load_metrics(str(tmp_path / "model")), rtol=1e-5, order_atol=0.01)
