"""Id features: what each lever buys (issue 15, item 3), measured with the project's own code.

Simulated days from one fixed world (users and items persist): `--train-days` days of `--rows` rows are
the training window, the next day is scored whole. Every variant goes through the project's
`preprocessing_fn` (tf.Transform, in process), `builder.build`, `trainer.compile_for_training`, the
Trainer's request hold-out (`ranking.validation_fraction`) and its early stopping, exactly as a pipeline
run does; only the TFX orchestration around them is left out, so a variant costs seconds, not minutes.

Variants, each on the same transformed rows:
  no ids          the default configuration's features
  ids             + user_id and item_id as hashed embeddings (dim 8), nothing else
  + FM            + dot products of embedding pairs into the logits (`model.interactions`, DeepFM's term,
                  one weight per pair: the variants pin `interaction_weights: pair`, as measured):
                  segment·category, and with ids user·item
  + l2            + L2 on the looked-up rows (`features[].l2`)
  + bias          + a per-value bias per task (`features[].bias`: the wide, logistic-regression part)
  min_count N     ids trained on fewer than N times share one row (`features[].min_count`)
  ... and the `ids` model trained every epoch without early stopping (what early stopping buys)
Beside them, the logistic-regression baseline of the issue: one-hot features with user_id and item_id,
L2 with C = 0.2 (scikit-learn), without and with the segment×category cross, and the oracle (the
simulator's true probabilities).

    python bench/id_features.py                 # 4 x 100,000 training rows, ~10 minutes on 2 cores
    python bench/id_features.py --rows 20000    # smoke run
    python bench/id_features.py --rows 20000 --train-days 2 --epochs 5 --name id_features_small_window
                                                # the end-to-end test's window: where ids lose

Writes bench/results/id_features.{json,md,png}.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtrank  # noqa: E402,F401
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.preprocessing import OneHotEncoder  # noqa: E402
from tensorflow_metadata.proto.v0 import schema_pb2  # noqa: E402
from tfx.utils import io_utils  # noqa: E402

from bench import common  # noqa: E402
from components import trainer, transform_in_memory  # noqa: E402
from mtrank import config as config_lib  # noqa: E402
from mtrank import export_contract  # noqa: E402
from mtrank import simulate  # noqa: E402
from mtrank.models import builder, layers  # noqa: E402

IDS = (config_lib.FeatureSpec(name="user_id", kind="id", hash_buckets=20_000, embedding_dim=8),
       config_lib.FeatureSpec(name="item_id", kind="id", hash_buckets=10_000, embedding_dim=8))
BINARY = ("click", "purchase")


TASTE = ["user_segment", "category"]  # a segment's taste for a category: the simulator's main interaction
USER_ITEM = ["user_id", "item_id"]


def variants(cfg: config_lib.Config, l2: List[float], min_counts: List[int] = ()) -> Dict[str, config_lib.Config]:
    def with_ids(interactions=(), ids=IDS, **kwargs) -> config_lib.Config:
        return cfg.replace(features=list(cfg.features) + [dataclasses.replace(f, **kwargs) for f in ids],
                           model=dataclasses.replace(cfg.model, interactions=[list(p) for p in interactions]))

    fm = (TASTE, USER_ITEM)

    def with_min_count(n: int, **kwargs) -> config_lib.Config:  # Transform only hashes: the same columns
        return with_ids(fm, min_count=n, **kwargs)

    return {**{f"ids + FM, min_count {n}": with_min_count(n) for n in min_counts},
            **{f"ids + FM + bias, min_count {n}": with_min_count(n, bias=True) for n in min_counts},
            **{f"ids + FM + bias, min_count {n}, ids out of the experts": with_min_count(n, bias=True, deep=False)
               for n in min_counts},
            "no ids": cfg,
            "no ids + FM (segment·category)": cfg.replace(model=dataclasses.replace(cfg.model, interactions=[TASTE])),
            "ids": with_ids(),
            "ids + FM (segment·category, user·item)": with_ids(fm),
            "ids + FM + bias": with_ids(fm, bias=True),
            "ids + FM + bias, ids out of the experts": with_ids(fm, bias=True, deep=False),
            **{f"ids + FM + bias + l2 {x:g}": with_ids(fm, bias=True, l2=x) for x in l2}}


def simulated_days(rows: int, days: int, seed: int) -> List[Dict[str, np.ndarray]]:
    world = simulate.build_world(simulate.SimulatorSpec(seed=seed))
    return [simulate.simulate_day(world, i, rows) for i in range(days)]


def _concat(days: List[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    return {k: np.concatenate([d[k] for d in days]) for k in days[0]}


def transform(cfg: config_lib.Config, train: Dict[str, np.ndarray], test: Dict[str, np.ndarray],
              work: str) -> Tuple[tft.TFTransformOutput, Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """The project's preprocessing_fn through tf.Transform's Beam API: analyzed on the training window,
    applied to both, as the Transform component does."""
    schema = io_utils.parse_pbtxt_file(cfg.resolve_path(cfg.data.schema), schema_pb2.Schema())
    columns = transform_in_memory.raw_columns(cfg)
    tto, train_out, (test_out,) = transform_in_memory.analyze_and_transform(
        cfg, schema, transform_in_memory.rows_of(train, columns), os.path.join(work, "transform"),
        others=[transform_in_memory.rows_of(test, columns)])
    return tto, transform_in_memory.arrays_of(train_out), transform_in_memory.arrays_of(test_out)


def _split(cfg: config_lib.Config, data: Dict[str, np.ndarray]) -> tuple:
    parts = trainer.split_labels(cfg, {k: tf.constant(v) for k, v in data.items()})
    return tuple({k: v.numpy() for k, v in part.items()} for part in parts)


def train_and_score(cfg: config_lib.Config, tto: tft.TFTransformOutput, train: Dict[str, np.ndarray],
                    test: Dict[str, np.ndarray]) -> Dict:
    """One variant, trained as the Trainer trains (held-out requests, early stopping when configured)."""
    started = time.perf_counter()
    mask = trainer.held_out(cfg, tf.constant(train[export_contract.REQUEST_KEY])).numpy()
    fit = _split(cfg, {k: v[~mask] for k, v in train.items()})
    validation = _split(cfg, {k: v[mask] for k, v in train.items()})
    net = builder.build(cfg, trainer.cardinalities(cfg, tto))
    model = trainer.compile_for_training(cfg, net)
    layers.add_admission_counts(cfg, net.model, trainer.in_memory_dataset(fit, cfg.model.batch_size, False, 0))
    stopping = trainer.early_stopping(cfg, held_out=True)
    history = model.fit(trainer.in_memory_dataset(fit, cfg.model.batch_size, shuffle=True, seed=cfg.model.seed),
                        validation_data=trainer.in_memory_dataset(validation, 4 * cfg.model.batch_size, False, 0),
                        epochs=cfg.model.epochs, verbose=0, callbacks=[stopping] if stopping else []).history
    features = {f.transformed_name: test[f.transformed_name] for f in cfg.features}
    predictions = net.model.predict(features, batch_size=8192, verbose=0)
    return {"auc": {t: float(roc_auc_score(test[export_contract.label_key(t)], np.asarray(predictions[t]).ravel())) for t in BINARY},
            "val_loss": [round(float(x), 5) for x in history["val_loss"]],
            "epochs_run": len(history["val_loss"]),
            "best_epoch": int(np.argmin(history["val_loss"])) + 1,
            "parameters": int(net.model.count_params()),
            "seconds": round(time.perf_counter() - started, 1)}


def logistic_baseline(train: Dict[str, np.ndarray], test: Dict[str, np.ndarray], c: float = 0.2,
                      crosses: Tuple[List[str], ...] = ()) -> Dict:
    """The issue's baseline: one-hot user_id, item_id and the default features (price as deciles), L2;
    `crosses`: pairs of columns added as one-hot crosses."""
    started = time.perf_counter()
    edges = np.quantile(train["price"], np.linspace(0.1, 0.9, 9))
    columns = ["user_id", "item_id", "user_segment", "category", "device", "hour"]

    def table(data):
        crossed = [np.char.add(np.char.add(data[a].astype(str), "|"), data[b].astype(str)) for a, b in crosses]
        return np.column_stack([data[c].astype(str) for c in columns] + crossed
                               + [np.digitize(data["price"], edges).astype(str)])

    encoder = OneHotEncoder(handle_unknown="ignore")
    x_train, x_test = encoder.fit_transform(table(train)), encoder.transform(table(test))
    auc = {}
    for task in BINARY:
        lr = LogisticRegression(C=c, max_iter=300, solver="lbfgs").fit(x_train, train[task])
        auc[task] = float(roc_auc_score(test[task], lr.predict_proba(x_test)[:, 1]))
    return {"auc": auc, "seconds": round(time.perf_counter() - started, 1), "parameters": int(x_train.shape[1])}


def plot(results: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["runs"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, task in zip(axes, BINARY):
        values = [results["runs"][n]["auc"][task] for n in names]
        ax.barh(names, values, color="#4c72b0")
        ax.axvline(results["oracle"][task], color="black", ls="--", label="oracle")
        ax.axvline(results["oracle_position_free"][task], color="grey", ls=":", label="position-free oracle")
        ax.set_xlim(min(values) - 0.02, results["oracle"][task] + 0.01)
        ax.set_title(f"{task} AUC on the next day")
        ax.invert_yaxis()
    axes[0].legend(loc="lower right", fontsize=8)
    axes[1].set_yticklabels([])
    common.save_figure(fig, path)


def markdown(results: Dict, name: str = "id_features") -> str:
    s = results["setup"]
    lines = [f"Id features on simulated data: {s['train_days']} days x {s['rows']:,} rows of one fixed world "
             f"({s['users']:,} users, {s['items']:,} items) trained on, the next day ({s['rows']:,} rows) scored whole. "
             "Every variant through the project's preprocessing_fn, model builder, request hold-out and early "
             f"stopping (patience {s['patience']}, at most {s['epochs']} epochs).", "",
             "| variant | click AUC | purchase AUC | epochs run (best) | parameters | seconds |",
             "|---|---:|---:|---:|---:|---:|"]
    for variant, run in results["runs"].items():
        epochs = f"{run['epochs_run']} ({run['best_epoch']})" if "epochs_run" in run else "-"
        lines.append(f"| {variant} | {run['auc']['click']:.4f} | {run['auc']['purchase']:.4f} | {epochs} | "
                     f"{run['parameters']:,} | {run['seconds']} |")
    lines.append(f"| oracle (true probabilities) | {results['oracle']['click']:.4f} | "
                 f"{results['oracle']['purchase']:.4f} | | | |")
    lines.append(f"| position-free oracle | {results['oracle_position_free']['click']:.4f} | "
                 f"{results['oracle_position_free']['purchase']:.4f} | | | |")
    lines += ["", f"![AUC per variant]({name}.png)", "",
              f"Transform (tf.Transform, in process) took {results['transform_seconds']} s.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--train-days", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--patience", type=int, default=1)
    parser.add_argument("--l2", type=float, nargs="*", default=[1e-3, 1e-2])
    parser.add_argument("--min-count", type=int, nargs="*", default=[5, 20],
                        help="id variants whose rare ids share a row (features[].min_count)")
    parser.add_argument("--only", nargs="*", help="run only these variants (by name)")
    parser.add_argument("--cache", help="keep the transformed rows here and reuse them (same --rows, --train-days, --seed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(common.RESULTS))
    parser.add_argument("--name", default="id_features", help="results file name (another window size: its own name)")
    args = parser.parse_args(argv)

    base = common.without_ids(config_lib.load())  # the variants add the ids themselves
    base = base.replace(model=dataclasses.replace(base.model, epochs=args.epochs, early_stopping_patience=args.patience,
                                                  interactions=[],  # each variant sets its own
                                                  interaction_weights="pair"))  # as the results were measured
    machine = common.machine()
    days = simulated_days(args.rows, args.train_days + 1, args.seed)
    train, test = _concat(days[:-1]), days[-1]
    everything = variants(base, args.l2)["ids"]  # Transform once: every variant reads these columns
    with tempfile.TemporaryDirectory() as scratch:
        work = args.cache or scratch
        started = time.perf_counter()
        cached = os.path.join(work, "transformed.npz")
        if args.cache and os.path.exists(cached):
            tto = tft.TFTransformOutput(os.path.join(work, "transform"))
            with np.load(cached) as z:
                train_xf = {k[6:]: z[k] for k in z.files if k.startswith("train/")}
                test_xf = {k[5:]: z[k] for k in z.files if k.startswith("test/")}
                transform_seconds = float(z["seconds"]) if "seconds" in z.files else None
        else:
            os.makedirs(work, exist_ok=True)
            tto, train_xf, test_xf = transform(everything, train, test, work)
            transform_seconds = round(time.perf_counter() - started, 1)
            if args.cache:
                np.savez(cached, seconds=transform_seconds, **{f"train/{k}": v for k, v in train_xf.items()},
                         **{f"test/{k}": v for k, v in test_xf.items()})
        print(f"transformed {len(train['click']):,} + {len(test['click']):,} rows in {transform_seconds} s", flush=True)
        runs = {}
        chosen = variants(base, args.l2, args.min_count)
        chosen["ids, every epoch (no early stopping)"] = chosen["ids"].replace(
            model=dataclasses.replace(chosen["ids"].model, early_stopping_patience=0))
        for name, cfg in chosen.items():
            if args.only and name not in args.only:
                continue
            runs[name] = train_and_score(cfg, tto, train_xf, test_xf)
            print(name, runs[name], flush=True)
    runs["logistic regression: one-hot with ids, C = 0.2"] = logistic_baseline(train, test)
    runs["logistic regression: + segment×category cross (the issue's baseline)"] = logistic_baseline(
        train, test, crosses=[TASTE])
    world = simulate.SimulatorSpec(seed=args.seed)
    results = {
        "setup": {"rows": args.rows, "train_days": args.train_days, "epochs": args.epochs, "patience": args.patience,
                  "l2": args.l2, "min_count": args.min_count, "seed": args.seed, "users": world.num_users, "items": world.num_items},
        "machine": machine, "transform_seconds": transform_seconds, "runs": runs,
        "oracle": {t: float(roc_auc_score(test[t], test[f"true_p_{t}"])) for t in BINARY},
        "oracle_position_free": {t: float(roc_auc_score(test[t], test[f"oracle_p_{t}"])) for t in BINARY},
    }
    common.write(args.name, results, markdown(results, args.name), Path(args.out))  # creates the folder
    plot(results, Path(args.out) / f"{args.name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
