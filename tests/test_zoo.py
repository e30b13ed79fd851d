"""The model zoo: every architecture builds from the configuration, trains, and exports the same outputs.

Training runs eagerly (`run_eagerly=True`): for a few steps on a tiny batch that is several times faster
than tracing a graph per architecture, and it runs the same layers.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from mtrank import config as config_lib
from mtrank.models import builder, diagnostics, layers

POSITION = config_lib.PositionBiasSpec(column="position", task="click", num_buckets=10)
ZOO = {  # name -> model settings on top of the default configuration
    "shared_bottom": dict(architecture="shared_bottom"),
    "omoe": dict(architecture="omoe"),
    "mmoe": dict(architecture="mmoe", gate_units=[8]),  # the gate-network variant
    "cgc": dict(architecture="cgc", task_experts=2),
    "ple": dict(architecture="ple", task_experts=1, levels=2),
}


def _with(cfg, **model):
    return cfg.replace(model=dataclasses.replace(cfg.model, **model))


def _batch(cfg, n=64, seed=0):
    """Transformed features, labels and sample weights for whatever tasks the configuration names."""
    rng = np.random.default_rng(seed)
    cards = builder.default_cardinalities(cfg)
    x = {f.transformed_name: (rng.normal(size=n).astype(np.float32) if f.kind == "numeric"
                              else rng.integers(0, cards[f.name], size=n)) for f in cfg.features}
    if cfg.model.position_bias is not None:
        x[cfg.model.position_bias.transformed_name] = rng.integers(1, 15, size=n)
    y = {}
    for t in cfg.tasks:
        if t.type == "regression":
            y[t.name] = rng.normal(3, 1, (n, 1)).astype(np.float32)
        else:
            y[t.name] = (rng.random((n, 1)) < 0.3).astype(np.float32)
            if t.follows:
                y[t.name] *= y[t.follows]
    by_label = {t.label: y[t.name][:, 0] for t in cfg.tasks}
    w = {t.name: by_label.get(t.weight_by, np.ones(n, np.float32)) for t in cfg.tasks if t.weight_by}
    return x, y, w


def _train(cfg, net, steps=5, n=64):
    loss, weights = builder.losses(cfg, net)
    net.trainee.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, loss_weights=weights, run_eagerly=True)
    x, y, w = _batch(cfg, n=n)
    logs = [net.trainee.train_on_batch(x, y, sample_weight=w, return_dict=True) for _ in range(steps)]
    return x, logs


def _expert_kernels(net):
    return {layer.name: layer.kernels[0].numpy() for layer in net.model.layers if isinstance(layer, layers.Experts)}


@pytest.fixture(scope="module", params=sorted(ZOO))
def trained(request, cfg):
    arch_cfg = _with(cfg, position_bias=POSITION, **ZOO[request.param])
    net = builder.build(arch_cfg, builder.default_cardinalities(arch_cfg))
    before = _expert_kernels(net)
    x, logs = _train(arch_cfg, net)
    return arch_cfg, net, x, logs, before


@pytest.mark.integration
def test_trains_and_exports_the_same_outputs_without_position(trained, tmp_path):
    cfg, net, x, logs, _ = trained
    assert all(np.isfinite(log["loss"]) for log in logs)
    serving_x = {k: tf.constant(v) for k, v in x.items() if k in net.model.input_names}
    specs = {k: tf.TensorSpec([None], v.dtype, name=k) for k, v in serving_x.items()}

    @tf.function(input_signature=[specs])
    def serve(features):
        return net.model(features, training=False)

    net.model.save(str(tmp_path), save_format="tf", signatures={"serving_default": serve})
    signature = tf.saved_model.load(str(tmp_path)).signatures["serving_default"]
    # The Keras model's outputs; the fused score is added by the Trainer's signatures (mtrank/fusion.py).
    assert set(signature.structured_outputs) == {"click", "purchase", "purchase_given_click", "dwell"}
    assert POSITION.transformed_name not in signature.structured_input_signature[1]
    out = {k: v.numpy().ravel() for k, v in signature(**serving_x).items()}
    np.testing.assert_allclose(out["purchase"], out["click"] * out["purchase_given_click"], rtol=1e-5)
    np.testing.assert_allclose(out["click"], net.model(serving_x)["click"].numpy().ravel(), rtol=1e-5)


@pytest.mark.integration
def test_gate_weights_sum_to_one_over_the_labelled_experts(trained):
    cfg, net, x, _, _ = trained
    gates = net.gates({k: v for k, v in x.items() if k in net.gates.input_names})
    assert set(gates) == {t.name for t in cfg.tasks}
    for task, weights in gates.items():
        assert weights.shape == (len(x["price_xf"]), len(net.experts[task]))
        np.testing.assert_allclose(weights.numpy().sum(axis=1), 1.0, rtol=1e-5, err_msg=task)


@pytest.mark.integration
def test_experts_start_different_and_stay_different_after_training(trained):
    _, net, _, _, before = trained
    after = _expert_kernels(net)
    assert after, "every architecture has at least one expert block"
    for name, kernel in after.items():
        assert not np.allclose(kernel, before[name]), f"{name} did not train"
        for i in range(1, kernel.shape[1]):  # [D, N, U]: expert i against expert 0
            assert not np.allclose(kernel[:, 0, :], kernel[:, i, :]), name
    groups = list(after.values())  # separately built expert blocks must not share an initialisation
    for a in range(len(groups)):
        for b in range(a + 1, len(groups)):
            if groups[a].shape == groups[b].shape:
                assert not np.allclose(before[list(after)[a]], before[list(after)[b]])


def test_ple_with_one_level_builds_cgc(cfg):
    def structure(model_cfg):
        net = builder.build(model_cfg, builder.default_cardinalities(model_cfg))
        # names of weighted layers (unnamed TF ops get fresh counters), weight shapes and starting values
        return [(layer.name if layer.weights else "", type(layer).__name__,
                 [(tuple(w.shape), float(np.sum(w.numpy()))) for w in layer.weights])
                for layer in net.model.layers], net.model.count_params()

    assert structure(_with(cfg, architecture="ple", levels=1, task_experts=2)) == \
        structure(_with(cfg, architecture="cgc", task_experts=2))


def test_ple_without_levels_has_two_not_silently_cgc(cfg):
    """`architecture: ple` alone is the paper's two-level PLE, not CGC under another name."""
    def layer_names(model_cfg):
        net = builder.build(model_cfg, builder.default_cardinalities(model_cfg))
        return {layer.name for layer in net.model.layers if layer.weights}  # unnamed ops get fresh counters

    default = layer_names(_with(cfg, architecture="ple", levels=None))
    assert {"gate_shared_l0", "experts_shared_l1"} <= default  # a second level, fed by the first's shared gate
    assert default == layer_names(_with(cfg, architecture="ple", levels=2))
    assert "experts_shared_l1" not in layer_names(_with(cfg, architecture="ple", levels=1))


def test_uncertainty_log_variances_are_trainable_and_move(cfg):
    ucfg = _with(cfg, loss_weighting="uncertainty")
    with pytest.raises(ValueError, match="uncertainty"):
        builder.losses(ucfg)
    net = builder.build(ucfg, builder.default_cardinalities(ucfg))
    log_vars = net.uncertainty.log_vars
    assert any(log_vars is w for w in net.trainee.trainable_weights)
    assert log_vars.shape == (len(ucfg.tasks),)
    start = log_vars.numpy().copy()
    _, logs = _train(ucfg, net)
    assert np.all(np.isfinite([log["loss"] for log in logs]))
    assert np.all(np.abs(log_vars.numpy() - start) > 1e-3)


def test_conversion_on_clicks_only_when_esmm_is_off(cfg):
    tasks = [dataclasses.replace(t, follows=None, weight_by="click") if t.name == "purchase" else t
             for t in cfg.tasks]
    ccfg = cfg.replace(tasks=tasks)
    net = builder.build(ccfg, builder.default_cardinalities(ccfg))
    assert "purchase_given_click" not in net.model.output_names
    loss, weights = builder.losses(ccfg, net)
    net.trainee.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss, loss_weights=weights, run_eagerly=True)
    x, y, w = _batch(ccfg)
    assert set(w) == {"purchase", "dwell"}
    first = net.trainee.test_on_batch(x, y, sample_weight=w, return_dict=True)
    flipped = {**y, "purchase": np.where(w["purchase"][:, None] > 0, y["purchase"], 1.0 - y["purchase"])}
    second = net.trainee.test_on_batch(x, flipped, sample_weight=w, return_dict=True)
    assert first["purchase_loss"] == pytest.approx(second["purchase_loss"])  # unclicked rows do not count


def test_position_tower_is_training_only(cfg):
    pcfg = _with(cfg, position_bias=POSITION)
    net = builder.build(pcfg, builder.default_cardinalities(pcfg))
    assert POSITION.transformed_name in net.training_model.input_names
    assert POSITION.transformed_name not in net.model.input_names
    assert "position_tower" in [layer.name for layer in net.training_model.layers]
    assert "position_tower" not in [layer.name for layer in net.model.layers]
    x, _, _ = _batch(pcfg, n=8)
    top, low = dict(x), dict(x)
    top[POSITION.transformed_name] = np.ones(8, np.int64)
    low[POSITION.transformed_name] = np.full(8, 9, np.int64)
    # the bias reaches the click output of the training model, and nothing else in the graph differs
    assert not np.allclose(net.training_model(top)["click"], net.training_model(low)["click"])
    np.testing.assert_allclose(net.training_model(top)["dwell"], net.training_model(low)["dwell"])
    counts = diagnostics.parameter_counts(net.model, net.training_model)
    assert counts["training_total"] - counts["serving_total"] == counts["position_tower"] > 0


def test_gate_tables_name_every_expert():
    weights = {"click": [0.7, 0.1, 0.2], "dwell": [0.5, 0.5]}
    experts = {"click": ["click_0", "shared_0", "shared_1"], "dwell": ["dwell_0", "shared_0"]}
    rows = diagnostics.gate_rows(weights, experts)
    assert len(rows) == 5 and rows[0] == {"task": "click", "expert": "click_0", "mean_weight": 0.7}
    table = diagnostics.gate_markdown(weights, experts).splitlines()
    assert table[0] == "| task | click_0 | shared_0 | shared_1 | dwell_0 |"
    assert table[3] == "| dwell |  | 0.500 |  | 0.500 |"


@pytest.mark.parametrize("model, message", [
    (dict(levels=2), "needs architecture ple"),
    (dict(architecture="ple", levels=0), "model.levels"),
    (dict(loss_weighting="gradnorm"), "model.loss_weighting 'gradnorm'"),
    (dict(position_bias={"column": "position", "task": "dwell"}), "model.position_bias.task 'dwell'"),
    (dict(position_bias={"column": "price", "task": "click"}), "model.position_bias.column 'price'"),
])
def test_model_settings_are_validated_with_file_and_key(cfg, model, message):
    raw = cfg.to_dict()
    raw["model"].update(model)
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.from_dict(raw, source="zoo.yaml")
    assert "zoo.yaml" in str(err.value) and message in str(err.value)


def test_task_losses_and_esmm_weighting_are_validated(cfg):
    raw = cfg.to_dict()
    raw["tasks"][0]["loss"] = "huber"
    with pytest.raises(config_lib.ConfigError, match="click.*loss 'huber'"):
        config_lib.from_dict(raw, source="zoo.yaml")
    raw = cfg.to_dict()
    raw["tasks"][1]["weight_by"] = "click"
    with pytest.raises(config_lib.ConfigError, match="weight_by"):
        config_lib.from_dict(raw, source="zoo.yaml")


def test_position_bias_survives_the_custom_config_round_trip(cfg):
    pcfg = _with(cfg, position_bias=POSITION, architecture="ple", levels=2, loss_weighting="uncertainty")
    again = config_lib.from_json(pcfg.to_json())
    assert again.model == pcfg.model and isinstance(again.model.position_bias, config_lib.PositionBiasSpec)


def test_gate_diagnostics_from_a_training_dataset(cfg, tmp_path):
    """What the Trainer writes: mean gates from (features incl. position, labels, weights) batches."""
    pcfg = _with(cfg, architecture="cgc", position_bias=POSITION)
    net = builder.build(pcfg, builder.default_cardinalities(pcfg))
    x, y, w = _batch(pcfg, n=32)
    dataset = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(8)
    weights = diagnostics.mean_gate_weights(net.gates, dataset)
    assert set(weights) == {t.name for t in pcfg.tasks}
    for task, values in weights.items():
        assert len(values) == len(net.experts[task]) and sum(values) == pytest.approx(1.0, abs=1e-3)
    diagnostics.write_gate_tables(str(tmp_path), weights, net.experts)
    assert (tmp_path / diagnostics.GATE_CSV).read_text().startswith("task,expert,mean_weight")
    diagnostics.GateLogger(net.gates, dataset, net.experts, str(tmp_path)).on_epoch_end(0)
    assert list((tmp_path / "gates").iterdir()), "no TensorBoard event file"
