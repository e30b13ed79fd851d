"""`mtrank serve`, `mtrank promote` and `mtrank query`: the development server, version labels and the
client, from the command line.

`mtrank/cli.py` registers them with `add_serve_parser(sub)`, `add_promote_parser(sub)` and
`add_query_parser(sub)`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from typing import List, Sequence

import mtrank  # noqa: F401
from mtrank import config as config_lib
from mtrank import export_contract

DEFAULT_SERVING_ROOT = "workspace/serving"
DEFAULT_PORT = 8500
DEFAULT_REST_PORT = 8501
TEMPLATE = "serving/deploy/models.config"  # committed, without versions: promotion writes the live copy
MAX_ID_COLUMNS = 3


def _with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    config_lib.add_config_argument(p, "gives the model name and the input columns")
    p.add_argument("--model-name", help="served model name (default: the configuration's serving.model_name)")
    return p


# ---- serve ------------------------------------------------------------------------------------------------
def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    p = _with_config(subparsers.add_parser(
        "serve", help="serve pushed models over TF Serving's gRPC and REST APIs (development server)",
        description="Serve <model-base-path>/<model>/<version>/ over TF Serving's gRPC API (Predict, "
                    "GetModelMetadata, GetModelStatus) and its REST API (status, metadata, predict), polling for "
                    "new versions. For development and tests: production runs the official tensorflow/serving "
                    "image (serving/README.md)."))
    p.add_argument("--model-base-path", default=DEFAULT_SERVING_ROOT,
                   help="folder holding <model>/<version>/, where the Pusher writes (default: %(default)s)")
    p.add_argument("--model-config-file",
                   help="a TF Serving models.config (version policy, labels) such as serving/deploy/models.config; "
                        "its models are looked for under --model-base-path")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for every interface "
                                                       "(default: %(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="gRPC port (default: %(default)s)")
    p.add_argument("--rest-port", type=int, default=DEFAULT_REST_PORT,
                   help="REST port; 0 turns REST off, as TF Serving's --rest_api_port (default: %(default)s)")
    p.add_argument("--monitoring-config-file",
                   help="a TF Serving monitoring config such as serving/deploy/monitoring.config: Prometheus "
                        "metrics on the REST port at its path")
    p.add_argument("--enable-batching", action="store_true",
                   help="merge concurrent requests into one model run, as TF Serving's --enable_batching (off by "
                        "default, as there)")
    p.add_argument("--batching-parameters-file",
                   help="TF Serving's batching_parameters.txt such as serving/deploy/batching_parameters.txt "
                        "(with --enable-batching; without a file, TF Serving's defaults)")
    p.add_argument("--num-versions", type=int, default=1,
                   help="newest versions kept loaded, without --model-config-file (default: %(default)s)")
    p.add_argument("--poll-seconds", type=float, default=1.0,
                   help="how often the model folders are scanned for new versions (default: %(default)s)")
    p.add_argument("--workers", type=int, default=8, help="request threads (default: %(default)s)")
    p.add_argument("--max-candidates", type=int,
                   help="largest candidate list one request may declare (default: serving.max_candidates)")
    p.add_argument("--wait-seconds", type=float, default=120.0,
                   help="longest wait for a first version before listening anyway (default: %(default)s)")
    p.set_defaults(func=cmd_serve)
    return p


def cmd_serve(args) -> int:
    from serving.server import ModelServer, read_model_config_file
    from serving.versions import ModelConfig, VersionPolicy

    logging.basicConfig(level=logging.INFO, format="[serve] %(asctime)s %(levelname)s %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    cfg = config_lib.load(args.config)
    if args.model_config_file:
        configs = read_model_config_file(args.model_config_file, serving_root=args.model_base_path)
    else:
        name = args.model_name or cfg.serving.model_name
        configs = [ModelConfig(name=name, base_path=f"{args.model_base_path.rstrip('/')}/{name}",
                               policy=VersionPolicy("latest", num_versions=args.num_versions))]
    if args.max_candidates is not None and args.max_candidates < 1:
        raise config_lib.ConfigError(f"--max-candidates must be >= 1, got {args.max_candidates}")
    metrics_path = None
    if args.monitoring_config_file:
        from serving.metrics import read_monitoring_config

        metrics_path = read_monitoring_config(args.monitoring_config_file)
        if metrics_path and not args.rest_port:
            raise config_lib.ConfigError(f"{args.monitoring_config_file} turns Prometheus metrics on, and they are "
                                         "served on the REST port: give --rest-port (not 0)")
    batching = None
    if args.batching_parameters_file and not args.enable_batching:
        raise config_lib.ConfigError("--batching-parameters-file is set without --enable-batching (TF Serving "
                                     "refuses this too); add --enable-batching")
    if args.enable_batching:
        from serving.batching import BatchingConfig, read_batching_parameters

        try:
            batching = (read_batching_parameters(args.batching_parameters_file) if args.batching_parameters_file
                        else BatchingConfig())
        except ValueError as e:
            raise config_lib.ConfigError(str(e)) from None
    server = ModelServer(configs, port=args.port, host=args.host, poll_seconds=args.poll_seconds,
                         max_workers=args.workers,
                         max_candidates=cfg.serving.max_candidates if args.max_candidates is None else args.max_candidates,
                         rest_port=args.rest_port or None, metrics_path=metrics_path, batching=batching)
    server.start(wait_for_models_s=args.wait_seconds)
    for model in server.models:
        print(f"[serve] model {model.name!r} from {model.config.base_path}: versions "
              f"{sorted(model.served) or 'none yet'}", flush=True)
    rest = f" and {server.rest_url} (REST)" if args.rest_port else ""
    metrics = f"; metrics at {server.rest_url}{metrics_path}" if metrics_path else ""
    if batching:
        print(f"[serve] batching: up to {batching.max_batch_size} candidates per batch, waiting at most "
              f"{batching.batch_timeout_micros} µs, {batching.num_batch_threads} threads", flush=True)
    print(f"[serve] listening on {server.target} (gRPC){rest}{metrics}; Ctrl-C stops", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


# ---- promote ----------------------------------------------------------------------------------------------
def add_promote_parser(subparsers) -> argparse.ArgumentParser:
    p = _with_config(subparsers.add_parser(
        "promote", help="point a version label (canary, stable) at a pushed version in a models.config",
        description="Set version_labels[LABEL] = VERSION for the model in a TF Serving models.config, after "
                    "checking the version is a complete SavedModel under --model-base-path. The committed "
                    "serving/deploy/models.config carries no version; promotion writes one into the file the "
                    "server reads (TF Serving re-reads it every --model_config_file_poll_wait_seconds)."))
    p.add_argument("label", help="the label to move, e.g. canary, then stable once the canary has proved itself")
    p.add_argument("--version", type=int, help="the version to point it at (default: the newest pushed)")
    p.add_argument("--model-config-file",
                   help="the models.config to read (default: <model-base-path>/models.config when it exists, else "
                        "the committed template serving/deploy/models.config)")
    p.add_argument("--out", help="where to write the promoted config (default: <model-base-path>/models.config, "
                                 "the live file `mtrank serve --model-config-file` and TF Serving read)")
    p.add_argument("--model-base-path", default=DEFAULT_SERVING_ROOT,
                   help="folder holding <model>/<version>/, where the Pusher writes (default: %(default)s)")
    p.set_defaults(func=cmd_promote)
    return p


def cmd_promote(args) -> int:
    from serving.labels import PromotionError, set_label

    cfg = config_lib.load(args.config)
    name = args.model_name or cfg.serving.model_name
    live = os.path.join(args.model_base_path, "models.config")
    source = args.model_config_file or (live if os.path.exists(live) else str(config_lib.REPO_ROOT / TEMPLATE))
    where = args.out or live
    try:
        labels = set_label(source, name, args.label, args.version, args.model_base_path, where)
    except PromotionError as e:
        print(f"mtrank promote: {e}", file=sys.stderr)
        return 2
    print(f"model {name!r}: {args.label} -> version {labels[args.label]} in {where} "
          f"(labels now {dict(sorted(labels.items()))})")
    return 0


# ---- query ------------------------------------------------------------------------------------------------
def add_query_parser(subparsers) -> argparse.ArgumentParser:
    p = _with_config(subparsers.add_parser(
        "query", help="rank candidates from a CSV or JSON file through a served model (gRPC or REST)",
        description="Send candidates to TF Serving (or `mtrank serve`) in one Predict request and print them "
                    "ranked by score; or show the model's status or signatures."))
    p.add_argument("candidates", nargs="?",
                   help="CSV with a header row, or JSON: a list of objects, or {\"context\": {...}, "
                        "\"candidates\": [...]} where context holds the columns shared by every candidate")
    p.add_argument("--host", default="127.0.0.1", help="server address (default: %(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="gRPC port (default: %(default)s)")
    p.add_argument("--rest", action="store_true", help="speak TF Serving's REST API instead of gRPC")
    p.add_argument("--rest-port", type=int, default=DEFAULT_REST_PORT, help="REST port, with --rest (default: %(default)s)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="ask this version (default: the newest loaded)")
    which.add_argument("--label", help="ask the version with this label, e.g. stable or canary")
    p.add_argument("--signature", default=export_contract.SERVING_SIGNATURE,
                   help="serving_default (tf.Examples), raw_features (one tensor per column) or ranking_request "
                        "(a JSON file's context once, beside each candidate's own columns) (default: %(default)s)")
    p.add_argument("--by", default="score", help="output to rank by (default: %(default)s)")
    p.add_argument("--top", type=int, default=0, help="print only the best N (default: all)")
    p.add_argument("--timeout", type=float, default=5.0, help="deadline per attempt, seconds (default: %(default)s)")
    p.add_argument("--retries", type=int, default=3, help="retries while the server is UNAVAILABLE (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--status", action="store_true", help="print the model's version states and exit")
    p.add_argument("--metadata", action="store_true", help="print the model's signatures and exit")
    p.set_defaults(func=cmd_query)
    return p


def format_ranking(prediction, rows: Sequence[dict], id_columns: List[str], by: str, top: int = 0) -> str:
    order = prediction.ranking(by)[: top or None]
    outputs = [by] + sorted(k for k in prediction.outputs if k != by)
    header = ["rank", "row"] + id_columns + outputs
    lines = [[str(rank), str(i)] + [str(rows[i].get(c, "")) for c in id_columns]
             + [f"{float(prediction.outputs[o][i]):.6f}" for o in outputs]
             for rank, i in enumerate(order, start=1)]
    widths = [max(len(h), *(len(line[k]) for line in lines)) for k, h in enumerate(header)]
    table = [" ".join(h.rjust(w) for h, w in zip(header, widths))]
    table += [" ".join(v.rjust(w) for v, w in zip(line, widths)) for line in lines]
    title = (f"model {prediction.model_name!r} version {prediction.version} (signature {prediction.signature_name!r}):"
             f" {len(rows)} candidates ranked by {by}")
    return "\n".join([title] + table)


def _ranking_json(prediction, rows, id_columns, by, top) -> str:
    order = prediction.ranking(by)[: top or None]
    return json.dumps({
        "model": prediction.model_name, "version": prediction.version, "signature": prediction.signature_name,
        "ranked": [{"rank": r, "row": int(i), **{c: rows[i].get(c) for c in id_columns},
                    **{k: float(v[i]) for k, v in prediction.outputs.items()}}
                   for r, i in enumerate(order, start=1)]}, indent=2)


def _print_metadata(client, args) -> None:
    version, defs = client.signature_defs(version=args.version, label=args.label)
    print(f"model {client.model_name!r} version {version}")
    for name, sig in sorted(defs.items()):
        inputs = ", ".join(f"{k}: {_dtype(v.dtype)}{_shape(v)}" for k, v in sorted(sig.inputs.items()))
        outputs = ", ".join(f"{k}: {_dtype(v.dtype)}{_shape(v)}" for k, v in sorted(sig.outputs.items()))
        print(f"  {name}({inputs}) -> {outputs}")


def _dtype(enum: int) -> str:
    import tensorflow as tf

    return tf.dtypes.as_dtype(enum).name


def _shape(tensor_info) -> str:
    return str([d.size if d.size >= 0 else None for d in tensor_info.tensor_shape.dim])


def cmd_query(args) -> int:
    from serving import candidates as candidates_lib
    from serving.client import ServingClient, ServingError, predict_candidates
    from serving.rest_client import RestClient
    from serving.signatures import CONTEXT_SIGNATURE

    cfg = config_lib.load(args.config)
    name = args.model_name or cfg.serving.model_name
    if not (args.candidates or args.status or args.metadata):
        print("mtrank query: give a candidates file, or --status or --metadata", file=sys.stderr)
        return 2
    try:
        if args.rest:
            client = RestClient(f"http://{args.host}:{args.rest_port}", name, timeout_s=args.timeout,
                                retries=args.retries)
        else:
            client = ServingClient(f"{args.host}:{args.port}", name, timeout_s=args.timeout, retries=args.retries)
        with client:
            if args.status:
                for s in client.status(version=args.version, label=args.label):
                    error = f"  error: {s.error_message}" if s.error_code else ""
                    print(f"model {name!r} version {s.version}: {s.state}{error}")
                return 0
            if args.metadata:
                _print_metadata(client, args)
                return 0
            rows = candidates_lib.read_candidates(args.candidates)  # whole rows, for the printed ranking
            context, own = candidates_lib.read_ranking_request(args.candidates)
            sent = own if args.signature == CONTEXT_SIGNATURE else rows
            prediction = predict_candidates(client, cfg, sent, signature_name=args.signature,
                                            version=args.version, label=args.label, context=context)
    except (ServingError, candidates_lib.CandidateError) as e:
        print(f"mtrank query: {e}", file=sys.stderr)
        return 1
    try:
        ids = candidates_lib.id_columns(rows, cfg)[:MAX_ID_COLUMNS]
        print(_ranking_json(prediction, rows, ids, args.by, args.top) if args.json
              else format_ranking(prediction, rows, ids, args.by, args.top))
    except KeyError as e:
        print(f"mtrank query: {e.args[0]}", file=sys.stderr)
        return 1
    return 0
