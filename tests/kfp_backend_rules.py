"""What the open-source Kubeflow Pipelines v2 backend accepts, as checks of a compiled PipelineSpec.

Each rule names the backend source it comes from: kubeflow/pipelines at commit 7b70c7b95f68 (paths under
backend/src/). A rule is checked where the compiled spec can break it; `violations` lists every breach
as one line naming the task and the rule. The image rules read ./Dockerfile: what a pod can import is
what the image copies (project packages) or installs from the lock (the stack), tests/pipeline_image.py.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Dict, List

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from kfp_launcher import condition_env
from pipeline_image import Image

REPO = Path(__file__).resolve().parent.parent
KFP_COMMIT = "7b70c7b95f6832772efd6fd0029a4024491a0f44"
# workflow/validate (Argo), applied to the task templates the backend generates from task names.
ARGO_TASK_NAME = re.compile(r"[a-zA-Z0-9][-a-zA-Z0-9]*")
# argocompiler/argo.go: the pipeline name is the Workflow's GenerateName (a Kubernetes object name).
K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
CONDITION_REFERENCE = re.compile(r"inputs\.(artifacts|parameter_values)\['([^']+)'\]")


def importable(dotted: str) -> bool:
    """`package.module.attr` (a class or function) or `package.module` imports in this environment."""
    module, _, attr = dotted.rpartition(".")
    for candidate, name in ((module, attr), (dotted, None)):
        try:
            loaded = importlib.import_module(candidate)
        except ImportError:
            continue
        if name is None or hasattr(loaded, name):
            return True
    return False


def _params(spec: pb.PipelineSpec) -> Dict[str, Dict]:
    return json_format.MessageToDict(spec.deployment_spec).get("executors", {})


def _constant(task: pb.PipelineTaskSpec, name: str):
    value = task.inputs.parameters[name].runtime_value.constant
    return value.string_value if value.WhichOneof("kind") == "string_value" else None


def violations(spec: pb.PipelineSpec, image_name: str, image: Image = None) -> List[str]:
    image = image or Image()
    found: List[str] = []
    executors = _params(spec)
    tasks = spec.root.dag.tasks

    # apiserver/template/v2_template.go NewV2SpecTemplate: "KFP only supports schema version 2.1.0".
    if spec.schema_version != "2.1.0":
        found.append(f"schemaVersion {spec.schema_version!r}: the backend takes 2.1.0 only")
    if not K8S_NAME.fullmatch(spec.pipeline_info.name or ""):
        found.append(f"pipelineInfo.name {spec.pipeline_info.name!r} is not a Kubernetes object name (argo.go Compile)")

    # apiserver/template/v2_template.go validatePipelineJobInputs: a parameter a run may leave out needs a
    # default or isOptional; an unspecified type is refused.
    root_params = spec.root.input_definitions.parameters
    for name, param in root_params.items():
        if param.parameter_type == pb.ParameterType.PARAMETER_TYPE_ENUM_UNSPECIFIED:
            found.append(f"pipeline parameter {name}: unspecified type")
        if not (param.HasField("default_value") or param.is_optional):
            found.append(f"pipeline parameter {name}: no defaultValue and not optional: a run without it is refused")

    conditional = {t for t, task in tasks.items() if task.trigger_policy.condition}
    for name, task in tasks.items():
        where = f"task {name}"
        if not ARGO_TASK_NAME.fullmatch(name) or not task.task_info.name:
            found.append(f"{where}: name must match {ARGO_TASK_NAME.pattern} and taskInfo.name must be set")
        component = spec.components.get(task.component_ref.name)
        if component is None:  # compiler/visitor.go: "cannot find component ref name=%q"
            found.append(f"{where}: component {task.component_ref.name!r} is not in the spec")
            continue
        executor = executors.get(component.executor_label)
        # compiler/visitor.go dfs: "non-container and non-importer executor not implemented" (resolvers too).
        if executor is None or not ({"container", "importer"} & set(executor)):
            kind = sorted(executor) if executor else "missing"
            found.append(f"{where}: executor {component.executor_label} is {kind}; the backend runs container and importer only")
            continue

        # driver/resolve.go resolveInputParameter: constants, pipeline parameters and producers' outputs only;
        # handleParamTypeValidationAndConversion needs the component's parameterType.
        for key, param in task.inputs.parameters.items():
            kind = param.WhichOneof("kind")
            declared = component.input_definitions.parameters.get(key)
            if declared is None or declared.parameter_type == pb.ParameterType.PARAMETER_TYPE_ENUM_UNSPECIFIED:
                found.append(f"{where}: parameter {key} is not declared with a parameterType by its component")
            if kind == "runtime_value":
                if param.runtime_value.WhichOneof("value") != "constant":
                    found.append(f"{where}: parameter {key} uses runtimeValue.{param.runtime_value.WhichOneof('value')}, "
                                 "which the driver refuses (only runtimeValue.constant)")
            elif kind == "component_input_parameter":
                if param.component_input_parameter not in root_params:
                    found.append(f"{where}: parameter {key} reads pipeline parameter "
                                 f"{param.component_input_parameter!r}, which does not exist")
            elif kind == "task_output_parameter":
                producer = param.task_output_parameter.producer_task
                # argocompiler/dag.go addImplicitDependencies: "unknown producer task %q in DAG".
                if producer not in tasks:
                    found.append(f"{where}: parameter {key} comes from task {producer!r}, which is not in the DAG")
                elif param.task_output_parameter.output_parameter_key not in \
                        spec.components[tasks[producer].component_ref.name].output_definitions.parameters:
                    found.append(f"{where}: parameter {key}: task {producer} declares no output parameter "
                                 f"{param.task_output_parameter.output_parameter_key!r} (the driver would pass null)")
            else:
                found.append(f"{where}: parameter {key} of kind {kind}: not resolved by the driver")

        for key, artifact in task.inputs.artifacts.items():
            if artifact.WhichOneof("kind") != "task_output_artifact":
                found.append(f"{where}: artifact {key} of kind {artifact.WhichOneof('kind')}: not resolved here")
                continue
            producer, output = artifact.task_output_artifact.producer_task, artifact.task_output_artifact.output_artifact_key
            if producer not in tasks:
                found.append(f"{where}: artifact {key} comes from task {producer!r}, which is not in the DAG")
            elif output not in spec.components[tasks[producer].component_ref.name].output_definitions.artifacts:
                found.append(f"{where}: artifact {key}: task {producer} declares no output artifact {output!r}")
            elif producer in conditional:
                # argocompiler/dag.go depends(): "X.Succeeded": a consumer of a skipped task never runs.
                found.append(f"{where}: reads {producer}, which has a trigger condition: when skipped, {name} never runs")

        # driver/container.go: the condition is CEL over the task's own resolved inputs; a key that is not one
        # of them is an evaluation error that fails the driver (expression/expression.go Condition).
        condition = task.trigger_policy.condition
        if condition:
            if "importer" in executor:
                found.append(f"{where}: triggerPolicy.condition on an importer task is not supported (argocompiler/dag.go)")
            for kind, key in CONDITION_REFERENCE.findall(condition):
                present = task.inputs.artifacts if kind == "artifacts" else task.inputs.parameters
                if key not in present:
                    found.append(f"{where}: condition reads inputs.{kind}[{key!r}], which is not an input of the task")
            try:
                condition_env().compile(condition)
            except Exception as e:  # noqa: BLE001 - the CEL compiler's own message is the finding
                found.append(f"{where}: condition {condition!r} is not valid CEL: {e}")

        for key, out in component.output_definitions.artifacts.items():
            # component/launcher_v2.go → metadata SchemaToArtifactType: glog.Fatal("No title specified").
            schema = out.artifact_type.instance_schema or ""
            if out.artifact_type.WhichOneof("kind") == "instance_schema" and "title" not in (yaml.safe_load(schema) or {}):
                found.append(f"{where}: output artifact {key} has an instanceSchema without a title")

        if "container" in executor:
            found.extend(f"{where}: {v}" for v in _container_violations(executor["container"], image_name, image))
        found.extend(f"{where}: {v}" for v in _code_path_violations(task, image))
    return found


def _container_violations(container: Dict, image_name: str, image: Image) -> List[str]:
    """component/launcher_v2.go: the launcher execs command[0] from the image's PATH with the placeholders of
    the args replaced ({{$}} is the ExecutorInput); the image's ENTRYPOINT is never used."""
    found = []
    command, args = container.get("command", []), container.get("args", [])
    if container.get("image") != image_name:
        found.append(f"image {container.get('image')!r}, not the pipeline image {image_name!r}")
    if not command or command[0] != "python":
        found.append(f"command {command}: must start with the image's python")
        return found
    if len(command) >= 3 and command[1] == "-m":
        if not (image.provides(command[2]) and importable(command[2])):
            found.append(f"command module {command[2]} is not in the image or does not import")
    if "{{$}}" not in args:
        found.append("args carry no {{$}}: the executor would get no ExecutorInput")
    if "--executor_class_path" in args:
        executor_class = args[args.index("--executor_class_path") + 1]
        if not (image.provides(executor_class) and importable(executor_class)):
            found.append(f"executor class {executor_class} is not in the image or does not import")
    return found


def _code_path_violations(task: pb.PipelineTaskSpec, image: Image) -> List[str]:
    """User code named by dotted path (Transform's preprocessing_fn, the Trainer's run_fn) and files named
    by path (ImportSchemaGen's schema) must be in the image, at the image's paths."""
    found = []
    for key in ("preprocessing_fn", "run_fn", "module_path"):
        if key in task.inputs.parameters:
            dotted = _constant(task, key)
            if dotted and not (image.provides(dotted) and importable(dotted)):
                found.append(f"{key} {dotted} is not in the image or does not import")
    if "schema_file" in task.inputs.parameters:
        path = _constant(task, "schema_file") or ""
        if "://" not in path:
            inside = Path(path).relative_to(image.workdir) if path.startswith(image.workdir.rstrip("/") + "/") else None
            if inside is None or inside.parts[0] not in image.copied or not (REPO / inside).is_file():
                found.append(f"schema_file {path} is not a file the image copies under {image.workdir}")
    return found
