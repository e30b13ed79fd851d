"""TF Serving's JSON mapping of tensors (tensorflow_serving/util/json_tensor.cc), both ways: a predict
body's `instances` (row format) or `inputs` (columnar format) into TensorProtos for the signature's inputs,
and the outputs into `predictions` or `outputs`.

Written here because no Python library implements TF Serving's mapping: the rules and the error messages
follow json_tensor.cc (checked against its source, see serving/README.md): strings as JSON strings or
{"b64": "..."} for DT_STRING only, integers must be JSON integers (1.0 is not an int), floats any number
including NaN and Infinity, every instance of the row format the same shape, a rank-0 output refused in
the row format, outputs named `*_bytes` written as {"b64": ...}, floats written with the fewest digits that
read back to the same float32.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Dict, List, Mapping, Tuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from serving.servable import ServingStatus

_DEBUG_CHARS = 256  # json_tensor.cc cuts a value quoted in an error at 256 bytes


def dtype_name(dtype: tf.DType) -> str:
    """TensorFlow's C++ DataTypeString, which TF Serving's messages use ("float", not "float32")."""
    return {tf.float32: "float", tf.float64: "double", tf.float16: "half"}.get(dtype, dtype.name)


def _invalid(message: str) -> ServingStatus:
    return ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, message)


def _quote(value) -> str:
    return json.dumps(value)[:_DEBUG_CHARS]


def _json_type(value) -> str:
    return {bool: "Bool", str: "String", dict: "Object", list: "Array", type(None): "Null"}.get(
        type(value), "Number")


def _is_b64(value) -> bool:
    return isinstance(value, dict) and "b64" in value


def _converter(dtype: tf.DType):
    """A function reading one JSON value as `dtype`, with json_tensor.cc's type rules (chosen once per
    tensor: comparing DTypes per value costs more than the conversion)."""

    def wrong(value):
        raise _invalid(f"JSON Value: {_quote(value)} Type: {_json_type(value)} is not of expected type: "
                       f"{dtype_name(dtype)}")

    if dtype == tf.string:
        def string(value):
            if type(value) is str:
                return value.encode("utf-8")
            if _is_b64(value):
                if len(value) != 1 or not isinstance(value["b64"], str):
                    raise _invalid(f"JSON Value: {_quote(value)} not formatted correctly for base64 data")
                try:
                    return binascii.a2b_base64(value["b64"], strict_mode=True)  # b64decode(validate=True), faster
                except (binascii.Error, ValueError):
                    raise _invalid(f"Unable to base64 decode: {_quote(value)}") from None
            return wrong(value)
        return string
    if dtype == tf.bool:
        return lambda value: value if type(value) is bool else wrong(value)
    if dtype.is_integer:
        low, high = dtype.min, dtype.max
        return lambda value: value if type(value) is int and low <= value <= high else wrong(value)
    if dtype.is_floating:
        return lambda value: value if type(value) in (float, int) else wrong(value)

    def unsupported(value):
        raise ServingStatus(grpc.StatusCode.UNIMPLEMENTED,
                            f"Conversion of JSON Value: {_quote(value)} to type: {dtype_name(dtype)}")
    return unsupported


def _nested(value, leaf) -> Tuple[Tuple[int, ...], List]:
    """(shape, flat values) of a JSON value nested in lists; every list at a level must have one size."""
    if type(value) is not list:
        return (), [leaf(value)]
    if not value:
        return (0,), []
    if not any(type(v) is list for v in value):  # the common case: one value per candidate
        return (len(value),), [leaf(v) for v in value]
    parts = [_nested(v, leaf) for v in value]
    shape = parts[0][0]
    for inner, _ in parts[1:]:
        if inner != shape:
            raise _invalid(f"Encountered list at unexpected size: expected shape {list(shape)} at level 1, "
                           f"but got {list(inner)}")
    return (len(value),) + shape, [x for _, flat in parts for x in flat]


def _tensor(value, info: meta_graph_pb2.TensorInfo, name: str):
    dtype = tf.dtypes.as_dtype(info.dtype)
    shape, flat = _nested(value, _converter(dtype))
    if dtype == tf.string:  # the bytes straight into the proto (make_tensor_proto re-encodes each one)
        proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum,
                                       tensor_shape=tf.TensorShape(shape).as_proto())
        proto.string_val.extend(flat)
        return proto
    return tf.make_tensor_proto(np.array(flat, dtype=dtype.as_numpy_dtype).reshape(shape), dtype=dtype, shape=shape)


def request_inputs(body: Mapping, inputs: Mapping[str, meta_graph_pb2.TensorInfo]) -> Tuple[Dict[str, object], str]:
    """TensorProtos for the signature's `inputs` from a predict body, and the body's format ("row" or
    "columnar"), which the answer keeps."""
    if "instances" in body and "inputs" in body:
        raise _invalid(f"JSON Value: {_quote(body)} Not formatted correctly expecting only one of 'inputs' or "
                       "'instances' keys to exist ")
    names = sorted(inputs)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise _invalid("Expecting 'instances' to be an list/array")
        if not instances:
            raise _invalid("No values in 'instances' array")
        named = isinstance(instances[0], dict) and not _is_b64(instances[0])
        if not named:
            if len(names) != 1:
                raise _invalid("instances is a plain list, but expecting list of objects as multiple input "
                               f"tensors required as per tensorinfo_map ({', '.join(names)})")
            return {names[0]: _tensor(instances, inputs[names[0]], names[0])}, "row"
        columns: Dict[str, list] = {n: [] for n in names}
        for i, instance in enumerate(instances):
            if not isinstance(instance, dict) or _is_b64(instance):
                raise _invalid(f"Expecting object but got {_json_type(instance).lower()} at item {i} of input list")
            unknown = sorted(set(instance) - set(names))
            if unknown:
                raise _invalid(f"Failed to process element: {i} key: {unknown[0]} of 'instances' list. Error: "
                               f"INVALID_ARGUMENT: JSON object: does not have named input: {unknown[0]}")
            if set(instance) != set(names):
                raise _invalid(f"Failed to process element: {i} of 'instances' list. JSON object: "
                               f"{_quote(instance)} keys must be equal to: {','.join(names)}")
            for n in names:
                columns[n].append(instance[n])
        return {n: _tensor(columns[n], inputs[n], n) for n in names}, "row"
    if "inputs" in body:
        given = body["inputs"]
        if isinstance(given, dict) and not _is_b64(given):
            missing = [n for n in names if n not in given]
            if missing:
                raise _invalid(f"Missing named input: {missing[0]} in 'inputs' object.")
            return {n: _tensor(given[n], inputs[n], n) for n in names}, "columnar"
        if len(names) != 1:
            raise _invalid("inputs is a plain value/list, but expecting an object as multiple input tensors "
                           f"required as per tensorinfo_map ({', '.join(names)})")
        return {names[0]: _tensor(given, inputs[names[0]], names[0])}, "columnar"
    raise _invalid("Missing 'inputs' or 'instances' key")


def _json_values(name: str, array: np.ndarray):
    """An output as nested JSON-ready lists."""
    if array.dtype.kind == "f":
        if array.dtype == np.float32:  # the shortest text that reads back as the same float32
            return array.astype(str).astype(np.float64).tolist()
        return array.tolist()
    if array.dtype.kind in "OSU":
        if name.endswith("_bytes"):
            return np.vectorize(lambda b: {"b64": base64.b64encode(b).decode("ascii")}, otypes=[object])(
                array).tolist() if array.size else array.tolist()
        return np.vectorize(lambda b: b.decode("utf-8", errors="replace") if isinstance(b, bytes) else str(b),
                            otypes=[object])(array).tolist() if array.size else array.tolist()
    if array.dtype.kind in "iub":
        return array.tolist()
    raise _invalid(f"Failed to write JSON value for tensor type: {array.dtype}")


def response_body(outputs: Mapping[str, np.ndarray], form: str) -> Dict[str, object]:
    """`predictions` (row format: one object per row, or bare values for a single output) or `outputs`
    (columnar: an object by output name, or the bare tensor for a single output)."""
    names = list(outputs)
    if form == "columnar":
        if len(names) == 1:
            return {"outputs": _json_values(names[0], outputs[names[0]])}
        return {"outputs": {n: _json_values(n, outputs[n]) for n in names}}
    batch = None
    for n in names:
        if outputs[n].ndim == 0:
            raise _invalid(f"Tensor name: {n} has no shape information ")
        if batch is None:
            batch = outputs[n].shape[0]
        elif outputs[n].shape[0] != batch:
            raise _invalid(f"Tensor name: {n} has inconsistent batch size: {outputs[n].shape[0]} expecting: {batch}")
    values = {n: _json_values(n, outputs[n]) for n in names}
    if len(names) == 1:
        return {"predictions": values[names[0]]}
    return {"predictions": [{n: values[n][i] for n in names} for i in range(batch or 0)]}
