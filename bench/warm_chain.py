"""A daily warm-started chain: does restoring rows by value pay, and does a warm day keep up with a cold one?

Simulated days from one fixed world. Each day is transformed on its own (tf.Transform, the project's
`preprocessing_fn`: its vocabularies are ordered by that day's frequencies, as a one-day window's are),
a model is trained on it and scored on the whole next day. Three chains side by side, same days:

  by value     warm from yesterday's model, rows remapped by token (components/warm_start.py, the Trainer's)
  by position  warm from yesterday's model, tables loaded as they lie (what the Trainer did before: row k
               of yesterday is row k today, whatever category it now is; a size change means a cold start)
  cold         a fresh model every day

Warm days train `model.warm_start_epochs`, cold ones `model.epochs`, both with the Trainer's early stopping
on held-out requests. Per day: click and purchase AUC on the next day, the held-out loss before training,
mean predicted click rate against the observed one (calibration), seconds of training.

    python bench/warm_chain.py                  # 6 days x 100,000 rows, ~15 minutes on 2 cores
    python bench/warm_chain.py --rows 20000 --days 3

Writes bench/results/warm_chain.{json,md,png}.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtrank  # noqa: E402,F401
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from bench import common  # noqa: E402
from bench.id_features import BINARY, _split, simulated_days, transform  # noqa: E402
from components import trainer, warm_start  # noqa: E402
from mtrank import config as config_lib  # noqa: E402
from mtrank import export_contract  # noqa: E402
from mtrank.models import builder, layers  # noqa: E402

CHAINS = ("by value", "by position", "cold")


def _restore(chain: str, cfg, net, sizes, tto, previous: Optional[str]) -> warm_start.WarmStart:
    if chain == "cold" or previous is None:
        return warm_start.WarmStart(False, None, "cold")
    if chain == "by position":  # no vocabularies: the checkpoint is loaded as it lies
        return warm_start.restore(net.model, previous)
    return warm_start.restore(net.model, previous, vocabularies=trainer.vocabularies(cfg, tto),
                              build_twin=lambda old: builder.build(cfg, {**sizes, **old}).model)


def run_day(chain: str, cfg: config_lib.Config, tto, train: Dict[str, np.ndarray], test: Dict[str, np.ndarray],
            previous: Optional[str], save_to: str) -> Dict:
    started = time.perf_counter()
    mask = trainer.held_out(cfg, tf.constant(train[export_contract.REQUEST_KEY])).numpy()
    fit = _split(cfg, {k: v[~mask] for k, v in train.items()})
    validation = _split(cfg, {k: v[mask] for k, v in train.items()})
    sizes = trainer.cardinalities(cfg, tto)
    net = builder.build(cfg, sizes)
    model = trainer.compile_for_training(cfg, net)
    start = _restore(chain, cfg, net, sizes, tto, previous)
    layers.add_admission_counts(cfg, net.model, trainer.in_memory_dataset(fit, cfg.model.batch_size, False, 0))
    val_ds = trainer.in_memory_dataset(validation, 4 * cfg.model.batch_size, False, 0)
    loss_before = float(model.evaluate(val_ds, verbose=0, return_dict=True)["loss"])
    epochs = cfg.model.warm_start_epochs if start.warm else cfg.model.epochs
    stopping = trainer.early_stopping(cfg, held_out=True)
    history = model.fit(trainer.in_memory_dataset(fit, cfg.model.batch_size, shuffle=True, seed=cfg.model.seed),
                        validation_data=val_ds, epochs=epochs, verbose=0,
                        callbacks=[stopping] if stopping else []).history
    seconds = time.perf_counter() - started
    net.model.save(save_to, save_format="tf", signatures=trainer.serving_signatures(cfg, net.model, tto))
    features = {f.transformed_name: test[f.transformed_name] for f in cfg.features}
    predictions = {k: np.asarray(v).ravel() for k, v in net.model.predict(features, batch_size=8192, verbose=0).items()}
    moved = sum(c["moved"] for c in start.remapped.values())
    return {"warm": start.warm, "reason": start.reason, "rows_moved": moved,
            "auc": {t: float(roc_auc_score(test[export_contract.label_key(t)], predictions[t])) for t in BINARY},
            "mean_predicted_click": float(predictions["click"].mean()), "observed_click": float(test[export_contract.label_key("click")].mean()),
            "loss_before_training": round(loss_before, 5), "epochs_run": len(history["val_loss"]),
            "train_seconds": round(seconds, 1)}


def plot(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for chain in CHAINS:
        days = results["chains"][chain]
        x = list(range(1, len(days) + 1))
        for ax, task in zip(axes, BINARY):
            ax.plot(x, [d["auc"][task] for d in days], marker="o", label=chain)
        axes[2].plot(x, [d["mean_predicted_click"] for d in days], marker="o", label=chain)
    observed = [d["observed_click"] for d in results["chains"]["cold"]]
    axes[2].plot(range(1, len(observed) + 1), observed, color="black", ls="--", label="observed")
    for ax, title in zip(axes, ("click AUC, next day", "purchase AUC, next day", "mean predicted click rate")):
        ax.set_title(title)
        ax.set_xlabel("day")
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    common.save_figure(fig, path)


def markdown(results: Dict) -> str:
    s = results["setup"]
    lines = [f"A daily chain on simulated days: {s['days']} days x {s['rows']:,} rows, each day transformed on its "
             f"own (vocabularies in that day's frequency order), trained on, and scored on the whole next day. Warm "
             f"days train {s['warm_epochs']} epoch(s), cold days {s['epochs']}, with early stopping on held-out "
             "requests.", "",
             "| day | " + " | ".join(f"{c}: click / purchase AUC" for c in CHAINS)
             + " | rows at another position | loss before training, by value / by position | predicted / observed click rate (by value) |",
             "|---|" + "---:|" * (len(CHAINS) + 3)]
    for i in range(s["days"]):
        day = {c: results["chains"][c][i] for c in CHAINS}
        cells = [f"{day[c]['auc']['click']:.4f} / {day[c]['auc']['purchase']:.4f}" for c in CHAINS]
        lines.append(f"| {i + 1} | " + " | ".join(cells) + f" | {day['by value']['rows_moved']} | "
                     f"{day['by value']['loss_before_training']:.4f} / {day['by position']['loss_before_training']:.4f} | "
                     f"{day['by value']['mean_predicted_click']:.4f} / {day['by value']['observed_click']:.4f} |")
    seconds = {c: sum(d["train_seconds"] for d in results["chains"][c][1:]) for c in CHAINS}
    mean = {c: {t: float(np.mean([d["auc"][t] for d in results["chains"][c][1:]])) for t in BINARY} for c in CHAINS}
    lines += ["", "Days 2 on (the warm ones), mean next-day AUC and training seconds:", "",
              "| chain | click AUC | purchase AUC | training seconds |", "|---|---:|---:|---:|"]
    lines += [f"| {c} | {mean[c]['click']:.4f} | {mean[c]['purchase']:.4f} | {seconds[c]:.0f} |" for c in CHAINS]
    lines += ["", "![the chains per day](warm_chain.png)", ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=6, help="days trained on; one more is simulated to score the last")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(common.RESULTS))
    args = parser.parse_args(argv)

    cfg = config_lib.load()
    machine = common.machine()
    days = simulated_days(args.rows, args.days + 1, args.seed)
    chains: Dict[str, List[Dict]] = {c: [] for c in CHAINS}
    with tempfile.TemporaryDirectory() as work:
        previous: Dict[str, Optional[str]] = {c: None for c in CHAINS}
        for i in range(args.days):
            day_dir = os.path.join(work, f"day{i}")
            os.makedirs(day_dir)
            started = time.perf_counter()
            tto, train_xf, test_xf = transform(cfg, days[i], days[i + 1], day_dir)
            print(f"day {i + 1}: transformed in {time.perf_counter() - started:.0f} s", flush=True)
            for chain in CHAINS:
                saved = os.path.join(day_dir, chain.replace(" ", "_"))
                chains[chain].append(run_day(chain, cfg, tto, train_xf, test_xf, previous[chain], saved))
                previous[chain] = saved
                print(f"  {chain}: {chains[chain][-1]}", flush=True)
    results = {"setup": {"rows": args.rows, "days": args.days, "seed": args.seed, "epochs": cfg.model.epochs,
                         "warm_epochs": cfg.model.warm_start_epochs},
               "machine": machine, "chains": chains}
    common.write("warm_chain", results, markdown(results), Path(args.out))  # creates the folder
    plot(results, Path(args.out) / "warm_chain.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
