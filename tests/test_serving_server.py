"""The built-in TF Serving-compatible server over real gRPC on 127.0.0.1: answers equal the SavedModel's,
status codes are TF Serving's, versions switch under load without a failed request, and a broken or
half-copied version folder never replaces the version that serves."""

import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2, model_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc)

from serving import candidates
from serving.signatures import EXAMPLES_INPUT, RAW_SIGNATURE
from test_serving_support import FLOAT32_EQUAL, build_tiny_model, in_process, publish, sample_rows, start_server

MODEL = "ranker"
State = get_model_status_pb2.ModelVersionStatus.State


@pytest.fixture(scope="module")
def builds(cfg, tmp_path_factory):
    """Three tiny SavedModels whose answers differ, so the answering version is visible in the numbers."""
    root = tmp_path_factory.mktemp("builds")
    return {v: build_tiny_model(cfg, root / f"v{v}", scale=float(v)) for v in (1, 2, 3)}


@pytest.fixture()
def model_dir(tmp_path):
    return tmp_path / "serving" / MODEL


@pytest.fixture()
def served(builds, model_dir):
    publish(builds[1], model_dir, 1)
    server = start_server(MODEL, model_dir)
    channel = grpc.insecure_channel(server.target)
    yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel), model_dir
    channel.close()
    server.stop()


def predict_request(cfg, rows, name=MODEL, signature="", version=None, label=""):
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, signature_name=signature,
                                                                        version_label=label))
    if version is not None:
        request.model_spec.version.value = version
    request.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(candidates.to_serialized_examples(cfg, rows)))
    return request


def outputs_of(response):
    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def assert_same(got, expected):
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], **FLOAT32_EQUAL, err_msg=name)


def test_predict_equals_the_saved_model_in_process(cfg, builds, served):
    _, stub, _ = served
    rows = sample_rows(cfg, 50)
    response = stub.Predict(predict_request(cfg, rows), timeout=10)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 1  # neither version nor label: the newest loaded
    assert response.model_spec.signature_name == "serving_default"
    assert_same(outputs_of(response), in_process(builds[1], cfg, rows))

    raw = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=MODEL, signature_name=RAW_SIGNATURE))
    for column, values in candidates.to_raw_columns(cfg, rows).items():
        raw.inputs[column].CopyFrom(tf.make_tensor_proto(values))
    assert_same(outputs_of(stub.Predict(raw, timeout=10)), in_process(builds[1], cfg, rows, RAW_SIGNATURE))

    filtered = predict_request(cfg, rows)
    filtered.output_filter.append("score")
    assert set(stub.Predict(filtered, timeout=10).outputs) == {"score"}


def test_metadata_and_status_answer_like_tf_serving(cfg, served):
    server, stub, _ = served
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=model_pb2.ModelSpec(name=MODEL),
                                                              metadata_field=["signature_def"])
    response = stub.GetModelMetadata(request, timeout=10)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    assert {"serving_default", RAW_SIGNATURE} <= set(signature_map.signature_def)
    assert set(signature_map.signature_def["raw_features"].inputs) == set(cfg.input_columns)
    assert response.model_spec.version.value == 1

    with grpc.insecure_channel(server.target) as channel:
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=MODEL)), timeout=10)
    assert [(s.version, s.state, s.status.error_code) for s in status.model_version_status] == [
        (1, State.AVAILABLE, 0)]


def _code(call):
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_error_codes_are_tf_servings(cfg, served):
    server, stub, _ = served
    rows = sample_rows(cfg, 3)

    code, details = _code(lambda: stub.Predict(predict_request(cfg, rows, name="nope"), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND and "Servable not found for request: Latest(nope)" in details
    code, details = _code(lambda: stub.Predict(predict_request(cfg, rows, version=99), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND and f"Specific({MODEL}, 99)" in details
    assert _code(lambda: stub.Predict(predict_request(cfg, rows, name=""), timeout=10))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    code, details = _code(lambda: stub.Predict(predict_request(cfg, rows, label="canary"), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "label" in details
    code, details = _code(lambda: stub.Predict(predict_request(cfg, rows, signature="nope"), timeout=10))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "nope" in details

    missing_feature = predict_request(cfg, rows)
    example = candidates.to_example(cfg, rows[0])
    del example.features.feature[cfg.input_columns[0]]
    missing_feature.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto([example.SerializeToString()]))
    garbage = predict_request(cfg, rows)
    garbage.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto([b"\xff\x00 not a tf.Example"]))
    wrong_dtype = predict_request(cfg, rows)
    wrong_dtype.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(np.ones(3, np.float32)))
    wrong_alias = predict_request(cfg, rows)
    wrong_alias.inputs["other"].CopyFrom(tf.make_tensor_proto([b""]))
    no_inputs = predict_request(cfg, rows)
    del no_inputs.inputs[EXAMPLES_INPUT]
    bad_filter = predict_request(cfg, rows)
    bad_filter.output_filter.append("no_such_output")
    for name, request in [("missing feature", missing_feature), ("unparsable example", garbage),
                          ("wrong dtype", wrong_dtype), ("unknown input", wrong_alias), ("no input", no_inputs),
                          ("bad output_filter", bad_filter)]:
        code, details = _code(lambda: stub.Predict(request, timeout=10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (name, code, details)

    metadata = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=model_pb2.ModelSpec(name=MODEL),
                                                              metadata_field=["nope"])
    assert _code(lambda: stub.GetModelMetadata(metadata, timeout=10))[0] == grpc.StatusCode.INVALID_ARGUMENT
    classify = classification_pb2.ClassificationRequest(model_spec=model_pb2.ModelSpec(name=MODEL))
    assert _code(lambda: stub.Classify(classify, timeout=10))[0] == grpc.StatusCode.UNIMPLEMENTED
    with grpc.insecure_channel(server.target) as channel:
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        status = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="nope"))
        assert _code(lambda: models.GetModelStatus(status, timeout=10))[0] == grpc.StatusCode.NOT_FOUND


def _wait_for(condition, timeout_s=10.0, step_s=0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return condition()


def test_new_version_under_load_is_picked_up_without_a_failed_request(cfg, builds, served):
    server, _, model_dir = served
    rows = sample_rows(cfg, 20)
    expected = {v: in_process(builds[v], cfg, rows)["score"] for v in (1, 2)}
    request = predict_request(cfg, rows)
    stop, failures, answers, lock = threading.Event(), [], [], threading.Lock()

    def client():
        with grpc.insecure_channel(server.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for _ in range(2000):  # bounded; the test stops the threads much earlier
                if stop.is_set():
                    return
                try:
                    response = stub.Predict(request, timeout=10)
                    version = response.model_spec.version.value
                    np.testing.assert_allclose(tf.make_ndarray(response.outputs["score"]), expected[version],
                                               **FLOAT32_EQUAL)
                    with lock:
                        answers.append(version)
                except Exception as e:  # noqa: BLE001 - every failure is counted
                    with lock:
                        failures.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        assert _wait_for(lambda: len(answers) >= 40)
        publish(builds[2], model_dir, 2)  # written elsewhere, renamed into place
        assert _wait_for(lambda: 2 in answers[-8:], timeout_s=10.0), "version 2 was not picked up"
        with lock:
            seen = len(answers)
        assert _wait_for(lambda: len(answers) >= seen + 40)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=20)
    assert failures == []
    assert set(answers) == {1, 2}
    switched = answers.index(2)
    assert answers[switched + 16:] and set(answers[switched + 16:]) == {2}  # no going back once switched
    assert sorted(server.models[0].served) == [2]  # latest 1: version 1 unloaded after the switch


def test_broken_and_half_copied_versions_never_replace_the_serving_one(cfg, builds, served):
    server, stub, model_dir = served
    rows = sample_rows(cfg, 5)
    model = server.models[0]

    half = model_dir / "5"  # a copy in progress: variables first, no saved_model.pb yet
    shutil.copytree(builds[3] / "variables", half / "variables")
    corrupt = model_dir / "4"
    shutil.copytree(builds[3], corrupt.with_name(".tmp-4"))
    (corrupt.with_name(".tmp-4") / "saved_model.pb").write_bytes(b"definitely not a SavedModel")
    os.rename(corrupt.with_name(".tmp-4"), corrupt)
    (model_dir / "not-a-version").mkdir()

    assert _wait_for(lambda: any(s.version == 4 and s.error_code for s in model.statuses()))
    time.sleep(3 * server.poll_seconds)
    assert sorted(model.served) == [1]
    response = stub.Predict(predict_request(cfg, rows), timeout=10)
    assert response.model_spec.version.value == 1
    assert_same(outputs_of(response), in_process(builds[1], cfg, rows))
    status = {s.version: s for s in model.statuses()}
    assert status[4].state == State.END and "failed to load" in status[4].error_message
    assert 5 not in status  # never tried: no saved_model.pb

    shutil.copytree(builds[3], half, dirs_exist_ok=True)  # the copy completes, in place
    assert _wait_for(lambda: 5 in model.served)
    assert stub.Predict(predict_request(cfg, rows), timeout=10).model_spec.version.value == 5


def test_policy_keeps_the_newest_versions_and_honours_labels(cfg, builds, tmp_path):
    model_dir = tmp_path / MODEL
    for v in (1, 2, 3):
        publish(builds[v], model_dir, v)
    server = start_server(MODEL, model_dir, num_versions=2, labels={"stable": 2, "canary": 3, "old": 1})
    try:
        assert sorted(server.models[0].served) == [2, 3]
        rows = sample_rows(cfg, 4)
        with grpc.insecure_channel(server.target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for label, version in (("stable", 2), ("canary", 3)):
                response = stub.Predict(predict_request(cfg, rows, label=label), timeout=10)
                assert response.model_spec.version.value == version
                assert_same(outputs_of(response), in_process(builds[version], cfg, rows))
            assert stub.Predict(predict_request(cfg, rows, version=2), timeout=10).model_spec.version.value == 2
            code, details = _code(lambda: stub.Predict(predict_request(cfg, rows, label="old"), timeout=10))
            assert code == grpc.StatusCode.NOT_FOUND and "Specific(ranker, 1)" in details  # label of an unloaded version
    finally:
        server.stop()
