"""Pipeline scaling: wall time per component and in total for growing simulated data, one pipeline run each.

Every size is split into `train_days + 1` equal days (the default configuration trains on 2 days and
evaluates on the third), simulated into a fresh workspace and run by the local runner (LocalDagRunner,
Beam DirectRunner) in its own process, so no run warms another's caches. Component times are the
executions' wall times recorded in ml-metadata. Growth is judged per component by
(seconds at the largest size / seconds at the smallest) / (rows at the largest / rows at the smallest):
at most 1.0 is no worse than linear.

    .venv/bin/python bench/pipeline_scaling.py [--sizes 150000,500000,1500000] [--mode auto]

Writes bench/results/pipeline_scaling.{json,md}; the workspaces stay under --work (the serving benchmark
reuses the smallest run's pushed model).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
TIMINGS = "timings.json"


def run_one(config: str, rows: int, workspace: Path, mode: str, workers: int) -> None:
    """Child process: simulate, run the pipeline for the last day, write the component times."""
    import datetime as dt

    from mtrank import config as config_lib, simulate
    from pipeline import local_runner, results

    cfg = config_lib.load(config)
    days = cfg.data.train_days + 1
    per_day = rows // days
    data_root = workspace / "data"
    start = dt.date(2026, 11, 1)
    t0 = time.perf_counter()
    simulate.simulate(data_root, start, days, per_day)
    simulate_seconds = time.perf_counter() - t0
    run_date = (start + dt.timedelta(days=days - 1)).isoformat()
    why = "chosen on the command line"
    if mode == local_runner.AUTO:
        mode, why = local_runner.choose_running_mode(
            local_runner.window_bytes(str(data_root), cfg.data.span_pattern, run_date, cfg.data.train_days))
    t0 = time.perf_counter()
    name = local_runner.run(cfg, local_runner.Workspace(workspace), run_date=run_date,
                            direct_running_mode=mode, direct_num_workers=workers, data_root=str(data_root))
    pipeline_seconds = time.perf_counter() - t0
    components = results.latest_component_runs(str(workspace / "metadata.sqlite"), name)
    sample = components.get("EvalSample")
    rows_evaluated = None
    if sample and sample.outputs.get("sample"):
        rows_evaluated = sample.properties[sample.outputs["sample"][0]].get("rows_evaluated")
    (workspace / TIMINGS).write_text(json.dumps({
        "rows": per_day * days, "days": days, "beam_mode": mode, "beam_mode_why": why, "rows_per_day": per_day, "simulate_seconds": simulate_seconds,
        "pipeline_seconds": pipeline_seconds, "rows_evaluated": rows_evaluated or per_day,
        "components": {n: {"seconds": c.seconds, "state": c.state} for n, c in components.items()}}, indent=2))


def markdown(results: Dict) -> str:
    runs = results["runs"]
    names = [n for n in runs[0]["components"] if any(r["components"].get(n, {}).get("seconds", 0) >= 1.0 for r in runs)]
    head = "| component | " + " | ".join(f"{r['rows']:,} rows (s)" for r in runs) + " | growth vs linear |"
    lines = [f"Pipeline wall time per component; Beam DirectRunner mode `{results['mode']}`; "
             f"{runs[0]['days']} days per size (train on {runs[0]['days'] - 1}, evaluate on the last, at most "
             f"{results['max_eval_rows']:,} of its rows); default configuration otherwise.", "", head,
             "|---|" + "---:|" * (len(runs) + 1)]
    for n in names:
        cells = [f"{r['components'].get(n, {}).get('seconds', float('nan')):.1f}" for r in runs]
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {results['growth'].get(n, float('nan')):.2f} |")
    lines.append("| **pipeline total** | " + " | ".join(f"**{r['pipeline_seconds']:.1f}**" for r in runs)
                 + f" | **{results['growth']['pipeline total']:.2f}** |")
    lines.append("| Beam mode | " + " | ".join(r.get("beam_mode", "?") for r in runs) + " | |")
    lines.append("| rows evaluated | " + " | ".join(f"{r['rows_evaluated']:,}" for r in runs) + " | |")
    lines.append("| µs per row (total) | " + " | ".join(f"{1e6 * r['pipeline_seconds'] / r['rows']:.0f}" for r in runs)
                 + " | |")
    lines += ["", "Growth vs linear = (seconds at the largest size / at the smallest) / (rows ratio); "
              "at most 1.00 is no worse than linear."]
    return "\n".join(lines) + "\n"


def growth(runs: List[Dict]) -> Dict[str, float]:
    first, last = runs[0], runs[-1]
    rows_ratio = last["rows"] / first["rows"]
    out = {}
    for n, c in first["components"].items():
        if c["seconds"] > 0 and n in last["components"]:
            out[n] = (last["components"][n]["seconds"] / c["seconds"]) / rows_ratio
    out["pipeline total"] = (last["pipeline_seconds"] / first["pipeline_seconds"]) / rows_ratio
    return out


def main(argv: Optional[List[str]] = None) -> int:
    from bench import common
    from mtrank import config as config_lib

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    config_lib.add_config_argument(parser)
    parser.add_argument("--sizes", default="150000,500000,1500000", help="total simulated rows per run")
    parser.add_argument("--mode", default="auto", choices=["auto", "in_memory", "multi_processing", "multi_threading"],
                        help="Beam DirectRunner mode; auto: what `mtrank run` picks for the window's size")
    parser.add_argument("--workers", type=int, default=0, help="direct_num_workers (0: one per core)")
    parser.add_argument("--work", default="/tmp/mtrank-bench/scaling", help="workspaces (default: %(default)s)")
    parser.add_argument("--out", default=str(common.RESULTS))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: run one size
    parser.add_argument("--workspace", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.config, args.one, Path(args.workspace), args.mode, args.workers)
        return 0

    cfg = config_lib.load(args.config)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {"machine": common.machine(), "config": str(cfg.source), "mode": args.mode, "workers": args.workers,
               "max_eval_rows": cfg.evaluation.max_eval_rows, "runs": []}
    started = time.time()
    for i, rows in enumerate(sizes, 1):
        workspace = Path(args.work) / f"rows-{rows}"
        shutil.rmtree(workspace, ignore_errors=True)
        workspace.mkdir(parents=True)
        print(f"[scaling {i}/{len(sizes)}] {rows:,} rows: simulate + pipeline in {workspace}", flush=True)
        subprocess.run([sys.executable, __file__, "--config", args.config, "--one", str(rows), "--workspace",
                        str(workspace), "--mode", args.mode, "--workers", str(args.workers)], check=True, cwd=REPO)
        run = json.loads((workspace / TIMINGS).read_text())
        results["runs"].append(run)
        slowest = sorted(run["components"].items(), key=lambda kv: -kv[1]["seconds"])[:3]
        print(f"[scaling {i}/{len(sizes)}] {rows:,} rows: pipeline {run['pipeline_seconds']:.0f} s (slowest: "
              + ", ".join(f"{n} {c['seconds']:.0f} s" for n, c in slowest) + ")", flush=True)
    results["growth"] = growth(results["runs"])
    results["seconds"] = round(time.time() - started, 1)
    common.write("pipeline_scaling", results, markdown(results), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
