"""Daily retraining on a schedule: a Kubeflow Pipelines recurring run, or a Vertex AI schedule.

Kubeflow Pipelines (KFP 2.x, `kfp.Client`): the compiled `pipeline.yaml` is uploaded (a new version
when the pipeline exists), an experiment is created or reused, and a recurring run is created with a
6-field cron (seconds first, UTC), `no_catchup=True` (a paused schedule does not replay every missed
day: each run trains on a window and warm-starts from the model in production, so a replay would only
push near-copies) and `max_concurrency=1` (two runs at once would race for the same blessed model).

The run date: the recurring run passes `run_date = [[ScheduledTime.2006-01-02]]`, which the KFP backend
replaces by the scheduled time in UTC, formatted with Go's layout (backend/src/common/util/
parameter_formatter.go). `run_date = ""` (`--run-date newest`) makes DayWindow take the newest day folder
instead: for deployments whose backend leaves the macro unexpanded (kubeflow/pipelines#12494) and for
Vertex AI, which has no such macro.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Dict, Optional


KFP_DEFAULT_CRON = "0 0 2 * * *"  # 02:00:00 UTC every day
VERTEX_DEFAULT_CRON = "0 2 * * *"  # 02:00 UTC every day (Vertex: standard 5-field cron)
SCHEDULED_DATE = "[[ScheduledTime.2006-01-02]]"  # KFP recurring-run macro: scheduled day, UTC, YYYY-MM-DD
NEWEST_DAY = ""  # DayWindow: the newest day folder present
MAX_CONCURRENCY = 10  # the KFP API's limit


class ScheduleError(ValueError):
    """A schedule that Kubeflow or Vertex would refuse or read differently; the message says what to write."""


def kfp_cron(expression: str) -> str:
    """Checks a Kubeflow Pipelines cron: 6 fields, seconds first, UTC (or an @daily-style descriptor)."""
    text = " ".join(expression.split())
    if text.startswith("@"):
        return text
    fields = text.split(" ")
    if len(fields) == 5:
        raise ScheduleError(
            f"cron {expression!r} has 5 fields, but Kubeflow Pipelines reads 6 with seconds first (UTC): it would "
            f"take {fields[0]!r} as the second and {fields[1]!r} as the minute, a different schedule. For this "
            f"schedule write '0 {text}' (e.g. '{KFP_DEFAULT_CRON}' is 02:00:00 UTC every day).")
    if len(fields) != 6:
        raise ScheduleError(f"cron {expression!r} has {len(fields)} fields; Kubeflow Pipelines takes 6: "
                            f"second minute hour day-of-month month day-of-week (e.g. '{KFP_DEFAULT_CRON}')")
    return text


def vertex_cron(expression: str) -> str:
    """Checks a Vertex AI schedule cron: 5 fields, optionally prefixed by TZ=... or CRON_TZ=..."""
    text = " ".join(expression.split())
    body = re.sub(r"^(CRON_)?TZ=\S+ ", "", text)
    fields = body.split(" ")
    if len(fields) == 6:
        raise ScheduleError(f"cron {expression!r} has 6 fields, but Vertex AI schedules take standard 5-field "
                            f"cron (minute first): drop the seconds, e.g. '{VERTEX_DEFAULT_CRON}'")
    if len(fields) != 5:
        raise ScheduleError(f"cron {expression!r} has {len(fields)} fields; Vertex AI takes 5: minute hour "
                            f"day-of-month month day-of-week, optionally prefixed by TZ=<zone>")
    return text


def concurrency(value: int) -> int:
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ScheduleError(f"max concurrency {value} is outside 1..{MAX_CONCURRENCY} (Kubeflow's limit); "
                            "1 is right for daily retraining: runs warm-start from each other")
    return value


def run_date_parameter(choice: str, vertex: bool = False) -> str:
    """'scheduled' -> the KFP macro, 'newest' -> '' (newest day folder), or a fixed YYYY-MM-DD."""
    if choice == "newest":
        return NEWEST_DAY
    if choice == "scheduled":
        if vertex:
            raise ScheduleError("Vertex AI does not expand Kubeflow's [[ScheduledTime...]] macro; use "
                                "--run-date newest (DayWindow takes the newest day folder)")
        return SCHEDULED_DATE
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", choice):
        return choice
    raise ScheduleError(f"--run-date {choice!r}: use scheduled, newest or a date YYYY-MM-DD")


@dataclasses.dataclass
class Created:
    """What `mtrank schedule` created on Kubeflow Pipelines."""

    pipeline_id: str
    pipeline_version_id: str
    new_pipeline: bool
    experiment_id: str
    recurring_run_id: str
    cron: str
    max_concurrency: int
    no_catchup: bool
    parameters: Dict[str, Any]

    def describe(self) -> str:
        what = "uploaded pipeline" if self.new_pipeline else "uploaded a new version of pipeline"
        return "\n".join([
            f"[schedule] {what} {self.pipeline_id} (version {self.pipeline_version_id})",
            f"[schedule] experiment {self.experiment_id}",
            f"[schedule] recurring run {self.recurring_run_id}: cron '{self.cron}' (UTC, seconds first), "
            f"no_catchup={self.no_catchup}, max_concurrency={self.max_concurrency}, parameters "
            f"{json.dumps(self.parameters)}",
        ])


def _latest_version_id(client, pipeline_id: str) -> str:
    versions = client.list_pipeline_versions(pipeline_id, sort_by="created_at desc", page_size=1)
    if not versions.pipeline_versions:
        raise RuntimeError(f"pipeline {pipeline_id} was uploaded but lists no version")
    return versions.pipeline_versions[0].pipeline_version_id


def schedule_kfp(client, package_path: str, pipeline_name: str, version_name: str, experiment: str,
                 job_name: str, cron: str = KFP_DEFAULT_CRON, max_concurrency: int = 1,
                 run_date: str = SCHEDULED_DATE, namespace: Optional[str] = None) -> Created:
    """Uploads the package (or a new version of it), creates or reuses the experiment, and creates the
    recurring run. `client` is a `kfp.Client`."""
    cron, max_concurrency = kfp_cron(cron), concurrency(max_concurrency)
    if not package_path.endswith((".yaml", ".yml")):
        raise ScheduleError(f"{package_path}: kfp.Client uploads the PipelineSpec YAML (pipeline.yaml); the "
                            "JSON is Vertex AI's PipelineJob. Run `mtrank compile` and pass pipeline.yaml")
    pipeline_id = client.get_pipeline_id(pipeline_name)
    new_pipeline = pipeline_id is None
    if new_pipeline:
        pipeline_id = client.upload_pipeline(package_path, pipeline_name=pipeline_name, namespace=namespace).pipeline_id
        version_id = _latest_version_id(client, pipeline_id)
    else:
        version_id = client.upload_pipeline_version(package_path, pipeline_version_name=version_name,
                                                    pipeline_id=pipeline_id).pipeline_version_id
    experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id  # reuses by name
    parameters = {"run_date": run_date}
    recurring = client.create_recurring_run(
        experiment_id=experiment_id, job_name=job_name, cron_expression=cron, max_concurrency=max_concurrency,
        no_catchup=True, params=parameters, pipeline_id=pipeline_id, version_id=version_id, enabled=True)
    return Created(pipeline_id=pipeline_id, pipeline_version_id=version_id, new_pipeline=new_pipeline,
                   experiment_id=experiment_id, recurring_run_id=recurring.recurring_run_id, cron=cron,
                   max_concurrency=max_concurrency, no_catchup=True, parameters=parameters)


def vertex_schedule_request(job_spec: Dict[str, Any], project: str, region: str, display_name: str,
                            pipeline_root: str, cron: str = VERTEX_DEFAULT_CRON, max_concurrency: int = 1,
                            run_date: str = NEWEST_DAY, service_account: str = ""):
    """The Vertex AI `CreateScheduleRequest` for the compiled PipelineJob (`pipeline.json`), built only:
    send it with `aiplatform_v1.ScheduleServiceClient().create_schedule(request)` (docs/kubeflow.md)."""
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format, struct_pb2

    cron, max_concurrency = vertex_cron(cron), concurrency(max_concurrency)
    if not (project and region):
        raise ScheduleError("--vertex needs --project and --region")
    spec = struct_pb2.Struct()
    json_format.ParseDict(job_spec.get("pipelineSpec", job_spec), spec)
    parent = f"projects/{project}/locations/{region}"
    job = aiplatform_v1.PipelineJob(
        display_name=display_name, pipeline_spec=spec, service_account=service_account,
        runtime_config=aiplatform_v1.PipelineJob.RuntimeConfig(
            gcs_output_directory=pipeline_root,
            parameter_values={"run_date": struct_pb2.Value(string_value=run_date)}))
    schedule = aiplatform_v1.Schedule(
        display_name=display_name, cron=cron, max_concurrent_run_count=max_concurrency, catch_up=False,
        create_pipeline_job_request=aiplatform_v1.CreatePipelineJobRequest(parent=parent, pipeline_job=job))
    return aiplatform_v1.CreateScheduleRequest(parent=parent, schedule=schedule)
