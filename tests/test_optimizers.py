"""`model.optimizer: lazy_adam` (mtrank/models/optimizers.py): tf_keras's Adam where every row is looked
up, and rows no batch looked up left exactly as they were (value and moments), in the configured model too."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components import trainer, warm_start
from mtrank import config as config_lib
from mtrank.models import builder, layers, optimizers

ROWS, DIM = 6, 3


def _train_table(optimizer, batches, seed=0):
    """Trains a ROWS x DIM table on a loss that looks up the given rows (duplicates included): its gradient
    is an IndexedSlices, as an embedding table's. Returns the table, moments and value after each step."""
    table = tf.Variable(np.random.default_rng(seed).normal(size=(ROWS, DIM)).astype("float32"))
    target = tf.constant(np.random.default_rng(seed + 1).normal(size=(ROWS, DIM)).astype("float32"))
    after = []
    for rows in batches:
        with tf.GradientTape() as tape:
            looked_up = tf.gather(table, rows)
            loss = tf.reduce_sum(tf.square(looked_up - tf.gather(target, rows)) * tf.range(1.0, len(rows) + 1)[:, None])
        gradient = tape.gradient(loss, table)
        assert isinstance(gradient, tf.IndexedSlices)
        optimizer.apply_gradients([(gradient, table)])
        m, v = warm_start._moments(optimizer, table)
        after.append((table.numpy().copy(), m.numpy().copy(), v.numpy().copy()))
    return after


def test_with_every_row_looked_up_on_every_step_lazy_adam_is_adam():
    batches = [[0, 1, 2, 3, 4, 5, 2, 2], [5, 4, 3, 2, 1, 0], [1, 0, 3, 2, 5, 4, 4]] * 3
    lazy = _train_table(optimizers.LazyAdam(0.05), batches)
    adam = _train_table(keras.optimizers.Adam(0.05), batches)
    for step, (a, b) in enumerate(zip(lazy, adam)):
        for what, x, y in zip(("table", "m", "v"), a, b):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7, err_msg=f"step {step + 1}: {what}")


def test_a_row_no_batch_looks_up_keeps_its_value_and_moments_where_adam_moves_it():
    batches = [[0, 1, 2, 3], [0, 1], [0, 0, 1]]
    lazy = _train_table(optimizers.LazyAdam(0.05), batches)
    adam = _train_table(keras.optimizers.Adam(0.05), batches)
    first, last = lazy[0], lazy[-1]
    for x, y in zip(first, last):
        np.testing.assert_array_equal(y[2:], x[2:])  # rows 2..5: as after the first step (4, 5: never seen)
        assert np.abs(y[:2] - x[:2]).min() > 0  # rows 0 and 1: looked up, moved
    assert np.abs(adam[-1][0][2:4] - adam[0][0][2:4]).min() > 0  # Adam's momentum kept moving rows 2 and 3


def test_the_optimizer_is_built_by_name_and_an_unknown_name_is_refused(cfg):
    assert isinstance(optimizers.build("lazy_adam", 0.01), optimizers.LazyAdam)
    assert type(optimizers.build("adam", 0.01)) is keras.optimizers.Adam
    with pytest.raises(config_lib.ConfigError, match="model.optimizer 'sgd' is unknown"):
        config_lib.validate(cfg.replace(model=dataclasses.replace(cfg.model, optimizer="sgd")))


def _fit_one_batch(cfg, users):
    """The configured model, compiled as the Trainer compiles it, with Adam's moments far from zero and 500
    steps behind it (a warm run's restored state), fitted on one batch whose user_id looks up `users`."""
    cards = {**builder.default_cardinalities(cfg), **{f.name: 2000 for f in cfg.features if f.kind == "id"}}
    net = builder.build(cfg, cards)
    trainee = trainer.compile_for_training(cfg, net)
    trainee.optimizer.build(trainee.trainable_variables)
    for i, variable in enumerate(trainee.optimizer.variables[1:]):
        variable.assign(np.random.default_rng(i).uniform(0.1, 0.2, size=variable.shape).astype("float32"))
    trainee.optimizer.iterations.assign(500)
    user = next(f for f in cfg.features if f.name == "user_id")
    admission = net.model.get_layer(layers.admission_layer_name(user))
    admission.counts.assign(np.full(admission.counts.shape, user.min_count, np.int64))  # every id admitted
    rng, n = np.random.default_rng(0), len(users)
    x = {f.transformed_name: (rng.normal(size=n).astype("float32") if f.kind == "numeric"
                              else rng.integers(0, cards[f.name], size=n)) for f in cfg.features}
    x[user.transformed_name] = np.asarray(users, np.int64)
    y = {t.name: (rng.random((n, 1)) < 0.3).astype("float32") for t in cfg.tasks}
    table = net.model.get_layer(layers.embedding_layer_name(user)).embeddings
    before = table.numpy().copy()
    trainee.fit(x, y, batch_size=n, epochs=1, verbose=0)
    return before, table.numpy(), warm_start._moments(trainee.optimizer, table)


@pytest.mark.integration
def test_the_configured_model_moves_only_the_id_rows_its_batch_looked_up(cfg):
    """Through the configured model (admission, FM terms, the lookups' L2): its id tables' gradients reach the
    optimizer sparse, so lazy_adam leaves every other row and its moments as they were. Those moments are far
    from zero, so a dense step (tf_keras's Adam, or a gradient that reached the table dense) would move every
    row: tests above."""
    assert cfg.model.optimizer == "lazy_adam"
    users = [3, 17, 17, 250]
    before, after, (m, v) = _fit_one_batch(cfg, users)
    others = np.setdiff1d(np.arange(len(before)), users)
    np.testing.assert_array_equal(after[others], before[others])
    assert np.all(np.abs(after[users] - before[users]).max(axis=1) > 0)
    for slot in (m.numpy(), v.numpy()):  # a moment not looked up: still the value it was given
        assert np.all((slot[others] >= 0.1) & (slot[others] <= 0.2))
