"""Evaluator throughput: rows/s of TFMA with this project's evaluation set-ups, side by side in one process,
on the same rows (a pipeline run's EvalSample) and the same pushed model.

Variants (each a real `tfma.run_model_analysis` with the model, as the Evaluator runs it, thresholds off:
there is no baseline here):
  previous default   per-task metrics, slices overall + device, category, position, device*position
  ranked lists added the previous default plus the per-request ranking metrics (components/ranking_metric.py)
  default            what the configuration gives now
  intervals on / off the default with TFMA's jackknife intervals switched the other way
  gates only         the overall slice alone (every gating metric, no per-slice report)

    python bench/evaluator_throughput.py --workspace /tmp/mtrank-bench/scaling/rows-150000

Writes bench/results/evaluator_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from components import evaluation  # noqa: E402
from mtrank import config as config_lib  # noqa: E402
from pipeline import results  # noqa: E402

PREVIOUS_SLICES = ["device", "category", "position", "device*position"]


def variants(cfg: config_lib.Config) -> Dict[str, tfma.EvalConfig]:
    previous = cfg.replace(ranking=config_lib.RankingSpec(),
                           evaluation=dataclasses.replace(cfg.evaluation, slices=PREVIOUS_SLICES))
    with_ranking = previous.replace(ranking=cfg.ranking)
    configs = {"previous default": evaluation.eval_config(previous),
               "ranked lists added": evaluation.eval_config(with_ranking),
               "default": evaluation.eval_config(cfg)}
    flipped = not cfg.evaluation.confidence_intervals
    configs[f"default, intervals {'on' if flipped else 'off'}"] = evaluation.eval_config(cfg.replace(
        evaluation=dataclasses.replace(cfg.evaluation, confidence_intervals=flipped, thresholds=[
            dataclasses.replace(th, significant=False) for th in cfg.evaluation.thresholds])))
    gates = evaluation.eval_config(cfg)
    del gates.slicing_specs[1:]
    configs["gates only"] = gates
    for config in configs.values():
        for spec in config.metrics_specs:
            for metric in spec.metrics:
                del metric.per_slice_thresholds[:]
    return configs


def evaluate(config: tfma.EvalConfig, model_dir: str, data: str, out: str) -> float:
    shared = tfma.default_eval_shared_model(eval_saved_model_path=model_dir, eval_config=config)
    started = time.perf_counter()
    tfma.run_model_analysis(eval_shared_model=shared, eval_config=config, data_location=data, output_path=out,
                            file_format="tfrecords")
    return time.perf_counter() - started


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", required=True, help="a workspace with one finished, pushed run")
    parser.add_argument("--config", default=str(Path(__file__).resolve().parent.parent / "configs" / "impressions.yaml"))
    parser.add_argument("--out", default=str(common.RESULTS))
    args = parser.parse_args(argv)
    cfg = config_lib.load(args.config)
    workspace = Path(args.workspace)
    run = results.latest_run(str(workspace / "metadata.sqlite"), f"mtrank-{Path(args.config).stem}", cfg)
    sample = run.components["EvalSample"].outputs["sample"][0]
    data = os.path.join(sample, "Split-eval", "*")
    rows = run.eval_rows
    if not run.pushed_path:
        raise SystemExit(f"{workspace}: the newest run pushed no model; run the pipeline first")
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in variants(cfg).items():
            seconds = evaluate(config, run.pushed_path, data, os.path.join(tmp, name.replace(" ", "_")))
            figures[name] = {"seconds": round(seconds, 1), "rows_per_second": round(rows / seconds, 1),
                             "slicings": len(config.slicing_specs),
                             "metrics_specs": len(config.metrics_specs)}
            print(f"{name:<20} {seconds:7.1f} s  {rows / seconds:7.1f} rows/s", flush=True)
    base = figures["previous default"]["rows_per_second"]
    lines = ["# Evaluator throughput", "",
             f"TFMA with the pushed model of `{workspace}` on its EvalSample ({rows:,} rows), every variant in one "
             "process, one after the other.", "",
             "| variant | slicings | seconds | rows/s | vs previous default |", "|---|---:|---:|---:|---:|"]
    for name, f in figures.items():
        lines.append(f"| {name} | {f['slicings']} | {f['seconds']} | {f['rows_per_second']} | "
                     f"{f['rows_per_second'] / base:.2f}x |")
    common.write("evaluator_throughput", {"machine": common.machine(), "rows": rows, "variants": figures},
                 "\n".join(lines) + "\n", Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
