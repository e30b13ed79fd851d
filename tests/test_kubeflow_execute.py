"""The compiled pipeline.yaml, executed task by task as Kubeflow Pipelines' driver and launcher run it
(tests/kfp_launcher.py), for two simulated days with `run_date` as the pipeline parameter:

day 1: nothing in production, trained cold, no change thresholds, blessed on its floors, pushed.
day 2: warm-started from the version day 1 pushed (read from the serving root), judged against that same
       version, then pushed or refused by the gate.

Compiled the way `mtrank compile` compiles, except that the roots are folders here, the image's workdir is
this checkout (the image is a copy of it) and Beam runs in memory (slow, ~6 minutes).
"""

import dataclasses
import datetime as dt
import json
import os
import time

import pytest

import kfp_backend_rules
import kfp_launcher
from mtrank import config as config_lib
from mtrank import simulate
from mtrank.config import ThresholdSpec

pytestmark = pytest.mark.slow

START = dt.date(2026, 10, 1)
ROWS = 12_000
DAY1, DAY2 = START + dt.timedelta(days=1), START + dt.timedelta(days=2)


def _local_cfg(cfg: config_lib.Config, root) -> config_lib.Config:
    """Small days: one training day, no slicing, floors just above chance (a model trained on one day of
    12,000 rows reaches click AUC ~0.55, purchase ~0.69); the change thresholds of production stay, so
    day 2 is judged against day 1's model."""
    return cfg.replace(
        data=dataclasses.replace(cfg.data, train_days=1),
        evaluation=dataclasses.replace(cfg.evaluation, slices=[], thresholds=[
            ThresholdSpec(task="click", metric="auc", lower_bound=0.52, max_drop=0.01),
            ThresholdSpec(task="purchase", metric="auc", lower_bound=0.52, max_drop=0.02)]),
        kubeflow=dataclasses.replace(
            cfg.kubeflow, image="mtrank:local", pipeline_root=str(root / "pipeline_root"),
            data_root=str(root / "data"), serving_root=str(root / "serving"),
            image_workdir=str(config_lib.REPO_ROOT),
            beam_options={"direct_running_mode": "in_memory", "direct_num_workers": 1}))


@pytest.fixture(scope="module")
def executed(cfg, tmp_path_factory):
    from pipeline import kubeflow_runner

    root = tmp_path_factory.mktemp("kfp")
    simulate.simulate(root / "data", START, 3, ROWS)
    run_cfg = _local_cfg(cfg, root)
    kubeflow_runner.compile_pipeline(run_cfg, root, kubeflow_runner.target(run_cfg))
    spec = kfp_launcher.load_spec(root / "pipeline.yaml")
    rules = kfp_backend_rules.violations(spec, "mtrank:local",
                                         kfp_backend_rules.Image(workdir=str(config_lib.REPO_ROOT)))
    model_dir = root / "serving" / run_cfg.serving.model_name
    days, versions = {}, {}
    for day in (DAY1, DAY2):
        started = time.monotonic()
        days[day] = kfp_launcher.LocalKfpRun(spec, root / "pipeline_root").run({"run_date": day.isoformat()})
        versions[day] = sorted(int(v) for v in os.listdir(model_dir)) if model_dir.exists() else []
        print(f"\n{day}: {time.monotonic() - started:.0f} s wall, {sum(r.seconds for r in days[day].values()):.0f} s "
              f"of tasks, 2 at a time\n{kfp_launcher.summary(days[day])}")
    return dict(days=days, versions=versions, rules=rules, model_dir=model_dir)


def _training(run) -> dict:
    with open(os.path.join(run["Trainer"].artifacts["model_run"].uri, "training_summary.json")) as f:
        return json.load(f)


def test_the_spec_compiled_for_this_run_meets_the_backend_rules(executed):
    assert executed["rules"] == []


def test_run_date_reaches_the_window_as_a_pipeline_parameter(executed):
    for day, run in executed["days"].items():
        splits = json.loads(run["DayWindow"].parameters["input_config"])["splits"]
        assert {"name": "eval", "pattern": f"{day.isoformat()}/*.csv"} in splits


def test_day_one_trains_cold_and_is_pushed(executed):
    run = executed["days"][DAY1]
    assert {r.state for r in run.values()} == {kfp_launcher.SUCCEEDED}, kfp_launcher.summary(run)
    assert run["ProductionModel"].metadata("model")["in_production"] == 0
    start = _training(run)["warm_start"]
    assert start["warm"] is False and start["reason"].startswith("no model in production yet")
    blessing = run["Evaluator"].metadata("blessing")
    assert blessing["blessed"] == 1 and "baseline_model" not in blessing  # no baseline: floors only
    assert executed["versions"][DAY1] == [int(run["Pusher"].metadata("pushed_model")["pushed_version"])]


def test_day_two_warm_starts_from_and_is_judged_against_the_served_version(executed):
    run, served = executed["days"][DAY2], executed["versions"][DAY1][0]
    production = run["ProductionModel"]
    assert production.metadata("model")["production_version"] == served
    copy = os.path.join(production.artifacts["model"].uri, "Format-Serving")
    with open(os.path.join(copy, "saved_model.pb"), "rb") as a, \
            open(executed["model_dir"] / str(served) / "saved_model.pb", "rb") as b:
        assert a.read() == b.read()  # the very version being served
    training = _training(run)
    assert training["warm_start"]["warm"] is True and training["warm_start"]["source"] == copy
    assert training["loss_before_training"] < training["loss_with_fresh_weights"]
    blessing = run["Evaluator"].metadata("blessing")
    assert blessing["baseline_model"] == production.artifacts["model"].uri


def test_day_two_is_pushed_only_when_the_gate_blesses_it(executed):
    run = executed["days"][DAY2]
    blessed = run["Evaluator"].metadata("blessing")["blessed"] == 1
    if blessed:
        assert run["Pusher"].state == kfp_launcher.SUCCEEDED
        assert len(executed["versions"][DAY2]) == 2 and executed["versions"][DAY2][0] == executed["versions"][DAY1][0]
    else:
        assert run["Pusher"].state == kfp_launcher.SKIPPED
        assert executed["versions"][DAY2] == executed["versions"][DAY1]
