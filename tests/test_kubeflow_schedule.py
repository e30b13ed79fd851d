"""`mtrank schedule` against a stand-in Kubeflow Pipelines API on 127.0.0.1: the real `kfp.Client` makes its
REST calls, the server records them and answers with minimal valid JSON. Asserted: the uploaded package is
the compiled pipeline, the experiment is created or reused, and the recurring run has the 6-field cron,
no catch-up, max_concurrency 1 and run_date from the scheduled time. A 5-field cron is refused before any
call. `--vertex` builds the Vertex AI request only (no network)."""

import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from mtrank import cli
from pipeline import schedule

API = "/apis/v2beta1"
PIPELINE_SPEC = {"pipelineInfo": {"name": "mtrank-impressions"}, "schemaVersion": "2.1.0", "sdkVersion": "tfx-1.16.0",
                 "root": {"inputDefinitions": {"parameters": {"run_date": {"parameterType": "STRING"}}}},
                 "components": {}, "deploymentSpec": {}}


class FakeKfp(BaseHTTPRequestHandler):
    """Records (method, path, query, body) and answers the calls kfp.Client makes."""

    calls: list
    existing: bool  # pipeline and experiment already exist

    def log_message(self, *args):  # keep the test output clean
        pass

    def _reply(self, payload):
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self, body):
        url = urlparse(self.path)
        self.calls.append({"method": self.command, "path": url.path, "query": parse_qs(url.query), "body": body})
        return url.path

    def do_GET(self):
        path = self._record(None)
        if path == f"{API}/healthz":
            return self._reply({"multi_user": False})
        if path == f"{API}/pipelines":
            return self._reply({"pipelines": [{"pipeline_id": "p-1", "display_name": "mtrank-impressions"}]}
                               if self.existing else {})
        if path == f"{API}/pipelines/p-1/versions":
            return self._reply({"pipeline_versions": [{"pipeline_id": "p-1", "pipeline_version_id": "v-1"}]})
        if path == f"{API}/experiments":
            return self._reply({"experiments": [{"experiment_id": "e-1", "display_name": "mtrank-daily"}]}
                               if self.existing else {})
        self.send_error(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):  # the pipeline package upload
            message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
            body = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True).decode()
                    for part in message.iter_parts()}
        else:
            body = json.loads(raw or b"{}")
        path = self._record(body)
        if path == f"{API}/pipelines/upload":
            return self._reply({"pipeline_id": "p-1", "display_name": self.calls[-1]["query"]["name"][0]})
        if path == f"{API}/pipelines/upload_version":
            return self._reply({"pipeline_id": "p-1", "pipeline_version_id": "v-2"})
        if path == f"{API}/experiments":
            return self._reply({"experiment_id": "e-1", **body})
        if path == f"{API}/recurringruns":
            return self._reply({"recurring_run_id": "r-1", **body})
        self.send_error(404)


@pytest.fixture
def kfp_server(request):
    existing = getattr(request, "param", False)
    handler = type("Handler", (FakeKfp,), {"calls": [], "existing": existing})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.calls
    server.shutdown()
    server.server_close()


@pytest.fixture
def package(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("# PIPELINE DEFINITION\n" + yaml.safe_dump(PIPELINE_SPEC))
    return path


def _call(calls, method, path):
    found = [c for c in calls if c["method"] == method and c["path"] == f"{API}{path}"]
    assert found, f"no {method} {path} in {[(c['method'], c['path']) for c in calls]}"
    return found[-1]


def test_schedule_uploads_creates_experiment_and_a_daily_recurring_run(kfp_server, package, monkeypatch, capsys):
    host, calls = kfp_server
    monkeypatch.setenv("HOME", str(package.parent))  # no ~/.config/kfp/context.json from the machine
    assert cli.main(["schedule", "--host", host, "--package", str(package)]) == 0
    upload = _call(calls, "POST", "/pipelines/upload")
    assert upload["query"]["name"] == ["mtrank-impressions"]
    assert yaml.safe_load(upload["body"]["uploadfile"]) == PIPELINE_SPEC  # the compiled package, as is
    assert _call(calls, "POST", "/experiments")["body"]["display_name"] == "mtrank-daily"
    run = _call(calls, "POST", "/recurringruns")["body"]
    assert run["trigger"]["cron_schedule"]["cron"] == "0 0 2 * * *"
    assert run["no_catchup"] is True and int(run["max_concurrency"]) == 1
    assert run["mode"] == "ENABLE" and run["experiment_id"] == "e-1"
    assert run["pipeline_version_reference"] == {"pipeline_id": "p-1", "pipeline_version_id": "v-1"}
    assert run["runtime_config"]["parameters"] == {"run_date": "[[ScheduledTime.2006-01-02]]"}
    out = capsys.readouterr().out
    assert "recurring run r-1" in out and "0 0 2 * * *" in out and "experiment e-1" in out


@pytest.mark.parametrize("kfp_server", [True], indirect=True)
def test_an_existing_pipeline_gets_a_new_version_and_the_experiment_is_reused(kfp_server, package, monkeypatch):
    host, calls = kfp_server
    monkeypatch.setenv("HOME", str(package.parent))
    assert cli.main(["schedule", "--host", host, "--package", str(package), "--version-name", "v-2026-11-22",
                     "--cron", "0 30 3 * * *", "--run-date", "newest"]) == 0
    version = _call(calls, "POST", "/pipelines/upload_version")
    assert version["query"]["name"] == ["v-2026-11-22"] and version["query"]["pipelineid"] == ["p-1"]
    assert not [c for c in calls if c["method"] == "POST" and c["path"] in (f"{API}/pipelines/upload", f"{API}/experiments")]
    run = _call(calls, "POST", "/recurringruns")["body"]
    assert run["trigger"]["cron_schedule"]["cron"] == "0 30 3 * * *"
    assert run["pipeline_version_reference"]["pipeline_version_id"] == "v-2"
    assert run["runtime_config"]["parameters"] == {"run_date": ""}


def test_five_field_cron_is_refused_before_any_call(kfp_server, package, capsys):
    host, calls = kfp_server
    assert cli.main(["schedule", "--host", host, "--package", str(package), "--cron", "0 2 * * *"]) == 2
    err = capsys.readouterr().err
    assert "5 fields" in err and "seconds first" in err and "'0 0 2 * * *'" in err
    assert calls == []


@pytest.mark.parametrize("bad", ["0 0 2 * *", "0 0 0 2 * * *", "daily"])
def test_kfp_cron_needs_six_fields(bad):
    with pytest.raises(schedule.ScheduleError, match="fields"):
        schedule.kfp_cron(bad)


@pytest.mark.parametrize("value", [0, 11])
def test_max_concurrency_is_one_to_ten(value):
    with pytest.raises(schedule.ScheduleError, match="1..10"):
        schedule.concurrency(value)


def test_vertex_schedule_is_built_with_a_five_field_cron(tmp_path, capsys):
    job = {"pipelineSpec": PIPELINE_SPEC, "runtimeConfig": {"gcsOutputDirectory": "gs://bucket/root"}}
    package = tmp_path / "pipeline.json"
    package.write_text(json.dumps(job))
    out = tmp_path / "request.json"
    assert cli.main(["schedule", "--vertex", "--package", str(package), "--project", "example",
                     "--region", "europe-west4", "--output", str(out)]) == 0
    request = json.loads(out.read_text())
    assert request["parent"] == "projects/example/locations/europe-west4"
    sched = request["schedule"]
    assert sched["cron"] == "0 2 * * *" and sched["maxConcurrentRunCount"] == "1"
    assert sched.get("catchUp", False) is False
    job_out = sched["createPipelineJobRequest"]["pipelineJob"]
    assert job_out["pipelineSpec"]["pipelineInfo"]["name"] == "mtrank-impressions"
    assert job_out["runtimeConfig"] == {"gcsOutputDirectory": "gs://bucket/root", "parameterValues": {"run_date": ""}}
    assert "not sent" in capsys.readouterr().out
    with pytest.raises(schedule.ScheduleError, match="5-field"):
        schedule.vertex_cron("0 0 2 * * *")
    assert schedule.vertex_cron("TZ=Europe/Berlin 0 2 * * *") == "TZ=Europe/Berlin 0 2 * * *"
    with pytest.raises(schedule.ScheduleError, match="macro"):
        schedule.run_date_parameter("scheduled", vertex=True)
