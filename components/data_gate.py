"""DataGate: ExampleValidator's anomalies stop the run before Transform, with a message a person can act on.

Why: ExampleValidator only records anomalies; no standard component reads them, so without a gate a day
with negative prices or labels of 7 would be transformed, trained on and pushed. The gate reads the
anomalies of every split and fails the run when any is not tolerated, naming the day, its files, the
column and the anomaly. Transform and Trainer take their schema from the gate's output (a copy of the
curated schema), so they depend on the gate through a real artifact: the order is visible in the DAG
and compiles for Kubeflow V2 (no `add_upstream_node`).

Tolerated drift lives in the schema (e.g. `distribution_constraints { min_domain_mass: 0.99 }` lets up
to 1 % of a day's categories be unseen ones) and in the configuration (`data.tolerated_anomalies`:
TFDV anomaly types that are logged but do not block, empty by default). See docs/faults.md.
"""

import json
import os
from typing import Dict, List, Tuple

import mtrank  # noqa: F401
import tensorflow as tf
from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tensorflow_data_validation.utils import anomalies_util
from tfx import types
from tfx.components.example_validator import executor as example_validator
from tfx.types import artifact_utils

SCHEMA_FILE = "schema.pbtxt"


class DataAnomalyError(ValueError):
    """A day's data breaks the schema; the run stops before anything is transformed, trained or pushed.
    A ValueError like every refusal of bad input, so `mtrank` reports it in one message with exit code 2."""


def read_anomalies(anomalies: types.Artifact) -> Dict[str, anomalies_pb2.Anomalies]:
    """ExampleValidator's output by split, read with TFX's split layout and file name and TFDV's reader."""
    return {split: anomalies_util.load_anomalies_binary(
                os.path.join(artifact_utils.get_split_uri([anomalies], split), example_validator.DEFAULT_FILE_NAME))
            for split in artifact_utils.decode_split_names(anomalies.split_names)}


def split_sources(input_config_json: str) -> Dict[str, str]:
    """Split name -> file pattern (`2026-11-03/*.csv`: the day and its files), from DayWindow's output."""
    if not input_config_json:
        return {}
    return {s["name"]: s["pattern"] for s in json.loads(input_config_json).get("splits", [])}


def anomaly_lines(by_split: Dict[str, anomalies_pb2.Anomalies], sources: Dict[str, str],
                  tolerated: List[str]) -> Tuple[List[str], List[str]]:
    """(blocking, tolerated) lines, one per split, column and anomaly type."""
    blocking, allowed = [], []
    for split, anomalies in sorted(by_split.items()):
        pattern = sources.get(split, "")
        where = f"day {pattern.split('/')[0]} (split {split}, files {pattern})" if pattern else f"split {split}"
        items = [(column, info) for column, info in sorted(anomalies.anomaly_info.items())]
        if anomalies.HasField("dataset_anomaly_info"):
            items.append(("<dataset>", anomalies.dataset_anomaly_info))
        for column, info in items:
            for reason in info.reason or [anomalies_pb2.AnomalyInfo.Reason(short_description=info.short_description,
                                                                            description=info.description)]:
                kind = anomalies_pb2.AnomalyInfo.Type.Name(reason.type)
                line = f"{where}, column {column!r}: {kind}: {reason.short_description}. {reason.description}"
                (allowed if kind in tolerated else blocking).append(line)
    return blocking, allowed


def check(anomalies: types.Artifact, input_config_json: str, tolerated: List[str]) -> List[str]:
    """Raises DataAnomalyError when any split has an anomaly that is not tolerated; returns the tolerated ones."""
    by_split = read_anomalies(anomalies)
    blocking, allowed = anomaly_lines(by_split, split_sources(input_config_json), tolerated)
    for line in allowed:
        logging.warning("DataGate: tolerated anomaly (data.tolerated_anomalies): %s", line)
    if blocking:
        raise DataAnomalyError(
            f"{len(blocking)} data anomal{'y' if len(blocking) == 1 else 'ies'} against the curated schema; the run "
            "stops before Transform, nothing is trained or pushed:\n  " + "\n  ".join(blocking) +
            "\nFix the day's data and run it again; if the change is intended, update the schema (schemas/) "
            "or list the anomaly type in the configuration's data.tolerated_anomalies.")
    return allowed


@tfx.dsl.components.component
def DataGate(
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    schema: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Schema],
    input_config: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.String],
    validated_schema: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Schema],
    tolerated_anomalies: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """Fails the run on any anomaly that is not tolerated; passes the schema on to Transform and Trainer."""
    tolerated = [t.strip() for t in tolerated_anomalies.split(",") if t.strip()]
    check(anomalies, input_config.read(), tolerated)
    tf.io.gfile.makedirs(validated_schema.uri)
    source = tf.io.gfile.glob(os.path.join(schema.uri, "*.pbtxt"))[0]
    tf.io.gfile.copy(source, os.path.join(validated_schema.uri, SCHEMA_FILE), overwrite=True)
