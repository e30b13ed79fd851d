"""Shared-Bottom vs MMoE vs PLE on UCI Adult (income > 50K, never married), through the whole pipeline.

Each (architecture, seed) is one real local pipeline run in its own workspace (no baseline, no warm
start): Transform learns the vocabularies on adult.data, the Trainer trains on it, the Evaluator scores
adult.test with TFMA. Only `model.architecture`, `model.seed` (and `model.levels: 2` for PLE) change
between runs; everything else comes from configs/adult.yaml.

    .venv/bin/python bench/adult_study.py                 # 9 runs, ~2-3 minutes each on 2 shared cores
    .venv/bin/python bench/adult_study.py --seeds 0 --archs mmoe   # one run

Writes bench/results/adult_study.{md,json} (the JSON after every run, so a killed study keeps its runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Dict, List

import mtrank  # noqa: F401

from mtrank import config as config_lib
from mtrank import csv_import

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
ARCHS = ("shared_bottom", "mmoe", "ple")
ADULT_DAYS = {"2026-01-01": "adult.data", "2026-01-02": "adult.test"}


def study_config(base: config_lib.Config, arch: str, seed: int) -> config_lib.Config:
    levels = 2 if arch == "ple" else 1
    return base.replace(model=dataclasses.replace(base.model, architecture=arch, seed=seed, levels=levels))


def run_one(cfg: config_lib.Config, workspace_root: Path, data_root: Path) -> Dict[str, object]:
    from pipeline import daily, local_runner

    started = time.time()
    outcome = daily.run_day(cfg, local_runner.Workspace(workspace_root), data_root=str(data_root), force=True)
    return {"architecture": cfg.model.architecture, "seed": cfg.model.seed, "status": outcome.status,
            "seconds": round(time.time() - started, 1), "eval_rows": outcome.result.eval_rows,
            "parameters": outcome.training.get("parameters", {}).get("serving_total")
            if isinstance(outcome.training.get("parameters"), dict) else outcome.training.get("parameters"),
            "auc": {t.name: outcome.result.metric(t.name, "auc") for t in cfg.tasks if t.type == "binary"},
            "log_loss": {t.name: outcome.result.metric(t.name, "binary_crossentropy")
                         for t in cfg.tasks if t.type == "binary"}}


def summary_markdown(cfg: config_lib.Config, runs: List[Dict[str, object]]) -> str:
    tasks = [t.name for t in cfg.tasks if t.type == "binary"]
    lines = ["# UCI Adult: Shared-Bottom vs MMoE vs PLE through the pipeline", "",
             "Test AUC on adult.test (16,281 rows; trained on adult.data, 32,561 rows), TFMA's Evaluator, "
             "mean ± std over seeds (sample std). Configuration: `configs/adult.yaml`; "
             "script: `bench/adult_study.py`. Parameter counts are not matched (each architecture at the "
             "configuration's widths: 4 shared experts of 32 units, towers of 16; PLE: 2 levels, 1 expert per task "
             "besides). Seconds per run are wall time of the whole pipeline run on 2 CPU cores shared with other "
             "jobs: not a speed comparison.", "",
             "| architecture | seeds | " + " | ".join(f"{t} AUC" for t in tasks) + " | parameters | seconds/run |",
             "|---|---|" + "---|" * len(tasks) + "---|---|"]
    for arch in ARCHS:
        mine = [r for r in runs if r["architecture"] == arch]
        if not mine:
            continue
        cells = []
        for t in tasks:
            values = [r["auc"][t] for r in mine]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.4f} ± {std:.4f}")
        params = mine[0].get("parameters") or "?"
        seconds = statistics.mean(r["seconds"] for r in mine)
        lines.append(f"| {arch} | {len(mine)} | " + " | ".join(cells) + f" | {params} | {seconds:.0f} |")
    lines += ["", "Per run:", "", "| architecture | seed | " + " | ".join(f"{t} AUC" for t in tasks) + " | status |",
              "|---|---|" + "---|" * len(tasks) + "---|"]
    for r in runs:
        lines.append(f"| {r['architecture']} | {r['seed']} | " + " | ".join(f"{r['auc'][t]:.4f}" for t in tasks)
                     + f" | {r['status']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "adult.yaml"))
    parser.add_argument("--src", default=str(REPO.parent / "shared" / "datasets" / "adult"))
    parser.add_argument("--work", default=str(REPO / "workspace" / "adult_study"))
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fresh", action="store_true", help="ignore runs saved by an earlier, killed study")
    args = parser.parse_args()

    base = config_lib.load(args.config)
    work = Path(args.work)
    data_root = work / "data"
    for day, name in ADULT_DAYS.items():  # the published split: train on adult.data, evaluate on adult.test
        csv_import.import_file(base.data.raw, Path(args.src) / name, data_root / day, force=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    saved = RESULTS / "adult_study.json"
    runs: List[Dict[str, object]] = json.loads(saved.read_text()) if saved.exists() and not args.fresh else []
    done = {(r["architecture"], r["seed"]) for r in runs}
    for arch in args.archs:
        for seed in args.seeds:
            if (arch, seed) in done:  # a killed study resumes: finished runs are kept
                continue
            print(f"[adult-study] {arch} seed {seed}", flush=True)
            runs.append(run_one(study_config(base, arch, seed), work / f"{arch}-{seed}", data_root))
            print(f"[adult-study] {json.dumps(runs[-1])}", flush=True)
            (RESULTS / "adult_study.json").write_text(json.dumps(runs, indent=1))
    (RESULTS / "adult_study.md").write_text(summary_markdown(base, runs))
    print(summary_markdown(base, runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
