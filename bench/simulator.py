"""Simulator throughput and memory: rows per second and peak resident memory, 1M rows against 10M rows.

Each size runs `mtrank.simulate.simulate` in a child process (so peak memory is that run's alone) writing
days of `--rows-per-day` rows, the way `mtrank simulate` does; the ratio of the two rates shows whether
the simulator slows down as it writes more.

    .venv/bin/python bench/simulator.py [--sizes 1000000,10000000] [--rows-per-day 1000000]

Writes bench/results/simulator.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
CHILD = """
import datetime as dt, json, resource, sys, time
from mtrank import simulate
rows, per_day, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t0 = time.perf_counter()
files = simulate.simulate(out, dt.date(2026, 11, 1), rows // per_day, per_day,
                          progress=lambda d, n, p: print(f"[simulator]   day {d}/{n}", flush=True))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "bytes": sum(f.stat().st_size for f in files),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(rows: int, per_day: int) -> Dict:
    out = tempfile.mkdtemp(prefix="simulator-bench-")
    try:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, str(rows), str(per_day), out], cwd=REPO,
                              capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"rows": rows, "rows_per_day": per_day, "days": rows // per_day, "seconds": child["seconds"],
            "process_seconds": wall, "rows_per_second": rows / child["seconds"],
            "csv_mib": child["bytes"] / 2**20, "peak_rss_mib": child["peak_rss_mib"]}


def markdown(results: Dict) -> str:
    runs = results["runs"]
    lines = ["Simulator: days of "
             f"{runs[0]['rows_per_day']:,} rows written as CSV, one child process per size.", "",
             "| rows | seconds | rows/s | CSV MiB | peak memory MiB |", "|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['rows']:,} | {r['seconds']:.1f} | {r['rows_per_second']:,.0f} | {r['csv_mib']:,.0f} "
                     f"| {r['peak_rss_mib']:,.0f} |")
    lines += ["", f"Rate at {runs[-1]['rows']:,} rows / rate at {runs[0]['rows']:,} rows: "
              f"**{results['rate_ratio']:.2f}x**; peak memory ratio {results['memory_ratio']:.2f}x "
              f"(memory follows the rows of one day, not the total)."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    from bench import common

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--rows-per-day", type=int, default=1_000_000)
    parser.add_argument("--out", default=str(common.RESULTS))
    args = parser.parse_args(argv)
    results = {"machine": common.machine(), "runs": []}
    sizes = [int(s) for s in args.sizes.split(",")]
    for i, rows in enumerate(sizes, 1):
        print(f"[simulator {i}/{len(sizes)}] {rows:,} rows ...", flush=True)
        run = measure(rows, min(args.rows_per_day, rows))
        results["runs"].append(run)
        print(f"[simulator {i}/{len(sizes)}] {rows:,} rows in {run['seconds']:.1f} s: {run['rows_per_second']:,.0f} "
              f"rows/s, peak {run['peak_rss_mib']:,.0f} MiB", flush=True)
    first, last = results["runs"][0], results["runs"][-1]
    results["rate_ratio"] = last["rows_per_second"] / first["rows_per_second"]
    results["memory_ratio"] = last["peak_rss_mib"] / first["peak_rss_mib"]
    common.write("simulator", results, markdown(results), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
