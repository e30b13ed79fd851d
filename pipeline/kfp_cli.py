"""`mtrank compile` and `mtrank schedule`: the pipeline on Kubeflow Pipelines or Vertex AI.

`mtrank/cli.py` registers both with `add_compile_parser(sub)` and `add_schedule_parser(sub)`.
TFX and kfp are imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys

import mtrank  # noqa: F401
from mtrank import config as config_lib


def _with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return config_lib.add_config_argument(
        p, "its kubeflow: section gives image, roots, Beam runner and Trainer resources")


# ---- compile ------------------------------------------------------------------------------------------------
def add_compile_parser(subparsers) -> argparse.ArgumentParser:
    p = _with_config(subparsers.add_parser(
        "compile", help="compile the pipeline for Kubeflow Pipelines (pipeline.yaml) or Vertex AI (pipeline.json)",
        description="Compile the pipeline with TFX's KubeflowV2DagRunner: pipeline.yaml is the PipelineSpec that "
                    "Kubeflow Pipelines uploads, pipeline.json (--json) the PipelineJob that Vertex AI takes. "
                    "The run date is the runtime parameter run_date (empty = the newest day folder)."))
    p.add_argument("--output-dir", default=".", help="where to write the files (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="also write pipeline.json for Vertex AI")
    p.add_argument("--image", help="pipeline image (default: kubeflow.image)")
    p.add_argument("--pipeline-root", help="gs://, s3:// or a mounted absolute path (default: kubeflow.pipeline_root)")
    p.add_argument("--data-root", help="day folders as the pods see them (default: kubeflow.data_root)")
    p.add_argument("--serving-root", help="where the Pusher writes (default: kubeflow.serving_root)")
    p.add_argument("--beam-runner", choices=config_lib.BEAM_RUNNERS,
                   help="override kubeflow.beam_runner (its options still come from kubeflow.beam_options)")
    p.add_argument("--no-cache", action="store_true", help="compile with caching off for every step")
    p.set_defaults(func=cmd_compile)
    return p


def cmd_compile(args) -> int:
    from pipeline import kubeflow_runner

    cfg = config_lib.load(args.config)
    if args.beam_runner:
        cfg = cfg.replace(kubeflow=dataclasses.replace(cfg.kubeflow, beam_runner=args.beam_runner))
        config_lib.validate(cfg)
    where = kubeflow_runner.target(cfg, image=args.image, pipeline_root=args.pipeline_root,
                                   data_root=args.data_root, serving_root=args.serving_root)
    paths = kubeflow_runner.compile_pipeline(cfg, args.output_dir, where, vertex_json=args.json,
                                             enable_cache=not args.no_cache)
    for path in paths:
        print(f"[compile] wrote {path}")
    print(f"[compile] image {where.image}; pipeline root {where.pipeline_root}; data {where.data_root}; "
          f"Beam runner {cfg.kubeflow.beam_runner}; runtime parameter {kubeflow_runner.RUN_DATE}")
    return 0


# ---- schedule -----------------------------------------------------------------------------------------------
def add_schedule_parser(subparsers) -> argparse.ArgumentParser:
    from pipeline import schedule

    p = _with_config(subparsers.add_parser(
        "schedule", help="schedule the daily run on Kubeflow Pipelines (or build a Vertex AI schedule)",
        description="Upload pipeline.yaml (or a new version of it), create or reuse an experiment and create a "
                    "recurring run: 6-field cron, seconds first, UTC; no catch-up; one run at a time. With "
                    "--vertex, build the Vertex AI CreateScheduleRequest for pipeline.json (5-field cron) and "
                    "print it."))
    p.add_argument("--package", help="compiled pipeline (default: pipeline.yaml; with --vertex: pipeline.json)")
    p.add_argument("--host", help="Kubeflow Pipelines API endpoint, e.g. http://localhost:8080 (default: "
                                  "$KF_PIPELINES_ENDPOINT)")
    p.add_argument("--namespace", help="Kubeflow profile namespace (multi-user deployments)")
    p.add_argument("--pipeline-name", help="pipeline name (default: the compiled pipeline's, mtrank-<config>)")
    p.add_argument("--version-name", help="name of the uploaded version (default: <pipeline>-<UTC time>)")
    p.add_argument("--experiment", default="mtrank-daily", help="experiment, reused if it exists (default: %(default)s)")
    p.add_argument("--job-name", help="recurring run name (default: <pipeline>-daily)")
    p.add_argument("--cron", help=f"Kubeflow: 6 fields, seconds first, UTC (default: '{schedule.KFP_DEFAULT_CRON}'); "
                                  f"--vertex: 5 fields (default: '{schedule.VERTEX_DEFAULT_CRON}')")
    p.add_argument("--max-concurrency", type=int, default=1, help="runs at once, 1..10 (default: %(default)s)")
    p.add_argument("--run-date", help="scheduled (Kubeflow default: the scheduled day, UTC), newest (the newest "
                                      "day folder; --vertex default) or a fixed YYYY-MM-DD")
    p.add_argument("--vertex", action="store_true", help="build a Vertex AI schedule instead (no call is made)")
    p.add_argument("--project", help="--vertex: Google Cloud project")
    p.add_argument("--region", help="--vertex: region, e.g. europe-west4")
    p.add_argument("--service-account", default="", help="--vertex: service account the runs use")
    p.add_argument("--output", help="--vertex: also write the request as JSON to this file")
    p.set_defaults(func=cmd_schedule)
    return p


def _pipeline_name(package: str) -> str:
    import yaml

    with open(package) as f:
        doc = json.load(f) if package.endswith(".json") else yaml.safe_load(f)
    return doc.get("pipelineSpec", doc)["pipelineInfo"]["name"]


def cmd_schedule(args) -> int:
    from pipeline import schedule

    package = args.package or ("pipeline.json" if args.vertex else "pipeline.yaml")
    if not os.path.exists(package):
        raise FileNotFoundError(f"{package} does not exist; run `mtrank compile{' --json' if args.vertex else ''}` "
                                "first or pass --package")
    name = args.pipeline_name or _pipeline_name(package)
    run_date = schedule.run_date_parameter(args.run_date or ("newest" if args.vertex else "scheduled"), args.vertex)
    if args.vertex:
        return _schedule_vertex(args, package, name, run_date)
    cron = schedule.kfp_cron(args.cron or schedule.KFP_DEFAULT_CRON)  # refuse before touching the cluster
    schedule.concurrency(args.max_concurrency)
    import kfp

    client = kfp.Client(host=args.host, namespace=args.namespace or "kubeflow")
    created = schedule.schedule_kfp(
        client, package, pipeline_name=name,
        version_name=args.version_name or f"{name}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}",
        experiment=args.experiment, job_name=args.job_name or f"{name}-daily", cron=cron,
        max_concurrency=args.max_concurrency, run_date=run_date, namespace=args.namespace)
    print(created.describe())
    return 0


def _schedule_vertex(args, package: str, name: str, run_date: str) -> int:
    from google.protobuf import json_format

    from pipeline import schedule

    cfg = config_lib.load(args.config)
    with open(package) as f:
        job = json.load(f)
    root = job.get("runtimeConfig", {}).get("gcsOutputDirectory") or cfg.kubeflow.pipeline_root
    request = schedule.vertex_schedule_request(
        job, project=args.project, region=args.region, display_name=args.job_name or f"{name}-daily",
        pipeline_root=root, cron=args.cron or schedule.VERTEX_DEFAULT_CRON, max_concurrency=args.max_concurrency,
        run_date=run_date, service_account=args.service_account)
    text = json_format.MessageToJson(type(request).pb(request))
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    s = request.schedule
    print(f"[schedule] Vertex AI schedule {s.display_name!r} for {request.parent}: cron '{s.cron}', catch_up=False, "
          f"max_concurrent_run_count={s.max_concurrent_run_count}, run_date={run_date!r}; not sent. Send it with "
          "google.cloud.aiplatform_v1.ScheduleServiceClient().create_schedule(request)"
          + (f" (request written to {args.output})" if args.output else ""), file=sys.stdout)
    return 0
