import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from mtrank.models import builder


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
