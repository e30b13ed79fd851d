import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from mtrank.models import builder, layers


def _batch(cfg, n=64, seed=0):
    rng = np.random.default_rng(seed)
    cards = builder.default_cardinalities(cfg)
    x = {}
    for f in cfg.features:
        if f.kind == "numeric":
            x[f.transformed_name] = rng.normal(size=n).astype(np.float32)
        else:
            x[f.transformed_name] = rng.integers(0, cards[f.name], size=n)
    click = (rng.random(n) < 0.3).astype(np.float32)
    y = {"click": click[:, None], "purchase": (click * (rng.random(n) < 0.3))[:, None].astype(np.float32),
         "dwell": (click * rng.normal(3, 1, n))[:, None].astype(np.float32)}
    return x, y, {"dwell": click}


@pytest.fixture(scope="module")
def net(cfg):
    return builder.build(cfg, builder.default_cardinalities(cfg))


def test_outputs_follow_the_configured_tasks(cfg, net):
    # The fused score is computed after the model, in the serving signatures (mtrank/fusion.py).
    assert set(net.model.output_names) == {"click", "purchase", "purchase_given_click", "dwell"}


def test_probabilities_lie_in_unit_interval_and_esmm_chains(cfg, net):
    x, _, _ = _batch(cfg)
    out = {k: v.numpy().ravel() for k, v in net.model(x).items()}
    for name in ("click", "purchase", "purchase_given_click"):
        assert np.all((out[name] >= 0) & (out[name] <= 1)), name
    np.testing.assert_allclose(out["purchase"], out["click"] * out["purchase_given_click"], rtol=1e-5)


def test_every_gate_sums_to_one(cfg, net):
    x, _, _ = _batch(cfg)
    gates = net.gates(x)
    assert set(gates) == {t.name for t in cfg.tasks}
    for name, weights in gates.items():
        assert weights.shape == (64, cfg.model.num_experts)
        np.testing.assert_allclose(weights.numpy().sum(axis=1), 1.0, rtol=1e-5, err_msg=name)


def test_experts_start_different(net):
    kernel = net.model.get_layer("experts").kernels[0].numpy()  # [D, N, U]
    for i in range(1, kernel.shape[1]):
        assert not np.allclose(kernel[:, 0, :], kernel[:, i, :])


def test_every_weight_starts_from_its_own_draw_and_repeatably(cfg, net):
    """Seeds follow weights' names (layers.weight_seed): equal-width embedding tables (user_segment and
    category, 8 wide) used to start identical row by row, as every table took `model.seed`."""
    tables = {w.name.split("/")[0]: w.numpy() for w in net.model.weights if w.name.startswith("embed_")}
    segment, category = tables["embed_user_segment"], tables["embed_category"]
    assert segment.shape[1] == category.shape[1] and not np.allclose(segment[:3], category[:3])
    drawn = [w.numpy() for w in net.model.weights if w.numpy().size > 1 and np.std(w.numpy()) > 0]
    for i, a in enumerate(drawn):
        for b in drawn[i + 1:]:
            if a.shape == b.shape:
                assert not np.allclose(a, b)
    again = builder.build(cfg, builder.default_cardinalities(cfg))  # a second build in the same process
    for a, b in zip(net.model.weights, again.model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)


@pytest.mark.integration
def test_trains_a_step_and_loss_goes_down(cfg):
    small = cfg.replace(model=dataclasses.replace(cfg.model, learning_rate=0.01))
    net = builder.build(small, builder.default_cardinalities(small))
    loss, weights = builder.losses(small)
    net.model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, loss_weights=weights)
    x, y, w = _batch(small, n=256)
    first = net.model.train_on_batch(x, y, sample_weight=w, return_dict=True)["loss"]
    for _ in range(30):
        last = net.model.train_on_batch(x, y, sample_weight=w, return_dict=True)["loss"]
    assert np.isfinite(first) and last < first * 0.8


def test_unmatched_shared_input_sizes_do_not_matter_to_task_names(cfg):
    renamed = cfg.replace(tasks=[dataclasses.replace(t, name=f"t_{t.name}",
                                                     follows=f"t_{t.follows}" if t.follows else None)
                                 for t in cfg.tasks])
    net = builder.build(renamed, builder.default_cardinalities(renamed))
    assert "t_purchase_given_t_click" in net.model.output_names


@pytest.mark.integration
def test_early_stopping_exports_the_best_epoch_not_the_last(cfg):
    """Pure-noise labels on few rows: the network memorises them, the held-out loss rises after its best
    epoch, and what training leaves in the model is that best epoch's weights."""
    from components import trainer

    small = cfg.replace(model=dataclasses.replace(cfg.model, learning_rate=0.02, early_stopping_patience=2,
                                                  steps_per_execution=1))
    net = builder.build(small, builder.default_cardinalities(small))
    model = trainer.compile_for_training(small, net)
    x, y, w = _batch(small, n=512, seed=1)
    vx, vy, vw = _batch(small, n=512, seed=2)
    stopping = trainer.early_stopping(small, held_out=True)
    history = model.fit(x, y, sample_weight=w, validation_data=(vx, vy, vw), batch_size=64, epochs=30,
                        verbose=0, callbacks=[stopping]).history
    summary = trainer.stopping_summary(small, stopping, history)
    val = history["val_loss"]
    assert summary["stopped_early"] and len(val) < 30 and summary["best_epoch"] < len(val)
    assert val[-1] > min(val)  # the last epoch was worse ...
    exported = model.evaluate(vx, vy, sample_weight=vw, verbose=0, return_dict=True)["loss"]
    assert exported == pytest.approx(min(val), rel=1e-4)  # ... and the model holds the best one
    assert summary["best"] == pytest.approx(min(val))


def test_early_stopping_stays_off_without_held_out_requests(cfg):
    from components import trainer

    on = cfg.replace(model=dataclasses.replace(cfg.model, early_stopping_patience=1))
    assert trainer.early_stopping(on, held_out=False) is None  # the evaluated day is never validated on
    assert "evaluated day" in trainer.stopping_summary(on, None, {})["reason"]
    assert trainer.early_stopping(on, held_out=True).monitor == "val_loss"
    per_task = on.replace(model=dataclasses.replace(on.model, early_stopping_monitor="purchase"))
    assert trainer.early_stopping(per_task, held_out=True).monitor == "val_purchase_loss"


@pytest.mark.integration
def test_a_value_bias_moves_only_its_own_rows_and_interactions_reach_the_logit(cfg):
    wide = cfg.replace(features=[dataclasses.replace(f, bias=True) if f.name == "category" else f for f in cfg.features],
                       model=dataclasses.replace(cfg.model, interactions=[["user_segment", "category"]]))
    net = builder.build(wide, builder.default_cardinalities(wide))
    x, _, _ = _batch(wide, n=256, seed=4)
    before = net.model.predict(x, verbose=0)
    bias = net.model.get_layer("bias_category").embeddings
    assert not bias.numpy().any()  # zero at start: a fresh model is its deep part alone
    value = int(x["category_xf"][0])
    bias.assign(tf.tensor_scatter_nd_update(bias, [[value, 0]], [3.0]))  # the click bias of one category
    after = net.model.predict(x, verbose=0)
    mine = x["category_xf"] == value
    assert (after["click"][mine] > before["click"][mine]).all()
    np.testing.assert_allclose(after["click"][~mine], before["click"][~mine], rtol=1e-6)
    dense = net.model.get_layer("interactions_click")
    dense.kernel.assign(dense.kernel * 0.0)
    assert not np.allclose(net.model.predict(x, verbose=0)["click"], after["click"])


@pytest.mark.integration
def test_per_dimension_interaction_weights_hold_the_dot_product_as_one_case(cfg):
    """`interaction_weights: dimension` gives each task a weight per coordinate of a pair's element-wise
    product; with every coordinate of a pair at that pair's dot-product weight it is the `pair` model."""
    pair = cfg.replace(model=dataclasses.replace(cfg.model, interaction_weights="pair"))
    dimension = cfg.replace(model=dataclasses.replace(cfg.model, interaction_weights="dimension"))
    cards = builder.default_cardinalities(cfg)
    dot_net, gmf_net = builder.build(pair, cards), builder.build(dimension, cards)
    widths = [next(f.embedding_dim for f in cfg.features if f.name == a) for a, _ in cfg.model.interactions]
    for layer in dot_net.model.layers:
        if layer.weights and not layer.name.startswith("interactions_"):
            gmf_net.model.get_layer(layer.name).set_weights(layer.get_weights())
    x, _, _ = _batch(cfg, n=256, seed=5)
    different = {k: v.numpy() for k, v in gmf_net.model(x).items()}
    for task in (t.name for t in cfg.tasks):
        kernel, bias = dot_net.model.get_layer(f"interactions_{task}").get_weights()
        assert gmf_net.model.get_layer(f"interactions_{task}").kernel.shape == (sum(widths), 1)
        gmf_net.model.get_layer(f"interactions_{task}").set_weights([np.repeat(kernel, widths, axis=0), bias])
    want, got = dot_net.model(x), gmf_net.model(x)
    for name, values in want.items():
        np.testing.assert_allclose(got[name].numpy(), values.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    assert any(not np.allclose(different[k], want[k].numpy(), atol=1e-6) for k in want)  # the weights mattered


@pytest.mark.integration
def test_each_task_weighs_each_coordinate_of_a_pairs_product_on_its_own(cfg):
    """With one coordinate's weight 1 and every other 0, a task's interaction term is that coordinate of
    the two rows' element-wise product: u[:, j] · v[:, j], for ids that have their own rows."""
    dimension = cfg.replace(model=dataclasses.replace(cfg.model, interaction_weights="dimension"))
    cards = builder.default_cardinalities(dimension)
    net = builder.build(dimension, cards)
    for f in dimension.features:  # every id admitted: each looks up its own row
        if layers.admits(f):
            net.model.get_layer(layers.admission_layer_name(f)).counts.assign(np.full([cards[f.name]], f.min_count))
    x, _, _ = _batch(dimension, n=128, seed=6)
    by_name = {f.name: f for f in dimension.features}
    offset = 0
    for a, b in dimension.model.interactions:
        width = by_name[a].embedding_dim
        u = net.model.get_layer(layers.embedding_layer_name(by_name[a])).embeddings.numpy()[x[by_name[a].transformed_name]]
        v = net.model.get_layer(layers.embedding_layer_name(by_name[b])).embeddings.numpy()[x[by_name[b].transformed_name]]
        for j in (0, width - 1):
            dense = net.model.get_layer("interactions_purchase")
            kernel = np.zeros(dense.kernel.shape, np.float32)
            kernel[offset + j] = 1.0
            dense.set_weights([kernel, np.zeros([1], np.float32)])
            term = keras.Model(net.model.input, dense.output)(x).numpy().ravel()
            np.testing.assert_allclose(term, u[:, j] * v[:, j], rtol=1e-5, atol=1e-7, err_msg=f"{a}·{b}[{j}]")
        offset += width
