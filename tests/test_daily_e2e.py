"""Daily retraining end to end: four simulated days, three runs and a re-run (slow, ~4 minutes).

day 1: trained cold on day 0, blessed, pushed as version 1
day 2: warm-started from version 1, blessed, pushed as version 2
day 3: its labels are shuffled on purpose: not blessed, nothing pushed, version 2 stays the newest
day 2 again: already finished, so no new Trainer runs and nothing is pushed
"""

import dataclasses
import datetime as dt
import os

import numpy as np
import pandas as pd
import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from mtrank import simulate
from mtrank.config import EvaluationSpec, ThresholdSpec
from pipeline import daily, local_runner, results

pytestmark = pytest.mark.slow

START = dt.date(2026, 10, 1)
ROWS = 12_000


def _shuffle_labels(path, seed=0):
    frame = pd.read_csv(path)
    order = np.random.default_rng(seed).permutation(len(frame))
    for column in ("click", "purchase", "dwell_seconds"):  # labels stay consistent with each other
        frame[column] = frame[column].to_numpy()[order]
    frame.to_csv(path, index=False, float_format="%.6f")


def _trainer_executions(workspace):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(workspace.metadata_path)
    store = metadata_store.MetadataStore(config)
    return len([e for e in store.get_executions()
                if "Trainer" in store.get_execution_types_by_id([e.type_id])[0].name
                and e.last_known_state == metadata_store_pb2.Execution.COMPLETE])


def _versions(workspace, cfg):
    model_dir = workspace.serving_root / cfg.serving.model_name
    return sorted(int(v) for v in os.listdir(model_dir)) if model_dir.exists() else []


@pytest.fixture(scope="module")
def days(cfg, tmp_path_factory):
    root = tmp_path_factory.mktemp("daily")
    data_root = root / "data"
    files = simulate.simulate(data_root, START, 4, ROWS)
    _shuffle_labels(files[3])
    # Small days: lower floors than production's (one day of 12,000 rows, 10 % of its requests held out for
    # validation, gives click AUC 0.55 +- 0.01), the same change thresholds against the baseline.
    # A warm run fits on the newest day of its two (model.warm_start_days: 1).
    test_cfg = cfg.replace(evaluation=EvaluationSpec(slices=[], thresholds=[
        ThresholdSpec(task="click", metric="auc", lower_bound=0.52, max_drop=0.01),
        ThresholdSpec(task="purchase", metric="auc", lower_bound=0.55, max_drop=0.02)]),
        model=dataclasses.replace(cfg.model, warm_start_days=1))
    workspace = local_runner.Workspace(root / "workspace")
    outcomes = {}
    versions = {}
    for i in (1, 2, 3):
        outcomes[i] = daily.run_day(test_cfg, workspace, START + dt.timedelta(days=i), data_root=str(data_root))
        versions[i] = _versions(workspace, test_cfg)
    trainers_before = _trainer_executions(workspace)
    outcomes["again"] = daily.run_day(test_cfg, workspace, START + dt.timedelta(days=2), data_root=str(data_root))
    print(daily.format_days(test_cfg, list(outcomes.values())))
    return dict(outcomes=outcomes, versions=versions, trainers_before=trainers_before,
                trainers_after=_trainer_executions(workspace), workspace=workspace, cfg=test_cfg)


def test_first_day_trains_cold_and_pushes_version_one(days):
    day1 = days["outcomes"][1]
    assert day1.status == "pushed" and day1.warm is False
    assert day1.training["warm_start"]["reason"].startswith("no model in production yet")
    # Where the Trainer's time went, phase by phase (a warm run's cost is mostly not its fitting).
    assert set(day1.training["seconds"]) == {"build_and_restore", "read", "fit", "fusion_search", "export"}
    assert day1.training["seconds"]["fit"] > 0
    assert len(days["versions"][1]) == 1


def test_second_day_warm_starts_from_version_one_and_pushes_version_two(days):
    day1, day2 = days["outcomes"][1], days["outcomes"][2]
    assert day2.status == "pushed" and day2.warm is True
    # From the version being served (day 1's push), copied by ProductionModel: the source is that copy.
    production = day2.result.components["ProductionModel"]
    copy = production.outputs["model"][0]
    assert day2.training["warm_start"]["source"] == copy + "/Format-Serving"
    assert production.properties[copy]["production_version"] == days["versions"][1][0]
    assert f"Judged against: version {days['versions'][1][0]} in production" in results.format_run(days["cfg"], day2.result)
    assert "Judged against: nothing in production" in results.format_run(days["cfg"], day1.result)
    # The warm model starts where version 1 ended, far below a fresh model on the same batches.
    assert day2.training["loss_before_training"] < 0.6 * day2.training["loss_with_fresh_weights"]
    assert day2.training["epochs"] == days["cfg"].model.warm_start_epochs
    # Every category seen on both days got its own row back, wherever today's frequency order put it.
    remapped = day2.training["warm_start"]["remapped"]
    assert set(remapped) == {f.name for f in days["cfg"].features if f.kind == "categorical"}
    assert all(c["kept"] > 0 for c in remapped.values())
    assert day2.train_days == 2 and day1.train_days == 1
    # The warm run fitted on day 1 alone (day 0 is in version 1 already); the cold run on its whole window.
    assert (day2.training["fit_days"], day2.training["window_days"]) == (1, 2)
    assert (day1.training["fit_days"], day1.training["window_days"]) == (1, 1)
    assert len(days["versions"][2]) == 2


def test_a_bad_day_is_not_blessed_and_serving_keeps_version_two(days):
    day3 = days["outcomes"][3]
    assert day3.status == "not blessed"
    assert day3.result.blessed is False
    # Shuffled labels: AUC ~0.5 on both tasks, below either floor (click 0.52, purchase 0.55), named by task.
    assert any(f.startswith(("click auc", "purchase auc")) for f in day3.result.validation_failures)
    assert days["versions"][3] == days["versions"][2]


def test_rerunning_a_finished_day_runs_no_trainer_and_pushes_nothing(days):
    again = days["outcomes"]["again"]
    assert again.status == "already done"
    assert days["trainers_after"] == days["trainers_before"]
    assert _versions(days["workspace"], days["cfg"]) == days["versions"][3]
