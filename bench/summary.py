"""Gathers every benchmark's markdown under bench/results/ into bench/results/SUMMARY.md (what `make bench` ends with)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SUITE = [("trainer_throughput", "Trainer throughput"), ("pipeline_scaling", "Pipeline scaling"),
         ("simulator", "Simulator"), ("serving_latency", "Serving latency")]


def main() -> int:
    parts = ["# Benchmark summary", "",
             "Written by `make bench`; every ratio is measured side by side in one run on the machine below.", ""]
    for name, title in SUITE:
        md, js = RESULTS / f"{name}.md", RESULTS / f"{name}.json"
        if not md.exists():
            parts += [f"## {title}", "", "(not run)", ""]
            continue
        machine = json.loads(js.read_text()).get("machine", {}) if js.exists() else {}
        where = f"{machine.get('cpus', '?')} CPUs, load at start {machine.get('load_average_at_start', '?')}"
        parts += [f"## {title}", "", f"_{where}; details in `{name}.json`_", "", md.read_text().strip(), ""]
    (RESULTS / "SUMMARY.md").write_text("\n".join(parts) + "\n")
    print(f"written to {RESULTS / 'SUMMARY.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
