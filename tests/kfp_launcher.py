"""Executes a compiled Kubeflow PipelineSpec on this machine, as Kubeflow Pipelines' v2 driver and
launcher do on a cluster. A test harness, not product code.

For each task of the root DAG, once its upstream tasks are done (several side by side, as Argo runs them):

- driver: resolves the task's inputs from what the PipelineSpec says (constants, pipeline parameters and
  their defaults, a producer's output parameter or artifact); a reference to a task, output or
  parameter that does not exist fails the task, as in the backend's driver. It evaluates the task's
  `triggerPolicy.condition` as CEL over the task's resolved inputs (the driver's own rule; CEL through
  Google's cel-cpp runtime) and skips the task when it is false.
- launcher: builds the ExecutorInput (kfp.local's `construct_executor_input`: parameter values, output
  artifact URIs under the pipeline root, output parameter files, the executor output file), fills
  the input artifacts the way the driver reads them back from ml-metadata (id, uri, metadata, and no
  type: see `as_read_from_metadata`), substitutes the placeholders of the container's command and args (kfp.local's
  `replace_placeholders`), and runs the container's own command in a subprocess, with this Python in
  place of the image's `python`, in the repository (the image's workdir is a copy of it) and with the
  image's ENV lines. It reads the executor output file and hands the output artifacts (the launcher's
  URI with the executor's metadata merged in) and parameters on to downstream tasks.

What a cluster adds and this does not: pods and the image itself, the ml-metadata service (artifacts
pass in memory), the cache, retries. What it checks that compiling cannot: every module path imports,
every custom_config survives serialization, every trigger condition and parameter reference resolves.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from google.protobuf import json_format
from kfp.local import executor_input_utils, executor_output_utils, graph_utils, placeholder_utils
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from pipeline_image import Image

REPO = Path(__file__).resolve().parent.parent
SKIPPED, SUCCEEDED, OMITTED = "SKIPPED", "SUCCEEDED", "OMITTED"


class TaskFailed(RuntimeError):
    """A task the backend would mark failed: its inputs did not resolve, or its container exited non-zero."""


@dataclasses.dataclass
class TaskRun:
    name: str
    state: str
    seconds: float = 0.0
    parameters: Dict[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: Dict[str, pb.RuntimeArtifact] = dataclasses.field(default_factory=dict)
    log: Optional[Path] = None

    def metadata(self, key: str) -> Dict[str, Any]:
        return json_format.MessageToDict(self.artifacts[key].metadata)


def load_spec(path: os.PathLike) -> pb.PipelineSpec:
    spec = pb.PipelineSpec()
    json_format.ParseDict(yaml.safe_load(Path(path).read_text()), spec)
    return spec


def condition_env():
    from cel_expr_python import cel
    from google.protobuf import descriptor_pool

    # expression/expression.go: `cel.DeclareContextProto(ExecutorInput)`, so the ExecutorInput's fields are the
    # variables; the driver fills `inputs` with the task's resolved inputs. Metadata is a Struct (numbers: doubles).
    return cel.NewEnv(descriptor_pool.Default(), variables={
        field.name: cel.Type(field.message_type.full_name) for field in pb.ExecutorInput.DESCRIPTOR.fields})


def evaluate_condition(condition: str, inputs: pb.ExecutorInput.Inputs) -> bool:
    value = condition_env().compile(condition).eval(
        data={"inputs": inputs, "outputs": pb.ExecutorInput.Outputs()}).plain_value()
    if not isinstance(value, bool):
        raise TaskFailed(f"trigger condition {condition!r} is not a boolean ({value!r})")
    return value


def as_read_from_metadata(recorded: pb.RuntimeArtifact, output_key: str) -> pb.RuntimeArtifact:
    """An upstream artifact as the driver hands it to a consumer, read back from ml-metadata: its id as
    name, its uri and metadata (with the `display_name` property the launcher records), and an empty
    type (`metadata/client.go`, `GetOutputArtifactsByExecutionId`: `Schema: ""`, which
    `ToRuntimeArtifact` writes as `instanceSchema`)."""
    artifact = pb.RuntimeArtifact()
    artifact.CopyFrom(recorded)
    artifact.type.Clear()
    artifact.type.instance_schema = ""
    artifact.metadata.update({"display_name": output_key})
    return artifact


class LocalKfpRun:
    """One run of a compiled PipelineSpec; `run(parameters)` returns every task's outcome by name."""

    def __init__(self, spec: pb.PipelineSpec, pipeline_root: Path, python: str = sys.executable,
                 cwd: Path = REPO, timeout_s: float = 900, parallelism: int = 2):
        self.spec, self.pipeline_root, self.python, self.cwd, self.timeout_s = spec, pipeline_root, python, cwd, timeout_s
        if parallelism < 1:
            raise ValueError(f"parallelism must be >= 1, got {parallelism}")
        self.parallelism = parallelism
        self.executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
        self._artifact_ids = itertools.count(1)  # ml-metadata's ids; next() is atomic, tasks finish on threads

    # ---- the driver ---------------------------------------------------------------------------------------
    def _pipeline_parameters(self, given: Dict[str, Any]) -> Dict[str, Any]:
        definitions = self.spec.root.input_definitions.parameters
        unknown = set(given) - set(definitions)
        if unknown:
            raise TaskFailed(f"run parameters {sorted(unknown)} are not pipeline parameters {sorted(definitions)}")
        values = {}
        for name, definition in definitions.items():
            if name in given:
                values[name] = given[name]
            elif definition.HasField("default_value"):
                values[name] = executor_output_utils.pb2_value_to_python(definition.default_value)
            elif not definition.is_optional:
                raise TaskFailed(f"pipeline parameter {name!r} has no value and no default")
        return values

    def _resolve_parameter(self, task: str, name: str, spec: pb.TaskInputsSpec.InputParameterSpec,
                           pipeline_params: Dict[str, Any], done: Dict[str, TaskRun]) -> Any:
        kind = spec.WhichOneof("kind")
        if kind == "runtime_value":
            return executor_output_utils.pb2_value_to_python(spec.runtime_value.constant)
        if kind == "component_input_parameter":
            if spec.component_input_parameter not in pipeline_params:
                raise TaskFailed(f"{task}.{name}: pipeline parameter {spec.component_input_parameter!r} does not exist")
            return pipeline_params[spec.component_input_parameter]
        if kind == "task_output_parameter":
            producer, key = spec.task_output_parameter.producer_task, spec.task_output_parameter.output_parameter_key
            if producer not in done:
                raise TaskFailed(f"{task}.{name}: producer task {producer!r} is not a task of this DAG")
            if key not in done[producer].parameters:
                raise TaskFailed(f"{task}.{name}: task {producer} has no output parameter {key!r}")
            return done[producer].parameters[key]
        raise TaskFailed(f"{task}.{name}: input parameter form {kind!r} is not handled")

    def _resolve_artifact(self, task: str, name: str, spec: pb.TaskInputsSpec.InputArtifactSpec,
                          done: Dict[str, TaskRun]) -> pb.RuntimeArtifact:
        if spec.WhichOneof("kind") != "task_output_artifact":
            raise TaskFailed(f"{task}.{name}: input artifact form {spec.WhichOneof('kind')!r} is not handled")
        producer, key = spec.task_output_artifact.producer_task, spec.task_output_artifact.output_artifact_key
        if producer not in done:
            raise TaskFailed(f"{task}.{name}: producer task {producer!r} is not a task of this DAG")
        if done[producer].state != SUCCEEDED or key not in done[producer].artifacts:
            raise TaskFailed(f"{task}.{name}: task {producer} ({done[producer].state}) has no output artifact {key!r}")
        return as_read_from_metadata(done[producer].artifacts[key], key)

    # ---- the launcher -------------------------------------------------------------------------------------
    def _executor_input(self, component: pb.ComponentSpec, parameters: Dict[str, Any],
                        artifacts: Dict[str, pb.RuntimeArtifact], task_root: Path) -> pb.ExecutorInput:
        without_inputs = pb.ComponentSpec()
        without_inputs.CopyFrom(component)
        without_inputs.input_definitions.ClearField("artifacts")  # filled below, as ml-metadata hands them over
        executor_input = executor_input_utils.construct_executor_input(
            without_inputs, parameters, str(task_root), block_input_artifact=False)
        for name, artifact in artifacts.items():
            executor_input.inputs.artifacts[name].artifacts.append(artifact)
        return executor_input

    def _launch(self, run_id: str, task: str, component: pb.ComponentSpec, executor_input: pb.ExecutorInput,
                log: Path) -> pb.ExecutorOutput:
        container = self.executors[component.executor_label]["container"]
        full_command = list(container.get("command", [])) + list(container.get("args", []))
        command = placeholder_utils.replace_placeholders(
            full_command, executor_input_utils.executor_input_to_dict(executor_input, component),
            pipeline_resource_name=run_id, task_resource_name=task, pipeline_root=str(self.pipeline_root),
            unique_pipeline_id=run_id)
        if command[0] != "python":
            raise TaskFailed(f"{task}: the container runs {command[0]!r}; this harness stands in only for `python`")
        env = {**os.environ, **Image().env, **{e["name"]: e["value"] for e in container.get("env", [])}}
        with open(log, "w") as out:
            try:
                done = subprocess.run([self.python] + command[1:], cwd=self.cwd, env=env, stdout=out,
                                      stderr=subprocess.STDOUT, timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                raise TaskFailed(f"{task}: still running after {self.timeout_s:.0f} s (log {log})") from None
        if done.returncode != 0:
            tail = "".join(log.read_text().splitlines(keepends=True)[-40:])
            raise TaskFailed(f"{task}: container exited {done.returncode} (log {log}):\n{tail}")
        return executor_output_utils.load_executor_output(executor_input.outputs.output_file)

    def _outputs(self, task: str, component: pb.ComponentSpec, executor_input: pb.ExecutorInput,
                 executor_output: pb.ExecutorOutput, run: TaskRun) -> None:
        """What the launcher records: each declared output artifact at its URI, with the executor's metadata;
        each declared output parameter from the executor output, else from its output file."""
        for name, declared in executor_input.outputs.artifacts.items():
            artifact = pb.RuntimeArtifact()
            artifact.CopyFrom(declared.artifacts[0])
            artifact.name = str(next(self._artifact_ids))  # ml-metadata's artifact id
            produced = executor_output.artifacts.get(name)
            if produced is not None and produced.artifacts:  # launcher_v2.go mergeRuntimeArtifacts: uri, metadata
                if produced.artifacts[0].uri:
                    artifact.uri = produced.artifacts[0].uri
                artifact.metadata.MergeFrom(produced.artifacts[0].metadata)
            run.artifacts[name] = artifact
        for name, declared in executor_input.outputs.parameters.items():
            if name in executor_output.parameter_values:
                run.parameters[name] = executor_output_utils.pb2_value_to_python(executor_output.parameter_values[name])
            elif os.path.exists(declared.output_file):
                run.parameters[name] = Path(declared.output_file).read_text()
            else:
                raise TaskFailed(f"{task}: output parameter {name!r} was declared but never written")

    def _upstream(self, task: pb.PipelineTaskSpec) -> List[str]:
        """dependentTasks plus every producer of an input (argocompiler/dag.go addImplicitDependencies)."""
        producers = [p.task_output_parameter.producer_task for p in task.inputs.parameters.values()
                     if p.WhichOneof("kind") == "task_output_parameter"]
        producers += [a.task_output_artifact.producer_task for a in task.inputs.artifacts.values()
                      if a.WhichOneof("kind") == "task_output_artifact"]
        return sorted(set(task.dependent_tasks) | set(producers))

    def _start(self, run_id: str, name: str, pipeline_params: Dict[str, Any], done: Dict[str, TaskRun]):
        """The driver's part, in the calling thread: a TaskRun when the task does not run, else a callable that
        launches it."""
        task = self.spec.root.dag.tasks[name]
        component = self.spec.components[task.component_ref.name]
        # argocompiler/dag.go `depends`: "X.Succeeded && ..." — a task after a skipped one does not run.
        if any(done[d].state != SUCCEEDED for d in self._upstream(task)):
            return TaskRun(name, OMITTED)
        params = {k: self._resolve_parameter(name, k, s, pipeline_params, done) for k, s in task.inputs.parameters.items()}
        artifacts = {k: self._resolve_artifact(name, k, s, done) for k, s in task.inputs.artifacts.items()}
        task_root = self.pipeline_root / run_id / name
        executor_input = self._executor_input(component, params, artifacts, task_root)
        condition = task.trigger_policy.condition
        if condition and not evaluate_condition(condition, executor_input.inputs):
            return TaskRun(name, SKIPPED)

        def launch() -> TaskRun:
            task_root.mkdir(parents=True, exist_ok=True)
            started, log = time.time(), task_root / "task.log"
            output = self._launch(run_id, name, component, executor_input, log)
            run = TaskRun(name, SUCCEEDED, time.time() - started, log=log)
            self._outputs(name, component, executor_input, output, run)
            return run

        return launch

    def run(self, parameters: Dict[str, Any], run_id: Optional[str] = None,
            on_task: Optional[callable] = None) -> Dict[str, TaskRun]:
        """Runs every task once its upstream tasks are done, ready ones side by side as Argo runs them (here
        at most `parallelism` at once: two cores); the first failure stops the run (running tasks finish first)."""
        run_id = run_id or f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        pipeline_params = self._pipeline_parameters(parameters)
        tasks = self.spec.root.dag.tasks
        unknown = {p for t in tasks.values() for p in self._upstream(t)} - set(tasks)
        if unknown:
            raise TaskFailed(f"tasks {sorted(unknown)} are referenced as producers but are not in the DAG")
        waiting = set(graph_utils.topological_sort_tasks(dict(tasks)))  # kfp.local's sort of the DAG
        done: Dict[str, TaskRun] = {}
        running: Dict[futures.Future, str] = {}
        with futures.ThreadPoolExecutor(self.parallelism) as pool:
            while waiting or running:
                launches = []  # the driver decides every ready task at once; skipped ones take no slot
                for name in sorted(n for n in waiting if all(d in done for d in self._upstream(tasks[n]))):
                    waiting.discard(name)
                    started = self._start(run_id, name, pipeline_params, done)
                    if isinstance(started, TaskRun):
                        done[name] = started
                        if on_task:
                            on_task(started)
                    else:
                        launches.append((name, started))
                for name, launch in launches:
                    running[pool.submit(launch)] = name  # the pool runs `parallelism` at a time
                if not running:
                    if waiting and not any(all(d in done for d in self._upstream(tasks[n])) for n in waiting):
                        raise TaskFailed(f"tasks {sorted(waiting)} wait on each other: the DAG has a cycle")
                    continue
                finished, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    done[name] = future.result()  # a TaskFailed ends the run here
                    if on_task:
                        on_task(done[name])
        return done  # in the order the tasks ended


def summary(runs: Dict[str, TaskRun]) -> str:
    return "\n".join(f"{r.name:<20}{r.state:<10}{r.seconds:8.1f} s" for r in runs.values())


if __name__ == "__main__":  # python tests/kfp_launcher.py pipeline.yaml ROOT run_date=2026-11-03
    spec_path, root, *pairs = sys.argv[1:]
    outcome = LocalKfpRun(load_spec(spec_path), Path(root)).run(dict(p.split("=", 1) for p in pairs),
                                                                 on_task=lambda r: print(summary({r.name: r}), flush=True))
    json.dump({n: r.state for n, r in outcome.items()}, sys.stdout)
