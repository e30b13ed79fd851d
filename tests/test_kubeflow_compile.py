"""`mtrank compile`: the compiled PipelineSpec, parsed with kfp's own proto, keeps what the local
pipeline does: every component, the rolling window (DayWindow -> ExampleGen, run_date runtime parameter),
the warm start and baseline from the model in production (ProductionModel, no resolver), the Pusher's
blessing condition, the image, the Beam runner and the Trainer's resources; and it meets every rule of the
open-source Kubeflow Pipelines backend (tests/kfp_backend_rules.py). No network: the roots are gs:// and
nothing is uploaded (dotted-path user code, no module_file wheel)."""

import dataclasses
import json
import re

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx

from mtrank import cli
from mtrank import config as config_lib

IMAGE = "gcr.io/example/mtrank:0.1.0"
ROOTS = dict(pipeline_root="gs://bucket/mtrank/root", data_root="gs://bucket/mtrank/data",
             serving_root="gs://bucket/mtrank/serving")


def _parse(path) -> pipeline_spec_pb2.PipelineSpec:
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(yaml.safe_load(path.read_text()), spec)
    return spec


@pytest.fixture(scope="module")
def kubeflow_cfg(cfg):
    return cfg.replace(kubeflow=dataclasses.replace(
        cfg.kubeflow, image=IMAGE, **ROOTS, beam_runner="dataflow",
        beam_options={"project": "example", "region": "europe-west4", "temp_location": "gs://bucket/tmp"},
        component_beam_args={"Transform": ["--max_num_workers=16"]},
        trainer_cpu=4, trainer_memory_gb=16, trainer_gpus=1))


@pytest.fixture(scope="module")
def compiled(kubeflow_cfg, tmp_path_factory):
    from pipeline import kubeflow_runner

    out = tmp_path_factory.mktemp("compiled")
    paths = kubeflow_runner.compile_pipeline(kubeflow_cfg, out, kubeflow_runner.target(kubeflow_cfg), vertex_json=True)
    pipeline = kubeflow_runner.build(kubeflow_cfg, kubeflow_runner.target(kubeflow_cfg))
    return {"paths": paths, "spec": _parse(out / "pipeline.yaml"), "pipeline": pipeline, "out": out}


def _executor(spec, task_id):
    label = spec.components[spec.root.dag.tasks[task_id].component_ref.name].executor_label
    return spec.deployment_spec.fields["executors"].struct_value.fields[label].struct_value


def _container(spec, task_id):
    return json_format.MessageToDict(_executor(spec, task_id))["container"]


def test_writes_the_kfp_yaml_and_the_vertex_json(compiled):
    assert [p.name for p in compiled["paths"]] == ["pipeline.yaml", "pipeline.json"]
    job = json.loads((compiled["out"] / "pipeline.json").read_text())
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == compiled["spec"].pipeline_info.name == "mtrank-impressions"


def test_every_component_is_one_task_of_the_dag(compiled):
    spec, pipeline = compiled["spec"], compiled["pipeline"]
    assert set(spec.root.dag.tasks) == {component.id for component in pipeline.components}
    assert not any(isinstance(c, tfx.dsl.Resolver) for c in pipeline.components)


def test_the_open_source_backend_accepts_the_compiled_spec(compiled):
    """Every rule of tests/kfp_backend_rules.py, each read in kubeflow/pipelines' backend source."""
    import kfp_backend_rules

    assert kfp_backend_rules.violations(compiled["spec"], IMAGE) == []
    executors = compiled["spec"].deployment_spec.fields["executors"].struct_value.fields
    assert not [label for label, e in executors.items() if "resolver" in e.struct_value.fields]


def test_the_rules_catch_what_the_backend_refuses(compiled):
    """Each rule can fail: a resolver executor, TFX's `<id>_task` producer name, a missing default, a
    condition on an input the task lacks, a module missing from the image."""
    import kfp_backend_rules
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb

    spec = pb.PipelineSpec()
    spec.CopyFrom(compiled["spec"])
    tasks = spec.root.dag.tasks
    label = spec.components["ProductionModel"].executor_label
    spec.deployment_spec.fields["executors"].struct_value.fields[label].struct_value.Clear()
    spec.deployment_spec.fields["executors"].struct_value.fields[label].struct_value.update(
        {"resolver": {"outputArtifactQueries": {}}})
    tasks["CsvExampleGen"].inputs.parameters["input_config"].task_output_parameter.producer_task = "DayWindow_task"
    spec.root.input_definitions.parameters["run_date"].ClearField("default_value")
    pusher = tasks["Pusher"]
    pusher.trigger_policy.condition = pusher.trigger_policy.condition.replace("_Evaluator.blessing", "blessing")
    trainer_label = spec.components["Trainer"].executor_label
    container = spec.deployment_spec.fields["executors"].struct_value.fields[trainer_label].struct_value \
        .fields["container"].struct_value
    container.fields["command"].list_value.values[2].string_value = "tests.kfp_launcher"  # tests/ is not in the image
    found = "\n".join(kfp_backend_rules.violations(spec, IMAGE))
    for expected in ("ProductionModel: executor", "container and importer only", "'DayWindow_task', which is not in the DAG",
                     "run_date: no defaultValue", "inputs.artifacts['blessing']", "tests.kfp_launcher is not in the image"):
        assert expected in found, (expected, found)


def test_every_task_runs_the_entrypoint_that_restores_input_types(compiled):
    from pipeline import kubeflow_runner

    for task_id in compiled["spec"].root.dag.tasks:
        assert _container(compiled["spec"], task_id)["command"] == kubeflow_runner.ENTRYPOINT


def test_rolling_window_runs_from_the_run_date_runtime_parameter(compiled):
    spec = compiled["spec"]
    run_date = spec.root.input_definitions.parameters["run_date"]
    assert run_date.parameter_type == pipeline_spec_pb2.ParameterType.STRING
    assert run_date.default_value.string_value == ""  # a run without it takes the newest day
    window = spec.root.dag.tasks["DayWindow"]
    assert window.inputs.parameters["run_date"].component_input_parameter == "run_date"
    assert window.inputs.parameters["data_root"].runtime_value.constant.string_value == ROOTS["data_root"]
    assert window.caching_options.enable_cache is False  # reads the data folder: never reuse an old window
    example_gen = spec.root.dag.tasks["CsvExampleGen"].inputs.parameters["input_config"]
    assert example_gen.task_output_parameter.producer_task == "DayWindow"  # TFX writes "DayWindow_task"
    assert example_gen.task_output_parameter.output_parameter_key == "input_config"
    assert "DayWindow" in spec.root.dag.tasks["CsvExampleGen"].dependent_tasks


def test_warm_start_and_baseline_come_from_the_model_in_production(compiled, kubeflow_cfg):
    tasks = compiled["spec"].root.dag.tasks
    production = tasks["ProductionModel"]
    assert production.inputs.parameters["base_directory"].runtime_value.constant.string_value == \
        f"{ROOTS['serving_root']}/{kubeflow_cfg.serving.model_name}"
    assert production.inputs.parameters["run_date"].component_input_parameter == "run_date"
    assert production.caching_options.enable_cache is False  # reads the serving root: never from the cache
    for consumer, key in (("Trainer", "base_model"), ("Evaluator", "baseline_model")):
        artifact = tasks[consumer].inputs.artifacts[key].task_output_artifact
        assert (artifact.producer_task, artifact.output_artifact_key) == ("ProductionModel", "model")
    pusher = tasks["Pusher"].inputs.parameters["base_directory"].runtime_value.constant.string_value
    assert pusher == production.inputs.parameters["base_directory"].runtime_value.constant.string_value


def test_the_evaluator_reads_the_bounded_sample_of_the_evaluated_day(compiled):
    tasks = compiled["spec"].root.dag.tasks
    examples = tasks["Evaluator"].inputs.artifacts["examples"].task_output_artifact
    assert (examples.producer_task, examples.output_artifact_key) == ("EvalSample", "sample")
    source = tasks["EvalSample"].inputs.artifacts["examples"].task_output_artifact
    assert source.producer_task == "CsvExampleGen"
    assert _container(compiled["spec"], "EvalSample")["image"] == IMAGE  # project code runs in the pipeline image


def test_pusher_runs_only_when_the_evaluator_blesses(compiled):
    pusher = compiled["spec"].root.dag.tasks["Pusher"]
    condition = pusher.trigger_policy.condition
    match = re.fullmatch(r"\(inputs\.artifacts\['([^']+)'\]\.artifacts\[0\]\.metadata\['blessed'\] == 1(\.0)?\)",
                         condition)
    assert match, condition
    source = pusher.inputs.artifacts[match.group(1)].task_output_artifact
    assert (source.producer_task, source.output_artifact_key) == ("Evaluator", "blessing")


def test_image_beam_runner_and_trainer_resources_come_from_the_configuration(compiled, kubeflow_cfg):
    spec = compiled["spec"]
    for task_id in ("CsvExampleGen", "Transform", "Trainer", "Evaluator", "Pusher", "DayWindow"):
        assert _container(spec, task_id)["image"] == IMAGE
    for task_id in ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator"):
        args = _container(spec, task_id)["args"]
        assert "--runner=DataflowRunner" in args and f"--sdk_container_image={IMAGE}" in args, task_id
        assert "--project=example" in args and "--temp_location=gs://bucket/tmp" in args
    assert "--max_num_workers=16" in _container(spec, "Transform")["args"]
    assert "--max_num_workers=16" not in _container(spec, "Evaluator")["args"]
    resources = _container(spec, "Trainer")["resources"]
    assert resources["cpuLimit"] == 4 and resources["memoryLimit"] == 16
    assert resources["accelerator"]["count"] == "1"
    trainer = spec.root.dag.tasks["Trainer"].inputs.parameters
    assert trainer["run_fn"].runtime_value.constant.string_value == "components.trainer.run_fn"
    custom = json.loads(json.loads(trainer["custom_config"].runtime_value.constant.string_value)["mtrank_config"])
    assert custom["config"]["kubeflow"]["distribution"] == "none"


def test_schema_path_is_the_one_inside_the_image(compiled):
    schema = compiled["spec"].root.dag.tasks["ImportSchemaGen"].inputs.parameters["schema_file"]
    assert schema.runtime_value.constant.string_value == "/mtrank/schemas/impressions/schema.pbtxt"


@pytest.mark.parametrize("runner,needs", [("dataflow", "kubeflow.beam_options.project"),
                                          ("flink", "kubeflow.beam_options.flink_master"),
                                          ("spark", "kubeflow.beam_options.spark_master_url")])
def test_each_runner_names_the_setting_it_needs(cfg, runner, needs):
    from pipeline import beam_runners

    bare = cfg.replace(kubeflow=dataclasses.replace(cfg.kubeflow, beam_runner=runner))
    with pytest.raises(config_lib.ConfigError, match=needs):
        beam_runners.beam_args(bare, IMAGE)


def test_one_setting_switches_the_runner(cfg):
    from pipeline import beam_runners

    def runner_of(name, **options):
        c = cfg.replace(kubeflow=dataclasses.replace(cfg.kubeflow, beam_runner=name, beam_options=options))
        return beam_runners.beam_args(c, IMAGE)

    assert runner_of("direct")[0] == "--runner=DirectRunner"
    assert "--flink_master=flink:8081" in runner_of("flink", flink_master="flink:8081")
    assert runner_of("spark", spark_master_url="spark://m:7077")[0] == "--runner=SparkRunner"


def test_unknown_runner_or_relative_root_is_refused_with_the_key(cfg, tmp_path):
    with pytest.raises(config_lib.ConfigError, match="kubeflow.beam_runner"):
        config_lib.from_dict({**_raw(), "kubeflow": {"beam_runner": "hadoop"}}, source="x.yaml")
    from pipeline import kubeflow_runner

    relative = cfg.replace(kubeflow=dataclasses.replace(cfg.kubeflow, image=IMAGE, **{**ROOTS, "data_root": "data"}))
    with pytest.raises(config_lib.ConfigError, match="kubeflow.data_root"):
        kubeflow_runner.target(relative)
    with pytest.raises(config_lib.ConfigError, match="kubeflow.image"):
        kubeflow_runner.target(cfg)


def _raw():
    return yaml.safe_load(config_lib.DEFAULT_CONFIG_PATH.read_text())


def test_cli_compiles_with_overrides(tmp_path, capsys):
    code = cli.main(["compile", "--output-dir", str(tmp_path), "--image", IMAGE, "--pipeline-root", "/mnt/pipelines",
                     "--data-root", "s3://bucket/data", "--serving-root", "/mnt/serving"])
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    spec = _parse(tmp_path / "pipeline.yaml")
    assert _container(spec, "Transform")["image"] == IMAGE
    assert "--runner=DirectRunner" in _container(spec, "Transform")["args"]
    assert not (tmp_path / "pipeline.json").exists()


def test_dockerfile_runs_the_tested_lock_on_python_311():
    """Docker cannot run here: check what the Dockerfile references exists and the pins agree."""
    root = config_lib.REPO_ROOT
    text = (root / "Dockerfile").read_text()
    import tfx as tfx_package

    import apache_beam

    # Python 3.11 (the lock's wheels) on the pinned Beam version: see the Dockerfile's header for why
    # the TFX 1.16 image (Python 3.10) cannot take this lock.
    assert f"FROM apache/beam_python3.11_sdk:{apache_beam.__version__}\n" in text
    assert f"tfx=={tfx_package.__version__}" in (root / "requirements" / "stack-py311.lock").read_text()
    assert re.search(r"ENV TF_USE_LEGACY_KERAS=1\b", text)
    assert "--no-deps --ignore-requires-python" in text
    for lock in ("requirements/stack-py311.lock", "requirements/extras-py311.lock"):
        assert lock in text and f"-r {lock}" in text and (root / lock).is_file()
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert (root / source).exists(), f"Dockerfile copies {source}, which does not exist"
    ignored = (root / ".dockerignore").read_text().split()
    assert ".venv" in ignored and "workspace" in ignored
    # The image's working folder is where the compiled pipeline looks for the schema.
    assert f"WORKDIR {config_lib.KubeflowSpec().image_workdir}\n" in text


def test_the_entrypoint_puts_back_the_input_types_the_backend_drops(compiled):
    """The backend hands upstream artifacts over with `instanceSchema: ""` (metadata/client.go); TFX's own
    runner then fails on every input artifact, the entrypoint gives each its declared type back."""
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as tfx_entrypoint

    from pipeline import kfp_entrypoint

    args = _container(compiled["spec"], "Trainer")["args"]
    inputs_spec = args[args.index(kfp_entrypoint.INPUTS_SPEC_FLAG) + 1]
    delivered = pb.ExecutorInput()
    for i, name in enumerate(sorted(json.loads(inputs_spec)["artifacts"]), 1):
        artifact = delivered.inputs.artifacts[name].artifacts.add(name=str(i), uri=f"gs://bucket/{name}")
        artifact.type.instance_schema = ""
    as_sent = json_format.MessageToJson(delivered)
    with pytest.raises(AttributeError):
        tfx_entrypoint.parse_raw_artifact_dict(delivered.inputs.artifacts, {})

    argv = ["kfp_entrypoint", "--executor_class_path", "x", kfp_entrypoint.INVOCATION_FLAG, as_sent,
            f"{kfp_entrypoint.INPUTS_SPEC_FLAG}={inputs_spec}", "--runner=DirectRunner"]
    patched = kfp_entrypoint.patched_argv(argv)
    restored = json_format.Parse(patched[patched.index(kfp_entrypoint.INVOCATION_FLAG) + 1], pb.ExecutorInput())
    parsed = tfx_entrypoint.parse_raw_artifact_dict(restored.inputs.artifacts, {})
    assert {k: type(v[0]).__name__ for k, v in parsed.items()} == {
        "base_model": "Model", "examples": "Examples", "schema": "Schema", "transform_graph": "TransformGraph"}
    assert patched[-1] == "--runner=DirectRunner" and patched[patched.index(kfp_entrypoint.INPUTS_SPEC_FLAG) + 1] == inputs_spec
