"""The deployment files for the official TF Serving image parse as what TF Serving reads, and agree with
each other, with the README's docker line and with the configuration (model name, ports, paths).

tensorflow-serving-api ships ModelServerConfig but not BatchingParameters or MonitoringConfig; those two
messages are declared in serving/config_protos.py with TF Serving's field names and numbers, so a misspelt
field fails the test as it would fail the server.
"""

import re
from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from mtrank import cli as mtrank_cli
from serving.batching import read_batching_parameters
from serving.config_protos import MESSAGES
from serving.server import read_model_config_file

DEPLOY = Path(__file__).resolve().parent.parent / "serving" / "deploy"
README = DEPLOY.parent / "README.md"
GRPC_PORT, REST_PORT = 8500, 8501


def parse(path: Path, message):
    return text_format.Parse(path.read_text(), message)


@pytest.fixture(scope="module")
def models_config():
    return parse(DEPLOY / "models.config", model_server_config_pb2.ModelServerConfig())


@pytest.fixture(scope="module")
def kube():
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes.yaml").read_text()))
    return {d["kind"]: d for d in docs}


@pytest.fixture(scope="module")
def container(kube):
    (c,) = kube["Deployment"]["spec"]["template"]["spec"]["containers"]
    return c


def flags(container):
    return dict(a[2:].split("=", 1) for a in container["args"])


def test_models_config_keeps_two_versions_and_promotion_sets_stable_and_canary(cfg, models_config, tmp_path,
                                                                               capsys):
    (model,) = models_config.model_config_list.config
    assert model.name == cfg.serving.model_name
    assert model.model_platform == "tensorflow"
    assert model.base_path == f"/models/{cfg.serving.model_name}"
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 2
    assert dict(model.version_labels) == {}  # no local run's version number in the committed file

    # Promotion writes the labels into the live file: canary first, stable once it has proved itself.
    root = tmp_path / "serving"
    for version in (1795326810, 1795413210):
        (root / cfg.serving.model_name / str(version)).mkdir(parents=True)
        (root / cfg.serving.model_name / str(version) / "saved_model.pb").write_bytes(b"")
    (root / cfg.serving.model_name / "1795499610").mkdir()  # a version still being copied: no saved_model.pb
    live = root / "models.config"  # beside the versions: what `mtrank serve` and TF Serving are pointed at
    common = ["--model-base-path", str(root)]
    assert mtrank_cli.main(["promote", "stable", "--version", "1795326810", *common]) == 0  # from the template
    assert mtrank_cli.main(["promote", "canary", *common]) == 0  # from the live file: the newest complete version
    assert "canary -> version 1795413210" in capsys.readouterr().out
    assert mtrank_cli.main(["promote", "canary", "--version", "1795499610", *common]) == 2
    assert "not a complete SavedModel" in capsys.readouterr().err
    promoted = parse(live, model_server_config_pb2.ModelServerConfig())
    assert dict(promoted.model_config_list.config[0].version_labels) == {"stable": 1795326810, "canary": 1795413210}
    assert live.read_text().startswith("# TF Serving model server config")  # the comments stay
    assert dict(models_config.model_config_list.config[0].version_labels) == {}  # the committed file untouched
    # the built-in server reads the same files: same policy and labels
    (local,) = read_model_config_file(str(live), serving_root="/tmp/x")
    assert (local.policy.kind, local.policy.num_versions) == ("latest", 2)
    assert dict(local.labels) == {"stable": 1795326810, "canary": 1795413210}
    assert local.base_path == f"/tmp/x/{cfg.serving.model_name}"
    # A version the policy no longer keeps loaded (two newer ones exist) cannot be promoted.
    (root / cfg.serving.model_name / "1795499610" / "saved_model.pb").write_bytes(b"")
    assert mtrank_cli.main(["promote", "stable", "--version", "1795326810", *common]) == 2
    assert "not among the 2 newest versions" in capsys.readouterr().err


def test_batching_parameters_suit_requests_of_a_thousand_candidates(cfg, container):
    params = parse(DEPLOY / "batching_parameters.txt", MESSAGES["BatchingParameters"]())
    merged = read_batching_parameters(str(DEPLOY / "batching_parameters.txt"))  # as `mtrank serve` reads it
    assert merged.execution_limit >= 2 * 1000  # two full requests of 1,000 candidates fit in one merged run
    # TF Serving refuses a request above max_batch_size ("Task size ... is larger than maximum input batch
    # size"): the largest request the configuration allows must fit.
    assert params.max_batch_size.value >= cfg.serving.max_candidates
    assert 0 < params.batch_timeout_micros.value <= 2000  # waiting for a batch stays under the latency budget
    assert params.num_batch_threads.value >= 1
    assert params.num_batch_threads.value <= int(container["resources"]["limits"]["cpu"])


def test_monitoring_config_exposes_prometheus(kube):
    monitoring = parse(DEPLOY / "monitoring.config", MESSAGES["MonitoringConfig"]())
    assert monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"
    annotations = kube["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == monitoring.prometheus_config.path
    assert int(annotations["prometheus.io/port"]) == REST_PORT


def test_kubernetes_deployment_and_service_agree(cfg, kube, container, models_config):
    deployment, service = kube["Deployment"], kube["Service"]
    assert container["image"].startswith("tensorflow/serving:")
    args = flags(container)
    assert int(args["port"]) == GRPC_PORT and int(args["rest_api_port"]) == REST_PORT
    assert args["enable_batching"] == "true"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"grpc": GRPC_PORT, "http": REST_PORT}

    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert set(mounts) == set(volumes)
    for flag, name in [("model_config_file", "models.config"), ("batching_parameters_file", "batching_parameters.txt"),
                       ("monitoring_config_file", "monitoring.config")]:
        assert args[flag] == f"{mounts['config']}/{name}"
        assert (DEPLOY / name).exists()
    assert "configMap" in volumes["config"]
    (model,) = models_config.model_config_list.config
    assert model.base_path.startswith(mounts["models"].rstrip("/") + "/")

    probe = container["readinessProbe"]["httpGet"]
    assert probe == {"path": f"/v1/models/{cfg.serving.model_name}", "port": REST_PORT}

    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert deployment["spec"]["template"]["metadata"]["labels"].items() >= service["spec"]["selector"].items()
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "grpc": (GRPC_PORT, "grpc"), "http": (REST_PORT, "http")}


def test_readme_docker_line_uses_the_same_files_and_ports(cfg, models_config):
    text = README.read_text()
    match = re.search(r"docker run .*?(?=\n```)", text, re.S)
    assert match, "serving/README.md needs the docker run line"
    docker = match.group(0)
    for needle in (f"{GRPC_PORT}:{GRPC_PORT}", f"{REST_PORT}:{REST_PORT}", "tensorflow/serving:",
                   "--model_config_file=/config/models.config", "--enable_batching=true",
                   "--batching_parameters_file=/config/batching_parameters.txt",
                   "--monitoring_config_file=/config/monitoring.config", "serving/deploy:/config",
                   f"{models_config.model_config_list.config[0].base_path.rsplit('/', 1)[0]}"):
        assert needle in docker, needle
