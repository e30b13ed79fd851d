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


def patched_argv(argv: List[str]) -> List[str]:
    """argv with `--flag=value` split into two words, and the ExecutorInput given its input types."""
    split: List[str] = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        split += [flag, value] if eq and flag in (INVOCATION_FLAG, INPUTS_SPEC_FLAG) else [arg]
    if INVOCATION_FLAG in split and INPUTS_SPEC_FLAG in split:
        invocation = split.index(INVOCATION_FLAG) + 1
        split[invocation] = restore_input_types(split[invocation], split[split.index(INPUTS_SPEC_FLAG) + 1])
    return split


def main() -> None:
    import mtrank  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow, in case the image's ENV is missing)
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    sys.argv = patched_argv(sys.argv)
    app.run(kubeflow_v2_run_executor.main, flags_parser=kubeflow_v2_run_executor._parse_flags)  # pylint: disable=protected-access


if __name__ == "__main__":
    main()
