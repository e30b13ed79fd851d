"""Serving under concurrency: 1, 8 and 32 clients sending requests of 10 and 100 candidates, over gRPC and
over REST to `mtrank serve` with request batching off and on (serving/deploy/batching_parameters.txt),
and the same load on the SavedModel in-process (threads calling the signature, no server).

Each client is a thread sending its next request as soon as the previous one is answered (closed loop),
with the request built once beforehand (a prebuilt PredictRequest; the REST body as TF Serving's columnar
JSON bytes), so the figures are the server's. The server runs in its own process; clients, server and
model share the machine's cores, as they would on one serving node. Each case is bounded by time.

    python bench/serving_batching.py [--model-dir workspace/serving/ranker/<version>] [--seconds 3]

Writes bench/results/serving_batching.json and bench/results/serving_batching.md.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mtrank  # noqa: E402,F401
import grpc  # noqa: E402
import numpy as np  # noqa: E402
import portpicker  # noqa: E402
import requests  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc  # noqa: E402

from bench import common  # noqa: E402
from bench.serving_latency import candidate_rows, serving_bench_setup, start_server, wait_ready  # noqa: E402
from mtrank import config as config_lib  # noqa: E402
from mtrank.export_contract import EXAMPLES_INPUT, SERVING_SIGNATURE  # noqa: E402
from serving import candidates  # noqa: E402
from serving.client import ServingClient  # noqa: E402

CLIENTS = (1, 8, 32)
SIZES = (10, 100)
BATCHING_FILE = config_lib.REPO_ROOT / "serving" / "deploy" / "batching_parameters.txt"


def closed_loop(clients: int, make_call: Callable[[], Callable[[], object]], seconds: float) -> Dict[str, float]:
    """`clients` threads, each calling its own `make_call()` back to back for `seconds` (after 5 warm-up calls)."""
    latencies: List[List[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(i: int) -> None:
        call = make_call()
        for _ in range(5):
            call()
        start.wait()
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                call()
            except Exception:  # noqa: BLE001 - counted, the run goes on
                errors[i] += 1
                continue
            latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + 3600
    start.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for t in threads:
        t.join(timeout=seconds + 60)
    elapsed = time.perf_counter() - began
    ms = np.concatenate([np.array(x) for x in latencies]) * 1000.0
    return {"requests": int(ms.size), "errors": int(sum(errors)), "rps": ms.size / elapsed,
            "p50_ms": float(np.percentile(ms, 50)) if ms.size else float("nan"),
            "p99_ms": float(np.percentile(ms, 99)) if ms.size else float("nan")}


def grpc_call(target: str, request: predict_pb2.PredictRequest):
    def make():
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
        return lambda: stub.Predict(request, timeout=30)
    return make


def rest_call(url: str, body: bytes):
    def make():
        session = requests.Session()

        def call():
            answer = session.post(url, data=body, timeout=30)
            answer.raise_for_status()
            return answer.content
        return call
    return make


def in_process_call(signature, batch: np.ndarray):
    def make():
        return lambda: {k: v.numpy() for k, v in signature(examples=tf.constant(batch)).items()}
    return make


def markdown(results: Dict) -> str:
    lines = ["| clients | candidates | path | batching off: req/s | p50 / p99 ms | batching on: req/s | p50 / p99 ms "
             "| on / off req/s |", "|---:|---:|---|---:|---:|---:|---:|---:|"]
    for case in results["cases"]:
        off, on = case["off"], case.get("on")
        on_cells = (f"{on['rps']:.0f} | {on['p50_ms']:.2f} / {on['p99_ms']:.2f} | {on['rps'] / off['rps']:.2f}x"
                    if on else "n/a | n/a | n/a")
        lines.append(f"| {case['clients']} | {case['candidates']} | {case['path']} | {off['rps']:.0f} "
                     f"| {off['p50_ms']:.2f} / {off['p99_ms']:.2f} | {on_cells} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args, cfg, name, source, tmp = serving_bench_setup(__doc__, argv, 3.0, "serving-batching-bench-")
    rows = candidate_rows(cfg, max(SIZES))
    batches = {n: candidates.to_serialized_examples(cfg, rows[:n]) for n in SIZES}
    started = time.time()
    measured: Dict[tuple, Dict[str, Dict[str, float]]] = {}
    try:
        for mode, extra in (("off", []), ("on", ["--enable-batching", "--batching-parameters-file", str(BATCHING_FILE)])):
            port, rest_port = portpicker.pick_unused_port(), portpicker.pick_unused_port()
            server = start_server(tmp, args.config, name, port, rest_port, extra=extra, workers=max(CLIENTS))
            try:
                with ServingClient(f"127.0.0.1:{port}", name, timeout_s=30, retries=0) as client:
                    wait_ready(client, server)
                for n in SIZES:
                    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name))
                    request.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(batches[n]))
                    body = json.dumps({"inputs": {EXAMPLES_INPUT: [{"b64": base64.b64encode(b).decode("ascii")}
                                                                   for b in batches[n]]}}).encode()
                    url = f"http://127.0.0.1:{rest_port}/v1/models/{name}:predict"
                    for clients in CLIENTS:
                        for path, make in (("gRPC", grpc_call(f"127.0.0.1:{port}", request)),
                                           ("REST", rest_call(url, body))):
                            stats = closed_loop(clients, make, args.seconds)
                            measured.setdefault((clients, n, path), {})[mode] = stats
                            print(f"batching {mode:>3} {path:<4} {clients:>2} clients x {n:>3} candidates: "
                                  f"{stats['rps']:7.0f} req/s  p50 {stats['p50_ms']:6.2f} ms  p99 "
                                  f"{stats['p99_ms']:7.2f} ms  errors {stats['errors']}", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)
        signature = tf.saved_model.load(str(source)).signatures[SERVING_SIGNATURE]
        for n in SIZES:
            for clients in CLIENTS:
                stats = closed_loop(clients, in_process_call(signature, batches[n]), args.seconds)
                measured[(clients, n, "in-process")] = {"off": stats}
                print(f"in-process     {clients:>2} clients x {n:>3} candidates: {stats['rps']:7.0f} req/s  p50 "
                      f"{stats['p50_ms']:6.2f} ms  p99 {stats['p99_ms']:7.2f} ms", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    order = {"gRPC": 0, "REST": 1, "in-process": 2}
    results = {"model": name, "model_dir": str(source), "machine": common.machine(),
               "batching_parameters": BATCHING_FILE.read_text(),
               "method": "closed loop: each client thread sends its next prebuilt request when the previous is "
                         "answered; server = `mtrank serve` in its own process on 127.0.0.1 (--workers 32); "
                         "in-process = threads calling serving_default on the loaded SavedModel",
               "cases": [{"clients": c, "candidates": n, "path": p, **measured[(c, n, p)]}
                         for (c, n, p) in sorted(measured, key=lambda k: (k[1], order[k[2]], k[0]))],
               "seconds": round(time.time() - started, 1)}
    common.write("serving_batching", results, markdown(results), Path(args.out))
    print(f"({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
