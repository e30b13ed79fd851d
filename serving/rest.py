"""TF Serving's REST API (the official image's port 8501) over the same models and answers as gRPC.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]             model status (GetModelStatus)
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata    signatures (GetModelMetadata)
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict     Predict, row or columnar JSON
    GET  <monitoring path>                                        Prometheus metrics, when configured

As TF Serving's handler does (model_servers/http_rest_api_handler.cc), each call becomes the gRPC request
and goes through the same `Answers`; paths are matched with TF Serving's own regular expressions, errors
come back as {"error": "<message>"} with TF Serving's HTTP status for the code (http_server.cc), and
status and metadata are the gRPC responses printed as proto3 JSON with TF Serving's options (int64 as
strings, default values printed, field names as in the .proto). HTTP itself is werkzeug's.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.parse
from typing import Optional

import grpc
import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2, predict_pb2
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from serving import rest_json
from serving.servable import ServingStatus

log = logging.getLogger("mtrank.serving")

DEFAULT_REST_PORT = 8501
MAX_BODY_BYTES = 256 * 1024 * 1024  # as the gRPC port's message limit (serving/server.py)
JSON = "application/json"
# tensorflow_serving/model_servers/http_rest_api_util.cc, verbatim (RE2's (?i) as re.IGNORECASE).
API_PATH = re.compile(r"/v1/.*", re.IGNORECASE)
PREDICTION_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)", re.IGNORECASE)
STATUS_PATH = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:\/(metadata))?", re.IGNORECASE)
# tensorflow_serving/model_servers/http_server.cc, ToHTTPStatusCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DATA_LOSS: 500, grpc.StatusCode.UNAUTHENTICATED: 401,
}


def _proto_json(message) -> dict:
    """TF Serving's JsonPrintOptions: fields without presence printed, names as in the .proto."""
    return json_format.MessageToDict(message, including_default_value_fields=True, preserving_proto_field_name=True)


def _model_spec(name: str, version: Optional[str], label: Optional[str], signature_name: str = ""):
    spec = model_pb2.ModelSpec(name=urllib.parse.unquote(name), signature_name=signature_name)
    if version is not None:
        try:
            spec.version.value = int(version)
        except ValueError:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                f"Failed to convert version: {version} to numeric.") from None
        if not -2 ** 63 <= int(version) < 2 ** 63:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, f"Failed to convert version: {version} to numeric.")
    elif label is not None:
        spec.version_label = urllib.parse.unquote(label)
    return spec


class RestApi:
    """The WSGI application: one TF Serving REST call per request."""

    def __init__(self, answers, metrics_path: Optional[str] = None):
        self.answers = answers
        self.metrics_path = metrics_path

    def __call__(self, environ, start_response):
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        return self.respond(request)(environ, start_response)

    def respond(self, request: Request) -> Response:
        path = environ_path(request)
        if self.metrics_path and path == self.metrics_path and request.method == "GET":
            from serving.metrics import CONTENT_TYPE

            return Response(self.answers.metrics.exposition(), status=200, content_type=CONTENT_TYPE)
        if not API_PATH.fullmatch(path):  # TF Serving: libevent's 404 for a path it has no handler for
            return Response("Not Found", status=404, content_type="text/html")
        try:
            return self._api(request, path)
        except ServingStatus as e:
            return _error(e.code, e.message)
        except Exception as e:  # noqa: BLE001 - a server must answer, whatever went wrong
            log.exception("REST %s %s failed", request.method, path)
            return _error(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")

    def _api(self, request: Request, path: str) -> Response:
        if request.method == "POST" and (match := PREDICTION_PATH.fullmatch(path)):
            name, version, label, verb = match.groups()
            return self._predict(request, name, version, label, verb.lower())
        if request.method == "GET" and (match := STATUS_PATH.fullmatch(path)):
            name, version, label, metadata = match.groups()
            if not name:
                raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, "Missing model name in request.")
            return self._metadata(name, version, label) if metadata else self._status(name, version)
        raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {request.method} {path}")

    def _status(self, name: str, version: Optional[str]) -> Response:
        # TF Serving's REST status ignores a label and lists every version (http_rest_api_handler.cc).
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=_model_spec(name, version, None))
        response = self.answers.counted("", "REST", request.model_spec, lambda: self.answers.status(request))
        return _json(_proto_json(response))

    def _metadata(self, name: str, version: Optional[str], label: Optional[str]) -> Response:
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=_model_spec(name, version, label),
                                                                  metadata_field=["signature_def"])
        response = self.answers.counted("", "REST", request.model_spec, lambda: self.answers.metadata(request))
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        # Built by hand in TF Serving too: the Any is printed as its SignatureDefMap, without "@type".
        return _json({"model_spec": _proto_json(response.model_spec),
                      "metadata": {"signature_def": _proto_json(signature_map)}})

    def _predict(self, request: Request, name: str, version: Optional[str], label: Optional[str],
                 verb: str) -> Response:
        spec = _model_spec(name, version, label)
        return self.answers.counted(verb, "REST", spec, lambda: self._run_predict(request, spec, verb))

    def _run_predict(self, request: Request, spec, verb: str):
        try:
            data = request.get_data()
        except RequestEntityTooLarge:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, f"request body over {MAX_BODY_BYTES:,} bytes; split "
                                "the candidates into several requests") from None
        body = _parse_body(data)
        signature_name = body.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                f"JSON Value: {rest_json._quote(body)} not formatted correctly. 'signature_name' key "
                                "must be a string value.")
        spec.signature_name = signature_name
        if verb != "predict":
            raise ServingStatus(grpc.StatusCode.UNIMPLEMENTED,
                                f"the built-in development server answers predict only, not {verb}; use the official "
                                "tensorflow/serving image for classify and regress")
        servable = self.answers.models.servable(spec)
        signature_name, _ = servable.signature(signature_name)
        inputs, form = rest_json.request_inputs(body, servable.signature_defs[signature_name].inputs)
        predict = predict_pb2.PredictRequest(model_spec=spec)
        predict.model_spec.signature_name = signature_name
        for key, proto in inputs.items():
            predict.inputs[key].CopyFrom(proto)
        model_spec, outputs = self.answers.predict_arrays(predict)
        return _PredictResponse(model_spec, rest_json.response_body(outputs, form))


class _PredictResponse(Response):
    """A Response that still carries the answering ModelSpec, so the metrics see version and signature."""

    def __init__(self, model_spec, body: dict):
        super().__init__(_dumps(body), status=200, content_type=JSON)
        self.model_spec = model_spec


def environ_path(request: Request) -> str:
    """The path as sent (TF Serving matches the raw path and unescapes the captured names)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    return raw.split("?", 1)[0] if raw else request.path


def _parse_body(data: bytes) -> dict:
    if not data.strip():
        raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, "JSON Parse error: The document is empty")
    try:
        body = json.loads(data)  # NaN, Infinity and -Infinity are read, as TF Serving's parser does
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                            f"JSON Parse error: {getattr(e, 'msg', e)} at offset: {getattr(e, 'pos', 0)}") from None
    if not isinstance(body, dict):
        raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, f"JSON Value: {rest_json._quote(body)} Is not object")
    return body


def _dumps(body) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=_scalar).encode("utf-8")


def _scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json(body: dict) -> Response:
    return Response(json.dumps(body, indent=1), status=200, content_type=JSON)


def _error(code: grpc.StatusCode, message: str) -> Response:
    return Response(json.dumps({"error": message}, indent=4), status=HTTP_STATUS.get(code, 500), content_type=JSON)


class RestServer:
    """The REST API on `host:port` in its own threads (werkzeug's threaded WSGI server)."""

    def __init__(self, answers, host: str, port: int, metrics_path: Optional[str] = None):
        self.app = RestApi(answers, metrics_path)
        self.host, self.port = host, port
        self._server = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "RestServer":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on the terminal
        try:
            self._server = make_server(self.host, self.port, self.app, threaded=True)
        except OSError as e:
            raise OSError(f"cannot listen on {self.host}:{self.port} for REST ({e.strerror}); is another server "
                          "using the port? Choose another with --rest-port") from None
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="rest-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
