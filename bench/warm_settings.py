"""Warm-run settings on the learning curve's days: which `model.warm_start_*` settings make a daily chain
know the most, at what training cost?

The learning curve (bench/learning_curve.py) runs the chain through the whole pipeline, about an hour per
setting. This replays the chain's Trainer step alone, on the same days: for each day, the Transform output of
that day's pipeline run (same window, vocabularies, held-out requests), the Trainer's own code
(`components.trainer.train`), warm-started from the previous day's model of the same replay, scored on the
whole evaluated day through the exported model's `raw_features` signature. What it leaves out is the
Evaluator's gate (the learning curve pushed every day of its chain, so every day's model is the next one's
start there too); replaying the chain's own warm settings reproduces the chain's figures.

    python bench/warm_settings.py --work /tmp/mtrank-bench/learning   # after learning_curve.py, ~8 min a setting

Writes bench/results/warm_settings.{json,md,png}.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtrank  # noqa: E402,F401
import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from bench.id_features import BINARY  # noqa: E402
from bench.learning_curve import START, chain_day, figures, read_day, score  # noqa: E402
from components import trainer  # noqa: E402
from mtrank import config as config_lib  # noqa: E402

# name -> the warm runs' settings, whole (independent of the configuration's own): window days fitted on
# (0 = all), Adam's rate (None = model.learning_rate, the cold runs' 0.01), epochs at most (early stopping
# on). `baseline`: the cold rate, the whole window (the configuration's settings before warm_start_learning_rate;
# a chain run with them is reproduced by its replay). The cold first day is the same in every replay.
# Since warm_start_optimizer and warm_start_decay exist, also whether a warm run continues the optimizer of the
# model it starts from and how its rate shrinks with the chain's age (the settings before them: a fresh Adam
# every run, the same rate every day).
def _warm(days: int = 0, rate: Optional[float] = None, epochs: int = 2, optimizer: bool = False,
          decay: float = 0.0) -> Dict:
    return {"warm_start_days": days, "warm_start_learning_rate": rate, "warm_start_epochs": epochs,
            "warm_start_optimizer": optimizer, "warm_start_decay": decay}


SETTINGS = {
    "baseline": _warm(),
    "newest day": _warm(days=1),
    "warm lr 0.003": _warm(rate=0.003),
    "newest day, warm lr 0.003": _warm(days=1, rate=0.003),
    "warm lr 0.001": _warm(rate=0.001),
    "warm lr 0.003, 1 epoch": _warm(rate=0.003, epochs=1),
    "warm lr 0.003, Adam carried": _warm(rate=0.003, optimizer=True),
    "warm lr 0.003, Adam carried, decay 0.5": _warm(rate=0.003, optimizer=True, decay=0.5),
    "warm lr 0.003, Adam carried, decay 0.5, 1 epoch": _warm(rate=0.003, optimizer=True, decay=0.5, epochs=1),
    # The configuration's own warm settings, varying the optimizer (model.optimizer) and the model's seed: how
    # much of a difference between two learning curves (one seed each) a seed alone makes.
    **{f"{optimizer}, seed {seed}": {"optimizer": optimizer, "seed": seed}
       for optimizer in ("lazy_adam", "adam") for seed in (7, 8, 9)},
}


def replay(cfg: config_lib.Config, workspace: Path, data_root: Path, days: List[dt.date], scratch: Path) -> List[Dict]:
    rows, previous = [], None
    for day in days:
        run, _ = chain_day(cfg, workspace, day)
        out = scratch / day.isoformat()
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        summary = trainer.train(cfg, common.run_fn_args(cfg, run, str(out), previous))
        seconds = time.perf_counter() - started
        test = read_day(data_root, day)
        row = {"day": day.isoformat(), **figures(test, score(str(out / "serving"), test)),
               "warm": bool(summary["warm_start"]["warm"]), "fit_days": summary["fit_days"],
               "epochs_run": summary["epochs_run"], "best_epoch": (summary.get("early_stopping") or {}).get("best_epoch"),
               "learning_rate": summary["learning_rate"], "train_seconds": round(seconds, 1),
               "phase_seconds": summary.get("seconds"),
               "oracle": {t: float(_auc(test[t], test[f"true_p_{t}"])) for t in BINARY},
               "observed_click": float(np.mean(test["click"]))}
        rows.append(row)
        print(f"[warm settings] {day}: click {row['auc']['click']:.4f} purchase {row['auc']['purchase']:.4f} "
              f"({'warm' if row['warm'] else 'cold'}, {row['fit_days']} day(s), {row['epochs_run']} epochs, "
              f"{seconds:.0f} s)", flush=True)
        if previous is not None:
            shutil.rmtree(Path(previous).parent, ignore_errors=True)
        previous = str(out / "serving")
    return rows


def _auc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(labels, scores)


def summarize(rows: List[Dict]) -> Dict:
    warm = [r for r in rows if r["warm"]]
    return {"mean_auc_on_warm_days": {t: float(np.mean([r["auc"][t] for r in warm])) for t in BINARY},
            "last_day_auc": rows[-1]["auc"], "train_seconds_on_warm_days": float(sum(r["train_seconds"] for r in warm)),
            "fit_seconds_on_warm_days": (float(sum(r["phase_seconds"]["fit"] for r in warm))
                                         if all(r.get("phase_seconds") for r in warm) else None)}


def markdown(results: Dict, name: str = "warm_settings") -> str:
    s = results["setup"]
    lines = [f"Warm-run settings replayed on the learning curve's {s['days']} days of {s['rows']:,} simulated rows "
             f"(configuration `{s['config']}`, training window {s['train_days']} days): each day the Trainer's own code "
             "on that day's Transform output, warm-started from the previous day's model of the same replay, scored "
             "on the whole evaluated day. The first day is cold in every replay. Chain of the learning curve itself "
             f"(the whole pipeline, the configuration's warm settings when it ran): {s['chain']}.", "",
             "| setting | mean click / purchase AUC, warm days | last day click / purchase AUC | epochs (best) on warm "
             "days | training s, warm days | of which fitting |", "|---|---:|---:|---|---:|---:|"]
    for setting, r in results["replays"].items():
        v = r["summary"]
        epochs = ", ".join(f"{x['epochs_run']}({x['best_epoch']})" for x in r["days"] if x["warm"])
        lines.append(f"| {setting} | {v['mean_auc_on_warm_days']['click']:.4f} / {v['mean_auc_on_warm_days']['purchase']:.4f} "
                     f"| {v['last_day_auc']['click']:.4f} / {v['last_day_auc']['purchase']:.4f} | {epochs} | "
                     f"{v['train_seconds_on_warm_days']:.0f} | "
                     f"{'' if v.get('fit_seconds_on_warm_days') is None else round(v['fit_seconds_on_warm_days'])} |")
    lines += ["", "Per day, click / purchase AUC:", "",
              "| day | " + " | ".join(results["replays"]) + " | oracle |",
              "|---|" + "---:|" * (len(results["replays"]) + 1)]
    first = next(iter(results["replays"].values()))["days"]
    for i, day in enumerate(first):
        cells = [f"{r['days'][i]['auc']['click']:.4f} / {r['days'][i]['auc']['purchase']:.4f}"
                 for r in results["replays"].values()]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + f" | {day['oracle']['click']:.4f} / {day['oracle']['purchase']:.4f} |")
    lines += ["", f"![per day]({name}.png)", ""]
    return "\n".join(lines)


def plot(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, task in zip(axes, BINARY):
        for name, r in results["replays"].items():
            ax.plot(range(1, len(r["days"]) + 1), [d["auc"][task] for d in r["days"]], "o-", ms=3, label=name)
        ax.set_title(f"{task} AUC on the whole evaluated day")
        ax.set_xlabel("evaluated day")
    axes[0].legend(fontsize=7)
    common.save_figure(fig, path)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="the learning curve's configuration (default: the project's)")
    parser.add_argument("--work", default="/tmp/mtrank-bench/learning", help="the learning curve's --work")
    parser.add_argument("--workspace", help="its chain's workspace (default: <work>/workspace-<config stem>)")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--curve", default="learning_curve",
                        help="the learning curve's results whose chain is replayed (default: %(default)s)")
    parser.add_argument("--name", help="results file name (default: warm_settings, warm_settings_no_ids for a "
                                       "configuration without id features)")
    parser.add_argument("--merge", action="store_true",
                        help="add these settings' replays to the results already written (same days)")
    parser.add_argument("--out", default=str(common.RESULTS))
    args = parser.parse_args(argv)

    cfg = config_lib.load(args.config)
    args.name = args.name or ("warm_settings" if any(f.kind == "id" for f in cfg.features) else "warm_settings_no_ids")
    work = Path(args.work)
    workspace = Path(args.workspace) if args.workspace else work / f"workspace-{Path(cfg.source).stem}"
    curve = json.loads((Path(args.out) / f"{args.curve}.json").read_text())  # its days and its chain's figures
    days = [dt.date.fromisoformat(r["day"]) for r in curve["days"]]
    assert days[0] == START + dt.timedelta(days=cfg.data.train_days), "not the learning curve's days"
    written = Path(args.out) / f"{args.name}.json"
    replays = json.loads(written.read_text())["replays"] if args.merge and written.exists() else {}
    for name in args.settings:
        varied = cfg.replace(model=dataclasses.replace(cfg.model, **SETTINGS[name]))
        rows = replay(varied, workspace, work / "data", days, work / "scratch" / "warm-settings")
        replays[name] = {"settings": SETTINGS[name], "days": rows, "summary": summarize(rows)}
    chain = curve["verdicts"]["mean_auc_on_warm_days"]["warm chain"]
    results = {"setup": {"days": len(days), "rows": curve["setup"]["rows"], "config": curve["setup"]["config"],
                         "train_days": cfg.data.train_days, "learning_rate": cfg.model.learning_rate,
                         "chain_warm_settings": curve["setup"].get("warm_settings"),
                         "chain": f"mean click / purchase AUC on warm days {chain['click']:.4f} / {chain['purchase']:.4f}"},
               "machine": common.machine(), "replays": replays}
    common.write(args.name, results, markdown(results, args.name), Path(args.out))
    plot(results, Path(args.out) / f"{args.name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
