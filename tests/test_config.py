import pytest
import yaml

from mtrank import config as config_lib


def test_default_configuration_is_consistent(cfg):
    assert [t.name for t in cfg.tasks] == ["click", "purchase", "dwell"]
    assert cfg.task("purchase").follows == "click"
    assert not set(cfg.label_columns) & set(cfg.input_columns)
    assert not set(cfg.oracle_columns) & set(cfg.input_columns)
    assert cfg.resolve_path(cfg.data.schema).endswith("schemas/impressions/schema.pbtxt")


def test_round_trip_through_custom_config_json(cfg):
    again = config_lib.from_json(cfg.to_json())
    assert again.to_dict() == cfg.to_dict()
    assert again.source == cfg.source


def _write(tmp_path, raw):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _raw(cfg):
    return cfg.to_dict()


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["features"].append({**r["features"][0]}), "listed twice"),
    (lambda r: r["features"].append({"name": "click", "kind": "categorical"}), "must never be model inputs"),
    (lambda r: r["features"].append({"name": "true_p_click", "kind": "numeric", "dtype": "float"}),
     "must never be model inputs"),
    (lambda r: r["features"][0].update(kind="embedding"), "has kind 'embedding'"),
    (lambda r: r["tasks"][1].update(follows="nothing"), "follows 'nothing'"),
    (lambda r: r["model"].update(architecture="transformer"), "architecture 'transformer'"),
    (lambda r: r["model"].update(num_expertz=3), "unknown key"),
    (lambda r: r["evaluation"]["thresholds"].append({"task": "refund"}), "task 'refund'"),
    (lambda r: r.pop("tasks"), "missing required section 'tasks'"),
    (lambda r: r["model"].update(interactions=[["user_segment", "price"]]), "must name two embedded features"),
    (lambda r: r["model"].update(interactions=[["user_segment", "device"]]), "need one embedding_dim"),
    (lambda r: r["model"].update(interaction_weights="full"), "interaction_weights 'full' is not one of"),
    (lambda r: r["model"].update(early_stopping_monitor="refund"), "early_stopping_monitor 'refund'"),
    (lambda r: r["model"].update(warm_start_days=-1), "warm_start_days must be >= 0"),
    (lambda r: r["model"].update(warm_start_learning_rate=0), "warm_start_learning_rate must be > 0"),
    (lambda r: r["model"].update(warm_start_decay=-0.5), "warm_start_decay must lie in [0, 2]"),
    (lambda r: r["features"][4].update(bias=True), "bias is for embedded kinds"),
    (lambda r: r["features"][2].update(deep=False), "nothing would read it"),
    (lambda r: r["data"].update(pipeline_name="my pipeline"), "data.pipeline_name 'my pipeline'"),
    (lambda r: r["data"].update(pipeline_name="Mtrank_v2"), "what Kubeflow Pipelines accepts"),
    # A threshold's metric comes from the metric table (mtrank/metrics.py), for the task's type.
    (lambda r: r["evaluation"]["thresholds"].append({"task": "click", "metric": "acu"}), "metric 'acu'"),
    (lambda r: r["evaluation"]["thresholds"].append({"task": "dwell", "metric": "auc"}),
     "a regression task's thresholds take one of ['mae', 'mse']"),
    (lambda r: (r["evaluation"].update(group_column=None),
                r["evaluation"]["thresholds"].append({"task": "click", "metric": "gauc"})), "needs evaluation.group_column"),
])
def test_errors_name_the_file_and_what_is_wrong(cfg, tmp_path, mutate, message):
    raw = _raw(cfg)
    mutate(raw)
    path = _write(tmp_path, raw)
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.load(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="does not exist"):
        config_lib.load(tmp_path / "nope.yaml")
