"""The two TF Serving configuration messages that the tensorflow-serving-api wheel does not ship:
BatchingParameters (servables/tensorflow/session_bundle_config.proto, read with --batching_parameters_file)
and MonitoringConfig (config/monitoring_config.proto, read with --monitoring_config_file).

Declared here with TF Serving's package, field names and numbers, so this project reads and checks the
same text files the official image reads: a misspelt field fails here as it would fail the server.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_Field = descriptor_pb2.FieldDescriptorProto


def _messages():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(name="mtrank/tf_serving_config_subset.proto",
                                               package="tensorflow.serving", syntax="proto3",
                                               dependency=["google/protobuf/wrappers.proto"])
    batching = proto.message_type.add(name="BatchingParameters")
    for name, number, wrapper in [("max_batch_size", 1, "Int64Value"), ("batch_timeout_micros", 2, "Int64Value"),
                                  ("max_enqueued_batches", 3, "Int64Value"), ("num_batch_threads", 4, "Int64Value"),
                                  ("thread_pool_name", 5, "StringValue"),
                                  ("enable_large_batch_splitting", 8, "BoolValue"),
                                  ("max_execution_batch_size", 9, "Int64Value")]:
        batching.field.add(name=name, number=number, type=_Field.TYPE_MESSAGE, label=_Field.LABEL_OPTIONAL,
                           type_name=f".google.protobuf.{wrapper}")
    batching.field.add(name="allowed_batch_sizes", number=6, type=_Field.TYPE_INT64, label=_Field.LABEL_REPEATED)
    batching.field.add(name="pad_variable_length_inputs", number=7, type=_Field.TYPE_BOOL,
                       label=_Field.LABEL_OPTIONAL)
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=_Field.TYPE_BOOL, label=_Field.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=_Field.TYPE_STRING, label=_Field.LABEL_OPTIONAL)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, type=_Field.TYPE_MESSAGE, label=_Field.LABEL_OPTIONAL,
                         type_name=".tensorflow.serving.PrometheusConfig")
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
            for name in ("BatchingParameters", "MonitoringConfig")}


MESSAGES = _messages()
BatchingParameters = MESSAGES["BatchingParameters"]
MonitoringConfig = MESSAGES["MonitoringConfig"]
