"""Serving latency: one request of 1, 100 and 1,000 candidates over gRPC and over REST, against the same
batch through the in-process SavedModel (the floor: no network, no serialization of the request or the
answer); and one user's 100 and 1,000 candidates as a ranking request (the user's columns once) against
the same candidates each repeating them: request bytes and latency.

The server is `mtrank serve` in its own process on 127.0.0.1, one client sends requests one after another
(closed loop), so requests/s is the reciprocal of the mean latency. Each case is bounded by time and
count; the whole run takes about two minutes. The REST client is plain HTTP (a requests session) sending
TF Serving's columnar JSON with the tf.Examples as {"b64": ...}, encoding and decoding JSON in every call
as an application would.

    python bench/serving_latency.py [--model-dir workspace/serving/ranker/<version>] [--seconds 5]

Writes bench/results/serving_latency.json and bench/results/serving_latency.md.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtrank  # noqa: E402,F401
import numpy as np  # noqa: E402
import portpicker  # noqa: E402
import requests  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
from mtrank import config as config_lib  # noqa: E402
from mtrank.export_contract import CONTEXT_SIGNATURE, EXAMPLES_INPUT, SERVING_SIGNATURE  # noqa: E402
from serving import candidates, warmup  # noqa: E402
from serving.client import ServingClient, ServingError  # noqa: E402
from tensorflow_serving.apis import model_pb2, predict_pb2  # noqa: E402

SIZES = (1, 100, 1000)
CONTEXT_SIZES = (100, 1000)
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


def shared_columns(cfg: config_lib.Config) -> List[str]:
    """The input columns every request's candidates share in the newest day of data (the user's: segment,
    device, hour on simulated data): what a ranking request sends once, as its context."""
    days = sorted(Path(cfg.resolve_path(cfg.data.root)).glob("*/*.csv"))
    if not days:
        return list(cfg.input_columns[:2])
    import pandas as pd

    frame = pd.read_csv(days[-1], nrows=20000)
    per_request = frame.groupby(cfg.ranking.request_column)[list(cfg.input_columns)].nunique().max()
    return [c for c in cfg.input_columns if per_request[c] == 1]


def request_bytes(inputs: Dict[str, np.ndarray], signature: str) -> int:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="ranker", signature_name=signature))
    for key, values in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(values))
    return request.ByteSize()


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


def start_server(serving_root: Path, cfg_path: str, model_name: str, port: int, rest_port: int,
                 extra: Sequence[str] = (), workers: int = 4) -> subprocess.Popen:
    """`mtrank serve` in its own process (`extra`: more flags, e.g. batching)."""
    command = [sys.executable, "-m", "mtrank.cli", "serve", "--config", cfg_path, "--model-base-path",
               str(serving_root), "--model-name", model_name, "--port", str(port), "--rest-port", str(rest_port),
               "--workers", str(workers), *extra]
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


def rest_predict(session: requests.Session, url: str, batch) -> Dict[str, list]:
    body = {"inputs": {EXAMPLES_INPUT: [{"b64": base64.b64encode(b).decode("ascii")} for b in batch]}}
    answer = session.post(url, data=json.dumps(body), timeout=30)
    answer.raise_for_status()
    return answer.json()["outputs"]


def markdown(results: Dict) -> str:
    lines = ["| candidates | gRPC p50 / p99 ms | gRPC req/s | REST p50 / p99 ms | REST req/s | in-process p50 / p99 ms "
             "| in-process req/s | gRPC / in-process p50 | REST / gRPC p50 | REST / gRPC req/s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case in results["cases"]:
        g, h, f, r = case["grpc"], case["rest"], case["in_process"], case["ratio"]
        lines.append(f"| {case['candidates']} | {g['p50_ms']:.2f} / {g['p99_ms']:.2f} | {g['rps']:.0f} "
                     f"| {h['p50_ms']:.2f} / {h['p99_ms']:.2f} | {h['rps']:.0f} "
                     f"| {f['p50_ms']:.2f} / {f['p99_ms']:.2f} | {f['rps']:.0f} "
                     f"| {r['p50']:.2f}x | {r['rest_p50']:.2f}x | {r['rest_rps']:.2f}x |")
    lines += ["", f"One ranking request of one user (context columns {', '.join(results['context_columns'])}) "
              "against the same candidates each repeating the user's columns, over gRPC:", "",
              "| candidates | repeated: request bytes | ranking_request: bytes | bytes ratio | repeated p50 / p99 ms "
              "| ranking_request p50 / p99 ms | p50 ratio |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for case in results["context_cases"]:
        a, b = case["repeated"], case["context"]
        lines.append(f"| {case['candidates']} | {case['repeated_bytes']:,} | {case['context_bytes']:,} "
                     f"| {case['context_bytes'] / case['repeated_bytes']:.2f}x | {a['p50_ms']:.2f} / {a['p99_ms']:.2f} "
                     f"| {b['p50_ms']:.2f} / {b['p99_ms']:.2f} | {b['p50_ms'] / a['p50_ms']:.2f}x |")
    return "\n".join(lines) + "\n"


def serving_bench_setup(doc: str, argv, seconds: float, prefix: str):
    """The serving benchmarks' command line, configuration, and the chosen version copied into a fresh
    serving root the way the Pusher publishes it: (args, cfg, model name, source version folder, root)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--config", default=str(config_lib.DEFAULT_CONFIG_PATH))
    parser.add_argument("--model-dir", help="a pushed version folder (default: the newest under workspace/serving)")
    parser.add_argument("--seconds", type=float, default=seconds, help="time per case and path (default: %(default)s)")
    parser.add_argument("--out", default=str(common.RESULTS), help="results folder (default: %(default)s)")
    parser.add_argument("--data-root", help="day folders to take candidates from (default: the configuration's)")
    args = parser.parse_args(argv)
    cfg = config_lib.load(args.config)
    if args.data_root:
        cfg = cfg.replace(data=dataclasses.replace(cfg.data, root=str(Path(args.data_root).resolve())))
    name = cfg.serving.model_name
    source = Path(args.model_dir) if args.model_dir else newest_version(Path("workspace/serving"), name)
    root = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.copytree(source, root / name / ".staging")
    os.rename(root / name / ".staging", root / name / source.name)
    return args, cfg, name, source, root


def main(argv=None) -> int:
    args, cfg, name, source, tmp = serving_bench_setup(__doc__, argv, 5.0, "serving-bench-")

    model = tf.saved_model.load(str(source))
    signature = model.signatures[SERVING_SIGNATURE]
    port, rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
    server = start_server(tmp, args.config, name, port, rest_port)
    session = requests.Session()
    rest_url = f"http://127.0.0.1:{rest_port}/v1/models/{name}:predict"
    started = time.time()
    results = {"model": name, "model_dir": str(source), "machine": common.machine(),
               "method": "one client, sequential requests (closed loop); server = `mtrank serve` in its own process "
                         "on 127.0.0.1; REST = columnar JSON with b64 tf.Examples over a requests session; "
                         "in-process = tf.constant(batch) + serving_default + .numpy()",
               "cases": []}
    try:
        with ServingClient(f"127.0.0.1:{port}", name, timeout_s=30, retries=0) as client:
            results["version"] = wait_ready(client, server)
            rows = candidate_rows(cfg, max(SIZES))
            for n in SIZES:
                batch = candidates.to_serialized_examples(cfg, rows[:n])
                grpc_stats = measure(lambda: client.predict({EXAMPLES_INPUT: batch}), args.seconds)
                rest_stats = measure(lambda: rest_predict(session, rest_url, batch), args.seconds)
                floor = measure(lambda: {k: v.numpy() for k, v in signature(examples=tf.constant(batch)).items()},
                                args.seconds)
                ratio = {"p50": grpc_stats["p50_ms"] / floor["p50_ms"], "p99": grpc_stats["p99_ms"] / floor["p99_ms"],
                         "rps": floor["rps"] / grpc_stats["rps"], "rest_p50": rest_stats["p50_ms"] / grpc_stats["p50_ms"],
                         "rest_rps": grpc_stats["rps"] / rest_stats["rps"]}
                results["cases"].append({"candidates": n, "grpc": grpc_stats, "rest": rest_stats, "in_process": floor,
                                         "ratio": ratio})
                print(f"{n:>5} candidates: gRPC p50 {grpc_stats['p50_ms']:.2f} ms p99 {grpc_stats['p99_ms']:.2f} ms "
                      f"{grpc_stats['rps']:.0f} req/s | REST p50 {rest_stats['p50_ms']:.2f} ms p99 "
                      f"{rest_stats['p99_ms']:.2f} ms {rest_stats['rps']:.0f} req/s | in-process p50 "
                      f"{floor['p50_ms']:.2f} ms p99 {floor['p99_ms']:.2f} ms {floor['rps']:.0f} req/s | "
                      f"gRPC/in-process p50 {ratio['p50']:.2f}x, REST/gRPC p50 {ratio['rest_p50']:.2f}x", flush=True)
            results["context_columns"] = shared = shared_columns(cfg)
            results["context_cases"] = []
            for n in CONTEXT_SIZES:
                context = {c: rows[0][c] for c in shared}
                whole = [{**r, **context} for r in rows[:n]]
                own = [{k: v for k, v in r.items() if k not in shared} for r in whole]
                repeated = {EXAMPLES_INPUT: candidates.to_serialized_examples(cfg, whole)}
                once = candidates.to_ranking_request(cfg, context, own)
                answers = (client.predict(repeated).outputs,
                           candidates.candidate_rows(client.predict(once, signature_name=CONTEXT_SIGNATURE).outputs))
                assert all(np.allclose(answers[0][k], answers[1][k], atol=1e-6) for k in answers[0]), "answers differ"
                case = {"candidates": n, "repeated_bytes": request_bytes(repeated, SERVING_SIGNATURE),
                        "context_bytes": request_bytes(once, CONTEXT_SIGNATURE),
                        "repeated": measure(lambda: client.predict(repeated), args.seconds),
                        "context": measure(lambda: client.predict(once, signature_name=CONTEXT_SIGNATURE), args.seconds)}
                results["context_cases"].append(case)
                print(f"{n:>5} candidates, one user: {case['repeated_bytes']:,} bytes repeated vs {case['context_bytes']:,} "
                      f"as a ranking request; p50 {case['repeated']['p50_ms']:.2f} vs {case['context']['p50_ms']:.2f} ms",
                      flush=True)
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
