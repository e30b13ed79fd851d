"""TF Serving's REST API on the built-in server, driven with plain HTTP (Python's urllib, no project code on
the client side) and checked against TF Serving's documentation and source (serving/README.md): status,
metadata, predict in the row and the columnar format with {"b64": ...} tf.Examples, labels, each error
class with TF Serving's HTTP status and {"error": ...} body, and the Prometheus metrics scraped and parsed
with the official client library's parser."""

import base64
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from prometheus_client.parser import text_string_to_metric_families
from tensorflow.core.protobuf import meta_graph_pb2

from mtrank import cli as mtrank_cli
from mtrank import config as config_lib
from serving import candidates
from serving.metrics import DEFAULT_PATH, read_monitoring_config
from serving.signatures import CONTEXT_SIGNATURE, EXAMPLES_INPUT, RAW_SIGNATURE
from test_serving_support import FLOAT32_EQUAL, build_tiny_model, in_process, publish, sample_rows, start_server

MODEL = "ranker"
DEPLOYED_MONITORING = str(config_lib.REPO_ROOT / "serving" / "deploy" / "monitoring.config")


@pytest.fixture(scope="module")
def rest(cfg, tmp_path_factory):
    """Versions 1 and 2 loaded (their answers differ), `stable` on 1; metrics on, as the deployed config says."""
    root = tmp_path_factory.mktemp("rest")
    builds = {v: build_tiny_model(cfg, root / f"v{v}", scale=float(v)) for v in (1, 2)}
    for v, build in builds.items():
        publish(build, root / "serving" / MODEL, v)
    metrics_path = read_monitoring_config(DEPLOYED_MONITORING)
    server = start_server(MODEL, root / "serving" / MODEL, num_versions=2, labels={"stable": 1},
                          metrics_path=metrics_path)
    yield server, builds
    server.stop()


def call(server, method, path, body=None):
    """(HTTP status, Content-Type, parsed JSON or text) for one plain HTTP request."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(server.rest_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, kind, text = answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as e:
        status, kind, text = e.code, e.headers["Content-Type"], e.read().decode()
    return status, kind, json.loads(text) if kind == "application/json" else text


def b64_examples(cfg, rows):
    return [{"b64": base64.b64encode(e).decode()} for e in candidates.to_serialized_examples(cfg, rows)]


def raw_columns(cfg, rows):
    """The raw-feature signature's inputs as JSON values (strings as text)."""
    return {k: [x.decode() if isinstance(x, bytes) else x.item() for x in v]
            for k, v in candidates.to_raw_columns(cfg, rows).items()}


def assert_outputs(got, expected, same_graph: bool = True):
    """Bit-equal when REST ran the signature the expectation ran (floats come back as the shortest text of
    the same float32); within FLOAT32_EQUAL when it ran another graph of the same model."""
    assert set(got) == set(expected)
    for name, values in expected.items():
        if same_graph:
            np.testing.assert_array_equal(np.asarray(got[name], dtype=np.float32), values, err_msg=name)
        else:
            np.testing.assert_allclose(np.asarray(got[name], dtype=np.float32), values, **FLOAT32_EQUAL, err_msg=name)


def test_status_and_metadata_are_the_grpc_answers_in_tf_servings_json(cfg, rest):
    server, _ = rest
    status, kind, body = call(server, "GET", f"/v1/models/{MODEL}")
    assert (status, kind) == (200, "application/json")
    assert body == {"model_version_status": [  # int64 as strings, newest first, defaults printed (TF Serving's docs)
        {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}} for v in ("2", "1")]}
    assert call(server, "GET", f"/v1/models/{MODEL}/versions/1")[2]["model_version_status"][0]["version"] == "1"

    status, _, body = call(server, "GET", f"/v1/models/{MODEL}/labels/stable/metadata")
    assert status == 200 and body["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
    assert set(body["metadata"]) == {"signature_def"} and "@type" not in body["metadata"]["signature_def"]
    signatures = body["metadata"]["signature_def"]["signature_def"]
    served = json_format.ParseDict(signatures["serving_default"], meta_graph_pb2.SignatureDef())
    saved = tf.saved_model.load(str(rest[1][1])).signatures["serving_default"]
    assert served.inputs[EXAMPLES_INPUT].dtype == tf.string.as_datatype_enum
    assert set(served.outputs) == set(saved.structured_outputs)
    assert set(signatures) == {"serving_default", RAW_SIGNATURE, CONTEXT_SIGNATURE}


def test_predict_in_both_formats_equals_the_saved_model(cfg, rest):
    server, builds = rest
    rows = sample_rows(cfg, 40, seed=3)
    newest = in_process(builds[2], cfg, rows)
    status, _, body = call(server, "POST", f"/v1/models/{MODEL}:predict", {"instances": b64_examples(cfg, rows)})
    assert status == 200 and set(body) == {"predictions"} and len(body["predictions"]) == 40
    assert_outputs({k: [p[k] for p in body["predictions"]] for k in newest}, newest)  # one object per row

    status, _, body = call(server, "POST", f"/v1/models/{MODEL}/labels/stable:predict",
                           {"signature_name": RAW_SIGNATURE, "inputs": raw_columns(cfg, rows)})
    assert status == 200 and set(body) == {"outputs"}  # columnar in, columnar out
    assert_outputs(body["outputs"], in_process(builds[1], cfg, rows, RAW_SIGNATURE))

    columns = raw_columns(cfg, rows)
    instances = [{k: columns[k][i] for k in columns} for i in range(len(rows))]
    status, _, body = call(server, "POST", f"/v1/models/{MODEL}/versions/1:predict",
                           {"signature_name": RAW_SIGNATURE, "instances": instances})
    assert status == 200
    assert_outputs({k: [p[k] for p in body["predictions"]] for k in newest}, in_process(builds[1], cfg, rows))


def test_a_ranking_request_over_rest_sends_the_user_once(cfg, rest):
    """The ranking_request signature in TF Serving's row format: the context is the first row."""
    server, builds = rest
    rows = sample_rows(cfg, 30, seed=4)
    shared = cfg.input_columns[:2]
    context = {c: rows[0][c] for c in shared}
    inputs = candidates.to_ranking_request(cfg, context, [{k: v for k, v in r.items() if k not in shared} for r in rows])
    body = {"signature_name": CONTEXT_SIGNATURE,
            "instances": [{"examples": {"b64": base64.b64encode(e).decode()}, "is_context": bool(flag)}
                          for e, flag in zip(inputs["examples"], inputs["is_context"])]}
    status, _, answer = call(server, "POST", f"/v1/models/{MODEL}:predict", body)
    assert status == 200, answer
    head, *rows_out = answer["predictions"]
    assert all(np.isnan(v) for v in head.values())  # the context row is not a candidate: NaN
    assert_outputs({k: [r[k] for r in rows_out] for k in head},
                   in_process(builds[2], cfg, [{**r, **context} for r in rows]), same_graph=False)


@pytest.mark.parametrize("method, path, body, http, message", [
    ("POST", "/v1/models/nope:predict", {"instances": [1]}, 404, "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/ranker/versions/9:predict", {"instances": [1]}, 404,
     "Servable not found for request: Specific(ranker, 9)"),
    ("GET", "/v1/models/ranker/versions/9", None, 404, "Could not find version 9 of model ranker"),
    ("POST", "/v1/models/ranker/labels/gold:predict", {"instances": [1]}, 400, "Unrecognized servable version label: gold"),
    ("POST", "/v1/models/ranker:predict", b"{not json", 400, "JSON Parse error"),
    ("POST", "/v1/models/ranker:predict", b"", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/ranker:predict", {"instances": [], "inputs": {}}, 400,
     "expecting only one of 'inputs' or 'instances'"),
    ("POST", "/v1/models/ranker:predict", {"signature_name": "serving_default"}, 400, "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/ranker:predict", {"instances": [{"b64": "!!"}]}, 400, "Unable to base64 decode"),
    ("POST", "/v1/models/ranker:predict", {"instances": [{"b64": base64.b64encode(b"garbage").decode()}]}, 400,
     "Could not parse example input"),
    ("POST", "/v1/models/ranker:predict", {"signature_name": "nope", "instances": [1]}, 400,
     'Serving signature key "nope" not found'),
    ("POST", "/v1/models/ranker:predict", {"signature_name": RAW_SIGNATURE, "instances": [1.0]}, 400,
     "instances is a plain list, but expecting list of objects"),
    ("POST", "/v1/models/ranker:classify", {"instances": [1]}, 501, "predict only"),
    ("GET", "/v1/models/ranker:predict", None, 400, "Malformed request: GET /v1/models/ranker:predict"),
    ("POST", "/v1/models/ranker/metadata", {}, 400, "Malformed request: POST"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
])
def test_each_error_class_gets_tf_servings_http_status_and_error_body(rest, method, path, body, http, message):
    status, kind, answer = call(rest[0], method, path, body)
    assert (status, kind) == (http, "application/json")
    assert set(answer) == {"error"} and message in answer["error"], answer


def test_a_value_of_the_wrong_type_or_that_cannot_be_scored_is_refused_naming_the_input(cfg, rest):
    server, _ = rest
    columns = raw_columns(cfg, sample_rows(cfg, 3))
    value = next(c for c in cfg.input_columns if cfg.feature_dtype(c) == "float")
    for wrong, http, message in [("cheap", 400, "Type: String is not of expected type: float"),
                                 (float("nan"), 400, f"input {value} cannot be scored")]:
        sent = {**columns, value: [columns[value][0], wrong, columns[value][2]]}
        status, _, answer = call(server, "POST", f"/v1/models/{MODEL}:predict",
                                 {"signature_name": RAW_SIGNATURE, "inputs": sent})  # NaN: TF Serving's JSON token
        assert status == http and message in answer["error"], answer
    assert call(server, "GET", "/v2/health")[0] == 404  # outside /v1/: no handler, as TF Serving


def test_metrics_count_both_apis_by_status_version_and_signature(cfg, rest):
    server, _ = rest
    path = read_monitoring_config(DEPLOYED_MONITORING)
    assert path == DEFAULT_PATH
    before = scrape(server, path)
    rows = sample_rows(cfg, 5)
    for _ in range(3):
        assert call(server, "POST", f"/v1/models/{MODEL}:predict", {"instances": b64_examples(cfg, rows)})[0] == 200
    assert call(server, "POST", f"/v1/models/{MODEL}/versions/9:predict", {"instances": [1]})[0] == 404
    from serving.client import ServingClient, predict_candidates

    with ServingClient(server.target, MODEL) as client:
        predict_candidates(client, cfg, rows, label="stable")
    after = scrape(server, path)

    def delta(name, **labels):
        return after.get((name, tuple(sorted(labels.items()))), 0) - before.get((name, tuple(sorted(labels.items()))), 0)

    assert delta(":tensorflow:serving:request_count", model_name=MODEL, status="OK") == 4
    assert delta(":tensorflow:serving:request_count", model_name=MODEL, status="NOT_FOUND") == 1
    assert delta(":tensorflow:serving:request_latency_count", model_name=MODEL, API="predict", entrypoint="REST") == 3
    assert delta(":tensorflow:serving:request_latency_count", model_name=MODEL, API="Predict", entrypoint="GRPC") == 1
    assert delta("mtrank_serving_requests_total", model_name=MODEL, version="2", signature_name="serving_default",
                 entrypoint="REST", status="OK") == 3
    assert delta("mtrank_serving_requests_total", model_name=MODEL, version="1", signature_name="serving_default",
                 entrypoint="GRPC", status="OK") == 1


def scrape(server, path):
    status, kind, text = call(server, "GET", path)
    assert status == 200 and kind.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_are_off_without_a_monitoring_config(cfg, tmp_path):
    publish(build_tiny_model(cfg, tmp_path / "build"), tmp_path / "serving" / MODEL, 1)
    server = start_server(MODEL, tmp_path / "serving" / MODEL)
    try:
        assert call(server, "GET", DEFAULT_PATH)[0] == 404
    finally:
        server.stop()


def test_query_command_speaks_rest(cfg, rest, tmp_path, capsys):
    server, builds = rest
    rows = sample_rows(cfg, 8, seed=9)
    path = tmp_path / "candidates.json"
    path.write_text(json.dumps(rows))
    assert mtrank_cli.main(["query", str(path), "--rest", "--rest-port", str(server.rest_port), "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    scores = in_process(builds[2], cfg, rows)["score"]
    assert ranked["version"] == 2 and [r["row"] for r in ranked["ranked"]] == list(np.argsort(-scores, kind="stable"))
    shared = cfg.input_columns[:2]  # one user's request: the shared columns once, over REST
    context = {c: rows[0][c] for c in shared}
    path.write_text(json.dumps({"context": context, "candidates": [{k: v for k, v in r.items() if k not in shared}
                                                                    for r in rows]}))
    assert mtrank_cli.main(["query", str(path), "--rest", "--rest-port", str(server.rest_port), "--json",
                            "--signature", CONTEXT_SIGNATURE]) == 0
    scores = in_process(builds[2], cfg, [{**r, **context} for r in rows])["score"]
    assert [r["row"] for r in json.loads(capsys.readouterr().out)["ranked"]] == list(np.argsort(-scores, kind="stable"))
    assert mtrank_cli.main(["query", "--status", "--rest", "--rest-port", str(server.rest_port)]) == 0
    assert "version 1: AVAILABLE" in capsys.readouterr().out
    assert mtrank_cli.main(["query", "--metadata", "--rest", "--rest-port", str(server.rest_port),
                            "--label", "stable"]) == 0
    assert "serving_default(examples: string[None])" in capsys.readouterr().out
    assert mtrank_cli.main(["query", str(path), "--rest", "--rest-port", str(server.rest_port), "--version", "9",
                            "--retries", "0"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
