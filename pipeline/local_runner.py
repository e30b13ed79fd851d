"""Runs the pipeline on this machine: LocalDagRunner, SQLite ml-metadata, Beam's DirectRunner.

Thin on purpose: it picks paths and Beam arguments, shows progress, and calls `create_pipeline`.
TFX's own INFO logs go to a log file; the terminal shows one line per component.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

import mtrank  # noqa: F401
from tfx import v1 as tfx

from mtrank import config as config_lib
from mtrank import terminal
from pipeline.pipeline import create_pipeline

DIRECT_RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
AUTO = "auto"
# Measured on 2 cores (bench/results/beam_modes.md): multi_processing with a worker per core is 3.4x
# slower for CsvExampleGen on a 50k-row day (4 MiB of CSV), about even at 500k rows in the window (40 MiB),
# 1.5x faster at 1.5M rows (120 MiB). Below this many bytes of CSV in the window, in_memory wins.
MULTI_PROCESSING_FROM_BYTES = 32 * 2**20


@dataclasses.dataclass(frozen=True)
class Workspace:
    """Where a local run keeps its artifacts, metadata, pushed models and logs."""

    root: Path

    @property
    def pipeline_root(self) -> Path:
        return self.root / "pipeline_root"

    @property
    def metadata_path(self) -> Path:
        return self.root / "metadata.sqlite"

    @property
    def serving_root(self) -> Path:
        return self.root / "serving"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def served_version(serving_root: str, cfg: config_lib.Config) -> str:
    """The version in production now ("" with none): ProductionModel's cache key, so a run after a push or a
    rollback reads the serving root again while a resumed run reuses what its day started from."""
    from components import production_model

    found = production_model.newest_complete_version(os.path.join(serving_root, cfg.serving.model_name))
    return str(found[0]) if found else ""


def pipeline_name(cfg: config_lib.Config) -> str:
    """`data.pipeline_name`, else mtrank-<configuration file name>."""
    if cfg.data.pipeline_name:
        return cfg.data.pipeline_name
    return f"mtrank-{Path(cfg.source).stem}" if cfg.source.endswith((".yaml", ".yml")) else "mtrank"


def window_bytes(data_root: str, span_pattern: str, run_date: str, train_days: int) -> int:
    """Bytes of input a run reads: the evaluated day and the `train_days` before it."""
    import datetime as dt

    import tensorflow as tf

    from components import window

    present = window.days_present(data_root, span_pattern)
    if not present:
        return 0
    day = dt.date.fromisoformat(run_date) if run_date else present[-1]
    days = [day - dt.timedelta(days=k) for k in range(train_days + 1)]
    return sum(tf.io.gfile.stat(f).length for d in days
               for f in tf.io.gfile.glob(os.path.join(data_root, window.day_pattern(span_pattern, d))))


def choose_running_mode(input_bytes: int) -> Tuple[str, str]:
    """`auto`: the DirectRunner mode that measured faster for this much input, and why."""
    mib = input_bytes / 2**20
    if input_bytes >= MULTI_PROCESSING_FROM_BYTES:
        return "multi_processing", f"{mib:.0f} MiB of input >= {MULTI_PROCESSING_FROM_BYTES >> 20} MiB"
    return "in_memory", f"{mib:.0f} MiB of input < {MULTI_PROCESSING_FROM_BYTES >> 20} MiB"


def beam_args(direct_running_mode: str, direct_num_workers: int) -> List[str]:
    if direct_running_mode not in DIRECT_RUNNING_MODES:
        raise ValueError(f"direct running mode {direct_running_mode!r}: use one of {DIRECT_RUNNING_MODES}")
    return ["--runner=DirectRunner", f"--direct_running_mode={direct_running_mode}",
            f"--direct_num_workers={direct_num_workers}"]


class _ComponentProgress(logging.Handler):
    """Turns LocalDagRunner's 'Component X is running/finished' log lines, and the Trainer's epoch lines,
    into terminal progress: one line per component on a terminal ('running', then each epoch, then
    'finished', written over each other), every line in a pipe or a CI log, where nothing can be
    overwritten and a long step must still show that it moves."""

    PATTERN = re.compile(r"Component (\S+) is (running|finished)\.")
    EPOCH = re.compile(r"^(Epoch \d+/\d+: .*)")  # components/trainer.py's EpochProgress

    def __init__(self, stream=sys.stdout):
        super().__init__(level=logging.INFO)
        self.stream = stream
        self.started = {}
        self.overwrite = bool(getattr(stream, "isatty", lambda: False)())
        self.line_open = False

    def _show(self, text: str, final: bool) -> None:
        if self.overwrite:
            print(f"\r{text}\x1b[K", file=self.stream, end="\n" if final else "", flush=True)
            self.line_open = not final
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """A run that stops mid-component leaves its 'running' line whole; what follows starts a new line."""
        if self.line_open:
            print(file=self.stream, flush=True)
            self.line_open = False
        super().close()

    def emit(self, record):
        message = record.getMessage()
        epoch = self.EPOCH.match(message)
        if epoch and self.started:
            node = next(reversed(self.started))
            self._show(f"[pipeline] {node:<32} running: {epoch.group(1).lower()}", final=False)
            return
        match = self.PATTERN.search(message)
        if not match:
            return
        node, state = match.groups()
        if state == "running":
            self.started[node] = time.time()
            self._show(f"[pipeline] {node:<32} running", final=False)
        else:
            took = time.time() - self.started.pop(node, time.time())
            self._show(f"[pipeline] {node:<32} finished in {took:6.1f} s", final=True)


def _route_logs(log_file: Path) -> List[logging.Handler]:
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    for handler in list(logging.root.handlers):  # absl's or basicConfig's stderr handler: all INFO noise
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            logging.root.removeHandler(handler)
    logging.root.removeHandler(absl_logging.get_absl_handler())
    tf_logger = logging.getLogger("tensorflow")  # TensorFlow attaches its own stderr handler
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)
    tf_logger.propagate = True
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.root.addHandler(file_handler)
    logging.root.setLevel(logging.INFO)
    progress = _ComponentProgress()
    logging.root.addHandler(progress)
    logging.captureWarnings(True)  # third-party warnings (TFMA's 0/0 in empty slices, Beam's) into the log file
    return [file_handler, progress]


def run(
    cfg: config_lib.Config,
    workspace: Workspace,
    run_date: str,
    train_days: Optional[int] = None,
    direct_running_mode: str = AUTO,
    direct_num_workers: int = 0,
    enable_cache: bool = True,
    data_root: Optional[str] = None,
) -> str:
    """Runs the pipeline for day `run_date` (YYYY-MM-DD); returns the pipeline name (the key for reading
    results back from ml-metadata)."""
    for d in (workspace.pipeline_root, workspace.serving_root, workspace.logs):
        d.mkdir(parents=True, exist_ok=True)
    log_file = workspace.logs / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    root_level = logging.root.level
    handlers = _route_logs(log_file)
    print(f"[pipeline] detailed log: {log_file}", flush=True)
    name = pipeline_name(cfg)
    data_root = data_root or cfg.resolve_path(cfg.data.root)
    if direct_running_mode == AUTO:
        direct_running_mode, why = choose_running_mode(
            window_bytes(data_root, cfg.data.span_pattern, run_date, train_days or cfg.data.train_days))
        print(f"[pipeline] Beam DirectRunner: {direct_running_mode} ({why})", flush=True)
    try:
        with terminal.native_stderr_to(log_file):  # C++ runtime lines into the run's log, not the terminal
            tfx.orchestration.LocalDagRunner().run(create_pipeline(
                pipeline_name=name,
                pipeline_root=str(workspace.pipeline_root / name),
                cfg=cfg,
                data_root=data_root,
                schema_path=cfg.resolve_path(cfg.data.schema),
                serving_root=str(workspace.serving_root),
                metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                    str(workspace.metadata_path)),
                beam_pipeline_args=beam_args(direct_running_mode, direct_num_workers),
                run_date=run_date,
                train_days=train_days,
                enable_cache=enable_cache,
                served_version=served_version(str(workspace.serving_root), cfg),
            ))
    except Exception as e:
        # The terminal gets one message (mtrank/cli.py); the traceback goes to the run's log file.
        logging.getLogger("mtrank").exception("the run stopped: %s", e)
        e.log_file = str(log_file)
        raise
    finally:
        logging.captureWarnings(False)
        logging.root.setLevel(root_level)  # INFO lines after the run (matplotlib's, in the report) stay off the terminal
        for handler in handlers:
            logging.root.removeHandler(handler)
            handler.close()
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.WARNING)
    return name
