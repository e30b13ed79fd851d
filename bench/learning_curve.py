"""The learning curve of daily retraining: does each day's model know more than the day before's?

A fixed simulated world (users and items persist, newcomers arrive each day) writes `--days` evaluated days
of `--rows` impressions, plus the configured training window before the first. Three models per day,
side by side on the same days:

  warm chain   `mtrank backfill` with the configuration as given: the whole pipeline, one run per day, each
               warm-started from the last blessed model, refused by the Evaluator when worse than production
  cold         a fresh model each day, trained by the Trainer's own code (`components.trainer.train`) on the
               same run's Transform output (the same window, vocabularies and held-out requests)
  logistic     the regularised logistic regression of bench/id_features.py (one-hot user_id, item_id, the
               default features, the segment×category cross; L2, C = 0.2) on the same window's raw rows

With `--history`, on the last day a fourth: a cold model trained on every simulated day before it (`mtrank run`
with the window widened), the model a team would otherwise retrain to know what the chain knows; the chain has
to match it at a fraction of its training time. `--no-ids` leaves out the configuration's id features and their
FM term (learning_curve_no_ids in `make bench`; learning_curve_ids holds the earlier chain with ids and no
min_count).

Every model is scored on the whole evaluated day (not the Evaluator's sample): click and purchase AUC, the
gap to the oracle (the simulator's true probabilities) and to the position-free oracle, mean predicted
click rate against the observed one. Per day also: warm or cold, pushed or not, epochs, training seconds
(the Trainer component's own for the chain, the same code's wall time for the cold model).

    python bench/learning_curve.py --work /tmp/mtrank-bench/learning --history   # 14 days x 100,000 rows, ~1.5 hours
    python bench/learning_curve.py --days 3 --rows 20000 --work /tmp/lc --out /tmp/lc/results

Writes bench/results/learning_curve.{json,md,png}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtrank  # noqa: E402,F401
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from bench import common  # noqa: E402
from bench.id_features import BINARY, TASTE, logistic_baseline  # noqa: E402
from mtrank import config as config_lib  # noqa: E402
from mtrank import export_contract, simulate  # noqa: E402

START = dt.date(2026, 10, 1)
CHAINS = ("warm chain", "cold", "logistic")


SIMULATION_FILE = "simulation.json"


def simulate_world(data_root: Path, days: int, rows: int, new_users: int, new_items: int, seed: int) -> None:
    """Writes the days once; a rerun (a killed benchmark resumes) reuses them if they were simulated with
    the same parameters, and refuses otherwise (the figures would not be the ones asked for)."""
    wanted = {"start": START.isoformat(), "days": days, "rows": rows, "new_users_per_day": new_users,
              "new_items_per_day": new_items, "seed": seed}
    record = data_root / SIMULATION_FILE
    if record.exists():
        found = json.loads(record.read_text())
        if found != wanted:
            raise SystemExit(f"{data_root} holds days simulated with {found}, not {wanted}: use another --work "
                             "or remove it")
        return
    spec = simulate.SimulatorSpec(seed=seed, new_users_per_day=new_users, new_items_per_day=new_items)
    simulate.simulate(data_root, START, days, rows, spec,
                      progress=lambda done, total, path: print(f"[simulate] {done}/{total} {path}", flush=True))
    record.write_text(json.dumps(wanted, indent=2))


def read_day(data_root: Path, day: dt.date) -> Dict[str, np.ndarray]:
    frame = pd.concat([pd.read_csv(p) for p in sorted(glob.glob(str(data_root / simulate.day_folder(day) / "*.csv")))])
    return {c: frame[c].to_numpy() for c in frame.columns}


def score(saved_model: str, day: Dict[str, np.ndarray], batch: int = 20_000) -> Dict[str, np.ndarray]:
    """The exported model's task outputs on raw columns, through its `raw_features` signature (as served)."""
    import tensorflow as tf

    fn = tf.saved_model.load(saved_model).signatures[export_contract.RAW_SIGNATURE]
    specs = fn.structured_input_signature[1]
    n = len(day["click"])
    out: Dict[str, List[np.ndarray]] = {t: [] for t in BINARY}
    for lo in range(0, n, batch):
        inputs = {}
        for name, spec in specs.items():
            values = day[name][lo:lo + batch]
            inputs[name] = tf.constant(values.astype(str) if spec.dtype == tf.string else values, dtype=spec.dtype)
        outputs = fn(**inputs)
        for t in BINARY:
            out[t].append(outputs[t].numpy().ravel())
    return {t: np.concatenate(v) for t, v in out.items()}


def figures(day: Dict[str, np.ndarray], predictions: Dict[str, np.ndarray]) -> Dict:
    return {"auc": {t: float(roc_auc_score(day[t], predictions[t])) for t in BINARY},
            "mean_predicted_click": float(np.mean(predictions["click"]))}


def backfill(config: str, workspace: Path, data_root: Path, first: dt.date, last: dt.date) -> None:
    """`mtrank backfill`, as a user runs it (its own process: the pipeline's memory is returned at its end).
    Exit code 2 means some day was refused by the Evaluator: part of what is measured, not a failure."""
    command = [sys.executable, "-m", "mtrank.cli", "backfill", "--config", config, "--workspace", str(workspace),
               "--data-root", str(data_root), "--from", first.isoformat(), "--to", last.isoformat()]
    print("[learning curve] " + " ".join(command[1:]), flush=True)
    code = subprocess.call(command)
    if code not in (0, 2):
        raise SystemExit(f"mtrank backfill exited with {code}; see {workspace}/logs")


def chain_day(cfg: config_lib.Config, workspace: Path, day: dt.date):
    from pipeline import daily, local_runner, results

    metadata, name = str(workspace / "metadata.sqlite"), local_runner.pipeline_name(cfg)
    run_id = results.finished_run_for_day(metadata, name, day.isoformat())
    if run_id is None:
        raise SystemExit(f"{workspace}: the backfill left no finished run for {day}; see {workspace}/logs")
    return results.latest_run(metadata, name, cfg, run_id=run_id), daily


def train_cold(cfg: config_lib.Config, run, out: str) -> Dict:
    """A fresh model on the run's own Transform output, by the Trainer's code: its wall seconds and epochs."""
    from bench import gate_noise

    started = time.perf_counter()
    gate_noise.train_seed(cfg, cfg.model.seed, run, out)
    seconds = time.perf_counter() - started
    with open(os.path.join(out, "run", export_contract.SUMMARY_FILE)) as f:
        summary = json.load(f)
    return {"train_seconds": round(seconds, 1), "epochs_run": summary.get("epochs_run"),
            "best_epoch": (summary.get("early_stopping") or {}).get("best_epoch")}


def measure(cfg: config_lib.Config, workspace: Path, data_root: Path, days: List[dt.date], scratch: Path,
            baselines: Optional[Dict[str, Dict]] = None) -> List[Dict]:
    """Per day: the chain's model, a cold model and the logistic regression, scored on the whole day. With
    `baselines` (day -> a row of another configuration's results on the same days and window), the cold model
    and the regression are taken from there instead of trained again: for a chain setting that changes
    neither Transform nor the window (e.g. model.warm_start_days), they are the same models."""
    rows = []
    for i, day in enumerate(days, 1):
        run, daily = chain_day(cfg, workspace, day)
        test = read_day(data_root, day)
        window = [day - dt.timedelta(days=k) for k in range(cfg.data.train_days, 0, -1)]
        window = [d for d in window if (data_root / simulate.day_folder(d)).exists()]
        window_days = [read_day(data_root, d) for d in window]
        train = {k: np.concatenate([w[k] for w in window_days]) for k in test}
        training = daily.training_summary(run)
        trainer_run = run.components["Trainer"]
        warm_model = os.path.join(trainer_run.outputs["model"][0], "Format-Serving")
        chain = figures(test, score(warm_model, test))
        chain.update(warm=bool((training.get("warm_start") or {}).get("warm")),
                     status="pushed" if run.pushed_path else "not blessed" if run.blessed is False else "failed",
                     epochs_run=training.get("epochs_run"),
                     best_epoch=(training.get("early_stopping") or {}).get("best_epoch"),
                     train_seconds=round(trainer_run.seconds, 1),
                     trainer_cached=trainer_run.state == "CACHED",  # a resumed run: ~0 s, left out of the sums
                     pipeline_seconds=round(sum(c.seconds for c in run.components.values()), 1))
        if baselines is not None:
            cold, logistic = baselines[day.isoformat()]["cold"], baselines[day.isoformat()]["logistic"]
        else:
            cold_dir = str(scratch / f"cold-{day}")
            trained = train_cold(cfg, run, cold_dir)
            cold = {**figures(test, score(os.path.join(cold_dir, "serving"), test)), **trained}
            shutil.rmtree(cold_dir, ignore_errors=True)
            fitted = logistic_baseline(train, test, crosses=[TASTE])
            logistic = {"auc": fitted["auc"], "train_seconds": fitted["seconds"]}
        row = {"day": day.isoformat(), "rows": int(len(test["click"])), "train_rows": int(len(train["click"])),
               "users_unseen_in_window": int(len(np.setdiff1d(test["user_id"], train["user_id"]))),
               "items_unseen_in_window": int(len(np.setdiff1d(test["item_id"], train["item_id"]))),
               "observed_click": float(np.mean(test["click"])),
               "oracle": {t: float(roc_auc_score(test[t], test[f"true_p_{t}"])) for t in BINARY},
               "oracle_position_free": {t: float(roc_auc_score(test[t], test[f"oracle_p_{t}"])) for t in BINARY},
               "warm chain": chain, "cold": cold, "logistic": logistic}
        rows.append(row)
        print(f"[learning curve] day {i}/{len(days)} {day}: " + "; ".join(
            f"{c} {row[c]['auc']['click']:.4f}/{row[c]['auc']['purchase']:.4f}" for c in CHAINS)
            + f"; oracle {row['oracle']['click']:.4f}/{row['oracle']['purchase']:.4f}; chain {chain['status']}", flush=True)
    return rows


def verdicts(rows: List[Dict], history: Optional[Dict] = None) -> Dict:
    """The issue's "done when", as figures: LR beaten on both tasks from the 4th day on, the click gap to the
    oracle on the last day, the warm chain against the cold model (AUC, time) and, when measured, against the
    cold model on the whole history on the last day, the share of days blessed."""
    later = rows[3:]
    warm_days = [r for r in rows if r["warm chain"]["warm"]]
    both = sum(all(r["warm chain"]["auc"][t] > r["logistic"]["auc"][t] for t in BINARY) for r in later)
    mean = {c: {t: float(np.mean([r[c]["auc"][t] for r in warm_days])) if warm_days else float("nan")
                for t in BINARY} for c in ("warm chain", "cold")}
    timed = [r for r in warm_days if not r["warm chain"].get("trainer_cached")]
    seconds = {c: float(sum(r[c]["train_seconds"] for r in timed)) for c in ("warm chain", "cold")}
    against_history = None if history is None else {
        "auc": {t: {"warm chain": rows[-1]["warm chain"]["auc"][t], "history cold": history["auc"][t]} for t in BINARY},
        "train_seconds": {"warm chain": rows[-1]["warm chain"]["train_seconds"],
                          "history cold": history["train_seconds"]}}
    return {"days_beating_logistic_on_both_from_day_4": f"{both}/{len(later)}",
            "last_day_against_history_cold": against_history,
            "last_day_click_gap_to_oracle": rows[-1]["oracle"]["click"] - rows[-1]["warm chain"]["auc"]["click"],
            "last_day_click_gap_to_position_free_oracle":
                rows[-1]["oracle_position_free"]["click"] - rows[-1]["warm chain"]["auc"]["click"],
            "warm_days": len(warm_days), "mean_auc_on_warm_days": mean, "train_seconds_on_warm_days": seconds,
            "pushed": f"{sum(r['warm chain']['status'] == 'pushed' for r in rows)}/{len(rows)}"}


def plot(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = results["days"]
    x = np.arange(1, len(rows) + 1)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, task in zip(axes, BINARY):
        for chain, style in zip(CHAINS, ("o-", "s--", "^:")):
            ax.plot(x, [r[chain]["auc"][task] for r in rows], style, label=chain)
        ax.plot(x, [r["oracle"][task] for r in rows], color="black", lw=1, label="oracle")
        ax.plot(x, [r["oracle_position_free"][task] for r in rows], color="grey", lw=1, ls="--",
                label="position-free oracle")
        if results.get("history_cold"):
            h = results["history_cold"]
            ax.plot([len(rows)], [h["auc"][task]], "k*", ms=12, label=f"cold on the whole history ({h['train_days']} days)")
        refused = [i + 1 for i, r in enumerate(rows) if r["warm chain"]["status"] != "pushed"]
        ax.plot(refused, [rows[i - 1]["warm chain"]["auc"][task] for i in refused], "rx", ms=10, label="not pushed")
        ax.set_title(f"{task} AUC on the whole evaluated day")
        ax.set_xlabel("evaluated day")
    axes[0].legend(fontsize=7)
    axes[2].bar(x - 0.2, [r["warm chain"]["train_seconds"] for r in rows], 0.4, label="warm chain (Trainer)")
    axes[2].bar(x + 0.2, [r["cold"]["train_seconds"] for r in rows], 0.4, label="cold (same code)")
    axes[2].set_title("training seconds")
    axes[2].set_xlabel("evaluated day")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    common.save_figure(fig, path)


def markdown(results: Dict, name: str = "learning_curve") -> str:
    s, rows, v = results["setup"], results["days"], results["verdicts"]
    lines = [f"Daily retraining on one simulated world: {len(rows)} evaluated days x {s['rows']:,} rows "
             f"({s['users']:,} users and {s['items']:,} items on the first day, {s['new_users_per_day']} users and "
             f"{s['new_items_per_day']} items arriving each day), configuration `{s['config']}` "
             f"(training window {s['train_days']} days). The warm chain is `mtrank backfill`; the cold model is "
             "the Trainer's code on the same run's Transform output; the logistic regression (one-hot ids and "
             "features, segment×category cross, C = 0.2) sees the same window (all its rows: the networks hold "
             "10 % of the requests out for early stopping). All scored on the whole day; the chain's figures are its "
             "Trainer's model, pushed or not (when not, serving keeps the day before's)."
             + (f" Measured as {s['measured_as']}." if s.get("measured_as") else ""), "",
             "| day | chain | epochs (best): chain / cold | click AUC: chain / cold / LR | purchase AUC: chain / cold / LR "
             "| click gap to oracle / position-free | predicted / observed CTR | train s: chain / cold | "
             "ids unseen in the window: users / items |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(rows, 1):
        c = r["warm chain"]
        start = "warm" if c["warm"] else "cold"
        epochs = " / ".join(f"{x.get('epochs_run', '-')}" + (f" ({x['best_epoch']})" if x.get("best_epoch") else "")
                            for x in (c, r["cold"]))
        auc = {t: " / ".join(f"{r[k]['auc'][t]:.4f}" for k in CHAINS) for t in BINARY}
        lines.append(f"| {i} | {start}, {c['status']} | {epochs} | {auc['click']} | {auc['purchase']} | "
                     f"{r['oracle']['click'] - c['auc']['click']:.4f} / "
                     f"{r['oracle_position_free']['click'] - c['auc']['click']:.4f} | "
                     f"{c['mean_predicted_click']:.4f} / {r['observed_click']:.4f} | "
                     f"{c['train_seconds']:.0f} / {r['cold']['train_seconds']:.0f} | "
                     f"{r['users_unseen_in_window']} / {r['items_unseen_in_window']} |")
    m, sec = v["mean_auc_on_warm_days"], v["train_seconds_on_warm_days"]
    ratio = sec["warm chain"] / sec["cold"] if sec["cold"] else float("nan")
    lines += ["", "| what the issue asks | measured |", "|---|---|",
              f"| beats the logistic regression on both tasks, from day 4 on | {v['days_beating_logistic_on_both_from_day_4']} days |",
              f"| click AUC gap to the oracle on the last day (at most 0.06) | {v['last_day_click_gap_to_oracle']:.4f} "
              f"(position-free oracle: {v['last_day_click_gap_to_position_free_oracle']:.4f}) |",
              f"| warm days: mean click / purchase AUC, chain against cold | {m['warm chain']['click']:.4f} / "
              f"{m['warm chain']['purchase']:.4f} against {m['cold']['click']:.4f} / {m['cold']['purchase']:.4f} |",
              f"| warm days: training seconds, chain against cold | {sec['warm chain']:.0f} against {sec['cold']:.0f} "
              f"({ratio:.2f}x; the chain's is its Trainer component's time in ml-metadata, the cold model's the same "
              f"code's wall time in this process: on day 1, the same work, {rows[0]['warm chain']['train_seconds']:.0f} "
              f"against {rows[0]['cold']['train_seconds']:.0f} s) |",
              f"| days pushed | {v['pushed']} |",
              *history_lines(results),
              "", f"![per day]({name}.png)", ""]
    return "\n".join(lines)


def history_lines(results: Dict) -> List[str]:
    h = results.get("history_cold")
    if not h:
        return []
    c = results["days"][-1]["warm chain"]
    return [f"| last day, warm chain against a cold model trained on the whole history ({h['train_days']} days, "
            f"{h['train_rows']:,} rows, {h['epochs_run']} epochs): click / purchase AUC, Trainer seconds | "
            f"{c['auc']['click']:.4f} / {c['auc']['purchase']:.4f} in {c['train_seconds']:.0f} s against "
            f"{h['auc']['click']:.4f} / {h['auc']['purchase']:.4f} in {h['train_seconds']:.0f} s "
            f"({c['train_seconds'] / h['train_seconds']:.2f}x; both the Trainer component's time in ml-metadata) |"]


def variant(cfg: config_lib.Config, work: Path, stem: str, edit) -> str:
    """The configuration changed by `edit` (a function of its raw dict), written as a file of its own
    (`mtrank` reads a file; paths made absolute so it loads from anywhere); refused here if it does not load."""
    import yaml

    raw = cfg.to_dict()
    raw["data"]["root"] = cfg.resolve_path(cfg.data.root)
    raw["data"]["schema"] = cfg.resolve_path(cfg.data.schema)
    edit(raw)
    path = work / f"{stem}.yaml"
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config_lib.load(path)
    return str(path)


def without_ids(cfg: config_lib.Config, work: Path) -> str:
    """The configuration without its id features and their FM term (the no-id chain)."""
    stripped = common.without_ids(cfg)
    kept = {f.name for f in stripped.features}

    def edit(raw: Dict) -> None:
        raw["features"] = [f for f in raw["features"] if f["name"] in kept]
        raw["model"]["interactions"] = stripped.model.interactions
    return variant(cfg, work, f"{Path(cfg.source).stem}-no-ids", edit)


def history_cold(cfg: config_lib.Config, work: Path, data_root: Path, day: dt.date) -> Dict:
    """What the warm chain must match without re-reading its past: a cold model trained on every simulated day
    before `day`. `mtrank run` for `day` with the training window widened to all of them and warm start off, in
    a workspace of its own (the whole pipeline: Transform's vocabularies and held-out requests over the whole
    history); its Trainer's model scored on the whole day, its Trainer's seconds from ml-metadata as the chain's."""
    from pipeline import daily, local_runner, results

    history = (day - START).days

    def edit(raw: Dict) -> None:
        raw["data"]["train_days"] = history
        raw["model"]["warm_start"] = False
    path = variant(cfg, work, f"{Path(cfg.source).stem}-history", edit)
    wide = config_lib.load(path)
    workspace = work / f"workspace-{Path(path).stem}"
    command = [sys.executable, "-m", "mtrank.cli", "run", "--config", path, "--workspace", str(workspace),
               "--data-root", str(data_root), "--date", day.isoformat()]
    print("[learning curve] " + " ".join(command[1:]), flush=True)
    code = subprocess.call(command)
    metadata, name = str(workspace / "metadata.sqlite"), local_runner.pipeline_name(wide)
    run_id = results.finished_run_for_day(metadata, name, day.isoformat())
    if code not in (0, 2) or run_id is None:  # 2 is also a refused configuration or missing days: no run then
        raise SystemExit(f"mtrank run exited with {code} and finished no run for {day}; see {workspace}/logs")
    run = results.latest_run(metadata, name, wide, run_id=run_id)
    trainer_run, training = run.components["Trainer"], daily.training_summary(run)
    test = read_day(data_root, day)
    model = figures(test, score(os.path.join(trainer_run.outputs["model"][0], "Format-Serving"), test))
    return {"day": day.isoformat(), "train_days": history, "train_rows": int(sum(
        len(read_day(data_root, day - dt.timedelta(days=k))["click"]) for k in range(1, history + 1))),
        **model, "epochs_run": training.get("epochs_run"),
        "best_epoch": (training.get("early_stopping") or {}).get("best_epoch"),
        "train_seconds": round(trainer_run.seconds, 1),
        "pipeline_seconds": round(sum(c.seconds for c in run.components.values()), 1)}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14, help="evaluated days (the training window comes before)")
    parser.add_argument("--rows", type=int, default=100_000, help="impressions per day")
    parser.add_argument("--new-users-per-day", type=int, default=50)
    parser.add_argument("--new-items-per-day", type=int, default=20)
    parser.add_argument("--config", help="the configuration the chain runs (default: the project's)")
    parser.add_argument("--no-ids", action="store_true",
                        help="leave out the configuration's id features (user_id, item_id) and their FM term")
    parser.add_argument("--history", action="store_true",
                        help="also train a cold model on the whole history before the last day (history_cold)")
    parser.add_argument("--history-only", action="store_true",
                        help="add the whole-history cold model to the results already written under --name")
    parser.add_argument("--baselines-from", metavar="NAME",
                        help="take the cold models and the regression from results NAME (same days, window and "
                             "Transform; e.g. a chain that differs in its model.warm_start_* settings only)")
    parser.add_argument("--name", default="learning_curve", help="results file name (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/mtrank-bench/learning", help="data, workspace and scratch (reused)")
    parser.add_argument("--out", default=str(common.RESULTS))
    args = parser.parse_args(argv)

    work, out = Path(args.work), Path(args.out)
    cfg = config_lib.load(args.config)
    label = os.path.relpath(cfg.source, common.RESULTS.parent.parent) + (" without ids" if args.no_ids else "")
    if args.no_ids:
        cfg = config_lib.load(without_ids(cfg, work))
    # One workspace (ml-metadata, serving root) per configuration: two chains never judge or warm-start from
    # each other's models; the days are shared (a resumed benchmark reuses them; the backfill skips finished days).
    data_root, workspace = work / "data", work / f"workspace-{Path(cfg.source).stem}"
    total = args.days + cfg.data.train_days
    simulate_world(data_root, total, args.rows, args.new_users_per_day, args.new_items_per_day, args.seed)
    evaluated = [START + dt.timedelta(days=cfg.data.train_days + i) for i in range(args.days)]
    other: Dict = {}
    if args.history_only:
        results = json.loads((out / f"{args.name}.json").read_text())
        if results["setup"]["config"] != label or len(results["days"]) != args.days:
            raise SystemExit(f"{out / args.name}.json was measured with {results['setup']['config']} over "
                             f"{len(results['days'])} days, not {label} over {args.days}: run without --history-only")
    else:
        baselines = None
        if args.baselines_from:
            other = json.loads((out / f"{args.baselines_from}.json").read_text())
            same = ("days", "rows", "new_users_per_day", "new_items_per_day", "seed", "train_days")
            wanted = {"days": args.days, "rows": args.rows, "new_users_per_day": args.new_users_per_day,
                      "new_items_per_day": args.new_items_per_day, "seed": args.seed, "train_days": cfg.data.train_days}
            if any(other["setup"].get(k) != wanted[k] for k in same):
                raise SystemExit(f"{args.baselines_from}.json holds other days or another window: run without "
                                 "--baselines-from")
            baselines = {r["day"]: r for r in other["days"]}
        started = time.perf_counter()
        backfill(cfg.source, workspace, data_root, evaluated[0], evaluated[-1])
        backfill_seconds = time.perf_counter() - started
        rows = measure(cfg, workspace, data_root, evaluated, work / "scratch", baselines)
        spec = simulate.SimulatorSpec()
        results = {"setup": {"days": args.days, "rows": args.rows, "new_users_per_day": args.new_users_per_day,
                             "new_items_per_day": args.new_items_per_day, "users": spec.num_users,
                             "items": spec.num_items, "config": label, "train_days": cfg.data.train_days,
                             "seed": args.seed, "baselines_from": args.baselines_from,
                             "warm_settings": {k: getattr(cfg.model, k) for k in (
                                 "warm_start_epochs", "warm_start_learning_rate", "warm_start_days",
                                 "warm_start_decay", "warm_start_optimizer")}},
                   "machine": common.machine(), "backfill_seconds": round(backfill_seconds, 1), "days": rows}
    if "history_cold" in other:  # a cold model: the chain's warm settings do not change it
        results["history_cold"] = other["history_cold"]
    elif args.history or args.history_only:
        results["history_cold"] = history_cold(cfg, work, data_root, evaluated[-1])
    results["verdicts"] = verdicts(results["days"], results.get("history_cold"))
    common.write(args.name, results, markdown(results, args.name), out)  # creates the folder
    plot(results, out / f"{args.name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
