"""The MMoE paper's synthetic study (Ma et al., KDD 2018, section 3): does MMoE cope better than
Shared-Bottom and OMoE as two tasks become less related?

Data (exactly as the paper): d = 100, u1 ⟂ u2 unit vectors, w1 = c·u1, w2 = c·(ρ·u1 + √(1−ρ²)·u2),
x ~ N(0, I_d), y_k = w_kᵀx + Σ_{i=1..m} sin(α_i·w_kᵀx + β_i) + ε_k, ε_k ~ N(0, 0.01) (std 0.1).
Models: the project's own blocks (`mtrank.models.bottoms` and `layers.Tower`), built at matched parameter
counts: MMoE as in the paper (8 experts of 16 ReLU units, a softmax gate per task, towers of 8 units);
OMoE and Shared-Bottom widened until their parameter count is nearest MMoE's.
All three architectures of one (ρ, seed) train side by side in one Keras model: their weights are
disjoint and Adam is per-weight, so this is the same as three separate runs on the same batches.

    .venv/bin/python bench/mmoe_study.py            # ~5-8 minutes on 2 shared CPU cores
    .venv/bin/python bench/mmoe_study.py --quick    # smoke run: 1 seed, 2 epochs

Writes bench/results/mmoe_study.{md,json,png}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Dict, List, Tuple

import mtrank  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras

from mtrank import config as config_lib
from mtrank.models import bottoms, layers

RESULTS = Path(__file__).resolve().parent / "results"
ARCHS = ("shared_bottom", "omoe", "mmoe")
TASKS = ("task1", "task2")


@dataclasses.dataclass(frozen=True)
class Study:
    d: int = 100
    c: float = 1.0  # scale of w1, w2
    m: int = 10  # number of sine terms
    noise_std: float = 0.1  # ε ~ N(0, 0.01)
    constants_seed: int = 2018  # α_i, β_i ~ N(0, 1), drawn once and shared by every ρ and seed
    rhos: Tuple[float, ...] = (0.5, 0.9, 1.0)
    seeds: Tuple[int, ...] = (0, 1, 2, 3, 4)
    n_train: int = 10_000
    n_test: int = 5_000
    epochs: int = 60
    batch_size: int = 256
    learning_rate: float = 2e-3
    num_experts: int = 8
    expert_units: int = 16
    tower_units: int = 8

    def constants(self) -> Tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.constants_seed)
        return rng.normal(size=self.m), rng.normal(size=self.m)


def make_data(study: Study, rho: float, seed: int, n: int, split: int) -> Tuple[np.ndarray, np.ndarray]:
    """x [n, d] and y [n, 2]; the weight vectors depend on (ρ, seed) only, `split` draws fresh x and ε."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(study.d, 2)))  # two orthogonal unit vectors
    u1, u2 = q[:, 0], q[:, 1]
    w1 = study.c * u1
    w2 = study.c * (rho * u1 + math.sqrt(max(0.0, 1.0 - rho ** 2)) * u2)
    alpha, beta = study.constants()
    rng = np.random.default_rng([seed, split])
    x = rng.normal(size=(n, study.d))
    ys = []
    for w in (w1, w2):
        z = x @ w
        ys.append(z + np.sin(np.outer(z, alpha) + beta).sum(axis=1) + rng.normal(0, study.noise_std, n))
    return x.astype(np.float32), np.stack(ys, axis=1).astype(np.float32)


def model_spec(study: Study, arch: str, width: int, seed: int) -> config_lib.ModelSpec:
    experts = 1 if arch == "shared_bottom" else study.num_experts
    return config_lib.ModelSpec(architecture=arch, num_experts=experts, expert_units=[width],
                                tower_units=[study.tower_units], seed=seed)


def build_arch(study: Study, arch: str, width: int, seed: int) -> keras.Model:
    """x [B, d] -> one regression output per task, from the project's bottoms and towers."""
    spec = model_spec(study, arch, width, seed)
    x = keras.Input(shape=(study.d,), name="x")
    out = bottoms.ARCHITECTURES[arch](spec, TASKS, x)
    heads = [layers.Tower(spec.tower_units, seed=seed + 13 * i, name=f"tower_{t}")(out.reps[t])
             for i, t in enumerate(TASKS)]
    return keras.Model(x, keras.layers.Concatenate(name="y")(heads), name=arch)


def matched_widths(study: Study) -> Dict[str, Tuple[int, int]]:
    """Width per architecture whose parameter count is nearest MMoE's (the paper's comparison)."""
    target = build_arch(study, "mmoe", study.expert_units, 0).count_params()
    widths = {"mmoe": (study.expert_units, target)}
    for arch in ARCHS:
        if arch == "mmoe":
            continue
        lo, hi = 1, 4096
        while hi - lo > 1:  # parameter count grows with width
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if build_arch(study, arch, mid, 0).count_params() <= target else (lo, mid)
        best = min((lo, hi), key=lambda w: abs(build_arch(study, arch, w, 0).count_params() - target))
        widths[arch] = (best, build_arch(study, arch, best, 0).count_params())
    return widths


class SideBySide:
    """The three architectures in one Keras model, traced once and re-initialised for every run.

    Tracing the training step costs more than a run's training on this machine, so the model is built
    once; each run copies in the initial weights of freshly built networks (seeded) and zeroes Adam.
    """

    def __init__(self, study: Study, widths: Dict[str, Tuple[int, int]]):
        self.study, self.widths = study, widths
        self.model = self._assemble(seed=0)
        self.model.compile(optimizer=keras.optimizers.Adam(study.learning_rate), loss={a: "mse" for a in ARCHS})

    def _assemble(self, seed: int) -> keras.Model:
        x = keras.Input(shape=(self.study.d,), name="x")
        nets = {a: build_arch(self.study, a, self.widths[a][0], seed) for a in ARCHS}
        return keras.Model(x, {a: nets[a](x) for a in ARCHS})

    def reset(self, seed: int) -> None:
        tf.random.set_seed(seed)
        self.model.set_weights(self._assemble(seed).get_weights())
        for variable in self.model.optimizer.variables:
            variable.assign(tf.zeros_like(variable))

    def run(self, rho: float, seed: int) -> Dict[str, Dict[str, List[float]]]:
        """Trains on one (ρ, seed) data set; test MSE and last-epoch training loss per architecture and task."""
        s = self.study
        self.reset(seed)
        x_train, y_train = make_data(s, rho, seed, s.n_train, split=1)
        x_test, y_test = make_data(s, rho, seed, s.n_test, split=2)
        mean, std = y_train.mean(axis=0), y_train.std(axis=0)  # standardised labels: comparable across ρ
        y_train, y_test = (y_train - mean) / std, (y_test - mean) / std
        self.model.fit(x_train, {a: y_train for a in ARCHS}, batch_size=s.batch_size, epochs=s.epochs,
                       shuffle=True, verbose=0)
        test = self.model.predict(x_test, batch_size=4096, verbose=0)
        train = self.model.predict(x_train, batch_size=4096, verbose=0)
        return {"test_mse": {a: ((test[a] - y_test) ** 2).mean(axis=0).round(5).tolist() for a in ARCHS},
                "train_mse": {a: ((train[a] - y_train) ** 2).mean(axis=0).round(5).tolist() for a in ARCHS}}


def summarise(study: Study, runs: List[Dict]) -> Dict:
    table = {}
    for rho in study.rhos:
        for arch in ARCHS:
            losses = np.array([r["test_mse"][arch] for r in runs if r["rho"] == rho])  # [seeds, tasks]
            train = np.array([r["train_mse"][arch] for r in runs if r["rho"] == rho])
            ddof = 1 if len(losses) > 1 else 0
            table[f"{rho}/{arch}"] = {"rho": rho, "arch": arch, "mean": losses.mean(axis=0).round(4).tolist(),
                                      "std": losses.std(axis=0, ddof=ddof).round(4).tolist(),
                                      "train_mean": train.mean(axis=0).round(4).tolist(),
                                      "train_std": train.std(axis=0, ddof=ddof).round(4).tolist(),
                                      "n": len(losses)}
    return table


def findings(study: Study, table: Dict) -> List[str]:
    """Plain statements computed from the numbers, so the write-up cannot drift from them."""
    lines = []
    for rho in study.rhos:
        means = {a: np.mean(table[f"{rho}/{a}"]["mean"]) for a in ARCHS}
        best = min(means, key=means.get)
        lines.append(f"ρ = {rho}: lowest mean test MSE (both tasks averaged): **{best}** "
                     f"({', '.join(f'{a} {v:.4f}' for a, v in means.items())})")
    for other in ("shared_bottom", "omoe"):
        gaps = [np.mean(table[f"{rho}/{other}"]["mean"]) - np.mean(table[f"{rho}/mmoe"]["mean"]) for rho in study.rhos]
        lines.append(f"{other} − mmoe gap by ρ {list(study.rhos)}: {[round(g, 4) for g in gaps]} "
                     f"({'grows' if all(a >= b for a, b in zip(gaps, gaps[1:])) else 'does not grow monotonically'} "
                     "as ρ falls)")
    return lines


def write_markdown(study: Study, table: Dict, widths: Dict, lines: List[str], seconds: float) -> str:
    alpha, beta = study.constants()
    out = [
        "# MMoE synthetic correlation study (Ma et al., KDD 2018, §3)",
        "",
        "Command: `.venv/bin/python bench/mmoe_study.py` "
        f"(ran in {seconds / 60:.1f} min on a shared 2-core CPU machine).",
        "",
        f"Data: d = {study.d}, c = {study.c}, m = {study.m}, ε ~ N(0, {study.noise_std ** 2:g}); "
        f"α_i, β_i ~ N(0, 1) drawn once (seed {study.constants_seed}):",
        f"α = {np.round(alpha, 3).tolist()}, β = {np.round(beta, 3).tolist()}.",
        f"{study.n_train} training and {study.n_test} test examples per (ρ, seed); labels standardised with the "
        "training mean and std of each task, so an MSE of 1.0 is predicting the mean. Seeds change u1, u2, x, ε "
        "and the initial weights.",
        f"Training: Adam lr {study.learning_rate}, batch {study.batch_size}, {study.epochs} epochs, MSE on each task "
        "with equal weights; test MSE reported as mean ± sample std over "
        f"{len(study.seeds)} seeds.",
        "",
        "| model | width | parameters |",
        "|---|---|---|",
    ]
    for arch in ARCHS:
        w, n = widths[arch]
        shape = f"1 network of {w} units" if arch == "shared_bottom" else f"{study.num_experts} experts × {w} units"
        out.append(f"| {arch} | {shape}, towers [{study.tower_units}] | {n} |")
    out += ["", "Test MSE (standardised labels), mean ± std:", "",
            "| ρ | model | task 1 test | task 2 test | task 1 train | task 2 train |", "|---|---|---|---|---|---|"]
    for rho in study.rhos:
        for arch in ARCHS:
            r = table[f"{rho}/{arch}"]
            cells = [f"{r[k][i]:.4f} ± {r[k.replace('mean', 'std')][i]:.4f}" for k in ("mean", "train_mean") for i in (0, 1)]
            out.append(f"| {rho} | {arch} | " + " | ".join(cells) + " |")
    out += ["", "Findings (computed from the table):", ""] + [f"- {line}" for line in lines]
    out += ["", "![test MSE by correlation](mmoe_study.png)", ""]
    return "\n".join(out)


def plot(study: Study, table: Dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for k, ax in enumerate(axes):
        for j, arch in enumerate(ARCHS):
            xs = [i + (j - 1) * 0.08 for i in range(len(study.rhos))]
            ys = [table[f"{rho}/{arch}"]["mean"][k] for rho in study.rhos]
            es = [table[f"{rho}/{arch}"]["std"][k] for rho in study.rhos]
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=arch)
        ax.set_xticks(range(len(study.rhos)), [str(r) for r in study.rhos])
        ax.set_xlabel("task correlation ρ")
        ax.set_title(f"task {k + 1}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test MSE (standardised), mean ± std, {len(study.seeds)} seeds")
    axes[0].legend()
    fig.suptitle("MMoE synthetic study: Shared-Bottom vs OMoE vs MMoE at matched parameter counts")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs: checks the script, not the claim")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    study = Study(seeds=(0,), epochs=2) if args.quick else Study()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    start = time.time()
    widths = matched_widths(study)
    print("matched widths and parameter counts:", widths, flush=True)
    side_by_side = SideBySide(study, widths)
    runs = []
    total = len(study.rhos) * len(study.seeds)
    for rho in study.rhos:
        for seed in study.seeds:
            t0 = time.time()
            result = side_by_side.run(rho, seed)
            runs.append({"rho": rho, "seed": seed, **result})
            print(f"[{len(runs)}/{total}] rho={rho} seed={seed} {time.time() - t0:.1f}s test MSE "
                  + "  ".join(f"{a}={result['test_mse'][a]}" for a in ARCHS), flush=True)
    table = summarise(study, runs)
    lines = findings(study, table)
    seconds = time.time() - start
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"study": dataclasses.asdict(study), "alpha_beta": [a.tolist() for a in study.constants()],
               "widths": {a: {"width": w, "parameters": n} for a, (w, n) in widths.items()},
               "runs": runs, "summary": table, "findings": lines, "seconds": round(seconds, 1)}
    (args.out / "mmoe_study.json").write_text(json.dumps(payload, indent=2))
    (args.out / "mmoe_study.md").write_text(write_markdown(study, table, widths, lines, seconds))
    plot(study, table, args.out / "mmoe_study.png")
    print("\n".join(lines))
    print(f"wrote {args.out}/mmoe_study.md, .json, .png in {seconds:.0f}s")


if __name__ == "__main__":
    main()
