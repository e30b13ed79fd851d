"""Daily retraining on this machine: one pipeline run per day, a backfill as days in order.

A day that already finished (its Evaluator decided, its blessed model was pushed) is not run again:
re-running it would warm-start from that day's own model and push a near-copy. A run killed half-way
is not finished; running the day again resumes it from TFX's cache (finished components are reused).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
from typing import List, Optional

import mtrank  # noqa: F401

from components import window
from mtrank import config as config_lib
from pipeline import local_runner, report, results


@dataclasses.dataclass
class DayOutcome:
    day: dt.date
    status: str  # pushed | not blessed | already done | failed
    seconds: float
    train_days: int
    result: results.RunResult
    training: dict  # the Trainer's training_summary.json (warm start, losses, gates)

    @property
    def warm(self) -> Optional[bool]:
        start = self.training.get("warm_start")
        return None if start is None else bool(start.get("warm"))


def data_root_of(cfg: config_lib.Config, data_root: Optional[str]) -> str:
    return data_root or cfg.resolve_path(cfg.data.root)


def resolve_day(cfg: config_lib.Config, data_root: str, day: Optional[dt.date]) -> dt.date:
    present = window.days_present(data_root, cfg.data.span_pattern)
    if not present:
        raise FileNotFoundError(f"{data_root}: no day folder matches {cfg.data.span_pattern!r}; "
                                "run `mtrank simulate` or put one folder of CSV files per day there")
    return day or present[-1]


def train_days_for(cfg: config_lib.Config, data_root: str, day: dt.date) -> int:
    """The configured window, shortened at the start of the data (the first days have less history)."""
    present = set(window.days_present(data_root, cfg.data.span_pattern))
    if day not in present:
        raise FileNotFoundError(f"{data_root}: there is no folder for {day} matching {cfg.data.span_pattern!r}")
    k = 0
    while k < cfg.data.train_days and day - dt.timedelta(days=k + 1) in present:
        k += 1
    if k == 0:
        raise ValueError(f"{day} is the first day of data under {data_root}: a run for day D trains on the days "
                         f"before D and is evaluated on D. Run from {day + dt.timedelta(days=1)} on.")
    return k


def training_summary(result: results.RunResult) -> dict:
    trainer = result.components.get("Trainer")
    if not trainer or not trainer.outputs.get("model_run"):
        return {}
    path = os.path.join(trainer.outputs["model_run"][0], "training_summary.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def run_day(cfg: config_lib.Config, workspace: local_runner.Workspace, day: Optional[dt.date] = None,
            data_root: Optional[str] = None, force: bool = False, **runner_options) -> DayOutcome:
    data_root = data_root_of(cfg, data_root)
    day = resolve_day(cfg, data_root, day)
    train_days = train_days_for(cfg, data_root, day)
    name = local_runner.pipeline_name(cfg)
    started = time.time()
    done = None if force else results.finished_run_for_day(str(workspace.metadata_path), name, day.isoformat())
    if done:
        print(f"[daily] {day} already finished in run {done}; nothing to do (--force runs it again)", flush=True)
        result = results.latest_run(str(workspace.metadata_path), name, cfg, run_id=done)
        return DayOutcome(day, "already done", time.time() - started, train_days, result, training_summary(result))
    print(f"[daily] {day}: train on the {train_days} day(s) before it, evaluate on it", flush=True)
    local_runner.run(cfg, workspace, run_date=day.isoformat(), train_days=train_days, data_root=data_root,
                     **runner_options)
    result = results.latest_run(str(workspace.metadata_path), name, cfg)
    report.write_run_report(cfg, workspace, result)  # <workspace>/reports/<run date>/report.md
    status = "pushed" if result.pushed_path else "not blessed" if result.blessed is False else "failed"
    return DayOutcome(day, status, time.time() - started, train_days, result, training_summary(result))


def backfill(cfg: config_lib.Config, workspace: local_runner.Workspace, start: dt.date, end: dt.date,
             data_root: Optional[str] = None, **options) -> List[DayOutcome]:
    """Runs every day from `start` to `end` in order; finished days are skipped, so a killed backfill resumes."""
    if end < start:
        raise ValueError(f"backfill from {start} to {end}: the end is before the start")
    outcomes = []
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    for i, day in enumerate(days, 1):
        print(f"[backfill] day {i}/{len(days)}: {day}", flush=True)
        outcomes.append(run_day(cfg, workspace, day, data_root=data_root, **options))
    return outcomes


def _epochs(training: dict) -> str:
    """Epochs run, and the one exported when early stopping kept an earlier one."""
    run = training.get("epochs_run")
    best = (training.get("early_stopping") or {}).get("best_epoch")
    if run is None:
        return "-"
    return f"{run} ({best})" if best else str(run)


def format_days(cfg: config_lib.Config, outcomes: List[DayOutcome]) -> str:
    """One line per day; per binary task its AUC and its calibration (mean prediction / mean label on the
    evaluated day), so a daily chain that drifts off calibration shows, not only one that ranks worse.
    Columns are as wide as their names."""
    binary = [t.name for t in cfg.tasks if t.type == "binary"]
    columns = [(f"{t} {label}", t, key) for t in binary for label, key in (("AUC", "auc"), ("calib", "calibration"))]
    widths = [max(10, len(title) + 2) for title, _, _ in columns]
    head = f"{'day':<12}{'status':<14}{'start':<7}{'train days':>11}{'epochs (best)':>14}{'seconds':>9}" + "".join(
        f"{title:>{w}}" for (title, _, _), w in zip(columns, widths))
    lines = [head]
    for o in outcomes:
        start = "-" if o.warm is None else "warm" if o.warm else "cold"
        lines.append(f"{o.day.isoformat():<12}{o.status:<14}{start:<7}{o.train_days:>11}{_epochs(o.training):>14}"
                     f"{o.seconds:>9.1f}" + "".join(f"{o.result.metric(t, key):>{w}.4f}"
                                                   for (_, t, key), w in zip(columns, widths)))
    return "\n".join(lines)
