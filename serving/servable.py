"""One loaded model version and how it answers a PredictRequest, with TF Serving's status codes.

Inputs are checked against the signature before anything runs (names, dtypes, ranks), so a bad
request gets INVALID_ARGUMENT naming the model, version and tensor at fault, the way TF Serving
answers it, instead of an internal error from deep inside the graph.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Iterable, List, Mapping

import grpc
import mtrank  # noqa: F401
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.saved_model import loader_impl

from mtrank import export_contract

DEFAULT_SIGNATURE = export_contract.SERVING_SIGNATURE
UNPARSABLE = "Could not parse example input"  # TF Serving's wording (TensorFlow's ParseExample op)
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


class ServingStatus(Exception):
    """An answer that is not OK: a gRPC status code and a message for the caller."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def reason(message: str) -> str:
    """The op's own reason out of a TensorFlow error: a tf.function's error starts with "Graph execution
    error:" and a "Detected at node ... defined at" traceback before the op's message, and ends with the
    node (`\t [[{{node ...}}]]`); the caller needs the op's message only, e.g. "Feature: price (data type:
    float) is required but could not be found." or the input guard's assertion."""
    lines = message.strip().split("\n")
    if lines[0].startswith("Graph execution error:"):
        trace = ("Detected at node", "<stack traces unavailable>", "File ", "  ")
        kept = [line for line in lines[1:] if line.strip() and not line.startswith(trace)]
        lines = kept or lines
    first = lines[0].split("\t [[{{node")[0].strip()
    return first.replace("\\'", "'")  # an Assert's data strings come quoted with escaped quotes


def unparsable_examples(values) -> List[int]:
    """Indexes of string values that are not serialized tf.Examples (looked for only after TensorFlow
    failed, so valid requests pay nothing)."""
    bad = []
    for i, value in enumerate(values):
        try:
            tf.train.Example.FromString(value)
        except Exception:  # noqa: BLE001 - protobuf raises DecodeError and others on garbage
            bad.append(i)
    return bad


@dataclasses.dataclass
class Servable:
    """A version ready to answer: its SavedModel, its signatures and their SignatureDefs."""

    model_name: str
    version: int
    path: str
    saved_model: object  # keeps the loaded functions and variables alive
    signatures: Dict[str, object]
    signature_defs: Dict[str, meta_graph_pb2.SignatureDef]
    batchers: Dict[str, object] = dataclasses.field(default_factory=dict)  # signature -> serving.batching.Batcher

    @property
    def where(self) -> str:
        return f"model {self.model_name!r} version {self.version}"

    def signature(self, name: str):
        name = name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise ServingStatus(grpc.StatusCode.FAILED_PRECONDITION,
                                f"Serving signature key \"{name}\" not found in {self.where}; "
                                f"signatures are {sorted(self.signatures)}")
        return name, self.signatures[name]

    def _tensors(self, signature_name: str, fn, inputs: Mapping[str, object]):
        specs = fn.structured_input_signature[1]
        unknown = sorted(set(inputs) - set(specs))
        if unknown:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                f"input tensor alias not found in signature: {', '.join(unknown)}. Inputs expected "
                                f"to be in the set {{{','.join(sorted(specs))}}} ({self.where}, signature "
                                f"{signature_name!r})")
        missing = sorted(set(specs) - set(inputs))
        if missing:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                f"request is missing input(s) {missing} of signature {signature_name!r} of "
                                f"{self.where}; it expects {sorted(specs)}")
        tensors = {}
        for name, spec in specs.items():
            proto = inputs[name]
            if proto.dtype != spec.dtype.as_datatype_enum:
                given = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "an unset dtype"
                raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"input {name!r} of signature {signature_name!r} of {self.where} must be "
                                    f"{spec.dtype.name}, but {given} was provided")
            try:
                value = tf.make_ndarray(proto)
            except Exception as e:  # a TensorProto whose content does not match its shape
                raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"input {name!r} of {self.where} is not a valid tensor: {e}") from None
            if not spec.shape.is_compatible_with(value.shape):
                raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"input {name!r} of signature {signature_name!r} of {self.where} has shape "
                                    f"{list(value.shape)}; the signature expects {spec.shape}")
            tensors[name] = value
        return tensors

    @staticmethod
    def _unparsable(inputs: Mapping[str, np.ndarray]) -> str:
        bad = {name: unparsable_examples(np.ravel(value)) for name, value in sorted(inputs.items())
               if np.asarray(value).dtype == object}
        where = "; ".join(f"input {n!r} at index(es) {v[:10]}" for n, v in bad.items() if v) or "an input"
        return f"{UNPARSABLE}: {where} is not a serialized tf.Example"

    def enable_batching(self, config) -> None:
        """Merges concurrent requests per signature (serving/batching.py), as TF Serving's --enable_batching."""
        from serving.batching import Batcher

        for name, fn in self.signatures.items():
            self.batchers[name] = Batcher(lambda arrays, n=name, f=fn: self._execute(n, f, arrays), config,
                                          name=f"{self.model_name}-{self.version}-{name}")

    def close(self) -> None:
        """Called once the version is unloaded: batch threads finish what is queued and stop."""
        for batcher in self.batchers.values():
            batcher.close()

    def _execute(self, signature_name: str, fn, arrays: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Runs the signature on checked inputs; TensorFlow's errors become TF Serving's status codes."""
        specs = fn.structured_input_signature[1]
        try:
            outputs = fn(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in arrays.items()})
        except tf.errors.OpError as e:
            code = _GRPC_CODES.get(e.error_code, grpc.StatusCode.INTERNAL)
            message = reason(e.message)
            if message.startswith(UNPARSABLE):  # TF quotes the raw bytes, cut at the first newline: name indexes
                message = self._unparsable(arrays)
            raise ServingStatus(code, f"{message} ({self.where}, signature {signature_name!r})") from None
        except UnicodeDecodeError:  # TF quotes the bytes it could not parse; undecodable ones end up here
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                f"{self._unparsable(arrays)} ({self.where}, signature {signature_name!r})") from None
        except (TypeError, ValueError) as e:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                f"{reason(str(e))} ({self.where}, signature {signature_name!r})") from None
        return {name: value.numpy() for name, value in outputs.items()}

    def run(self, signature_name: str, inputs: Mapping, output_filter: Iterable[str] = ()) -> Dict[str, object]:
        """Runs one request; returns output name -> TensorProto, only the filtered outputs when a filter is given."""
        return {name: tf.make_tensor_proto(value)
                for name, value in self.run_arrays(signature_name, inputs, output_filter).items()}

    def run_arrays(self, signature_name: str, inputs: Mapping,
                   output_filter: Iterable[str] = ()) -> Dict[str, np.ndarray]:
        """`run` with the outputs as numpy arrays (REST writes JSON from them: no TensorProto in between)."""
        signature_name, fn = self.signature(signature_name)
        output_names = list(fn.structured_outputs)
        wanted = list(dict.fromkeys(output_filter)) or output_names
        unknown = [o for o in wanted if o not in output_names]
        if unknown:
            raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                f"output tensor alias not found in signature: {', '.join(unknown)} Outputs expected "
                                f"to be in the set {{{','.join(sorted(output_names))}}} ({self.where})")
        arrays = self._tensors(signature_name, fn, inputs)
        batcher = self.batchers.get(signature_name)
        outputs = batcher.submit(arrays) if batcher else self._execute(signature_name, fn, arrays)
        return {name: outputs[name] for name in wanted}


def load_servable(model_name: str, version: int, path: str) -> Servable:
    """Loads a complete version folder; any failure raises, and the caller keeps the previous version."""
    if not any(os.path.exists(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt")):
        raise FileNotFoundError(f"{path} has no saved_model.pb; it is not a complete SavedModel")
    saved_model = tf.saved_model.load(path)
    signatures = dict(saved_model.signatures)
    if not signatures:
        raise ValueError(f"{path} has no serving signatures; export the model with `signatures=`")
    meta_graph = loader_impl.parse_saved_model(path).meta_graphs[0]
    defs = {name: meta_graph.signature_def[name] for name in signatures if name in meta_graph.signature_def}
    return Servable(model_name=model_name, version=version, path=path, saved_model=saved_model,
                    signatures=signatures, signature_defs=defs)
