"""What the simulated days allow a learner to know: the simulator's own click model, fitted to them.

The learning curve (bench/learning_curve.py) measures the chain's click AUC against the oracle, the simulator's
true probabilities. That gap mixes two things: what no learner can know from the data (a user seen a few hundred
times leaves most of their taste vector unknown) and what our model fails to learn. This benchmark separates them.
It fits, to the learning curve's own days, a model of the simulator's functional form (mtrank/simulate.py):

    click logit = b + w·((S[segment] + U[user]) ⊙ (C[category] + V[item]))
                  + biases of user, item, segment, category, device, hour + a·log(price)
    p(click)    = examine[position] · σ(click logit)

- L2 on the rows each example looks up (U, V and the user and item biases), as the Trainer's feature `l2` does.
- The L2 weight is chosen on 5 % of the training rows held out, the best epoch's weights kept (patience 2).
- Scored as our model is: position-free (the logit only), on the whole evaluated day, click AUC.

"default model's FM terms" fits the same without the two cross terms (segment·item, user·category), that is,
the FM pairs of configs/impressions.yaml: segment·category and user·item.

This is a yardstick, not a model we ship: it knows the simulator's structure, which real data never tell. That is
why it is written here by hand, on tf.Module, and not built from mtrank's layers.

    python bench/learnable_bound.py --work /tmp/mtrank-bench/learning      # after learning_curve.py; ~20 min

Writes bench/results/learnable_bound.{json,md,png}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtrank  # noqa: E402,F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from bench import common  # noqa: E402
from bench.learning_curve import read_day  # noqa: E402
from mtrank import simulate  # noqa: E402

STRUCTURES = {"simulator's form": True, "default model's FM terms": False}  # name -> cross terms present
DEVICES = list(simulate.DEVICES)


def encode(frames: Sequence[Dict[str, np.ndarray]]) -> List[Dict[str, np.ndarray]]:
    """Raw columns -> integer indices, one mapping over all days (an id is the same row on every day)."""
    out: List[Dict[str, np.ndarray]] = [dict() for _ in frames]
    for column in ("user_id", "item_id", "user_segment", "category"):
        _, codes = np.unique(np.concatenate([f[column].astype(str) for f in frames]), return_inverse=True)
        bounds = np.cumsum([0] + [len(f[column]) for f in frames])
        for i, o in enumerate(out):
            o[column] = codes[bounds[i]:bounds[i + 1]].astype(np.int64)
    for f, o in zip(frames, out):
        o["device"] = np.array([DEVICES.index(d) for d in f["device"]], dtype=np.int64)
        o["hour"] = f["hour"].astype(np.int64)
        o["position"] = np.minimum(f["position"].astype(np.int64) - 1, 19)
        o["log_price"] = np.log(f["price"].astype(np.float32))
        o["click"] = f["click"].astype(np.float32)
    return out


def fit(train: Dict[str, np.ndarray], test: Dict[str, np.ndarray], sizes: Dict[str, int], l2: float,
        crosses: bool, dim: int = 8, epochs: int = 30, seed: int = 0) -> Dict:
    import tensorflow as tf

    tf.random.set_seed(seed)
    rng = np.random.default_rng(seed)
    held = rng.random(len(train["click"])) < 0.05
    normal = lambda rows: tf.Variable(tf.random.normal([rows, dim], stddev=0.01))  # noqa: E731
    zeros = lambda rows: tf.Variable(tf.zeros([rows]))  # noqa: E731
    p = {"U": normal(sizes["user_id"]), "V": normal(sizes["item_id"]), "S": normal(sizes["user_segment"]),
         "C": normal(sizes["category"]), "w": tf.Variable(tf.ones([dim])), "ub": zeros(sizes["user_id"]),
         "ib": zeros(sizes["item_id"]), "sb": zeros(sizes["user_segment"]), "cb": zeros(sizes["category"]),
         "dev": zeros(len(DEVICES)), "hour": zeros(24), "a": tf.Variable(0.0), "b": tf.Variable(-2.0),
         "exam": tf.Variable(tf.fill([20], 3.0))}
    variables = list(p.values())

    def logit(x):
        g = tf.gather
        s, c, u, v = g(p["S"], x["user_segment"]), g(p["C"], x["category"]), g(p["U"], x["user_id"]), g(p["V"], x["item_id"])
        inter = (s + u) * (c + v) if crosses else s * c + u * v
        return (p["b"] + tf.reduce_sum(p["w"] * inter, -1) + g(p["ub"], x["user_id"]) + g(p["ib"], x["item_id"])
                + g(p["sb"], x["user_segment"]) + g(p["cb"], x["category"]) + g(p["dev"], x["device"])
                + g(p["hour"], x["hour"]) + p["a"] * x["log_price"])

    def nll(x):
        prob = tf.gather(tf.sigmoid(p["exam"]), x["position"]) * tf.sigmoid(logit(x))
        return tf.reduce_mean(tf.keras.losses.binary_crossentropy(x["click"][:, None], prob[:, None]))

    optimizer = tf.keras.optimizers.Adam(0.01)

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            g = tf.gather
            looked_up = (tf.reduce_sum(tf.square(g(p["U"], x["user_id"])), -1) + tf.reduce_sum(tf.square(g(p["V"], x["item_id"])), -1)
                         + tf.square(g(p["ub"], x["user_id"])) + tf.square(g(p["ib"], x["item_id"])))
            loss = nll(x) + l2 * tf.reduce_mean(looked_up)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    fit_rows = {k: v[~held] for k, v in train.items()}
    held_rows = {k: tf.constant(v[held]) for k, v in train.items()}
    test_rows = {k: tf.constant(v) for k, v in test.items()}
    batches = tf.data.Dataset.from_tensor_slices(fit_rows).shuffle(200_000, seed=seed).batch(4096)
    started, history, best, best_weights = time.perf_counter(), [], None, None
    for epoch in range(epochs):
        for x in batches:
            step(x)
        history.append(float(nll(held_rows)))
        if best is None or history[-1] < history[best]:
            best, best_weights = epoch, [v.numpy() for v in variables]
        elif epoch - best >= 2:
            break
    for v, w in zip(variables, best_weights):
        v.assign(w)
    return {"l2": l2, "held_out_loss": round(history[best], 5), "epochs_run": len(history), "best_epoch": best + 1,
            "click_auc": float(roc_auc_score(test["click"], logit(test_rows).numpy())),
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="bench/learning_curve.py's --work (its data/)")
    parser.add_argument("--windows", type=int, nargs="+", default=[2, 4, 8, 15],
                        help="days of history before the evaluated day to fit on")
    parser.add_argument("--l2", type=float, nargs="+", default=[0.003, 0.01, 0.03])
    parser.add_argument("--curve", default="learning_curve", help="results of the chain to set beside")
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    args = parser.parse_args()

    curve = json.loads((args.out / f"{args.curve}.json").read_text())
    evaluated = dt.date.fromisoformat(curve["days"][-1]["day"])
    window = max(args.windows)
    days = [evaluated - dt.timedelta(days=window - i) for i in range(window + 1)]
    machine = common.machine()
    print(f"[bound] reading {len(days)} days from {args.work / 'data'}", flush=True)
    raw = [read_day(args.work / "data", d) for d in days]
    oracle = {"oracle": float(roc_auc_score(raw[-1]["click"], raw[-1]["true_p_click"])),
              "position_free": float(roc_auc_score(raw[-1]["click"], raw[-1]["oracle_p_click"]))}
    encoded = encode(raw)
    sizes = {c: int(max(e[c].max() for e in encoded)) + 1 for c in ("user_id", "item_id", "user_segment", "category")}
    test = encoded[-1]
    fits = []
    for structure, crosses in STRUCTURES.items():
        for w in sorted(args.windows) if crosses else [window]:
            train = {k: np.concatenate([e[k] for e in encoded[-1 - w:-1]]) for k in test}
            for l2 in args.l2:
                r = {"structure": structure, "window_days": w, "train_rows": len(train["click"]),
                     **fit(train, test, sizes, l2, crosses)}
                fits.append(r)
                print(f"[bound] {structure}, {w} days, l2 {l2}: held-out loss {r['held_out_loss']}, "
                      f"click AUC {r['click_auc']:.4f} ({r['epochs_run']} epochs, best {r['best_epoch']}, "
                      f"{r['seconds']} s)", flush=True)
    chosen = []
    for structure in STRUCTURES:
        for w in sorted({f["window_days"] for f in fits if f["structure"] == structure}):
            group = [f for f in fits if f["structure"] == structure and f["window_days"] == w]
            chosen.append(min(group, key=lambda f: f["held_out_loss"]))
    last = curve["days"][-1]
    chain = {"warm chain": last["warm chain"]["auc"]["click"], "cold, same 2-day window": last["cold"]["auc"]["click"]}
    if curve.get("history_cold"):
        chain[f"cold, whole history ({curve['history_cold']['train_days']} days)"] = curve["history_cold"]["auc"]["click"]
    results = {"setup": {"evaluated_day": evaluated.isoformat(), "windows": sorted(args.windows), "l2_grid": args.l2,
                         "curve": args.curve, "held_out_fraction": 0.05, "embedding_dim": 8},
               "machine": machine, "oracle": oracle, "fits": fits, "chosen": chosen, "ours": chain,
               "issue_target_click_auc": oracle["oracle"] - 0.06}
    common.write("learnable_bound", results, markdown(results), args.out)
    plot(results, args.out / "learnable_bound.png")


def markdown(r: Dict) -> str:
    o = r["oracle"]
    lines = [f"What the learning curve's days allow a learner to know about clicks on its last evaluated day "
             f"({r['setup']['evaluated_day']}): a model of the simulator's own functional form (mtrank/simulate.py: "
             "segment + user and category + item latent factors, their weighted product, biases, an examination "
             "probability per position) fitted by maximum likelihood to the days before it, L2 on the looked-up id "
             "rows chosen on 5 % held-out rows, best epoch kept; scored position-free on the whole day. It knows the "
             "simulator's structure, which no real data set tells: a ceiling, not a model to ship "
             "(bench/learnable_bound.py).", "",
             "| fitted on | structure | click AUC | gap to the oracle | L2 (of " + ", ".join(map(str, r["setup"]["l2_grid"]))
             + ") | epochs (best) | seconds |", "|---|---|---:|---:|---:|---:|---:|"]
    for f in r["chosen"]:
        lines.append(f"| {f['window_days']} days ({f['train_rows']:,} rows) | {f['structure']} | {f['click_auc']:.4f} | "
                     f"{o['oracle'] - f['click_auc']:.4f} | {f['l2']} | {f['epochs_run']} ({f['best_epoch']}) | "
                     f"{f['seconds']} |")
    lines += ["", "| the same day | click AUC | gap to the oracle |", "|---|---:|---:|",
              f"| oracle (true probabilities, position included) | {o['oracle']:.4f} | 0 |",
              f"| position-free oracle | {o['position_free']:.4f} | {o['oracle'] - o['position_free']:.4f} |",
              f"| the issue's target (gap 0.06) | {r['issue_target_click_auc']:.4f} | 0.0600 |"]
    for name, auc in r["ours"].items():
        lines.append(f"| ours ({r['setup']['curve']}.md): {name} | {auc:.4f} | {o['oracle'] - auc:.4f} |")
    lines += ["", "![click AUC against days of history](learnable_bound.png)", ""]
    return "\n".join(lines)


def plot(r: Dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for structure, marker in zip(STRUCTURES, ("o-", "s")):
        pts = sorted((f["window_days"], f["click_auc"]) for f in r["chosen"] if f["structure"] == structure)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker, label=f"fitted, {structure}")
    ax.axhline(r["oracle"]["oracle"], color="black", lw=1, label="oracle")
    ax.axhline(r["issue_target_click_auc"], color="black", ls="--", lw=1, label="issue's target (gap 0.06)")
    for (name, auc), colour in zip(r["ours"].items(), ("tab:green", "tab:red", "tab:purple")):
        ax.axhline(auc, color=colour, ls=":", lw=1.5, label=f"ours: {name}")
    ax.set_xlabel("days of history fitted on")
    ax.set_ylabel(f"click AUC on {r['setup']['evaluated_day']}")
    ax.set_xticks(r["setup"]["windows"])
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    common.save_figure(fig, path)


if __name__ == "__main__":
    main()
