"""Client library and `mtrank query` against the built-in server over real gRPC on 127.0.0.1: ranked answers
equal the SavedModel's, retries on UNAVAILABLE, deadlines, and error messages that say what to do.
The slow test repeats the round trip on the model that a real pipeline run pushed."""

import csv
import json
import shutil
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import portpicker
import pytest

from mtrank import cli as mtrank_cli
from serving import candidates
from serving.client import ServingClient, ServingError, predict_candidates
from serving.rest_client import RestClient
from serving.server import ModelServer
from serving.signatures import CONTEXT_SIGNATURE, RAW_SIGNATURE
from serving.versions import ModelConfig
from serving.warmup import WARMUP_FILE, read_warmup_requests
from test_serving_support import FLOAT32_EQUAL, build_tiny_model, in_process, publish, sample_rows, start_server

MODEL = "ranker"


@pytest.fixture(scope="module")
def tiny(cfg, tmp_path_factory):
    root = tmp_path_factory.mktemp("client")
    build = build_tiny_model(cfg, root / "build")
    publish(build, root / "serving" / MODEL, 7)
    server = start_server(MODEL, root / "serving" / MODEL)
    yield server, build
    server.stop()


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_csv_and_json_candidates_give_the_same_examples(cfg, tmp_path):
    rows = sample_rows(cfg, 6)
    shared = cfg.input_columns[0]
    for r in rows:
        r[shared] = rows[0][shared]  # one user, many items: the shared column goes in the context
    from_csv = candidates.read_candidates(write_csv(tmp_path / "c.csv", rows))
    json_path = tmp_path / "c.json"
    json_path.write_text(json.dumps({"context": {shared: rows[0][shared]},
                                     "candidates": [{k: v for k, v in r.items() if k != shared} for r in rows]}))
    from_json = candidates.read_candidates(json_path)
    assert list(candidates.to_serialized_examples(cfg, from_csv)) == list(candidates.to_serialized_examples(cfg, from_json))
    assert candidates.id_columns(from_csv, cfg) == ["item"]

    del rows[2][cfg.input_columns[-1]]
    with pytest.raises(candidates.CandidateError, match=f"candidate 2: missing input column '{cfg.input_columns[-1]}'"):
        candidates.to_serialized_examples(cfg, rows)
    numeric = next(c for c in cfg.input_columns if cfg.feature_dtype(c) != "string")
    with pytest.raises(candidates.CandidateError, match=f"column '{numeric}' must be"):
        candidates.to_raw_columns(cfg, [{**rows[0], numeric: "lots"}])


def test_client_ranks_like_the_saved_model(cfg, tiny):
    server, build = tiny
    rows = sample_rows(cfg, 100, seed=3)
    expected = in_process(build, cfg, rows)
    with ServingClient(server.target, MODEL) as client:
        prediction = predict_candidates(client, cfg, rows)
        raw = predict_candidates(client, cfg, rows, signature_name=RAW_SIGNATURE, version=7)
        assert (prediction.model_name, prediction.version) == (MODEL, 7)
        for name, values in expected.items():
            np.testing.assert_allclose(prediction.outputs[name], values, **FLOAT32_EQUAL)
            np.testing.assert_allclose(raw.outputs[name], values, **FLOAT32_EQUAL)
        order = prediction.ranking()
        assert np.all(np.diff(prediction.outputs["score"][order]) <= 0)
        assert [(s.version, s.state) for s in client.status()] == [(7, "AVAILABLE")]
        version, defs = client.signature_defs()
        assert version == 7 and set(defs["serving_default"].outputs) == set(expected)


def test_errors_say_what_is_wrong_and_what_to_do(cfg, tiny):
    server, _ = tiny
    rows = sample_rows(cfg, 3)
    with ServingClient(server.target, MODEL, retries=0) as client:
        with pytest.raises(ServingError) as e:
            predict_candidates(client, cfg, rows, version=8)
        assert e.value.code == grpc.StatusCode.NOT_FOUND
        assert "model 'ranker' version 8" in str(e.value) and "--status" in str(e.value)
        with pytest.raises(ServingError) as e:
            client.predict({"examples": np.array([b"garbage"], dtype=object)})
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "--metadata" in str(e.value)
        with pytest.raises(ServingError) as e:
            predict_candidates(client, cfg, rows, label="canary")
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "version_labels" in str(e.value)
    with ServingClient(server.target, "other", retries=0) as client:
        with pytest.raises(ServingError, match="NOT_FOUND"):
            client.status()


def test_unavailable_is_retried_with_backoff_and_bounded(cfg, tiny, tmp_path):
    _, build = tiny
    port = portpicker.pick_unused_port()
    rows = sample_rows(cfg, 2)
    started = time.monotonic()
    with ServingClient(f"127.0.0.1:{port}", MODEL, retries=2, backoff_s=0.05, timeout_s=2) as client:
        with pytest.raises(ServingError) as e:
            predict_candidates(client, cfg, rows)
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and e.value.attempts == 3 and "running" in str(e.value)
    assert time.monotonic() - started < 10

    publish(build, tmp_path / MODEL, 1)
    late = ModelServer([ModelConfig(MODEL, str(tmp_path / MODEL))], port=port, poll_seconds=0.1)
    starter = threading.Timer(0.4, lambda: late.start(wait_for_models_s=10))
    starter.start()
    try:
        with ServingClient(f"127.0.0.1:{port}", MODEL, retries=8, backoff_s=0.1, max_backoff_s=0.5) as client:
            assert predict_candidates(client, cfg, rows).version == 1  # the server came up during the retries
    finally:
        starter.join()
        late.stop()


def test_deadline_is_enforced(cfg, tiny):
    server, _ = tiny
    with ServingClient(server.target, MODEL, timeout_s=1e-5, retries=0) as client:
        with pytest.raises(ServingError) as e:
            predict_candidates(client, cfg, sample_rows(cfg, 1000))
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and "--timeout" in str(e.value)


def test_query_command_prints_candidates_ranked_by_score(cfg, tiny, tmp_path, capsys):
    server, build = tiny
    rows = sample_rows(cfg, 12, seed=5)
    path = write_csv(tmp_path / "candidates.csv", rows)
    port = str(server.port)
    assert mtrank_cli.main(["query", str(path), "--port", port]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("model 'ranker' version 7") and "12 candidates ranked by score" in lines[0]
    header, body = lines[1].split(), [line.split() for line in lines[2:]]
    assert header[:4] == ["rank", "row", "item", "score"] and len(body) == 12
    scores = in_process(build, cfg, rows)["score"]
    assert [b[2] for b in body] == [rows[i]["item"] for i in np.argsort(-scores, kind="stable")]

    assert mtrank_cli.main(["query", str(path), "--port", port, "--json", "--top", "3"]) == 0
    ranked = json.loads(capsys.readouterr().out)["ranked"]
    assert [r["rank"] for r in ranked] == [1, 2, 3] and ranked[0]["score"] == pytest.approx(scores.max(), abs=1e-6)

    assert mtrank_cli.main(["query", "--status", "--port", port]) == 0
    assert "version 7: AVAILABLE" in capsys.readouterr().out
    assert mtrank_cli.main(["query", "--metadata", "--port", port]) == 0
    assert "serving_default(examples: string[None])" in capsys.readouterr().out
    assert mtrank_cli.main(["query", str(path), "--port", port, "--version", "3", "--retries", "0"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def one_user(cfg, rows):
    """The rows as one ranking request: the first input columns shared by every candidate (the user's)."""
    shared = cfg.input_columns[:2]
    context = {c: rows[0][c] for c in shared}
    return context, [{k: v for k, v in r.items() if k not in shared} for r in rows], [{**r, **context} for r in rows]


def test_a_ranking_request_sends_the_context_once_and_answers_as_serving_default(cfg, tiny, tmp_path, capsys):
    server, build = tiny
    context, own, whole = one_user(cfg, sample_rows(cfg, 200, seed=11))
    expected = in_process(build, cfg, whole)
    with ServingClient(server.target, MODEL) as client:
        prediction = predict_candidates(client, cfg, own, signature_name=CONTEXT_SIGNATURE, context=context)
    for name, values in expected.items():
        np.testing.assert_allclose(prediction.outputs[name], values, **FLOAT32_EQUAL, err_msg=name)
    inputs = candidates.to_ranking_request(cfg, context, own)
    assert len(inputs["examples"]) == 201 and inputs["is_context"].tolist() == [True] + [False] * 200
    repeated = sum(map(len, candidates.to_serialized_examples(cfg, whole)))
    assert sum(map(len, inputs["examples"])) < repeated  # fewer bytes on the wire

    path = tmp_path / "request.json"
    path.write_text(json.dumps({"context": context, "candidates": own[:12]}))
    assert mtrank_cli.main(["query", str(path), "--port", str(server.port), "--signature", CONTEXT_SIGNATURE,
                            "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)["ranked"]
    assert [r["row"] for r in ranked] == list(np.argsort(-expected["score"][:12], kind="stable"))
    with pytest.raises(candidates.CandidateError, match="missing input column"):  # refused before sending
        candidates.to_ranking_request(cfg, {}, own)
    partial = candidates.to_ranking_request(cfg, context, own)
    with ServingClient(server.target, MODEL, retries=0) as client:  # and by the server, from any client
        with pytest.raises(ServingError) as e:
            client.predict({"examples": partial["examples"][1:], "is_context": partial["is_context"][1:]},
                           signature_name=CONTEXT_SIGNATURE)  # no context row
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "must be its context" in str(e.value)
        headless = np.array([b""] + list(partial["examples"][1:]), dtype=object)
        with pytest.raises(ServingError) as e:
            client.predict({"examples": headless, "is_context": partial["is_context"]}, signature_name=CONTEXT_SIGNATURE)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "is required but could not be found" in str(e.value)
        # Two requests in one call, as TF Serving's batching concatenates them: each candidate takes its own context.
        other_context, other_own, other_whole = one_user(cfg, sample_rows(cfg, 7, seed=12))
        second = candidates.to_ranking_request(cfg, other_context, other_own)
        both = client.predict({k: np.concatenate([partial[k], second[k]]) for k in partial},
                              signature_name=CONTEXT_SIGNATURE).outputs
    assert np.isnan(both["score"][0]) and np.isnan(both["score"][201])
    np.testing.assert_allclose(both["score"][1:201], expected["score"], **FLOAT32_EQUAL)
    np.testing.assert_allclose(both["score"][202:], in_process(build, cfg, other_whole)["score"], **FLOAT32_EQUAL)


@pytest.mark.slow
def test_pushed_model_over_grpc_equals_in_process(pipeline_run, tmp_path, capsys):
    """The model a real pipeline run pushed: warm-up file, raw signature, and gRPC and REST answers equal
    in-process."""
    cfg, version_dir = pipeline_run.cfg, pipeline_run.result.pushed_path
    assert version_dir, "the pipeline run pushed nothing"
    version = int(version_dir.rstrip("/").rsplit("/", 1)[1])
    local = publish(Path(version_dir), tmp_path / "serving" / cfg.serving.model_name, version)
    assert (local / WARMUP_FILE).exists()
    assert {r.model_spec.signature_name for r in read_warmup_requests(str(local))} == {
        "serving_default", RAW_SIGNATURE, CONTEXT_SIGNATURE}
    day = sorted(p for p in pipeline_run.data_root.iterdir() if p.is_dir())[-1]
    frame = pd.read_csv(next(day.glob("*.csv")))
    rows = frame.head(300).to_dict("records")
    expected = in_process(local, cfg, rows)
    raw_in_process = in_process(local, cfg, rows, RAW_SIGNATURE)
    for name, values in expected.items():  # the two signatures agree on the same rows
        np.testing.assert_allclose(raw_in_process[name], values, **FLOAT32_EQUAL)

    server = start_server(cfg.serving.model_name, local.parent, wait_s=120)
    try:
        with ServingClient(server.target, cfg.serving.model_name, timeout_s=30) as client:
            for signature in ("serving_default", RAW_SIGNATURE):
                prediction = predict_candidates(client, cfg, rows, signature_name=signature)
                assert prediction.version == version
                for name, values in expected.items():
                    np.testing.assert_allclose(prediction.outputs[name], values, **FLOAT32_EQUAL)
            # One user's candidates as a ranking request (the request's shared columns once): the same answers.
            shared = [c for c in cfg.input_columns
                      if frame.head(300).groupby(cfg.ranking.request_column)[c].nunique().max() == 1]
            assert shared, "no input column is shared by a request's candidates"
            first = frame[frame[cfg.ranking.request_column] == rows[0][cfg.ranking.request_column]].to_dict("records")
            context = {c: first[0][c] for c in shared}
            prediction = predict_candidates(client, cfg, [{k: v for k, v in r.items() if k not in shared} for r in first],
                                            signature_name=CONTEXT_SIGNATURE, context=context)
            for name, values in in_process(local, cfg, first).items():
                np.testing.assert_allclose(prediction.outputs[name], values, **FLOAT32_EQUAL)
        with RestClient(server.rest_url, cfg.serving.model_name, timeout_s=30) as client:  # the same over REST
            for signature in ("serving_default", RAW_SIGNATURE):
                prediction = predict_candidates(client, cfg, rows, signature_name=signature)
                assert prediction.version == version
                for name, values in expected.items():
                    np.testing.assert_allclose(prediction.outputs[name], values, **FLOAT32_EQUAL)
        path = tmp_path / "candidates.json"
        path.write_text(json.dumps(rows[:20]))
        assert mtrank_cli.main(["query", str(path), "--port", str(server.port), "--top", "5"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert f"version {version}" in out[0] and len(out) == 2 + 5
        best = int(out[2].split()[1])
        assert expected["score"][:20].argmax() == best
    finally:
        server.stop()
    shutil.rmtree(tmp_path / "serving", ignore_errors=True)


def test_serve_and_query_defaults(cfg):
    serve = mtrank_cli.build_parser().parse_args(["serve"])
    assert (serve.model_base_path, serve.port, serve.model_name) == ("workspace/serving", 8500, None)
    query = mtrank_cli.build_parser().parse_args(["query", "c.csv", "--label", "stable"])
    assert (query.port, query.label, query.version, query.signature) == (8500, "stable", None, "serving_default")
