"""A client for TF Serving's REST API (the official image's port 8501, or `mtrank serve`), with the same
interface and errors as the gRPC client (serving/client.py), so `mtrank query --rest` and Python code can
switch protocol without other changes.

Requests use the columnar format (`inputs`: one list per input, serialized tf.Examples as {"b64": ...}),
the more compact of TF Serving's two. Only an unreachable server and 503 (UNAVAILABLE) are retried.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Iterable, List, Mapping, Optional

import grpc
import numpy as np
import requests
from google.protobuf import json_format
from tensorflow.core.protobuf import meta_graph_pb2

from serving.client import DEFAULT_SIGNATURE, Prediction, ServingError, VersionState

DEFAULT_URL = "http://127.0.0.1:8501"
# TF Serving's HTTP status back to the code it stands for (several codes share 400 and 500: the message
# tells them apart; the hint follows the most common one).
GRPC_CODE = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
             403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND, 409: grpc.StatusCode.ABORTED,
             429: grpc.StatusCode.RESOURCE_EXHAUSTED, 499: grpc.StatusCode.CANCELLED, 500: grpc.StatusCode.INTERNAL,
             501: grpc.StatusCode.UNIMPLEMENTED, 503: grpc.StatusCode.UNAVAILABLE, 504: grpc.StatusCode.DEADLINE_EXCEEDED}


def _json_value(value):
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, bytes):  # TF Serving decodes {"b64"} for every string input: binary or text alike
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value


def _json_column(values):
    """One input as JSON, its nesting (and a scalar) kept; bytes (serialized tf.Examples, string features)
    as {"b64": ...}."""
    return _json_value(np.asarray(values).tolist())


class RestClient:
    """One model on one server's REST port. One HTTP session (connection reuse); give each thread its own
    client for concurrent calls (requests' sessions are not documented thread-safe)."""

    def __init__(self, url: str = DEFAULT_URL, model_name: str = "ranker", timeout_s: float = 5.0,
                 retries: int = 3, backoff_s: float = 0.1, max_backoff_s: float = 2.0):
        self.url = url.rstrip("/")
        self.target, self.model_name = self.url, model_name
        self.timeout_s, self.retries, self.backoff_s, self.max_backoff_s = timeout_s, retries, backoff_s, max_backoff_s
        self._session = requests.Session()

    def _path(self, version: Optional[int], label: Optional[str]) -> str:
        if version is not None and label:
            raise ValueError(f"model {self.model_name!r}: give a version or a label, not both ({version}, {label!r})")
        where = f"/versions/{int(version)}" if version is not None else (f"/labels/{label}" if label else "")
        return f"{self.url}/v1/models/{self.model_name}{where}"

    def _call(self, method: str, url: str, what: str, body: Optional[dict] = None) -> dict:
        delay = self.backoff_s
        for attempt in range(1, self.retries + 2):
            try:
                answer = self._session.request(method, url, timeout=self.timeout_s,
                                               data=None if body is None else json.dumps(body),
                                               headers={"Content-Type": "application/json"})
            except requests.Timeout:
                raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer within {self.timeout_s} s",
                                   self.target, what, attempt) from None
            except requests.ConnectionError as e:
                if attempt > self.retries:
                    raise ServingError(grpc.StatusCode.UNAVAILABLE, str(e), self.target, what, attempt) from None
            else:
                if answer.status_code == 200:
                    return answer.json()
                code = GRPC_CODE.get(answer.status_code, grpc.StatusCode.UNKNOWN)
                if code != grpc.StatusCode.UNAVAILABLE or attempt > self.retries:
                    try:
                        details = answer.json().get("error", answer.text)
                    except ValueError:
                        details = answer.text.strip() or f"HTTP {answer.status_code}"
                    raise ServingError(code, f"HTTP {answer.status_code}: {details}", self.target, what, attempt)
            time.sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)
        raise AssertionError("unreachable")

    def predict(self, inputs: Mapping[str, object], signature_name: str = DEFAULT_SIGNATURE,
                version: Optional[int] = None, label: Optional[str] = None,
                output_filter: Iterable[str] = ()) -> Prediction:
        """Predict with `inputs` (name -> array); the REST API has no output filter, so it is applied here."""
        body = {"signature_name": signature_name, "inputs": {k: _json_column(v) for k, v in inputs.items()}}
        what = f"predict for model {self.model_name!r} signature {signature_name!r} (REST)"
        answer = self._call("POST", self._path(version, label) + ":predict", what, body)
        outputs = answer["outputs"]
        if not isinstance(outputs, dict):  # one output: TF Serving leaves its name out; the filter names it
            outputs = {(list(output_filter) or ["output"])[0]: outputs}
        wanted = list(output_filter) or list(outputs)
        # REST answers carry no model spec: the version is the one asked for, or else the newest available
        # one read right after (one more call; a version switched in between would be misreported).
        answered = version if version is not None else self._answering_version(label)
        return Prediction(model_name=self.model_name, version=answered, signature_name=signature_name,
                          outputs={k: np.asarray(outputs[k], dtype=np.float32) for k in wanted})

    def _answering_version(self, label: Optional[str]) -> int:
        if label:
            return int(self._call("GET", self._path(None, label) + "/metadata", "metadata")["model_spec"]["version"])
        available = [s.version for s in self.status() if s.state == "AVAILABLE"]
        return max(available) if available else -1

    def signature_defs(self, version: Optional[int] = None, label: Optional[str] = None):
        """(answering version, {signature name: SignatureDef}) from the metadata call."""
        answer = self._call("GET", self._path(version, label) + "/metadata",
                            f"metadata for model {self.model_name!r} (REST)")
        defs = answer["metadata"]["signature_def"].get("signature_def", {})
        return int(answer["model_spec"]["version"]), {
            name: json_format.ParseDict(d, meta_graph_pb2.SignatureDef(), ignore_unknown_fields=True)
            for name, d in defs.items()}

    def status(self, version: Optional[int] = None, label: Optional[str] = None) -> List[VersionState]:
        answer = self._call("GET", self._path(version, label), f"status of model {self.model_name!r} (REST)")
        return [VersionState(int(s["version"]), s["state"], 0 if s["status"]["error_code"] == "OK" else
                             grpc.StatusCode[s["status"]["error_code"]].value[0], s["status"]["error_message"])
                for s in answer["model_version_status"]]

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "RestClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
