"""The `mtrank` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import warnings
from pathlib import Path
from typing import List, Optional

import mtrank  # noqa: F401  (TF_USE_LEGACY_KERAS before anything imports TensorFlow)
from mtrank import config as config_lib
from mtrank import terminal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# Google client libraries warn about Python 3.11's end of life on every import; not our users' concern.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google(\.|$)")

DEFAULT_WORKSPACE = "workspace"
DEFAULT_START = "2026-11-01"


def span_of(date: dt.date) -> int:
    """A day is a span: days since 1970-01-01, the number TFX gives a {YYYY}-{MM}-{DD} folder."""
    return (date - dt.date(1970, 1, 1)).days


def cmd_simulate(args) -> int:
    from mtrank import simulate

    cfg = config_lib.load(args.config)
    out = Path(args.out or cfg.resolve_path(cfg.data.root))
    spec = simulate.SimulatorSpec(correlation=args.correlation, click_rate=args.click_rate,
                                  conversion_rate=args.conversion_rate, seed=args.seed,
                                  new_users_per_day=args.new_users_per_day, new_items_per_day=args.new_items_per_day)
    started = time.time()

    def progress(done, total, path):
        print(f"[simulate] day {done}/{total}: {path} ({args.rows_per_day:,} rows)", flush=True)

    simulate.simulate(out, args.start, args.days, args.rows_per_day, spec, progress=progress)
    rows = args.days * args.rows_per_day
    print(f"[simulate] {rows:,} rows in {time.time() - started:.1f} s under {out}")
    return 0


def _day_of(args) -> Optional[dt.date]:
    if getattr(args, "date", None):
        return args.date
    if getattr(args, "span", None) is not None:
        return dt.date(1970, 1, 1) + dt.timedelta(days=args.span)
    return None


def _runner_options(args) -> dict:
    return dict(direct_running_mode=args.direct_running_mode, direct_num_workers=args.direct_num_workers,
                enable_cache=not args.no_cache)


def cmd_run(args) -> int:
    from pipeline import daily, local_runner, report, results

    cfg = config_lib.load(args.config)
    workspace = local_runner.Workspace(Path(args.workspace).resolve())
    outcome = daily.run_day(cfg, workspace, _day_of(args), data_root=args.data_root, force=args.force,
                            **_runner_options(args))
    print(f"[pipeline] {outcome.day}: {outcome.status} in {outcome.seconds:.1f} s\n")
    print(results.format_run(cfg, outcome.result))
    print(f"\nReport: {report.report_dir(workspace.root, outcome.result) / report.REPORT_FILE}")
    return _refused([outcome])


def _refused(outcomes) -> int:
    """A day the Evaluator refused is a refusal like bad data: one message, exit code 2 (serving is unchanged).
    A day that ended without a decision (status "failed") exits 1: something broke, see the run's log."""
    code = 0
    for o in outcomes:
        if o.status == "not blessed":
            reasons = "; ".join(o.result.validation_failures) or "see the report"
            print(f"mtrank: {o.day} was not blessed ({reasons}); nothing was pushed and serving keeps the model in "
                  "production.", file=sys.stderr)
            code = max(code, 2)
        elif o.status == "failed":
            print(f"mtrank: {o.day} ended without a blessing decision or a push; see the run's log under the "
                  "workspace's logs/", file=sys.stderr)
            code = max(code, 1)
    return code


def cmd_backfill(args) -> int:
    from pipeline import daily, local_runner

    cfg = config_lib.load(args.config)
    workspace = local_runner.Workspace(Path(args.workspace).resolve())
    outcomes = daily.backfill(cfg, workspace, args.start, args.end, data_root=args.data_root,
                              **_runner_options(args))
    print()
    print(daily.format_days(cfg, outcomes))
    return _refused(outcomes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtrank", description="Multi-task ranking models on TFX: simulate data, run the pipeline.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    with_config = config_lib.add_config_argument

    p = with_config(sub.add_parser("simulate", help="write simulated impressions, one folder per day",
                                   description="Write simulated impressions with their true probabilities."))
    p.add_argument("--out", help="output folder (default: the configuration's data.root)")
    p.add_argument("--start", type=config_lib.parse_day, default=config_lib.parse_day(DEFAULT_START),
                   help="first day (default: %(default)s)")
    p.add_argument("--days", type=int, default=3, help="number of days (default: %(default)s)")
    p.add_argument("--rows-per-day", type=int, default=20_000, help="impressions per day (default: %(default)s)")
    p.add_argument("--correlation", type=float, default=0.5,
                   help="correlation of click and purchase drivers, in [-1, 1] (default: %(default)s)")
    p.add_argument("--click-rate", type=float, default=0.08, help="mean CTR (default: %(default)s)")
    p.add_argument("--conversion-rate", type=float, default=0.12,
                   help="purchases per click (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--new-users-per-day", type=int, default=0,
                   help="users joining each day after the first (5,000 on the first; default: %(default)s)")
    p.add_argument("--new-items-per-day", type=int, default=0,
                   help="items joining each day after the first (2,000 on the first; default: %(default)s)")
    p.set_defaults(func=cmd_simulate)

    def with_runner(p):
        p.add_argument("--workspace", default=DEFAULT_WORKSPACE,
                       help="artifacts, metadata, pushed models and logs (default: %(default)s)")
        p.add_argument("--data-root", help="override the configuration's data.root")
        p.add_argument("--direct-running-mode", default="auto",
                       choices=["auto", "in_memory", "multi_threading", "multi_processing"],
                       help="Beam DirectRunner mode; auto: in_memory below 32 MiB of input in the window, "
                            "multi_processing above (default: %(default)s; measured in bench/results/beam_modes.md)")
        p.add_argument("--direct-num-workers", type=int, default=0,
                       help="Beam DirectRunner workers, 0 = one per core (default: %(default)s)")
        p.add_argument("--no-cache", action="store_true", help="re-execute every component")
        return p

    p = with_runner(with_config(sub.add_parser(
        "run", help="run the local TFX pipeline for one day",
        description="Run the local pipeline (LocalDagRunner, SQLite ml-metadata, Beam DirectRunner) for one "
                    "day: train on the days before it (data.train_days), evaluate on it, push if blessed.")))
    when = p.add_mutually_exclusive_group()
    when.add_argument("--date", type=config_lib.parse_day,
                      help="the day to run, YYYY-MM-DD (default: the newest day folder)")
    when.add_argument("--span", type=int, help="the day to run as a span number (days since 1970-01-01)")
    p.add_argument("--force", action="store_true", help="run the day again even if it already finished")
    p.set_defaults(func=cmd_run)

    p = with_runner(with_config(sub.add_parser(
        "backfill", help="run the pipeline for a range of days, in order",
        description="Run one pipeline run per day from --from to --to; finished days are skipped, so a "
                    "killed backfill picks up where it stopped.")))
    p.add_argument("--from", dest="start", type=config_lib.parse_day, required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="end", type=config_lib.parse_day, required=True, help="last day, YYYY-MM-DD")
    p.set_defaults(func=cmd_backfill)

    from mtrank import data_cli

    data_cli.add_init_parser(sub)
    data_cli.add_import_parser(sub)
    from serving import cli as serving_cli  # imports TensorFlow only when `serve` or `query` runs

    serving_cli.add_serve_parser(sub)
    serving_cli.add_promote_parser(sub)
    serving_cli.add_query_parser(sub)
    from pipeline import kfp_cli  # imports TFX and kfp only when `compile` or `schedule` runs

    kfp_cli.add_compile_parser(sub)
    kfp_cli.add_schedule_parser(sub)
    return parser


TENSORFLOW_FREE = {"simulate", "import"}  # commands that never load TensorFlow


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in TENSORFLOW_FREE:
        logs = Path(args.workspace) / "logs" if getattr(args, "workspace", None) else \
            terminal.scratch_log_dir()
        terminal.import_tensorflow_quietly(logs / "tensorflow-load.log")
    try:
        return args.func(args)
    except config_lib.ConfigError as e:
        print(f"mtrank: configuration error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, ValueError) as e:  # missing days, bad files or labels (DayWindow),
        # anomalies (DataGate), a file already imported
        log_file = getattr(e, "log_file", None)
        print(f"mtrank: {e}" + (f"\n(traceback: {log_file})" if log_file else ""), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
