"""A server that speaks TF Serving's gRPC and REST APIs, for development and tests (production runs the
official `tensorflow/serving` image; see serving/README.md).

It answers PredictionService.Predict and GetModelMetadata and ModelService.GetModelStatus with the
protos of tensorflow-serving-api and TF Serving's status codes; Classify, Regress, MultiInference and
HandleReloadConfigRequest answer UNIMPLEMENTED. The same answers are given over REST (serving/rest.py)
and counted in TF Serving's Prometheus metrics (serving/metrics.py). It reads the same `<base_path>/<version>/` layout and
the same `models.config` (version policy, labels) as TF Serving, and polls for new versions.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import time
from concurrent import futures
from typing import Dict, List, Optional, Sequence

import grpc
import mtrank  # noqa: F401
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc)
from tensorflow_serving.config import model_server_config_pb2

from mtrank import config as config_lib
from serving.metrics import ServingMetrics
from serving.servable import ServingStatus
from serving.versions import ModelConfig, ModelVersions, VersionPolicy, load_and_warm_up

log = logging.getLogger("mtrank.serving")

MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # large candidate lists must not hit gRPC's 4 MiB default
DEFAULT_MAX_CANDIDATES = config_lib.ServingSpec().max_candidates
SIGNATURE_DEF_FIELD = "signature_def"


# ---- configuration ----------------------------------------------------------------------------------------
def read_model_config_file(path: str, serving_root: Optional[str] = None) -> List[ModelConfig]:
    """Models of a TF Serving `models.config` (ModelServerConfig text proto).

    With `serving_root`, each model's versions are looked for under `<serving_root>/<name>/` instead of
    the file's `base_path` (which names a path inside the container); relative base paths are relative
    to the file's folder.
    """
    try:
        with open(path) as f:
            parsed = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    except (OSError, text_format.ParseError) as e:
        raise ValueError(f"{path}: not a readable ModelServerConfig text proto: {e}") from None
    if parsed.WhichOneof("config") != "model_config_list":
        raise ValueError(f"{path}: only model_config_list is supported (no custom_model_config)")
    configs = []
    for m in parsed.model_config_list.config:
        if m.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{path}: model {m.name!r} has platform {m.model_platform!r}; only tensorflow is served")
        if not m.name:
            raise ValueError(f"{path}: a model config has no name")
        if serving_root:
            base = os.path.join(serving_root, m.name)
        elif os.path.isabs(m.base_path) or "://" in m.base_path:
            base = m.base_path
        else:
            base = os.path.join(os.path.dirname(os.path.abspath(path)), m.base_path)
        configs.append(ModelConfig(name=m.name, base_path=base, policy=policy_from_proto(m.model_version_policy),
                                   labels=dict(m.version_labels)))
    if not configs:
        raise ValueError(f"{path}: model_config_list names no model")
    return configs


def policy_from_proto(policy) -> VersionPolicy:
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return VersionPolicy("all")
    if kind == "specific":
        return VersionPolicy("specific", versions=tuple(policy.specific.versions))
    if kind == "latest":
        return VersionPolicy("latest", num_versions=policy.latest.num_versions or 1)
    return VersionPolicy()  # TF Serving's default: the newest version only


# ---- the answers, one set for gRPC and REST -----------------------------------------------------------------
class Models:
    """The served models by name, and how a ModelSpec picks one version of one of them."""

    def __init__(self, models: Sequence[ModelVersions]):
        self.by_name: Dict[str, ModelVersions] = {m.name: m for m in models}

    def model(self, spec: model_pb2.ModelSpec) -> ModelVersions:
        if not spec.name:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, "Missing model name in ModelSpec; set model_spec.name")
        if spec.name not in self.by_name:
            choice = f"Specific({spec.name}, {spec.version.value})" if spec.HasField("version") else f"Latest({spec.name})"
            raise ServingStatus(grpc.StatusCode.NOT_FOUND,
                                f"Servable not found for request: {choice}; this server serves "
                                f"{sorted(self.by_name)}")
        return self.by_name[spec.name]

    def servable(self, spec: model_pb2.ModelSpec):
        model = self.model(spec)
        version = spec.version.value if spec.HasField("version") else None
        return model.resolve(version=version, label=spec.version_label)


def check_request_size(request, max_candidates: int) -> None:
    """Refuses a request whose tensors declare more candidates than the cap, before any tensor is built: a
    TensorProto may declare a shape of 500,000 with one value, which TensorFlow repeats to fill it."""
    for name, proto in sorted(request.inputs.items()):
        dims = [d.size for d in proto.tensor_shape.dim]
        values = math.prod(dims) if dims else 1  # every signature here takes one value per candidate
        if values > max_candidates:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                f"input {name!r} declares {values:,} candidates (shape {dims}); this server takes at "
                                f"most {max_candidates:,} per request (serving.max_candidates, mtrank serve "
                                "--max-candidates). Split the list into several requests.")


class Answers:
    """What the server answers, whichever API asked (gRPC here, REST in serving/rest.py, as TF Serving's
    REST handler builds the gRPC request and calls the same predictor). Raises ServingStatus; counts every
    request in `metrics` under TF Serving's names."""

    def __init__(self, models: Models, max_candidates: int = DEFAULT_MAX_CANDIDATES,
                 metrics: Optional[ServingMetrics] = None):
        self.models = models
        self.max_candidates = max_candidates
        self.metrics = metrics or ServingMetrics()

    def counted(self, api: str, entrypoint: str, spec: model_pb2.ModelSpec, answer, tf_serving: bool = True):
        """Runs `answer()` and records it: status, latency, and the version and signature that answered.
        `tf_serving`: whether TF Serving's own families count this call (its gRPC metadata and status calls
        record nothing there; every REST call does, http_server.cc)."""
        started = time.perf_counter()
        status, response = "INTERNAL", None  # anything but a ServingStatus is answered INTERNAL
        try:
            response = answer()
            status = "OK"
            return response
        except ServingStatus as e:
            status = e.code.name
            raise
        finally:
            answered = getattr(response, "model_spec", None)
            self.metrics.request(spec.name, api, entrypoint, status, time.perf_counter() - started,
                                 version=answered.version.value if answered is not None else None,
                                 signature_name=answered.signature_name if answered is not None else spec.signature_name,
                                 tf_serving=tf_serving)

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        model_spec, outputs = self.predict_arrays(request)
        response = predict_pb2.PredictResponse(model_spec=model_spec)
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def predict_arrays(self, request: predict_pb2.PredictRequest):
        """(the answering ModelSpec, output name -> numpy array): Predict before its answer is serialized."""
        check_request_size(request, self.max_candidates)
        servable = self.models.servable(request.model_spec)
        signature_name, _ = servable.signature(request.model_spec.signature_name)
        started = time.perf_counter()
        outputs = servable.run_arrays(signature_name, request.inputs, request.output_filter)
        self.metrics.runtime(servable.model_name, "Predict", time.perf_counter() - started)
        model_spec = model_pb2.ModelSpec(name=servable.model_name, signature_name=signature_name)
        model_spec.version.value = servable.version
        return model_spec, outputs

    def metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest):
        fields = list(request.metadata_field)
        if not fields:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                "GetModelMetadataRequest must specify at least one metadata_field (signature_def)")
        unsupported = [f for f in fields if f != SIGNATURE_DEF_FIELD]
        if unsupported:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                f"Metadata field {unsupported[0]} is not supported; use {SIGNATURE_DEF_FIELD}")
        servable = self.models.servable(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.model_name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(self.signature_map(servable))
        return response

    @staticmethod
    def signature_map(servable) -> get_model_metadata_pb2.SignatureDefMap:
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in servable.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        return signature_map

    def status(self, request: get_model_status_pb2.GetModelStatusRequest):
        model = self.models.model(request.model_spec)
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        if spec.version_label:
            version = model.resolve(label=spec.version_label).version
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in model.statuses(version):
            entry = response.model_version_status.add(version=status.version, state=status.state)
            entry.status.error_code = status.error_code
            entry.status.error_message = status.error_message
        return response


# ---- gRPC services ----------------------------------------------------------------------------------------
def _answer_errors(api: str):
    """Counts the call, turns ServingStatus into the gRPC status; anything unexpected becomes INTERNAL,
    logged with its request."""

    def decorate(method):
        def wrapper(self, request, context):
            try:
                return self.answers.counted(api, "GRPC", request.model_spec,
                                            lambda: method(self, request, context), tf_serving=api == "Predict")
            except ServingStatus as e:
                context.abort(e.code, e.message)
            except Exception as e:  # noqa: BLE001 - a server must answer, whatever went wrong
                log.exception("%s failed for %s", method.__name__, request.model_spec)
                context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")

        wrapper.__name__ = method.__name__
        return wrapper

    return decorate


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, answers: Answers):
        self.answers = answers

    @_answer_errors("Predict")
    def Predict(self, request, context):
        return self.answers.predict(request)

    @_answer_errors("GetModelMetadata")
    def GetModelMetadata(self, request, context):
        return self.answers.metadata(request)

    def _unimplemented(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "the built-in development server answers Predict and GetModelMetadata only; use the "
                      "official tensorflow/serving image for Classify, Regress and MultiInference")

    Classify = Regress = MultiInference = _unimplemented


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, answers: Answers):
        self.answers = answers

    @_answer_errors("GetModelStatus")
    def GetModelStatus(self, request, context):
        return self.answers.status(request)

    def HandleReloadConfigRequest(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "the built-in development server reads its configuration at start; restart it to change it")


# ---- the server -------------------------------------------------------------------------------------------
class ModelServer:
    """Loads the configured models, serves them on `host:port`, and polls their folders for new versions."""

    def __init__(self, configs: Sequence[ModelConfig], port: int = 8500, host: str = "127.0.0.1",
                 poll_seconds: float = 1.0, max_workers: int = 8, max_candidates: int = DEFAULT_MAX_CANDIDATES,
                 rest_port: Optional[int] = None, metrics_path: Optional[str] = None, batching=None):
        """`rest_port`: TF Serving's REST API on its own port (0: any free one; None: off, as TF Serving's
        --rest_api_port=0). `metrics_path`: Prometheus metrics on the REST port (a monitoring config's path).
        `batching`: a serving.batching.BatchingConfig merges concurrent requests (None: off, TF Serving's
        default)."""
        if not configs:
            raise ValueError("no model to serve; give a model name and base path or a models.config")
        if metrics_path and rest_port is None:
            raise ValueError("Prometheus metrics are served on the REST port: give a REST port with the "
                             "monitoring config (mtrank serve --rest-port)")
        loader = functools.partial(load_and_warm_up, batching=batching)
        self.models = [ModelVersions(c, loader=loader) for c in configs]
        self.batching = batching
        self.host, self.port, self.poll_seconds = host, port, poll_seconds
        self.rest_port, self.metrics_path = rest_port, metrics_path
        self._max_workers = max_workers
        self.max_candidates = max_candidates
        self.metrics = ServingMetrics()
        self._stop = threading.Event()
        self._grpc: Optional[grpc.Server] = None
        self._rest = None
        self._poller: Optional[threading.Thread] = None

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    def poll_once(self) -> None:
        for model in self.models:
            try:
                model.poll()
            except Exception:  # noqa: BLE001 - a scan error (permissions, a vanished disk) must not end polling
                log.exception("polling model %r at %s failed; retrying at the next poll", model.name,
                              model.config.base_path)

    def wait_until_available(self, timeout_s: float) -> bool:
        """Polls until every model serves a version, or `timeout_s` passes (bounded by time and count)."""
        deadline = time.monotonic() + timeout_s
        for _ in range(max(2, int(timeout_s / max(self.poll_seconds, 0.01)) + 2)):
            self.poll_once()
            if all(m.served for m in self.models) or time.monotonic() >= deadline:
                break
            time.sleep(min(self.poll_seconds, max(0.0, deadline - time.monotonic())))
        return all(m.served for m in self.models)

    def start(self, wait_for_models_s: float = 0.0) -> "ModelServer":
        """Binds the port and starts serving and polling. With `wait_for_models_s`, loads first (bounded)."""
        if wait_for_models_s > 0 and not self.wait_until_available(wait_for_models_s):
            missing = [f"{m.name} ({m.config.base_path})" for m in self.models if not m.served]
            log.warning("no version loaded yet for %s; serving anyway and polling every %.1f s",
                        missing, self.poll_seconds)
        answers = Answers(Models(self.models), self.max_candidates, self.metrics)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers),
                             options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.so_reuseport", 0)])
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(answers), server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(answers), server)
        bound = server.add_insecure_port(f"{self.host}:{self.port}")
        if not bound:
            raise OSError(f"cannot listen on {self.host}:{self.port}; is another server using the port? "
                          "Choose another with --port")
        self.port = bound
        if self.rest_port is not None:
            from serving import rest

            self._rest = rest.RestServer(answers, self.host, self.rest_port, self.metrics_path).start()
            self.rest_port = self._rest.port
        server.start()
        self._grpc = server
        self._poller = threading.Thread(target=self._poll_loop, name="model-poller", daemon=True)
        self._poller.start()
        log.info("serving %s on %s (gRPC)%s", [m.name for m in self.models], self.target,
                 f" and {self.rest_url} (REST)" if self._rest else "")
        return self

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.poll_once()

    def stop(self, grace_s: float = 1.0) -> None:
        self._stop.set()
        for model in self.models:  # batch threads of the versions still served finish and stop
            for servable in model.served.values():
                if hasattr(servable, "close"):
                    servable.close()
        if self._rest is not None:
            self._rest.stop()
        if self._grpc is not None:
            self._grpc.stop(grace_s).wait(grace_s + 5)
        if self._poller is not None:
            self._poller.join(timeout=60)  # a load in progress finishes first

    def wait(self) -> None:
        """Blocks until the server stops (Ctrl-C in `mtrank serve`)."""
        if self._grpc is not None:
            self._grpc.wait_for_termination()

    def __enter__(self) -> "ModelServer":
        return self if self._grpc else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
