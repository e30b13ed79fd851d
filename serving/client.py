"""A client for TF Serving's gRPC API (the official server or `mtrank serve`): Predict, GetModelMetadata,
GetModelStatus, with a deadline on every call, retries with backoff when the server is UNAVAILABLE
(starting, restarting, a rolling update), and errors that say what to do.

Only UNAVAILABLE is retried: every other code is an answer about the request itself, and sending it
again would get the same answer.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Dict, Iterable, List, Mapping, Optional

import grpc
import mtrank  # noqa: F401
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from mtrank import export_contract

DEFAULT_TARGET = "127.0.0.1:8500"
DEFAULT_SIGNATURE = export_contract.SERVING_SIGNATURE
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

_HINTS = {
    grpc.StatusCode.INVALID_ARGUMENT: "the request does not fit the model's signature: compare the inputs with "
                                      "`mtrank query --metadata` (input names, dtypes, one value per candidate)",
    grpc.StatusCode.NOT_FOUND: "that model or version is not loaded on this server: `mtrank query --status` lists "
                               "the loaded versions; check the model name, --version and --label",
    grpc.StatusCode.FAILED_PRECONDITION: "the signature name is not one of the model's: `mtrank query --metadata` "
                                         "lists them",
    grpc.StatusCode.UNAVAILABLE: "no server answered: is `mtrank serve` (or TF Serving) running and listening "
                                 "on this address?",
    grpc.StatusCode.DEADLINE_EXCEEDED: "no answer within the deadline: raise --timeout, or send fewer candidates "
                                       "per request",
    grpc.StatusCode.UNIMPLEMENTED: "this server does not offer that method",
}


class ServingError(RuntimeError):
    """A call that did not succeed: the status code, the server's words, and what to do about it."""

    def __init__(self, code: grpc.StatusCode, details: str, target: str, request: str, attempts: int = 1):
        self.code, self.details, self.target, self.request, self.attempts = code, details, target, request, attempts
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        hint = _HINTS.get(code, "")
        if code == grpc.StatusCode.INVALID_ARGUMENT and "version label" in details:
            hint = "that label is not configured on the server: labels come from its models.config (version_labels)"
        super().__init__(f"{request} at {target} failed with {code.name}{tried}: {details}"
                         + (f"\n  -> {hint}" if hint else ""))


@dataclasses.dataclass
class Prediction:
    model_name: str
    version: int  # the version that answered
    signature_name: str
    outputs: Dict[str, np.ndarray]

    def ranking(self, by: str = "score") -> np.ndarray:
        """Candidate indices, best first (ties keep the request's order)."""
        if by not in self.outputs:
            raise KeyError(f"output {by!r} is not in the answer of model {self.model_name!r} version {self.version}; "
                           f"outputs are {sorted(self.outputs)}")
        return np.argsort(-np.asarray(self.outputs[by]), kind="stable")


@dataclasses.dataclass(frozen=True)
class VersionState:
    version: int
    state: str  # AVAILABLE, LOADING, END, ...
    error_code: int
    error_message: str


def model_spec(model_name: str, version: Optional[int] = None, label: Optional[str] = None,
               signature_name: str = "") -> model_pb2.ModelSpec:
    """A ModelSpec for a version, a label, or (neither) the newest loaded version."""
    if version is not None and label:
        raise ValueError(f"model {model_name!r}: give a version or a label, not both ({version}, {label!r})")
    spec = model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
    if version is not None:
        spec.version.value = int(version)
    elif label:
        spec.version_label = label
    return spec


class ServingClient:
    """One model on one server. Thread-safe: a gRPC channel is shared by every call."""

    def __init__(self, target: str = DEFAULT_TARGET, model_name: str = "ranker", timeout_s: float = 5.0,
                 retries: int = 3, backoff_s: float = 0.1, max_backoff_s: float = 2.0):
        self.target, self.model_name = target, model_name
        self.timeout_s, self.retries, self.backoff_s, self.max_backoff_s = timeout_s, retries, backoff_s, max_backoff_s
        self._channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                                               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def _call(self, method, request, what: str):
        """Calls with a deadline; retries UNAVAILABLE with exponential backoff, a bounded number of times.

        Not gRPC's own retry policy (the channel's service config): it caps attempts at 5, shares one deadline
        among all attempts, and on a connection failure tells the caller nothing of how many attempts were
        made, which the error message reports (`ServingError.attempts`); with requests' retries on the REST
        side the same holds, so both clients keep this bounded loop."""
        delay = self.backoff_s
        for attempt in range(1, self.retries + 2):
            try:
                return method(request, timeout=self.timeout_s)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or attempt > self.retries:
                    raise ServingError(e.code(), e.details() or "", self.target, what, attempt) from None
            time.sleep(delay)
            delay = min(delay * 2, self.max_backoff_s)
        raise AssertionError("unreachable")

    @staticmethod
    def _describe(model_name: str, version: Optional[int], label: Optional[str]) -> str:
        return f"model {model_name!r}" + (f" version {version}" if version is not None else "") + (
            f" label {label!r}" if label else "")

    def predict(self, inputs: Mapping[str, object], signature_name: str = DEFAULT_SIGNATURE,
                version: Optional[int] = None, label: Optional[str] = None,
                output_filter: Iterable[str] = ()) -> Prediction:
        """Predict with `inputs` (name -> array or TensorProto); returns the outputs as numpy arrays."""
        request = predict_pb2.PredictRequest(model_spec=model_spec(self.model_name, version, label, signature_name),
                                             output_filter=list(output_filter))
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(value if isinstance(value, tensor_pb2.TensorProto) else
                                          tf.make_tensor_proto(value))
        what = f"Predict for {self._describe(self.model_name, version, label)} signature {signature_name!r}"
        response = self._call(self._predictions.Predict, request, what)
        return Prediction(model_name=response.model_spec.name, version=response.model_spec.version.value,
                          signature_name=response.model_spec.signature_name,
                          outputs={k: tf.make_ndarray(v) for k, v in response.outputs.items()})

    def signature_defs(self, version: Optional[int] = None, label: Optional[str] = None):
        """(answering version, {signature name: SignatureDef}) from GetModelMetadata."""
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=model_spec(self.model_name, version, label),
                                                                  metadata_field=["signature_def"])
        what = f"GetModelMetadata for {self._describe(self.model_name, version, label)}"
        response = self._call(self._predictions.GetModelMetadata, request, what)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return response.model_spec.version.value, dict(signature_map.signature_def)

    def status(self, version: Optional[int] = None, label: Optional[str] = None) -> List[VersionState]:
        """The state of each version the server knows (AVAILABLE, END with the load error, ...)."""
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_spec(self.model_name, version, label))
        what = f"GetModelStatus for {self._describe(self.model_name, version, label)}"
        response = self._call(self._models.GetModelStatus, request, what)
        state_name = get_model_status_pb2.ModelVersionStatus.State.Name
        return [VersionState(s.version, state_name(s.state), s.status.error_code, s.status.error_message)
                for s in response.model_version_status]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "ServingClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def predict_candidates(client, cfg, rows, signature_name: str = DEFAULT_SIGNATURE,
                       version: Optional[int] = None, label: Optional[str] = None,
                       context: Optional[Mapping[str, object]] = None) -> Prediction:
    """Scores candidate rows in one request through `client` (ServingClient, or RestClient for REST): as
    serialized tf.Examples, as one tensor per input column for the raw-feature signature, or, for the
    ranking_request signature, the `context` columns once ahead of each candidate's own (the answer's
    context row is dropped). Columns and types
    come from the configuration `cfg`."""
    from serving import candidates
    from serving.signatures import CONTEXT_SIGNATURE, EXAMPLES_INPUT, RAW_SIGNATURE

    if signature_name == RAW_SIGNATURE:
        inputs = candidates.to_raw_columns(cfg, rows)
    elif signature_name == CONTEXT_SIGNATURE:
        inputs = candidates.to_ranking_request(cfg, context or {}, rows)
    else:
        inputs = {EXAMPLES_INPUT: candidates.to_serialized_examples(cfg, rows)}
    prediction = client.predict(inputs, signature_name=signature_name, version=version, label=label)
    if signature_name == CONTEXT_SIGNATURE:
        prediction.outputs = candidates.candidate_rows(prediction.outputs)
    return prediction
