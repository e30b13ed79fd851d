"""A warm start restores each category's own row, on two days whose vocabularies Transform ordered
differently (issue 15): the previous day's model is saved as the Trainer saves it (its vocabularies travel
as SavedModel assets), the next day's model reads it through the Trainer's own restore."""

import dataclasses

import numpy as np
import pytest
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils

import tensorflow as tf

import transform_support
from components import trainer, transform_in_memory, warm_start
from mtrank import config as config_lib
from mtrank.export_contract import OPTIMIZER_STATE_FILE
from mtrank.models import builder, layers

pytestmark = pytest.mark.integration  # every test here runs Transform or trains

# Frequencies per day: the order flips, one category disappears, one arrives.
DAY_ONE = {"user_segment": {"s1": 60, "s2": 30, "s3": 10}, "category": {"c1": 50, "c2": 30, "c3": 15, "c4": 5},
           "device": {"mobile": 70, "desktop": 30}}
DAY_TWO = {"user_segment": {"s3": 55, "s2": 35, "s1": 10}, "category": {"c4": 45, "c3": 30, "c2": 20, "c5": 5},
           "device": {"mobile": 70, "desktop": 30}}


def _rows(counts, seed):
    rng = np.random.default_rng(seed)
    n = sum(counts["device"].values())
    columns = {name: rng.permutation([v for v, k in values.items() for _ in range(k)]) for name, values in counts.items()}
    rows = []
    for i in range(n):
        row = {name: [str(columns[name][i]).encode()] for name in counts}
        row.update(hour=[int(rng.integers(0, 24))], price=[float(rng.uniform(1, 100))], click=[int(rng.random() < 0.2)],
                   purchase=[0], dwell_seconds=[float(rng.uniform(0, 60))],
                   user_id=[f"u{rng.integers(0, 40)}".encode()], item_id=[f"i{rng.integers(0, 25)}".encode()])
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def cfg(cfg):  # overrides the session fixture, reading it
    """The default configuration, with a per-value bias on category: its rows are remapped too."""
    return cfg.replace(features=[dataclasses.replace(f, bias=True, l2=1e-4) if f.name == "category" else f
                                 for f in cfg.features])


def _far_from_fresh(model):
    """Weights far from any fresh draw, so a restored value is unmistakable."""
    for variable in model.weights:
        value = np.random.default_rng(3).normal(size=variable.shape)
        # the ids' admission counts (layers.IdAdmission) are integers: they are restored like any weight
        variable.assign((100 * np.abs(value)).astype(np.int64) if variable.dtype.is_integer else value.astype("float32"))


@pytest.fixture(scope="module")
def days(cfg, tmp_path_factory):
    schema = io_utils.parse_pbtxt_file(cfg.resolve_path(cfg.data.schema), schema_pb2.Schema())
    root = tmp_path_factory.mktemp("warm")
    one = transform_support.analyze_rows(cfg, schema, _rows(DAY_ONE, 1), str(root / "transform_one"))
    two, two_rows, _ = transform_in_memory.analyze_and_transform(cfg, schema, _rows(DAY_TWO, 2), str(root / "transform_two"))
    net = builder.build(cfg, trainer.cardinalities(cfg, one))
    _far_from_fresh(net.model)
    served = str(root / "served")
    net.model.save(served, save_format="tf", signatures=trainer.serving_signatures(cfg, net.model, one))
    return {"one": one, "two": two, "two_rows": two_rows, "saved": net.model, "served": served}


def _table(model, cfg, name, bias=False):
    feature = next(f for f in cfg.features if f.name == name)
    layer = layers.bias_layer_name(feature) if bias else layers.embedding_layer_name(feature)
    return model.get_layer(layer).embeddings.numpy()


def _restore_into_day_two(cfg, days, net=None, **kwargs):
    sizes = trainer.cardinalities(cfg, days["two"])
    net = net or builder.build(cfg, sizes)
    fresh = [v.numpy() for v in net.model.weights]
    start = warm_start.restore(net.model, days["served"], vocabularies=trainer.vocabularies(cfg, days["two"]),
                               build_twin=lambda old: builder.build(cfg, {**sizes, **old}).model, **kwargs)
    return net.model, fresh, start


def test_each_category_gets_back_its_own_row_after_the_frequency_order_changed(cfg, days):
    model, fresh, start = _restore_into_day_two(cfg, days)
    assert start.warm, start.reason
    for name in ("user_segment", "category"):
        old = days["one"].vocabulary_by_name(name)
        new = days["two"].vocabulary_by_name(name)
        assert old != new  # the premise: Transform ordered the two days differently
        before, after = _table(days["saved"], cfg, name), _table(model, cfg, name)
        fresh_table = fresh[[v.name for v in model.weights].index(
            model.get_layer(f"embed_{name}").embeddings.name)]
        for i, token in enumerate(new):
            if token in old:
                np.testing.assert_array_equal(after[i], before[old.index(token)], err_msg=f"{name} {token!r}")
            else:  # a category first seen today keeps the fresh row it was given
                np.testing.assert_array_equal(after[i], fresh_table[i], err_msg=f"{name} new {token!r}")
        np.testing.assert_array_equal(after[len(new):], before[len(old):])  # OOV buckets keep their rows
    bias_before, bias_after = _table(days["saved"], cfg, "category", True), _table(model, cfg, "category", True)
    old, new = days["one"].vocabulary_by_name("category"), days["two"].vocabulary_by_name("category")
    for i, token in enumerate(new):  # the per-value bias rows follow their category as the embeddings do
        if token in old:
            np.testing.assert_array_equal(bias_after[i], bias_before[old.index(token)])
    assert start.remapped["category"] == {"kept": 3, "moved": 3, "new": 1, "dropped": 1}
    assert start.remapped["user_segment"] == {"kept": 3, "moved": 2, "new": 0, "dropped": 0}
    assert start.remapped["device"]["moved"] == 0


def test_the_warm_run_moves_only_the_rows_its_batches_look_up(cfg, days):
    """With a fresh Adam (a model in production exported without optimizer state), a row that no batch of
    today's run looks up keeps exactly the value it was restored with. The rows today's batches do look up
    learn; the lookups' L2 (`l2`) reaches those rows only. With the state restored, a warm run goes on as
    yesterday's would have had it not stopped (the test below); with `model.optimizer: lazy_adam` a row no
    batch looks up keeps its value and moments then too (tests/test_optimizers.py)."""
    net = builder.build(cfg, trainer.cardinalities(cfg, days["two"]))
    model, _, start = _restore_into_day_two(cfg, days, net=net)
    assert start.warm, start.reason
    restored = {name: _table(model, cfg, name) for name in ("category", "user_segment")}
    trainee = trainer.compile_for_training(cfg, net)
    batch = {k: tf.constant(v) for k, v in transform_in_memory.arrays_of(days["two_rows"]).items()}
    trainee.fit(tf.data.Dataset.from_tensor_slices(trainer.split_labels(cfg, batch)).batch(16), epochs=2, verbose=0)
    for name, before in restored.items():
        after = _table(model, cfg, name)
        seen = len(days["two"].vocabulary_by_name(name))  # every value of today's vocabulary is in today's rows
        assert (np.abs(after[:seen] - before[:seen]).max(axis=1) > 0).all(), name  # looked up: learned
        np.testing.assert_array_equal(after[seen:], before[seen:], err_msg=f"{name}: rows no batch looked up")


def test_every_other_weight_is_restored_as_it_was(cfg, days):
    model, _, start = _restore_into_day_two(cfg, days)
    remapped = [n for n, counts in start.remapped.items() if counts["moved"] or counts["new"] or counts["dropped"]]
    assert "device" not in remapped  # its vocabulary did not change: its table is restored as it was, too
    tables = {model.get_layer(layer).embeddings.name for f in cfg.features if f.name in remapped
              for layer in layers.value_tables(f)}
    compared = 0
    for old, new in zip(days["saved"].weights, model.weights):
        if new.name not in tables:
            np.testing.assert_array_equal(new.numpy(), old.numpy(), err_msg=new.name)
            compared += 1
    assert compared >= 10


def test_unchanged_vocabularies_restore_without_a_twin(cfg, days):
    net = builder.build(cfg, trainer.cardinalities(cfg, days["one"]))
    start = warm_start.restore(net.model, days["served"], vocabularies=trainer.vocabularies(cfg, days["one"]))
    assert start.warm and "remapped" not in start.reason
    np.testing.assert_array_equal(_table(net.model, cfg, "category"), _table(days["saved"], cfg, "category"))


def test_a_model_whose_shape_changed_starts_cold_and_untouched(cfg, days):
    other = cfg.replace(model=dataclasses.replace(cfg.model, expert_units=[16]))
    sizes = trainer.cardinalities(other, days["two"])
    net = builder.build(other, sizes)
    fresh = [v.numpy() for v in net.model.weights]
    start = warm_start.restore(net.model, days["served"], vocabularies=trainer.vocabularies(other, days["two"]),
                               build_twin=lambda old: builder.build(other, {**sizes, **old}).model)
    assert not start.warm and "does not fit" in start.reason
    for value, variable in zip(fresh, net.model.weights):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_a_model_in_production_with_weights_per_pair_warm_starts_the_per_dimension_model_scoring_as_it(
        cfg, days, tmp_path, caplog):
    """Switching `interaction_weights` from pair to dimension keeps what the chain learned (a cold start
    would reset the ids' counts and be refused against the model in production day after day): the
    per-dimension model starts from the production model and scores today's rows as that model does."""
    pair = cfg.replace(model=dataclasses.replace(cfg.model, interaction_weights="pair"))
    dimension = cfg.replace(model=dataclasses.replace(cfg.model, interaction_weights="dimension"))
    production = builder.build(pair, trainer.cardinalities(pair, days["one"]))
    _far_from_fresh(production.model)
    served = str(tmp_path / "pair")
    production.model.save(served, save_format="tf", signatures=trainer.serving_signatures(pair, production.model,
                                                                                            days["one"]))
    sizes = trainer.cardinalities(cfg, days["two"])
    as_pair, as_dimension = builder.build(pair, sizes).model, builder.build(dimension, sizes).model
    assert trainer.restore_warm(pair, as_pair, served, sizes, days["two"]).warm
    start = trainer.restore_warm(dimension, as_dimension, served, sizes, days["two"])
    assert start.warm and "carried over as per dimension" in start.reason, start.reason
    assert "does not fit" not in caplog.text  # the log does not report a cold start that did not happen
    assert start.remapped["category"]["moved"] == 3  # rows still follow their category
    rows = transform_in_memory.arrays_of(days["two_rows"])
    x = {f.transformed_name: tf.constant(rows[f.transformed_name]) for f in cfg.features}
    want, got = as_pair(x), as_dimension(x)
    for name in want:
        np.testing.assert_allclose(got[name].numpy(), want[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    fresh = builder.build(dimension, sizes).model(x)["click"].numpy()
    assert not np.allclose(fresh, want["click"].numpy(), atol=1e-3)  # a cold model would have scored otherwise
    ids = [f.name for f in cfg.features if f.kind == "id"]
    assert any(as_dimension.get_layer(layers.admission_layer_name(f)).admitted() for f in cfg.features
               if f.name in ids)  # the ids' counts came along


def _fit(cfg, trainee, rows, epochs=1):
    batch = {k: tf.constant(v) for k, v in transform_in_memory.arrays_of(rows).items()}
    trainee.fit(tf.data.Dataset.from_tensor_slices(trainer.split_labels(cfg, batch)).batch(16), epochs=epochs,
                verbose=0)


def _warm_from(cfg, days, served, moments=True):
    """A model for day two, warm-started as the Trainer does: weights, then the optimizer's state (unless
    `moments` is false: a fresh Adam)."""
    sizes = trainer.cardinalities(cfg, days["two"])
    net = builder.build(cfg, sizes)
    trainee = trainer.compile_for_training(cfg, net)
    start = warm_start.restore(net.model, served, vocabularies=trainer.vocabularies(cfg, days["two"]),
                               build_twin=lambda old: builder.build(cfg, {**sizes, **old}).model)
    return net, trainee, start, warm_start.restore_moments(trainee, net.model, start) if moments else None


def test_a_warm_start_with_the_optimizer_state_goes_on_as_if_the_run_had_never_stopped(cfg, days, tmp_path):
    """Yesterday's run, saved with its optimizer state and warm-started, trains on today's rows to the very
    weights the same run reaches had it never stopped. A fresh Adam on the same restored weights does not:
    the state is what makes the difference."""
    net = builder.build(cfg, trainer.cardinalities(cfg, days["two"]))
    trainee = trainer.compile_for_training(cfg, net)
    _fit(cfg, trainee, days["two_rows"])
    served = str(tmp_path / "served")
    net.model.save(served, save_format="tf", signatures=trainer.serving_signatures(cfg, net.model, days["two"]))
    warm_start.save_moments(net.model, trainee.optimizer, served, warm_runs=3)

    restored, restored_trainee, start, moments = _warm_from(cfg, days, served)
    assert start.warm and moments.restored, moments.reason
    assert (moments.warm_runs, moments.iterations) == (3, int(trainee.optimizer.iterations.numpy()))
    fresh_adam, fresh_trainee, _, _ = _warm_from(cfg, days, served, moments=False)
    for model in (trainee, restored_trainee, fresh_trainee):  # the same batches, in the same order
        _fit(cfg, model, days["two_rows"])
    for went_on, warm in zip(net.model.weights, restored.model.weights):
        np.testing.assert_allclose(warm.numpy(), went_on.numpy(), rtol=1e-5, atol=1e-6, err_msg=warm.name)
    table = layers.embedding_layer_name(next(f for f in cfg.features if f.name == "category"))
    assert not np.allclose(fresh_adam.model.get_layer(table).embeddings.numpy(),
                           net.model.get_layer(table).embeddings.numpy(), atol=1e-4)


def _served_with_moments(cfg, days, path):
    """Day one's model, saved as the Trainer saves it, with optimizer moments far from zero and 500 steps."""
    net = builder.build(cfg, trainer.cardinalities(cfg, days["one"]))
    _far_from_fresh(net.model)
    trainee = trainer.compile_for_training(cfg, net)
    trainee.optimizer.build(trainee.trainable_variables)
    for i, variable in enumerate(trainee.optimizer.variables[1:]):  # the moments, far from zero
        variable.assign(np.random.default_rng(i).uniform(1, 2, size=variable.shape).astype("float32"))
    trainee.optimizer.iterations.assign(500)
    net.model.save(str(path), save_format="tf", signatures=trainer.serving_signatures(cfg, net.model, days["one"]))
    warm_start.save_moments(net.model, trainee.optimizer, str(path), warm_runs=0)
    return net, trainee


def test_the_optimizer_state_of_each_category_follows_its_row_when_the_order_changed(cfg, days, tmp_path):
    """Adam's moments are remapped by token as the rows are: a category keeps its own moments wherever
    today's vocabulary puts it; a category new today starts at zero."""
    served = tmp_path / "served"
    net, trainee = _served_with_moments(cfg, days, served)
    restored, restored_trainee, start, moments = _warm_from(cfg, days, str(served))
    assert moments.restored and "remapped" in start.reason, start.reason
    for name in ("user_segment", "category"):
        old, new = days["one"].vocabulary_by_name(name), days["two"].vocabulary_by_name(name)
        table = layers.embedding_layer_name(next(f for f in cfg.features if f.name == name))
        before = warm_start._moments(trainee.optimizer, net.model.get_layer(table).embeddings)
        after = warm_start._moments(restored_trainee.optimizer, restored.model.get_layer(table).embeddings)
        for slot_before, slot_after in zip(before, after):
            for i, token in enumerate(new):
                want = slot_before.numpy()[old.index(token)] if token in old else 0.0
                np.testing.assert_array_equal(slot_after.numpy()[i], want, err_msg=f"{name} {token!r}")


def test_a_warm_run_rate_shrinks_with_the_warm_runs_behind_its_model(cfg):
    decaying = cfg.replace(model=dataclasses.replace(cfg.model, warm_start_learning_rate=0.004, warm_start_decay=0.5),
                           data=dataclasses.replace(cfg.data, train_days=2))
    trainee = trainer.compile_for_training(decaying, builder.build(decaying, builder.default_cardinalities(decaying)))
    assert trainer.learning_rate(decaying, trainee, warm=True, warm_runs=0) == pytest.approx(0.004)
    assert trainer.learning_rate(decaying, trainee, warm=True, warm_runs=6) == pytest.approx(0.004 * 0.5)
    assert float(trainee.optimizer.learning_rate.numpy()) == pytest.approx(0.002)
    assert trainer.learning_rate(decaying, trainee, warm=False, warm_runs=6) == pytest.approx(
        decaying.model.learning_rate)
    # a year of daily runs: the floor (warm_start_decay_floor, a share of the warm rate), not 0.07 of it
    assert trainer.learning_rate(decaying, trainee, warm=True, warm_runs=365) == pytest.approx(
        0.004 * decaying.model.warm_start_decay_floor)


def test_a_damaged_optimizer_state_gives_a_fresh_adam_and_the_run_goes_on(cfg, days, tmp_path, caplog):
    served = tmp_path / "served"
    _served_with_moments(cfg, days, served)
    (served / OPTIMIZER_STATE_FILE).write_bytes(b"PK\x03\x04 truncated by a failed copy")
    net, trainee, start, moments = _warm_from(cfg, days, str(served))
    assert start.warm and not moments.restored and "cannot be read" in moments.reason
    assert "cannot be read" in caplog.text
    assert all(not np.any(v.numpy()) for v in trainee.optimizer.variables)  # nothing half-filled: a fresh Adam
    _fit(cfg, trainee, days["two_rows"])  # and the run trains


def test_with_a_weight_whose_moments_start_at_zero_the_step_count_is_not_carried(cfg, days, tmp_path):
    """The position tower is trained but never exported, so its moments cannot come back. Adam's bias
    correction is global: carried at 500 steps, it would be off, and the tower's first steps would be
    several times the rate. The serving weights' moments still come back; the step count restarts."""
    served = tmp_path / "served"
    _served_with_moments(cfg, days, served)
    biased = cfg.replace(model=dataclasses.replace(
        cfg.model, position_bias=config_lib.PositionBiasSpec(column="position", task="click")))
    net, trainee, start, moments = _warm_from(biased, days, str(served))
    assert start.warm and moments.restored, moments.reason
    assert moments.iterations == 0 and int(trainee.optimizer.iterations.numpy()) == 0
    assert "not its step count" in moments.reason
    carried = warm_start._moments(trainee.optimizer, net.model.trainable_weights[-1])[1].numpy()
    assert carried.min() >= 1  # the serving weights' moments did come back
    _, everything, _, all_carried = _warm_from(cfg, days, str(served))
    assert all_carried.iterations == 500 and int(everything.optimizer.iterations.numpy()) == 500
