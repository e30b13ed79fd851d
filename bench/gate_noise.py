"""How often the blessing gate refuses a model that is no worse: the false-rejection rate.

Models trained from the same data with the same configuration and different seeds are equally good. The
gate judges one against the other on the Evaluator's sample of the evaluated day; every refusal there is a
false rejection. This trains `--seeds` models with the project's own Trainer code (`components.trainer.train`)
on a finished run's Transform output, then runs TFMA as the Evaluator does (the configured eval config's
thresholded metrics, 95 % jackknife intervals, candidate against baseline on the same rows) for every
pair, overall slice only (the only slice the thresholds read). Each pair gives two judgments (A against B,
B against A: the change and its interval change sign), each under two rules:

  point        TFMA's change threshold: refuse when candidate − baseline < −max_drop
  significant  `significant: true`: refuse only when the whole 95 % interval lies below −max_drop

The point rule's verdict on the A-against-B judgment is also read from TFMA's own validation result, and
must agree with the rule computed here.

    python bench/gate_noise.py --workspace workspace [--seeds 4]

Writes bench/results/gate_noise.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtrank  # noqa: E402,F401
import tensorflow_model_analysis as tfma  # noqa: E402

from bench import common  # noqa: E402
from components import evaluation, trainer  # noqa: E402
from mtrank import config as config_lib  # noqa: E402
from mtrank import metrics as metrics_lib  # noqa: E402
from pipeline import results  # noqa: E402


def train_seed(cfg: config_lib.Config, seed: int, run: results.RunResult, out: str) -> str:
    """One model with `model.seed = seed`, trained cold by the Trainer's own code; returns its SavedModel."""
    seeded = cfg.replace(model=dataclasses.replace(cfg.model, seed=seed, warm_start=False))
    fn_args = common.run_fn_args(seeded, run, out)
    trainer.train(seeded, fn_args)
    return fn_args.serving_model_dir


def judge(cfg: config_lib.Config, candidate: str, baseline: str, data: str, out: str) -> Dict:
    """TFMA on the overall slice with both models, as the Evaluator runs it; the thresholds' changes."""
    config = evaluation.eval_config(cfg)
    del config.slicing_specs[1:]
    # Only what the thresholds read (an interval depends on its own metric alone): TFMA's jackknife costs
    # about 5x the Evaluator's time per metric (bench/results/evaluator_throughput.md).
    for spec in config.metrics_specs:
        gated = [m for m in spec.metrics if m.per_slice_thresholds]
        del spec.metrics[:]
        spec.metrics.extend(gated)
    kept = [spec for spec in config.metrics_specs if spec.metrics]
    del config.metrics_specs[:]
    config.metrics_specs.extend(kept)
    (spec,) = config.model_specs
    del config.model_specs[:]
    for name, is_baseline in (("candidate", False), ("baseline", True)):
        named = tfma.ModelSpec()
        named.CopyFrom(spec)
        named.name, named.is_baseline = name, is_baseline
        config.model_specs.append(named)
    models = [tfma.default_eval_shared_model(eval_saved_model_path=path, model_name=name, eval_config=config)
              for name, path in (("candidate", candidate), ("baseline", baseline))]
    tfma.run_model_analysis(eval_shared_model=models, eval_config=config, data_location=data, output_path=out,
                            file_format="tfrecords")
    metrics, tfma_ok, failures, intervals = results.read_tfma(out)
    changes = {}
    for th in cfg.evaluation.thresholds:
        if th.max_drop is None:
            continue
        name = metrics_lib.key_name(th.metric)
        change = metrics["Overall"].get(th.task, {}).get(f"{name}_diff", float("nan"))
        low, high = intervals.get("Overall", {}).get(th.task, {}).get(f"{name}_diff", (float("nan"),) * 2)
        if metrics_lib.lower_is_better(th.metric):  # as a gain: positive = better
            change, low, high = -change, -high, -low
        changes[f"{th.task} {name}"] = {"change": change, "low": low, "high": high, "max_drop": th.max_drop}
    return {"changes": changes, "tfma_point_ok": tfma_ok, "failures": failures}


def refusals(changes: Dict[str, Dict]) -> Dict[str, Dict[str, List[str]]]:
    """Which thresholds refuse, per judgment (forward = candidate against baseline) and rule."""
    out = {d: {"point": [], "significant": []} for d in ("forward", "reverse")}
    for key, c in changes.items():
        if c["change"] < -c["max_drop"]:
            out["forward"]["point"].append(key)
        if -c["change"] < -c["max_drop"]:
            out["reverse"]["point"].append(key)
        if c["high"] < -c["max_drop"]:
            out["forward"]["significant"].append(key)
        if -c["low"] < -c["max_drop"]:
            out["reverse"]["significant"].append(key)
    return out


def markdown(figures: Dict) -> str:
    lines = ["# The gate's false-rejection rate", "",
             f"{figures['seeds']} models trained from the same data (the run of `{figures['workspace']}`, "
             f"{figures['train_rows_note']}) with different seeds; every pair judged both ways by the configured "
             f"thresholds on the Evaluator's sample ({figures['rows']:,} rows), overall slice, TFMA with 95 % "
             "jackknife intervals (20 buckets).", "",
             "| rule | judgments refused | false-rejection rate |", "|---|---:|---:|"]
    for rule in ("point", "significant"):
        r = figures["rules"][rule]
        lines.append(f"| {rule} | {r['refused']} of {r['judgments']} | {r['rate']:.0%} |")
    lines += ["", "Seed-to-seed noise per threshold (change as a gain: positive = A better):", "",
              "| threshold | tolerated drop | largest |change| | median 95 % half-width |", "|---|---:|---:|---:|"]
    for key in figures["pairs"][0]["changes"] if figures["pairs"] else []:
        changes = [p["changes"][key] for p in figures["pairs"]]
        largest = max(abs(c["change"]) for c in changes)
        half = sorted((c["high"] - c["low"]) / 2 for c in changes)[len(changes) // 2]
        lines.append(f"| {key} | {changes[0]['max_drop']:g} | {largest:.4f} | {half:.4f} |")
    lines += ["", "| pair | threshold | change (A − B) | 95 % interval | tolerated drop |", "|---|---|---:|---|---:|"]
    for pair in figures["pairs"]:
        for key, c in pair["changes"].items():
            lines.append(f"| {pair['a']} vs {pair['b']} | {key} | {c['change']:+.4f} | "
                         f"[{c['low']:+.4f}, {c['high']:+.4f}] | {c['max_drop']:g} |")
    lines += ["", f"Training: {figures['train_seconds']:.0f} s per model; judging: {figures['judge_seconds']:.0f} s "
              "per pair (two models, jackknife intervals, overall slice)."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", required=True, help="a workspace with one finished run")
    parser.add_argument("--config", default=str(Path(__file__).resolve().parent.parent / "configs" / "impressions.yaml"))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--out", default=str(common.RESULTS))
    args = parser.parse_args(argv)
    cfg = config_lib.load(args.config)
    cfg = cfg.replace(evaluation=dataclasses.replace(cfg.evaluation, confidence_intervals=True, thresholds=[
        dataclasses.replace(th, significant=False) for th in cfg.evaluation.thresholds]))
    workspace = Path(args.workspace)
    run = results.latest_run(str(workspace / "metadata.sqlite"), f"mtrank-{Path(args.config).stem}", cfg)
    data = os.path.join(run.components["EvalSample"].outputs["sample"][0], "Split-eval", "*")
    seeds = [cfg.model.seed + i for i in range(args.seeds)]
    models, pairs, totals = {}, [], {"train": 0.0, "judge": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            started = time.perf_counter()
            models[seed] = train_seed(cfg, seed, run, os.path.join(tmp, f"seed-{seed}"))
            totals["train"] += time.perf_counter() - started
            print(f"trained seed {seed} in {time.perf_counter() - started:.0f} s", flush=True)
        for a, b in itertools.combinations(seeds, 2):
            started = time.perf_counter()
            judged = judge(cfg, models[a], models[b], data, os.path.join(tmp, f"judge-{a}-{b}"))
            totals["judge"] += time.perf_counter() - started
            judged.update(a=a, b=b, refused=refusals(judged["changes"]))
            if judged["tfma_point_ok"] != (not judged["refused"]["forward"]["point"]):
                raise SystemExit(f"seeds {a} vs {b}: TFMA's verdict {judged['tfma_point_ok']} disagrees with the "
                                 f"point rule computed from its output ({judged['failures']})")
            pairs.append(judged)
            print(f"seed {a} vs {b}: " + ", ".join(f"{k} {c['change']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]"
                                                  for k, c in judged["changes"].items()), flush=True)
    rules = {}
    for rule in ("point", "significant"):
        refused = sum(bool(p["refused"][d][rule]) for p in pairs for d in ("forward", "reverse"))
        rules[rule] = {"refused": refused, "judgments": 2 * len(pairs), "rate": refused / (2 * len(pairs))}
    figures = {"machine": common.machine(), "workspace": str(workspace), "seeds": len(seeds), "rows": run.eval_rows,
               "train_rows_note": f"trained on {', '.join(run.window().get('train', []))}",
               "rules": rules, "pairs": pairs, "train_seconds": totals["train"] / len(seeds),
               "judge_seconds": totals["judge"] / max(len(pairs), 1)}
    for rule, r in rules.items():
        print(f"{rule:<12} refused {r['refused']} of {r['judgments']} judgments ({r['rate']:.0%})", flush=True)
    common.write("gate_noise", figures, markdown(figures), Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
