"""The Trainer's fast input path and the benchmark's baseline: what the throughput figures rest on."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components import trainer
from mtrank import config as config_lib
from mtrank.models import builder


def _arrays(n: int):
    features = {"a_xf": np.arange(n, dtype=np.float32), "b_xf": np.arange(n, dtype=np.int64) % 7}
    labels = {"click": (np.arange(n) % 2).astype(np.float32)[:, None]}
    return features, labels


def test_in_memory_dataset_serves_every_row_once_per_epoch_in_a_new_order():
    ds = trainer.in_memory_dataset(_arrays(1000), batch_size=128, shuffle=True, seed=3)
    assert int(ds.cardinality()) == 8  # known length: what steps_per_execution > 1 needs
    epochs = [np.concatenate([f["a_xf"] for f, _ in ds.as_numpy_iterator()]) for _ in range(2)]
    for rows in epochs:
        assert sorted(rows.tolist()) == list(range(1000))  # each row once, none lost at the last partial batch
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled every epoch
    assert not np.array_equal(epochs[0], np.arange(1000))


def test_in_memory_dataset_keeps_features_and_labels_of_a_row_together():
    for features, labels in trainer.in_memory_dataset(_arrays(300), 64, shuffle=True, seed=0).as_numpy_iterator():
        np.testing.assert_array_equal(labels["click"][:, 0], features["a_xf"] % 2)
        np.testing.assert_array_equal(features["b_xf"], features["a_xf"].astype(np.int64) % 7)


@pytest.mark.integration
def test_several_steps_per_call_give_the_same_weights_as_one():
    """steps_per_execution changes how often Python runs, not the maths: same batches, same updates."""
    x = np.random.default_rng(0).normal(size=(512, 4)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")

    def fit(steps_per_execution):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", steps_per_execution=steps_per_execution)
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
        return model.get_weights()

    for one, many in zip(fit(1), fit(8)):
        np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-6)


def test_the_nan_guard_still_checks_when_steps_come_in_chunks():
    guard = trainer.StopOnNonFiniteLoss(every=25)
    guard.on_train_batch_end(0, {"loss": 0.5})
    guard.on_train_batch_end(31, {"loss": 0.4})  # with 32 steps per call Keras reports steps 31, 63, ...
    with pytest.raises(FloatingPointError, match="step 63"):
        guard.on_train_batch_end(63, {"loss": float("nan")})


def test_the_benchmark_baseline_is_the_same_model_written_naively():
    """The throughput ratio compares implementations, so both must be the same MMoE: same parameter count,
    same outputs, gates that sum to one."""
    from bench import trainer_throughput

    cfg = config_lib.load()
    cards = builder.default_cardinalities(cfg)
    project = builder.build(cfg, cards)
    naive_cfg = cfg.replace(model=dataclasses.replace(cfg.model, architecture=trainer_throughput.NAIVE))
    naive = builder.build(naive_cfg, cards)
    assert naive.model.count_params() == project.model.count_params()
    assert sorted(naive.model.output_names) == sorted(project.model.output_names)
    inputs = {name: tf.zeros([5], dtype=t.dtype) for name, t in naive.model.input.items()}
    for weights in naive.gates(inputs).values():
        np.testing.assert_allclose(weights.numpy().sum(axis=-1), 1.0, rtol=1e-5)


def test_a_warm_run_fits_on_the_newest_days_of_the_window_only():
    """`model.warm_start_days`: the Trainer's train splits come newest first (train_1 is the day before the
    evaluated one), so a warm run with 1 fits on yesterday alone; a cold run and 0 fit on the whole window."""
    from components import window

    assert window.train_splits(3) == ["train_1", "train_2", "train_3"]
    files = [f"transformed/Split-{split}/*" for split in window.train_splits(3)]
    cfg = config_lib.load()
    newest = cfg.replace(model=dataclasses.replace(cfg.model, warm_start_days=1))
    assert trainer.fit_files(newest, files, warm=True) == ["transformed/Split-train_1/*"]
    assert trainer.fit_files(newest, files, warm=False) == files
    whole = cfg.replace(model=dataclasses.replace(cfg.model, warm_start_days=0))
    assert trainer.fit_files(whole, files, warm=True) == files
