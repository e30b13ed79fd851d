"""TFX's cache, read where it decides: the compiled pipeline IR that LocalDagRunner runs.

TFX reuses a node's earlier output when the node's inputs and its parameters (exec properties) are
unchanged. A model-only edit must leave Transform's parameters equal (so the window is not transformed
again) and change the Trainer's; ProductionModel must be asked again once another version is served (after
a push or a rollback), and not otherwise (a resumed run reuses what its day started from)."""

import dataclasses

import pytest
from tfx.dsl.compiler import compiler

from pipeline.pipeline import create_pipeline


def _nodes(cfg, tmp_path, served_version=""):
    ir = compiler.Compiler().compile(create_pipeline(
        pipeline_name="cache-test", pipeline_root=str(tmp_path / "root"), cfg=cfg, data_root=str(tmp_path / "data"),
        schema_path=cfg.resolve_path(cfg.data.schema), serving_root=str(tmp_path / "serving"),
        run_date="2026-11-03", served_version=served_version))
    return {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}


@pytest.fixture(scope="module")
def compiled(cfg, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ir")
    model_only = cfg.replace(model=dataclasses.replace(cfg.model, expert_units=[32], num_experts=3),
                             features=[dataclasses.replace(f, embedding_dim=16) if f.is_embedded else f
                                       for f in cfg.features])
    return {"before": _nodes(cfg, tmp, "3"), "model only": _nodes(model_only, tmp, "3"),
            "after a push": _nodes(cfg, tmp, "4")}


def test_a_model_only_change_keeps_transforms_cache_key_and_changes_the_trainers(compiled):
    before, after = compiled["before"], compiled["model only"]
    assert before["Transform"].parameters == after["Transform"].parameters
    assert before["Trainer"].parameters != after["Trainer"].parameters


def test_the_production_model_is_asked_again_only_when_another_version_is_served(compiled):
    before = compiled["before"]
    assert before["ProductionModel"].parameters == compiled["model only"]["ProductionModel"].parameters
    assert before["ProductionModel"].parameters != compiled["after a push"]["ProductionModel"].parameters
    assert all(node.execution_options.caching_options.enable_cache for node in before.values())


def test_two_configuration_files_of_the_same_data_can_share_one_pipeline(cfg, tmp_path):
    """TFX looks a node's output up within its pipeline only: two files (the model change tried in its own
    file) share Transform's cached output when `data.pipeline_name` gives them one pipeline."""
    from pipeline import local_runner

    a = cfg.replace(source=str(tmp_path / "impressions.yaml"))
    b = cfg.replace(source=str(tmp_path / "impressions-wider.yaml"))
    assert local_runner.pipeline_name(a) != local_runner.pipeline_name(b)  # by default, one pipeline per file
    shared = dataclasses.replace(cfg.data, pipeline_name="mtrank-impressions")
    assert local_runner.pipeline_name(a.replace(data=shared)) == local_runner.pipeline_name(b.replace(data=shared)) \
        == "mtrank-impressions"
