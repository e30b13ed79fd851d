"""Evaluator throughput: rows/s of the Evaluator's evaluation, side by side in one process, on the same rows
(a pipeline run's EvalSample) and the same pushed model, change thresholds off (there is no baseline here;
the floors stay, and they decide what TFMA keeps).

Variants:
  TFMA, every slice            what the Evaluator did first: `tfma.run_model_analysis` on the whole EvalConfig
  TFMA overall, every metric   the step before (9e622c9): TFMA on the overall slice with every metric, the other
                               slices from one pass of the model (components/slice_metrics.py)
  default                      what it does now (components/evaluator.py): TFMA on the overall slice with the
                               gating metrics, everything else from one pass of the model
  default + a cross            the same with the device*position cross (30 more cells) added
  default, intervals on        the same with TFMA's jackknife intervals (on the gating metrics, where they are read)
  gates only                   TFMA on the overall slice with the gating metrics alone, no report

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
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtrank  # noqa: E402,F401
import tensorflow_model_analysis as tfma  # noqa: E402

from bench import common  # noqa: E402
from components import evaluation, slice_metrics  # noqa: E402
from mtrank import config as config_lib  # noqa: E402
from pipeline import results  # noqa: E402

CROSS = "device*position"
BEFORE = "TFMA, every slice"
TFMA, SLICES, SPLIT = "tfma", "slices", "split"  # how a variant divides the work (see `divide`)


def variants(cfg: config_lib.Config) -> Dict[str, Tuple[tfma.EvalConfig, str]]:
    """{name: (EvalConfig, how the work is divided)}."""
    def config(**evaluation_changes) -> tfma.EvalConfig:
        return evaluation.eval_config(cfg.replace(evaluation=dataclasses.replace(cfg.evaluation, **evaluation_changes)))

    significant_off = [dataclasses.replace(th, significant=False) for th in cfg.evaluation.thresholds]
    configs = {BEFORE: (evaluation.eval_config(cfg), TFMA),
               "TFMA overall, every metric": (evaluation.eval_config(cfg), SLICES),
               "default": (evaluation.eval_config(cfg), SPLIT),
               "default + a cross": (config(slices=[*cfg.evaluation.slices, CROSS]), SPLIT),
               "default, intervals on": (config(confidence_intervals=True, thresholds=significant_off), SPLIT)}
    for eval_config, _ in configs.values():
        for spec in eval_config.metrics_specs:
            for metric in spec.metrics:
                for threshold in metric.per_slice_thresholds:
                    threshold.threshold.ClearField("change_threshold")
    configs["gates only"] = (slice_metrics.split(configs["default"][0])[0], TFMA)
    return configs


def divide(config: tfma.EvalConfig, how: str) -> Tuple[tfma.EvalConfig, List[tfma.SlicingSpec]]:
    """(what TFMA runs, the slicings measured from predictions)."""
    if how == SPLIT:
        return slice_metrics.split(config)
    if how == SLICES:
        kept = tfma.EvalConfig()
        kept.CopyFrom(config)
        del kept.slicing_specs[1:]
        return kept, list(config.slicing_specs[1:])
    return config, []


def evaluate(config: tfma.EvalConfig, how: str, model_dir: str, data: str, out: str) -> Dict[str, float]:
    """Seconds in TFMA and in the slices measured from predictions (model loads included)."""
    kept, moved = divide(config, how)
    started = time.perf_counter()
    shared = tfma.default_eval_shared_model(eval_saved_model_path=model_dir, eval_config=kept)
    tfma.run_model_analysis(eval_shared_model=shared, eval_config=kept, data_location=data, output_path=out,
                            file_format="tfrecords")
    in_tfma = time.perf_counter() - started
    slices = slice_metrics.evaluate_slices(config, moved, model_dir, data, out)
    return {"tfma_seconds": in_tfma, "slices_seconds": time.perf_counter() - started - in_tfma,
            "seconds": time.perf_counter() - started, "slices_from_predictions": slices}


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
        for name, (config, how) in variants(cfg).items():
            out = os.path.join(tmp, name.replace(" ", "_").replace(",", ""))
            os.makedirs(out)
            timing = evaluate(config, how, run.pushed_path, data, out)
            figures[name] = {**{k: round(v, 1) for k, v in timing.items()},
                             "rows_per_second": round(rows / timing["seconds"], 1),
                             "slicings": len(config.slicing_specs), "metrics_specs": len(config.metrics_specs),
                             "tfma_metrics": sum(len(s.metrics) for s in divide(config, how)[0].metrics_specs)}
            print(f"{name:<22} {timing['seconds']:7.1f} s  {rows / timing['seconds']:7.1f} rows/s", flush=True)
    base = figures[BEFORE]["rows_per_second"]
    lines = ["# Evaluator throughput", "",
             f"The pushed model of `{workspace}` on its EvalSample ({rows:,} rows), every variant in one process, "
             "one after the other. Seconds include loading the model (TFMA's and, for the slices, once more).", "",
             "| variant | slicings | metrics in TFMA | TFMA s | from predictions s | total s | rows/s | vs TFMA, every slice |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, f in figures.items():
        lines.append(f"| {name} | {f['slicings']} | {f['tfma_metrics']} | {f['tfma_seconds']} | {f['slices_seconds']} | {f['seconds']} | "
                     f"{f['rows_per_second']} | {f['rows_per_second'] / base:.2f}x |")
    common.write("evaluator_throughput", {"machine": common.machine(), "rows": rows, "variants": figures},
                 "\n".join(lines) + "\n", Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
