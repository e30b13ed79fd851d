"""Request batching (serving/batching.py) as TF Serving's --enable_batching: concurrent requests merged into
fewer model runs with each request answered its own rows, TF Serving's refusals (a request over
max_batch_size, a full queue), a bad request failing alone, the parameters read from the file the official
image reads, and the server answering concurrent gRPC and REST requests exactly as without batching."""

import base64
import json
import threading
import time
import urllib.request
from concurrent import futures

import grpc
import numpy as np
import portpicker
import pytest

from mtrank import config as config_lib
from serving import candidates
from serving.batching import Batcher, BatchingConfig, read_batching_parameters
from serving.client import ServingClient, predict_candidates
from serving.servable import ServingStatus
from serving.server import ModelServer
from serving.versions import ModelConfig, VersionPolicy
from test_serving_support import FLOAT32_EQUAL, build_tiny_model, in_process, publish, sample_rows

DEPLOYED = config_lib.REPO_ROOT / "serving" / "deploy" / "batching_parameters.txt"


class Model:
    """A stand-in for a signature: rows in, rows out, each row's answer depending on that row only."""

    def __init__(self, delay_s=0.0, gate=None):
        self.calls, self.delay_s, self.gate = [], delay_s, gate
        self.lock = threading.Lock()

    def __call__(self, arrays):
        x = arrays["x"]
        with self.lock:
            self.calls.append(len(x))
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay_s)
        if np.isnan(x).any():
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, f"input x cannot be scored at {np.flatnonzero(np.isnan(x))}")
        return {"y": x * 2.0 + 1.0, "z": -x}


def concurrently(fn, args):
    """Starts fn(a) for every a at once; returns the futures without waiting for them."""
    pool = futures.ThreadPoolExecutor(len(args))
    started = [pool.submit(fn, a) for a in args]
    pool.shutdown(wait=False)
    return started


def occupy(batcher, model):
    """Sends one request and waits until the only batch thread is inside the model with it (held at
    `gate`), so the requests sent next queue up together whatever the machine's speed."""
    first = concurrently(lambda x: batcher.submit({"x": x}), [np.zeros(1, dtype=np.float32)])
    deadline = time.monotonic() + 30
    while not model.calls and time.monotonic() < deadline:
        time.sleep(0.002)
    assert model.calls, "the batch thread never started"
    return first[0]


def wait_queued(batcher, tasks):
    deadline = time.monotonic() + 30
    while sum(len(b.tasks) for b in batcher._queue) < tasks and time.monotonic() < deadline:
        time.sleep(0.002)


def test_concurrent_requests_share_model_runs_and_each_gets_its_own_rows():
    gate = threading.Event()
    model = Model(gate=gate)
    batcher = Batcher(model, BatchingConfig(max_batch_size=1000, batch_timeout_micros=20_000, num_batch_threads=1))
    blocker = occupy(batcher, model)
    requests = [np.arange(10, dtype=np.float32) + 100 * i for i in range(16)]
    results = concurrently(lambda x: batcher.submit({"x": x}), requests)
    wait_queued(batcher, 16)
    gate.set()
    answers = [f.result(timeout=30) for f in results]
    blocker.result(timeout=30)
    batcher.close()
    for x, answer in zip(requests, answers):
        np.testing.assert_array_equal(answer["y"], x * 2.0 + 1.0)
        np.testing.assert_array_equal(answer["z"], -x)
    assert model.calls == [1, 160]  # the 16 requests that queued while the model was busy: one run


def test_a_merged_run_never_exceeds_the_batch_size():
    model = Model(delay_s=0.01)
    batcher = Batcher(model, BatchingConfig(max_batch_size=25, batch_timeout_micros=50_000, num_batch_threads=2))
    requests = [np.full(10, float(i), dtype=np.float32) for i in range(12)]
    answers = [f.result(timeout=30) for f in concurrently(lambda x: batcher.submit({"x": x}), requests)]
    batcher.close()
    assert max(model.calls) <= 25 and sum(model.calls) == 120
    assert all(np.array_equal(a["z"], -x) for a, x in zip(answers, requests))


def test_tf_servings_refusals_a_request_over_max_batch_size_and_a_full_queue():
    batcher = Batcher(Model(), BatchingConfig(max_batch_size=8))
    with pytest.raises(ServingStatus) as e:
        batcher.submit({"x": np.zeros(9, dtype=np.float32)})
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "Task size 9 is larger than maximum input batch size 8" in e.value.message
    batcher.close()

    gate = threading.Event()
    model = Model(gate=gate)
    batcher = Batcher(model, BatchingConfig(max_batch_size=10, batch_timeout_micros=0, max_enqueued_batches=1,
                                            num_batch_threads=1))
    running = concurrently(lambda x: batcher.submit({"x": x}), [np.zeros(10, dtype=np.float32)])
    deadline = time.monotonic() + 10
    while not model.calls and time.monotonic() < deadline:  # the only thread is busy with the first batch
        time.sleep(0.005)
    waiting = concurrently(lambda x: batcher.submit({"x": x}), [np.ones(10, dtype=np.float32)])  # fills the queue
    wait_queued(batcher, 1)
    with pytest.raises(ServingStatus) as e:
        batcher.submit({"x": np.ones(10, dtype=np.float32)})
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and "queue" in e.value.message
    gate.set()
    assert running[0].result(timeout=10)["z"].shape == (10,) and waiting[0].result(timeout=10)["y"][0] == 3.0
    batcher.close()


def test_large_batch_splitting_runs_a_big_request_alone():
    model = Model()
    batcher = Batcher(model, BatchingConfig(max_batch_size=100, enable_large_batch_splitting=True,
                                            max_execution_batch_size=20))
    x = np.arange(50, dtype=np.float32)
    np.testing.assert_array_equal(batcher.submit({"x": x})["y"], x * 2 + 1)
    batcher.close()


def test_one_bad_request_in_a_merged_batch_fails_alone():
    gate = threading.Event()
    model = Model(gate=gate)
    batcher = Batcher(model, BatchingConfig(max_batch_size=1000, batch_timeout_micros=30_000, num_batch_threads=1))
    blocker = occupy(batcher, model)
    requests = [np.arange(5, dtype=np.float32) + i for i in range(8)]
    requests[3] = requests[3].copy()
    requests[3][2] = np.nan
    results = concurrently(lambda x: batcher.submit({"x": x}), requests)
    wait_queued(batcher, 8)
    gate.set()
    for i, result in enumerate(results):
        if i == 3:
            with pytest.raises(ServingStatus, match="cannot be scored at \\[2\\]"):
                result.result(timeout=30)
        else:
            np.testing.assert_array_equal(result.result(timeout=30)["y"], requests[i] * 2 + 1)
    blocker.result(timeout=30)
    batcher.close()
    assert model.calls[:2] == [1, 40] and sorted(model.calls[2:]) == [5] * 8  # merged, failed, each re-run alone


def test_inputs_tf_servings_batching_cannot_concatenate_are_refused_as_there():
    batcher = Batcher(Model(), BatchingConfig())
    for inputs, message in [({"x": np.float32(1.0)}, "at least one dimension"),
                            ({"x": np.zeros(3, np.float32), "w": np.zeros(2, np.float32)}, "equal 0th-dimension")]:
        with pytest.raises(ServingStatus, match=message):
            batcher.submit(inputs)
    batcher.close()


def test_parameters_come_from_tf_servings_file_with_its_defaults(tmp_path):
    deployed = read_batching_parameters(str(DEPLOYED))
    assert deployed.max_batch_size == 10000 and deployed.execution_limit == 2048
    assert deployed.batch_timeout_micros == 1000 and deployed.num_batch_threads == 4
    partial = tmp_path / "batching.txt"
    partial.write_text("max_batch_size { value: 64 }\n")
    assert read_batching_parameters(str(partial)) == BatchingConfig(max_batch_size=64)
    partial.write_text("max_batch_sise { value: 64 }\n")  # misspelt, as TF Serving would refuse it
    with pytest.raises(ValueError, match="batching.txt: not a readable BatchingParameters"):
        read_batching_parameters(str(partial))
    partial.write_text("num_batch_threads { value: 0 }\n")
    with pytest.raises(ValueError, match="num_batch_threads must be >= 1"):
        read_batching_parameters(str(partial))


def test_the_server_with_batching_answers_concurrent_grpc_and_rest_requests_exactly(cfg, tmp_path):
    build = build_tiny_model(cfg, tmp_path / "build")
    publish(build, tmp_path / "serving" / "ranker", 1)
    server = ModelServer([ModelConfig("ranker", str(tmp_path / "serving" / "ranker"), VersionPolicy("latest", 1))],
                         port=portpicker.pick_unused_port(), rest_port=0, poll_seconds=0.1,
                         batching=BatchingConfig(max_batch_size=1000, batch_timeout_micros=200_000,
                                                 num_batch_threads=1)).start(wait_for_models_s=30)
    try:
        requests = [sample_rows(cfg, 20, seed=s) for s in range(12)]

        def over_grpc(rows):
            with ServingClient(server.target, "ranker", timeout_s=30) as client:
                return predict_candidates(client, cfg, rows).outputs

        def over_rest(rows):
            body = {"instances": [{"b64": base64.b64encode(e).decode()}
                                  for e in candidates.to_serialized_examples(cfg, rows)]}
            request = urllib.request.Request(f"{server.rest_url}/v1/models/ranker:predict", method="POST",
                                             data=json.dumps(body).encode())
            with urllib.request.urlopen(request, timeout=30) as answer:
                predictions = json.loads(answer.read())["predictions"]
            return {k: np.array([p[k] for p in predictions], dtype=np.float32) for k in predictions[0]}

        results = concurrently(lambda a: (over_grpc if a[0] % 2 else over_rest)(a[1]), list(enumerate(requests)))
        for rows, result in zip(requests, results):
            expected = in_process(build, cfg, rows)
            for name, values in expected.items():
                np.testing.assert_allclose(result.result(timeout=60)[name], values, **FLOAT32_EQUAL, err_msg=name)
        (model,) = server.models
        batcher = model.served[1].batchers["serving_default"]  # turned on after the warm-up requests
        assert batcher.batches_run < len(requests), "no two concurrent requests were merged"
    finally:
        server.stop()
