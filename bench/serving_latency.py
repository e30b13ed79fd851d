"""Serving latency: one request of 1, 100 and 1,000 candidates over gRPC, against the same batch through the
in-process SavedModel (the floor: no network, no serialization of the request or the answer).

The server is `mtrank serve` in its own process on 127.0.0.1, one client sends requests one after another
(closed loop), so requests/s is the reciprocal of the mean latency. Each case is bounded by time and
count; the whole run takes well under two minutes.

    python bench/serving_latency.py [--model-dir workspace/serving/ranker/<version>] [--seconds 5]

Writes bench/results/serving_latency.json and bench/results/serving_latency.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtrank  # noqa: E402,F401
import numpy as np  # noqa: E402
import portpicker  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
from mtrank import config as config_lib  # noqa: E402
from serving import candidates, warmup  # noqa: E402
from serving.client import ServingClient, ServingError  # noqa: E402
from serving.signatures import EXAMPLES_INPUT  # noqa: E402

SIZES = (1, 100, 1000)
MAX_ITERATIONS = 5000
WARMUP_CALLS = 20


def newest_version(serving_root: Path, model_name: str) -> Path:
    model_dir = serving_root / model_name
    versions = sorted((p for p in model_dir.glob("*") if p.name.isdigit()), key=lambda p: int(p.name))
    if not versions:
        raise SystemExit(f"no pushed version under {model_dir}; run `mtrank run` first or pass --model-dir")
    return versions[-1]


def candidate_rows(cfg: config_lib.Config, n: int) -> List[dict]:
    """Real rows from the newest day of the configured data when there is one, synthetic rows otherwise."""
    days = sorted(Path(cfg.resolve_path(cfg.data.root)).glob("*/*.csv"))
    if days:
        import pandas as pd

        rows = pd.read_csv(days[-1], nrows=n).to_dict("records")
        if len(rows) == n:
            return rows
    return warmup.synthetic_rows(cfg, n)


def measure(call: Callable[[], object], seconds: float) -> Dict[str, float]:
    for _ in range(WARMUP_CALLS):
        call()
    latencies = []
    started = time.perf_counter()
    while len(latencies) < MAX_ITERATIONS and time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000.0
    return {"requests": len(latencies), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "rps": len(latencies) / elapsed}


def start_server(serving_root: Path, cfg_path: str, model_name: str, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "mtrank.cli", "serve", "--config", cfg_path, "--model-base-path",
               str(serving_root), "--model-name", model_name, "--port", str(port), "--workers", "4"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(command, cwd=Path(__file__).resolve().parent.parent, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(client: ServingClient, server: subprocess.Popen, timeout_s: float = 120.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode} before it was ready")
        try:
            states = client.status()
            if any(s.state == "AVAILABLE" for s in states):
                return max(s.version for s in states if s.state == "AVAILABLE")
        except ServingError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"no version was AVAILABLE within {timeout_s:.0f} s")


def markdown(results: Dict) -> str:
    lines = ["| candidates | gRPC p50 ms | gRPC p99 ms | gRPC req/s | in-process p50 ms | in-process p99 ms "
             "| in-process req/s | p50 ratio | p99 ratio | req/s ratio |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case in results["cases"]:
        g, f, r = case["grpc"], case["in_process"], case["ratio"]
        lines.append(f"| {case['candidates']} | {g['p50_ms']:.2f} | {g['p99_ms']:.2f} | {g['rps']:.0f} "
                     f"| {f['p50_ms']:.2f} | {f['p99_ms']:.2f} | {f['rps']:.0f} "
                     f"| {r['p50']:.2f}x | {r['p99']:.2f}x | {r['rps']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(config_lib.DEFAULT_CONFIG_PATH))
    parser.add_argument("--model-dir", help="a pushed version folder (default: the newest under workspace/serving)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per case and path (default: %(default)s)")
    parser.add_argument("--out", default=str(common.RESULTS), help="results folder (default: %(default)s)")
    args = parser.parse_args(argv)

    cfg = config_lib.load(args.config)
    name = cfg.serving.model_name
    source = Path(args.model_dir) if args.model_dir else newest_version(Path("workspace/serving"), name)
    tmp = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    shutil.copytree(source, tmp / name / ".staging")
    os.rename(tmp / name / ".staging", tmp / name / source.name)

    model = tf.saved_model.load(str(source))
    signature = model.signatures["serving_default"]
    port = portpicker.pick_unused_port()
    server = start_server(tmp, args.config, name, port)
    started = time.time()
    results = {"model": name, "model_dir": str(source), "machine": common.machine(),
               "method": "one client, sequential requests (closed loop); server = `mtrank serve` in its own process "
                         "on 127.0.0.1; in-process = tf.constant(batch) + serving_default + .numpy()",
               "cases": []}
    try:
        with ServingClient(f"127.0.0.1:{port}", name, timeout_s=30, retries=0) as client:
            results["version"] = wait_ready(client, server)
            rows = candidate_rows(cfg, max(SIZES))
            for n in SIZES:
                batch = candidates.to_serialized_examples(cfg, rows[:n])
                grpc_stats = measure(lambda: client.predict({EXAMPLES_INPUT: batch}), args.seconds)
                floor = measure(lambda: {k: v.numpy() for k, v in signature(examples=tf.constant(batch)).items()},
                                args.seconds)
                ratio = {"p50": grpc_stats["p50_ms"] / floor["p50_ms"], "p99": grpc_stats["p99_ms"] / floor["p99_ms"],
                         "rps": floor["rps"] / grpc_stats["rps"]}
                results["cases"].append({"candidates": n, "grpc": grpc_stats, "in_process": floor, "ratio": ratio})
                print(f"{n:>5} candidates: gRPC p50 {grpc_stats['p50_ms']:.2f} ms p99 {grpc_stats['p99_ms']:.2f} ms "
                      f"{grpc_stats['rps']:.0f} req/s | in-process p50 {floor['p50_ms']:.2f} ms p99 "
                      f"{floor['p99_ms']:.2f} ms {floor['rps']:.0f} req/s | gRPC/in-process p50 {ratio['p50']:.2f}x "
                      f"p99 {ratio['p99']:.2f}x, req/s {ratio['rps']:.2f}x fewer", flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    results["seconds"] = round(time.time() - started, 1)
    common.write("serving_latency", results, markdown(results), Path(args.out))
    print(f"({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
