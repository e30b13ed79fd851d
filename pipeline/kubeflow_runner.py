"""Compiles the pipeline for Kubeflow Pipelines (`pipeline.yaml`) and Vertex AI (`pipeline.json`).

Thin on purpose, like the local runner: it picks the image, roots and Beam arguments from the
configuration's `kubeflow:` section and calls `create_pipeline`. The run date is a runtime parameter
(`run_date`), which a recurring run fills from its scheduled time (pipeline/schedule.py); the rolling
window, the warm start from the model in production and the Pusher's blessing condition compile as they
run locally, with no resolver node (the open-source backend refuses those). Transform and Trainer code is named by dotted path and baked into the image, so compiling
needs no network, even with a gs:// root (a `module_file` would build and upload a wheel).
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from pathlib import Path
from typing import Dict, List, Optional

import mtrank  # noqa: F401
from tfx import v1 as tfx
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from mtrank import config as config_lib
from pipeline import beam_runners, local_runner
from pipeline.pipeline import UNCACHED_ON_KUBEFLOW, create_pipeline

RUN_DATE = "run_date"
RUN_DATE_DEFAULT = ""  # DayWindow: the newest day folder present
# Every task runs TFX's executor runner through pipeline/kfp_entrypoint.py (it restores the input artifact
# types the open-source backend drops); the module is in the image (Dockerfile: COPY pipeline/).
ENTRYPOINT = ["python", "-m", "pipeline.kfp_entrypoint"]
YAML_FILE = "pipeline.yaml"  # PipelineSpec: what kfp.Client uploads
JSON_FILE = "pipeline.json"  # PipelineJob: what Vertex AI takes
REMOTE_SCHEMES = ("gs://", "s3://")


@dataclasses.dataclass(frozen=True)
class Target:
    """Where the compiled pipeline runs and what it reads and writes, as the pods see it."""

    image: str
    pipeline_root: str
    data_root: str
    serving_root: str
    schema: str


def _root(cfg: config_lib.Config, key: str, value: str, flag: str) -> str:
    if not value:
        raise config_lib.ConfigError(f"{cfg.source}: kubeflow.{key} is not set; set it there or pass {flag}")
    if not (value.startswith(REMOTE_SCHEMES) or posixpath.isabs(value)):
        raise config_lib.ConfigError(
            f"{cfg.source}: kubeflow.{key} {value!r} is not gs://, s3:// or an absolute path; pods cannot "
            "resolve a relative path (mount a volume and give its absolute path)")
    return value.rstrip("/")


def _schema_in_image(cfg: config_lib.Config) -> str:
    """The configured schema file, at its place in the image (the Dockerfile copies the repository)."""
    local = Path(cfg.resolve_path(cfg.data.schema))
    try:
        relative = local.resolve().relative_to(config_lib.REPO_ROOT)
    except ValueError:
        raise config_lib.ConfigError(
            f"{cfg.source}: data.schema {local} is outside the repository, so it is not in the image; set "
            "kubeflow.schema to a path the pods can read (gs://...)") from None
    return posixpath.join(cfg.kubeflow.image_workdir, relative.as_posix())


def target(cfg: config_lib.Config, image: Optional[str] = None, pipeline_root: Optional[str] = None,
           data_root: Optional[str] = None, serving_root: Optional[str] = None) -> Target:
    """Settings from the configuration, each overridable (command-line flags); errors name the key."""
    kf = cfg.kubeflow
    image = image or kf.image
    if not image:
        raise config_lib.ConfigError(f"{cfg.source}: kubeflow.image is not set; build and push the image "
                                     "(docs/kubeflow.md) and set it there, or pass --image")
    return Target(
        image=image,
        pipeline_root=_root(cfg, "pipeline_root", pipeline_root or kf.pipeline_root, "--pipeline-root"),
        data_root=_root(cfg, "data_root", data_root or kf.data_root, "--data-root"),
        serving_root=_root(cfg, "serving_root", serving_root or kf.serving_root, "--serving-root"),
        schema=kf.schema or _schema_in_image(cfg),
    )


def trainer_resources(cfg: config_lib.Config):
    """The Trainer pod's limits as a ResourceSpec, or None when none is configured."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    kf = cfg.kubeflow
    if not (kf.trainer_cpu or kf.trainer_memory_gb or kf.trainer_gpus):
        return None
    spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec()
    if kf.trainer_cpu:
        spec.cpu_limit = kf.trainer_cpu
        spec.resource_cpu_limit = f"{kf.trainer_cpu:g}"
    if kf.trainer_memory_gb:
        spec.memory_limit = kf.trainer_memory_gb
        spec.resource_memory_limit = f"{kf.trainer_memory_gb:g}G"
    if kf.trainer_gpus:
        spec.accelerator.type = spec.accelerator.resource_type = kf.trainer_gpu_type
        spec.accelerator.count = kf.trainer_gpus
        spec.accelerator.resource_count = str(kf.trainer_gpus)
    return spec


def _configure_components(cfg: config_lib.Config, pipeline: tfx.dsl.Pipeline) -> None:
    """Per-component Beam arguments and the Trainer's resources, set on the built pipeline so that
    `create_pipeline` stays runner-agnostic."""
    by_id: Dict[str, object] = {c.id: c for c in pipeline.components}
    for component_id, args in cfg.kubeflow.component_beam_args.items():
        component = by_id.get(component_id)
        if component is None or not hasattr(component, "with_beam_pipeline_args"):
            beam = sorted(i for i, c in by_id.items() if hasattr(c, "with_beam_pipeline_args"))
            raise config_lib.ConfigError(
                f"{cfg.source}: kubeflow.component_beam_args.{component_id}: no Beam-powered component has that "
                f"id; the pipeline's are {beam}")
        component.with_beam_pipeline_args(list(args))  # after the pipeline's own: these win
    resources = trainer_resources(cfg)
    if resources is not None:
        by_id["Trainer"].with_platform_config(resources)


def build(cfg: config_lib.Config, where: Target, enable_cache: bool = True) -> tfx.dsl.Pipeline:
    """The pipeline as Kubeflow runs it: run date as a runtime parameter, no ml-metadata connection
    (Kubeflow provides its own)."""
    pipeline = create_pipeline(
        pipeline_name=local_runner.pipeline_name(cfg),
        pipeline_root=where.pipeline_root,
        cfg=cfg,
        data_root=where.data_root,
        schema_path=where.schema,
        serving_root=where.serving_root,
        metadata_connection_config=None,
        beam_pipeline_args=beam_runners.beam_args(cfg, where.image),
        run_date=tfx.dsl.experimental.RuntimeParameter(name=RUN_DATE, ptype=str, default=RUN_DATE_DEFAULT),
        enable_cache=enable_cache,
    )
    _configure_components(cfg, pipeline)
    return pipeline




def name_output_parameter_producers(tasks: Dict[str, dict]) -> None:
    """Points every `taskOutputParameter` at the task that produces it.

    TFX 1.16's step builder writes the producer of an output parameter as `<component id>_task`
    (`kubeflow/v2/step_builder.py`: `producer_task=channel.producer_component_id + '_task'`), but names
    the task itself `<component id>`; here that is ExampleGen's `input_config` from DayWindow. Kubeflow
    Pipelines' driver looks the producer up by task name among the DAG's tasks and fails the task when
    it is not there, so the compiled name is mended to the task's real one (checked in
    tests/kfp_backend_rules.py, executed in tests/test_kubeflow_execute.py).
    """
    for task in tasks.values():
        for spec in task.get("inputs", {}).get("parameters", {}).values():
            output = spec.get("taskOutputParameter")
            if output and output["producerTask"] not in tasks and output["producerTask"].endswith("_task"):
                real = output["producerTask"][: -len("_task")]
                if real in tasks:
                    output["producerTask"] = real


def compile_pipeline(cfg: config_lib.Config, output_dir: os.PathLike | str, where: Target,
                     vertex_json: bool = False, enable_cache: bool = True) -> List[Path]:
    """Writes pipeline.yaml (and pipeline.json when asked) into `output_dir`; returns their paths."""
    pipeline = build(cfg, where, enable_cache=enable_cache)
    runner_config = kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(  # 2.1: the only schema the backend takes
        default_image=where.image, default_commands=ENTRYPOINT, use_pipeline_spec_2_1=True)
    job = kubeflow_v2_dag_runner.KubeflowV2DagRunner(runner_config).run(pipeline, write_out=False)
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    for task_id in UNCACHED_ON_KUBEFLOW:
        if task_id in tasks:
            tasks[task_id]["cachingOptions"] = {"enableCache": False}
    name_output_parameter_producers(tasks)
    # TFX writes the runtime parameter's type but not its default, and the YAML carries no runtime config:
    # the backend then refuses a run that does not pass run_date ("parameter run_date is not optional, yet
    # has neither default value nor user provided value", apiserver/template/v2_template.go).
    job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"][RUN_DATE]["defaultValue"] = RUN_DATE_DEFAULT
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in [YAML_FILE] + ([JSON_FILE] if vertex_json else []):
        path = output_dir / name
        # TFX's own writer: YAML = the bare PipelineSpec with its comment header, JSON = the PipelineJob.
        kubeflow_v2_dag_runner._write_pipeline_spec_to_file(  # pylint: disable=protected-access
            job, "mtrank: multi-task ranking, daily retraining (compiled by `mtrank compile`).", str(path))
        written.append(path)
    return written
