"""Serving under bad requests and load: what tests/test_serving_server.py does not already cover.

Already covered there (not repeated): missing feature, wrong dtype, unparsable example, unknown input,
no input, bad output_filter, unknown model/version/label/signature, a new version under load, a corrupt
or half-copied version while idle. Here: wrong shape, empty batch, oversized batch, the server still
answering after every bad request, and a bounded load test while a new and then a corrupt version are
pushed through the pipeline's atomic pusher, with bad requests mixed in.
"""

import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, predict_pb2, prediction_service_pb2_grpc

from components import atomic_pusher
from serving import candidates
from serving import server as server_lib
from serving.signatures import EXAMPLES_INPUT, RAW_SIGNATURE
from test_serving_server import MODEL, _code, _wait_for, predict_request
from test_serving_support import FLOAT32_EQUAL, build_tiny_model, in_process, sample_rows, start_server

State = get_model_status_pb2.ModelVersionStatus.State
LOAD_THREADS = 6
LOAD_SECONDS = 8.0


@pytest.fixture(scope="module")
def builds(cfg, tmp_path_factory):
    root = tmp_path_factory.mktemp("fault-builds")
    corrupt = root / "corrupt"
    build_tiny_model(cfg, corrupt, scale=3.0)
    (corrupt / "saved_model.pb").write_bytes(b"\x08\x01 a truncated SavedModel")
    return {1: build_tiny_model(cfg, root / "v1", scale=1.0), 2: build_tiny_model(cfg, root / "v2", scale=2.0),
            "corrupt": corrupt}


@pytest.fixture()
def served(builds, tmp_path):
    base = tmp_path / "serving" / MODEL
    atomic_pusher.push_atomically(str(builds[1]), str(base))
    server = start_server(MODEL, base)
    channel = grpc.insecure_channel(server.target)
    yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel), base
    channel.close()
    server.stop()


def _with_examples(cfg, tensor_proto):
    request = predict_request(cfg, sample_rows(cfg, 1))
    request.inputs[EXAMPLES_INPUT].CopyFrom(tensor_proto)
    return request


def bad_requests(cfg):
    """(name, request, expected code): bad requests not covered by test_serving_server.py."""
    rows = sample_rows(cfg, 4)
    serialized = candidates.to_serialized_examples(cfg, rows)
    wrong_shape = _with_examples(cfg, tf.make_tensor_proto(np.array(serialized).reshape(2, 2)))
    scalar = _with_examples(cfg, tf.make_tensor_proto(serialized[0]))
    raw_wrong_shape = predict_pb2.PredictRequest()
    raw_wrong_shape.model_spec.name, raw_wrong_shape.model_spec.signature_name = MODEL, RAW_SIGNATURE
    for column, values in candidates.to_raw_columns(cfg, rows).items():
        raw_wrong_shape.inputs[column].CopyFrom(tf.make_tensor_proto(np.array(values).reshape(2, 2)))
    raw_ragged = predict_pb2.PredictRequest()
    raw_ragged.CopyFrom(raw_wrong_shape)
    for i, (column, values) in enumerate(candidates.to_raw_columns(cfg, rows).items()):
        raw_ragged.inputs[column].CopyFrom(tf.make_tensor_proto(values[: 4 - (i % 2)]))  # 4 and 3 values
    return [("wrong shape (2-D examples)", wrong_shape, grpc.StatusCode.INVALID_ARGUMENT),
            ("wrong shape (scalar)", scalar, grpc.StatusCode.INVALID_ARGUMENT),
            ("wrong shape (raw 2-D)", raw_wrong_shape, grpc.StatusCode.INVALID_ARGUMENT),
            ("columns of different lengths", raw_ragged, grpc.StatusCode.INVALID_ARGUMENT)]


def test_bad_shapes_are_invalid_argument_and_the_server_keeps_serving(cfg, builds, served):
    _, stub, _ = served
    rows = sample_rows(cfg, 5)
    for name, request, expected in bad_requests(cfg):
        code, details = _code(lambda: stub.Predict(request, timeout=10))
        assert code == expected, (name, code, details)
        assert details and MODEL in details, (name, details)  # the message names the model and version
        response = stub.Predict(predict_request(cfg, rows), timeout=10)  # still serving, same answers
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["score"]),
                                   in_process(builds[1], cfg, rows)["score"], **FLOAT32_EQUAL)


def test_an_empty_batch_gets_empty_answers(cfg, served):
    _, stub, _ = served
    request = _with_examples(cfg, tf.make_tensor_proto(np.array([], dtype=object), dtype=tf.string))
    response = stub.Predict(request, timeout=10)  # as TF Serving: OK, one empty output per task
    assert {"score", *[t.name for t in cfg.tasks]} <= set(response.outputs)
    assert all(tf.make_ndarray(v).shape == (0,) for v in response.outputs.values())


def test_an_oversized_batch_is_resource_exhausted_and_a_large_allowed_one_is_answered(cfg, builds, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setattr(server_lib, "MAX_MESSAGE_BYTES", 1 << 20)  # 1 MiB instead of 256 MiB, to keep the test small
    base = tmp_path / MODEL
    atomic_pusher.push_atomically(str(builds[1]), str(base))
    server = start_server(MODEL, base)
    try:
        with grpc.insecure_channel(server.target, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            rows = sample_rows(cfg, 2000)
            big = predict_request(cfg, rows)
            assert big.ByteSize() < 1 << 20
            assert tf.make_ndarray(stub.Predict(big, timeout=30).outputs["score"]).shape == (2000,)
            too_big = predict_request(cfg, rows * 8)
            assert too_big.ByteSize() > 1 << 20
            code, details = _code(lambda: stub.Predict(too_big, timeout=30))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details
            assert stub.Predict(predict_request(cfg, rows[:5]), timeout=10).model_spec.version.value > 0
    finally:
        server.stop()


@pytest.mark.integration
def test_load_while_a_new_and_then_a_corrupt_version_are_pushed_fails_no_valid_request(cfg, builds, served):
    server, _, base = served
    model = server.models[0]
    rows = sample_rows(cfg, 20)
    expected = {v: in_process(builds[v], cfg, rows)["score"] for v in (1, 2)}
    request = predict_request(cfg, rows)
    bad = bad_requests(cfg)
    stop, lock = threading.Event(), threading.Lock()
    answers, failures, bad_answers = [], [], []
    version_of = {}

    def client():
        with grpc.insecure_channel(server.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(100_000):  # bounded by count and by LOAD_SECONDS
                if stop.is_set():
                    return
                try:
                    response = stub.Predict(request, timeout=10)
                    version = version_of[response.model_spec.version.value]
                    np.testing.assert_allclose(tf.make_ndarray(response.outputs["score"]), expected[version],
                                               **FLOAT32_EQUAL)
                    with lock:
                        answers.append(version)
                except Exception as e:  # noqa: BLE001 - every failure of a valid request is counted
                    with lock:
                        failures.append(repr(e)[:300])

    def bad_client():
        with grpc.insecure_channel(server.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for i in range(100_000):
                if stop.is_set():
                    return
                name, bad_request, code = bad[i % len(bad)]
                got = _code(lambda: stub.Predict(bad_request, timeout=10))[0]
                with lock:
                    bad_answers.append(got == code)
                time.sleep(0.01)

    version_of[max(model.served)] = 1
    threads = [threading.Thread(target=client) for _ in range(LOAD_THREADS)] + [threading.Thread(target=bad_client)]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        assert _wait_for(lambda: len(answers) >= 30)
        v2, _ = atomic_pusher.push_atomically(str(builds[2]), str(base))
        version_of[v2] = 2
        assert _wait_for(lambda: 2 in answers[-LOAD_THREADS:], timeout_s=15.0), "version 2 was not picked up"
        v3, _ = atomic_pusher.push_atomically(str(builds["corrupt"]), str(base))
        assert _wait_for(lambda: any(s.version == v3 and s.error_code for s in model.statuses()), timeout_s=15.0)
        time.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - started)))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert failures == [], failures[:3]
    assert set(answers) == {1, 2} and answers[-LOAD_THREADS:] == [2] * LOAD_THREADS  # v2 kept serving
    assert sorted(model.served) == [v2]
    status = {s.version: s for s in model.statuses()}
    assert status[v3].state == State.END and "failed to load" in status[v3].error_message
    assert bad_answers and all(bad_answers)
    print(f"\nFAULTS-TABLE load: {LOAD_THREADS} threads, {time.monotonic() - started:.1f} s, valid requests sent "
          f"{len(answers) + len(failures)}, failed {len(failures)}; bad requests sent {len(bad_answers)}, answered "
          f"with the expected code {sum(bad_answers)}")
