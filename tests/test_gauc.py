"""GAUC and ECE: the TFMA combiners against values computed by hand, and through a real TFMA run."""

import json

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types

from components import ece, gauc
from mtrank import metrics as metrics_lib

# Three users. u1: labels 1,0,0 with predictions .9,.2,.5 -> every positive above every negative: AUC 1.
# u2: labels 0,1,1,0 with predictions .8,.3,.6,.1 -> pairs (pos, neg): (.3,.8) lose, (.3,.1) win,
#     (.6,.8) lose, (.6,.1) win -> AUC 2/4 = 0.5.
# u3: labels 1,1 only -> one class, skipped.
# GAUC = (3·1.0 + 4·0.5) / (3 + 4) = 5/7.
USERS = ["u1", "u1", "u1", "u2", "u2", "u2", "u2", "u3", "u3"]
LABELS = [1, 0, 0, 0, 1, 1, 0, 1, 1]
PREDICTIONS = [0.9, 0.2, 0.5, 0.8, 0.3, 0.6, 0.1, 0.7, 0.4]
HAND_GAUC = 5 / 7


def test_gauc_function_matches_the_hand_computation():
    value, used = gauc.gauc(USERS, LABELS, PREDICTIONS)
    assert value == pytest.approx(HAND_GAUC)
    assert used == 2


def _inputs(group_key="user_id"):
    for user, label, prediction in zip(USERS, LABELS, PREDICTIONS):
        yield metric_types.StandardMetricInputs(
            labels=np.array([label], dtype=np.float32), predictions=np.array([prediction], dtype=np.float32),
            example_weights=np.array([1.0], dtype=np.float32), features={group_key: np.array([user.encode()])})


def _run_combiner(computation, elements, split_at=4):
    """Runs a TFMA combiner as Beam would: two partial accumulators, merged, then the output."""
    combiner = computation.combiner
    parts = [combiner.create_accumulator(), combiner.create_accumulator()]
    for i, element in enumerate(elements):
        j = int(i >= split_at)
        parts[j] = combiner.add_input(parts[j], element)
    return combiner.extract_output(combiner.merge_accumulators(parts))


def test_gauc_tfma_combiner_matches_the_hand_computation():
    (computation,) = gauc.GAUC(group_key="user_id").computations(example_weighted=False)
    out = _run_combiner(computation, _inputs())
    values = {k.name: v for k, v in out.items()}
    assert values["gauc"] == pytest.approx(HAND_GAUC)
    assert values["gauc_groups"] == 2


def test_gauc_names_the_missing_group_column():
    (computation,) = gauc.GAUC(group_key="session_id").computations(example_weighted=False)
    with pytest.raises(ValueError, match="session_id"):
        _run_combiner(computation, _inputs())


def test_ece_matches_the_hand_computation():
    # 2 bins: [0, .5) holds predictions .2, .1, .3, .4 with labels 0, 0, 1, 1 -> |1.0 - 2| = 1.0
    #         [.5, 1] holds .9, .5, .8, .6, .7 with labels 1, 0, 0, 1, 1 -> |3.5 - 3| = 0.5
    # ECE = (1.0 + 0.5) / 9
    hand = 1.5 / 9
    assert ece.expected_calibration_error(LABELS, PREDICTIONS, num_bins=2) == pytest.approx(hand)
    # Derived from TFMA's calibration histogram: its combiner, then the regrouping into 2 bins.
    histogram, derived = ece.ExpectedCalibrationError(num_bins=2).computations(example_weighted=False)
    out = derived.result(_run_combiner(histogram, _inputs()))
    assert next(iter(out.values())) == pytest.approx(hand)


@pytest.mark.integration
def test_gauc_and_ece_run_inside_tfma(tmp_path):
    """A real TFMA run (predictions read from the data, no model): the configured metrics come out per slice."""
    import tensorflow as tf

    path = str(tmp_path / "data.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for user, label, prediction in zip(USERS, LABELS, PREDICTIONS):
            feature = {"user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
                       "label": tf.train.Feature(float_list=tf.train.FloatList(value=[label])),
                       "prediction": tf.train.Feature(float_list=tf.train.FloatList(value=[prediction]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="GAUC", module="components.gauc", config=json.dumps({"group_key": "user_id"})),
            tfma.MetricConfig(class_name="ExpectedCalibrationError", module="components.ece",
                              config=json.dumps({"num_bins": 2}))])])
    result = tfma.run_model_analysis(eval_config=config, data_location=path, output_path=str(tmp_path / "out"))
    (_, by_output), = result.slicing_metrics
    values = {k: v["doubleValue"] for k, v in by_output[""][""].items()}
    assert values["gauc"] == pytest.approx(HAND_GAUC)
    assert values["expected_calibration_error"] == pytest.approx(1.5 / 9)


def test_our_auc_equals_sklearns_with_ties_and_is_nan_on_one_class():
    """mtrank.metrics.auc exists for speed (its docstring); it must give sklearn's answer."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    for n in (7, 50, 5000):
        labels = rng.random(n) < 0.3
        labels[:2] = [True, False]
        scores = np.round(rng.random(n), 1)  # many ties
        assert metrics_lib.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert np.isnan(metrics_lib.auc(np.zeros(5), rng.random(5)))
