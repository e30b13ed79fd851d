"""Shared fixtures. TF_USE_LEGACY_KERAS must be set before anything imports TensorFlow."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402
import datetime as dt  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from mtrank import config as config_lib  # noqa: E402

E2E_ROWS = 20_000
E2E_DAY = dt.date(2026, 11, 3)
E2E_EPOCHS = 6  # one small day needs more passes than the default configuration's five


def pytest_collection_modifyitems(config, items):
    """`make test` runs on two pytest-xdist workers (`-n 2 --dist loadfile`): each module stays on one
    worker, so its module-scoped fixture (a pipeline run, an executed Kubeflow spec) is built once. Under
    xdist the modules with end-to-end runs are sent first and the unit tests fill in at the end, so the two
    workers finish together instead of one waiting for the other's last long run."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    weight = {}
    for item in items:
        kind = 2 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("integration") else 0
        weight[item.module.__name__] = max(weight.get(item.module.__name__, 0), kind)
    items.sort(key=lambda item: -weight[item.module.__name__])  # stable: a module's own order is kept


@pytest.fixture(scope="session")
def cfg() -> config_lib.Config:
    return config_lib.load()


@dataclasses.dataclass
class PipelineRun:
    workspace: "object"
    data_root: Path
    result: "object"
    cfg: config_lib.Config


@pytest.fixture(scope="session")
def pipeline_run(cfg, tmp_path_factory) -> PipelineRun:
    """One real run of the whole local pipeline on two simulated days (trained on the first, evaluated
    on the second); shared by every test that needs a trained, evaluated and pushed model (about a
    minute and a half)."""
    from mtrank import simulate
    from pipeline import daily, local_runner, results

    root = tmp_path_factory.mktemp("e2e")
    data_root = root / "data"
    simulate.simulate(data_root, E2E_DAY - dt.timedelta(days=1), 2, E2E_ROWS)  # the newest day is trained on
    workspace = local_runner.Workspace(root / "workspace")
    # One cross beside the default slices, so the crossed-slice paths (oracle per cell, report) run too.
    # No guardrails on the weight search: on one small day's ~200 held-out requests (~20 purchases) no point
    # keeps them at the 95 % bound and the configured weights stay (tests/test_ranking.py covers that); the
    # search itself, its export and what it earns on the evaluated day are what this run checks.
    # Early stopping off (tests/test_model.py covers it): measured on this fixture's identical data, Transform's
    # statistics differ in their last bits from run to run (Beam's combine order), training amplifies that,
    # and with patience 1 two of four runs stopped at epoch 6 and exported epoch 5 (click AUC 0.5946, under
    # the configured 0.6 floor: not blessed), the other two trained on (0.6394).
    run_cfg = cfg.replace(model=dataclasses.replace(cfg.model, epochs=E2E_EPOCHS, early_stopping_patience=0),
                          evaluation=dataclasses.replace(cfg.evaluation, slices=[*cfg.evaluation.slices, "device*position"]),
                          ranking=dataclasses.replace(cfg.ranking, fusion=dataclasses.replace(
                              cfg.ranking.fusion, guardrails={})))
    outcome = daily.run_day(run_cfg, workspace, data_root=str(data_root))  # the newest day, trained on the one before
    print(results.format_run(run_cfg, outcome.result))
    return PipelineRun(workspace=workspace, data_root=data_root, result=outcome.result, cfg=run_cfg)
