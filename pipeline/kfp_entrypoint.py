"""The container command of every compiled task: TFX's Kubeflow v2 executor runner, after putting back the
types of the task's input artifacts.

Why: the open-source Kubeflow Pipelines driver hands a task its upstream artifacts as read back from
ml-metadata, with an empty type: `backend/src/v2/metadata/client.go`, `GetOutputArtifactsByExecutionId`
sets `Schema: "", // TODO(Bobgy): figure out how to get schema`, and `OutputArtifact.ToRuntimeArtifact`
writes it as the artifact's `instanceSchema`. TFX 1.16 imports each input artifact's class from that
type (`kubeflow_v2_entrypoint_utils._retrieve_class_path`: `yaml.safe_load(type_schema.instance_schema)`
then `.get('title')`), so every task with an input artifact would fail there. The types are in the
task's own arguments: TFX compiles the component's input definitions into
`--json_serialized_inputs_spec_args`. This puts each missing type back from there and runs TFX's
runner unchanged; where the backend sends the types (Vertex AI), nothing changes.
"""

from __future__ import annotations

import json
import sys
from typing import List

INVOCATION_FLAG = "--json_serialized_invocation_args"
INPUTS_SPEC_FLAG = "--json_serialized_inputs_spec_args"


def restore_input_types(executor_input_json: str, inputs_spec_json: str) -> str:
    """The ExecutorInput JSON with every input artifact lacking a type given its declared one."""
    executor_input = json.loads(executor_input_json)
    declared = json.loads(inputs_spec_json).get("artifacts", {})
    for name, artifact_list in executor_input.get("inputs", {}).get("artifacts", {}).items():
        artifact_type = declared.get(name, {}).get("artifactType")
        for artifact in artifact_list.get("artifacts", []):
            given = artifact.get("type") or {}
            if artifact_type and not (given.get("schemaTitle") or given.get("instanceSchema")):
                artifact["type"] = artifact_type
    return json.dumps(executor_input)


def _flag_value(argv: List[str], flag: str) -> int:
    """Index of the value of `flag` in argv (`--flag value` or `--flag=value` is rewritten to the former)."""
    for i, arg in enumerate(argv):
        if arg == flag:
            return i + 1
        if arg.startswith(flag + "="):
            argv[i:i + 1] = [flag, arg[len(flag) + 1:]]
            return i + 1
    return -1


def patched_argv(argv: List[str]) -> List[str]:
    argv = list(argv)
    invocation, spec = _flag_value(argv, INVOCATION_FLAG), _flag_value(argv, INPUTS_SPEC_FLAG)
    if invocation > 0 and spec > 0:
        argv[invocation] = restore_input_types(argv[invocation], argv[spec])
    return argv


def main() -> None:
    import mtrank  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow, in case the image's ENV is missing)
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    sys.argv = patched_argv(sys.argv)
    app.run(kubeflow_v2_run_executor.main, flags_parser=kubeflow_v2_run_executor._parse_flags)  # pylint: disable=protected-access


if __name__ == "__main__":
    main()
