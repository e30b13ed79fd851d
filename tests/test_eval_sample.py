"""EvalSample: a large evaluated day reaches the Evaluator as a bounded, repeatable, uniform sample."""

import os

import numpy as np
import pytest
import tensorflow as tf

from components import eval_sample


def _write_split(root, n: int, split: str = "eval") -> None:
    os.makedirs(os.path.join(root, f"Split-{split}"))
    path = os.path.join(root, f"Split-{split}", "data_tfrecord-00000-of-00001.gz")
    with tf.io.TFRecordWriter(path, options=tf.io.TFRecordOptions(compression_type="GZIP")) as w:
        for i in range(n):
            ex = tf.train.Example(features=tf.train.Features(feature={
                "row": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
                "request": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"r{i // 10}".encode()])),
                "click": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(i % 10 == 0)]))}))
            w.write(ex.SerializeToString())


def _rows(root, split: str = "eval"):
    files = tf.io.gfile.glob(os.path.join(root, f"Split-{split}", "*"))
    return [tf.train.Example.FromString(r).features.feature["row"].int64_list.value[0]
            for r in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator()]


@pytest.mark.integration
def test_a_large_day_is_cut_to_about_max_rows_the_same_way_every_time(tmp_path):
    _write_split(tmp_path / "in", 20_000)
    total, kept = eval_sample.sample_split(str(tmp_path / "in"), str(tmp_path / "a"), "eval", 4_000)
    assert total == 20_000 and 3_600 <= kept <= 4_400
    rows = _rows(tmp_path / "a")
    assert len(rows) == kept == len(set(rows))
    eval_sample.sample_split(str(tmp_path / "in"), str(tmp_path / "b"), "eval", 4_000)
    assert _rows(tmp_path / "b") == rows  # a re-run evaluates the same rows
    # Uniform over the day: the kept rows are spread over it, and the label rate is the day's.
    assert np.histogram(rows, bins=4, range=(0, 20_000))[0].min() > 0.2 * kept
    assert abs(np.mean([r % 10 == 0 for r in rows]) - 0.1) < 0.02


def test_with_a_group_column_whole_requests_are_kept_or_dropped(tmp_path):
    """The ranking metrics rank each request's list: a sample that cut lists would measure shorter ones."""
    _write_split(tmp_path / "in", 20_000)
    total, kept = eval_sample.sample_split(str(tmp_path / "in"), str(tmp_path / "out"), "eval", 4_000, "request")
    assert total == 20_000 and 3_400 <= kept <= 4_600 and kept % 10 == 0
    per_request = np.bincount(np.array(_rows(tmp_path / "out")) // 10, minlength=2_000)
    assert set(per_request.tolist()) == {0, 10}  # every request whole, or absent


def test_a_day_under_the_limit_is_evaluated_whole(tmp_path):
    _write_split(tmp_path / "in", 500)
    assert eval_sample.sample_split(str(tmp_path / "in"), str(tmp_path / "out"), "eval", 4_000) == (500, 500)
    assert sorted(_rows(tmp_path / "out")) == list(range(500))


def test_a_missing_split_is_named(tmp_path):
    _write_split(tmp_path / "in", 10, split="train_1")
    try:
        eval_sample.sample_split(str(tmp_path / "in"), str(tmp_path / "out"), "eval", 5)
    except FileNotFoundError as e:
        assert "Split-eval" in str(e)
    else:
        raise AssertionError("a missing split must be an error")
