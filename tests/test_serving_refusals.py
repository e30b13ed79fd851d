"""Serving refuses what it cannot score, and says why: the inputs of issue 16's table, sent with the official
tensorflow-serving-api protos over gRPC to the server, plus a bounded fuzz of the request path.

- NaN, infinite or out-of-range numbers are refused by the signature itself (so the official TF Serving
  image refuses them too), naming the feature, the schema's range and the candidate index;
- a request declaring more candidates than serving.max_candidates is refused before any tensor is built;
- a tf.Example missing a feature or holding the wrong type names the feature; garbage bytes get TF
  Serving's "Could not parse example input" with the index;
- a version folder deleted while served leaves the model status and Predict in agreement.
"""

import random
import shutil
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from serving import candidates
from serving.signatures import EXAMPLES_INPUT, RAW_SIGNATURE
from test_serving_server import MODEL, _code, _wait_for, predict_request
from test_serving_support import FLOAT32_EQUAL, build_tiny_model, in_process, publish, sample_rows, start_server

State = get_model_status_pb2.ModelVersionStatus.State
FUZZ_REQUESTS = 300
FUZZ_SECONDS = 30.0


@pytest.fixture(scope="module")
def builds(cfg, tmp_path_factory):
    root = tmp_path_factory.mktemp("refusal-builds")
    return {v: build_tiny_model(cfg, root / f"v{v}", scale=float(v)) for v in (1, 2)}


@pytest.fixture()
def served(builds, tmp_path):
    model_dir = tmp_path / "serving" / MODEL
    publish(builds[1], model_dir, 1)
    server = start_server(MODEL, model_dir)
    channel = grpc.insecure_channel(server.target)
    yield server, channel, model_dir
    channel.close()
    server.stop()


def _examples(cfg, n=4, edit=None):
    """Serialized tf.Examples of `n` valid rows; `edit(index, example)` breaks some of them."""
    serialized = list(candidates.to_serialized_examples(cfg, sample_rows(cfg, n)))
    if edit:
        for i, value in enumerate(serialized):
            example = tf.train.Example.FromString(value)
            if edit(i, example):
                serialized[i] = example.SerializeToString()
    return serialized


def _request(examples, signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, signature
    request.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
    return request


def _set(feature, value):
    def edit(i, example):
        if i != 2:
            return False
        values = example.features.feature[feature]
        (values.float_list if values.HasField("float_list") else values.int64_list).value[0] = value
        return True
    return edit


@pytest.mark.parametrize("feature,value,range_text", [
    ("price", float("nan"), "[0.01, 100000]"),
    ("price", float("inf"), "[0.01, 100000]"),
    ("price", -12.5, "[0.01, 100000]"),
    ("hour", 99, "[0, 23]"),
])
def test_inputs_that_cannot_be_scored_are_refused_naming_feature_range_and_candidate(cfg, builds, served, feature,
                                                                                      value, range_text):
    _, channel, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    code, details = _code(lambda: stub.Predict(_request(_examples(cfg, 4, _set(feature, value))), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"input {feature} cannot be scored" in details and range_text in details
    assert "candidate index(es)] [2] [of] [4]" in details, details
    rows = sample_rows(cfg, 3)  # the server keeps answering, with the model's own numbers
    np.testing.assert_allclose(tf.make_ndarray(stub.Predict(predict_request(cfg, rows), timeout=10).outputs["score"]),
                               in_process(builds[1], cfg, rows)["score"], **FLOAT32_EQUAL)


def test_the_raw_signature_refuses_them_too(cfg, served):
    _, channel, _ = served
    columns = candidates.to_raw_columns(cfg, sample_rows(cfg, 5))
    columns["price"] = np.array(columns["price"], dtype=np.float32)
    columns["price"][4] = np.nan
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, RAW_SIGNATURE
    for column, values in columns.items():
        request.inputs[column].CopyFrom(tf.make_tensor_proto(values))
    code, details = _code(lambda: prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "input price cannot be scored" in details
    assert "[4] [of] [5]" in details


def test_a_request_claiming_500000_candidates_is_refused_before_any_work(cfg, served):
    _, channel, _ = served
    proto = tf.make_tensor_proto(_examples(cfg, 1), dtype=tf.string)
    proto.tensor_shape.dim[0].size = 500_000  # one value; TensorFlow would repeat it to fill the shape
    request = _request([])
    request.inputs[EXAMPLES_INPUT].CopyFrom(proto)
    assert request.ByteSize() < 1_000
    started = time.monotonic()
    code, details = _code(lambda: prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and time.monotonic() - started < 2.0
    assert "declares 500,000 candidates" in details and "at most 10,000" in details
    proto.tensor_shape.dim[0].size = 1
    proto.tensor_shape.dim.add(size=500_000)  # [1, 500000]: the count hides in another dimension
    request.inputs[EXAMPLES_INPUT].CopyFrom(proto)
    code, details = _code(lambda: prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "declares 500,000 candidates (shape [1, 500000])" in details


def test_parse_errors_name_the_feature_and_garbage_gets_tf_servings_wording(cfg, served):
    _, channel, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def drop_price(i, example):
        if i == 1:
            del example.features.feature["price"]
        return i == 1

    def price_as_text(i, example):
        if i == 0:
            example.features.feature["price"].ClearField("float_list")
            example.features.feature["price"].bytes_list.value.append(b"12.5")
        return i == 0

    code, details = _code(lambda: stub.Predict(_request(_examples(cfg, 3, drop_price)), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Feature: price (data type: float) is required" in details
    code, details = _code(lambda: stub.Predict(_request(_examples(cfg, 3, price_as_text)), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Key: price" in details and "Data types don't match" in details
    for garbage in (b"\xff\xfe\x00 not a proto \x01", b"\x0a\x03abc\n\x99"):
        examples = _examples(cfg, 3)
        examples[2] = garbage
        code, details = _code(lambda: stub.Predict(_request(examples), timeout=10))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert "Could not parse example input: input 'examples' at index(es) [2]" in details, details
        assert "Graph execution error" not in details and "UnicodeDecodeError" not in details


def test_a_version_folder_deleted_while_served_is_reported_as_gone(cfg, builds, served):
    server, channel, model_dir = served
    publish(builds[2], model_dir, 2)
    model = server.models[0]
    _wait_for(lambda: 2 in model.served)
    shutil.rmtree(model_dir / "2")  # a person removes the newest version (a rollback)
    _wait_for(lambda: 2 not in model.served)
    status = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    states = {s.version: s.state for s in status.GetModelStatus(request, timeout=10).model_version_status}
    assert states[2] == State.END, states
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    code, _ = _code(lambda: stub.Predict(predict_request(cfg, sample_rows(cfg, 2), version=2), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND
    _wait_for(lambda: 1 in model.served)  # version 1 serves again, and says so
    states = {s.version: s.state for s in status.GetModelStatus(request, timeout=10).model_version_status}
    assert states[1] == State.AVAILABLE


def _answer(call):
    """(code, details) of a call that may succeed or fail."""
    try:
        call()
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def _fuzz_request(rng: random.Random, cfg):
    """A random request: shapes, dtypes, input names, signatures and bytes chosen at random."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = rng.choice(["", "serving_default", RAW_SIGNATURE, "nope"])
    names = [EXAMPLES_INPUT] + list(cfg.input_columns) + ["junk"]
    for name in rng.sample(names, rng.randint(0, 3)):
        dims = [rng.choice([0, 1, 3, 7]) for _ in range(rng.randint(0, 2))]
        count = int(np.prod(dims)) if dims else 1
        dtype = rng.choice([tf.string, tf.float32, tf.int64, tf.float64, tf.bool])
        if dtype == tf.string:
            values = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 24))) for _ in range(count)]
            if rng.random() < 0.3 and count:
                values[0] = _examples(cfg, 1)[0][: rng.randint(0, 40)]  # a truncated real example
        elif dtype == tf.bool:
            values = [rng.random() < 0.5 for _ in range(count)]
        elif dtype == tf.int64:
            values = [rng.choice([0, -1, 2**62, 99, 5]) for _ in range(count)]
        else:
            values = [rng.choice([0.0, -1.0, 1e30, float("nan"), float("inf"), 5.0]) for _ in range(count)]
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.array(values, dtype=dtype.as_numpy_dtype).reshape(dims),
                                                           dtype=dtype))
        if rng.random() < 0.2:
            request.inputs[name].tensor_shape.dim.add(size=rng.choice([-1, 10**6]))  # a lying shape
    return request


def test_fuzzed_requests_get_client_errors_and_valid_ones_keep_their_answers(cfg, builds, served):
    _, channel, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    rng = random.Random(16)
    rows = sample_rows(cfg, 4)
    expected = in_process(builds[1], cfg, rows)["score"]
    client_errors = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND}
    deadline, seen = time.monotonic() + FUZZ_SECONDS, {}
    for i in range(FUZZ_REQUESTS):  # bounded by count and by time
        request = _fuzz_request(rng, cfg)
        code, details = _answer(lambda: stub.Predict(request, timeout=10))
        seen[code] = seen.get(code, 0) + 1
        assert code in client_errors | {grpc.StatusCode.OK}, (i, code, details, request)
        if code != grpc.StatusCode.OK:
            assert details and len(details) < 2_000 and "Traceback" not in details, details
        if i % 25 == 0:
            answer = stub.Predict(predict_request(cfg, rows), timeout=10)
            np.testing.assert_allclose(tf.make_ndarray(answer.outputs["score"]), expected, **FLOAT32_EQUAL)
        if time.monotonic() > deadline:
            break
    print(f"\nfuzz: {sum(seen.values())} requests, answers {dict((c.name, n) for c, n in seen.items())}")
    assert seen.get(grpc.StatusCode.INVALID_ARGUMENT, 0) > 0
