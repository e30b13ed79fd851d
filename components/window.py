"""The rolling window: which day folders a run reads, computed from the run date at run time.

A run for day D reads D as split `eval` and the K days before it as splits `train_1` … `train_K`
(`train_1` is D−1). The model is trained on the past and judged on the day that follows its window,
exactly how it will be used (out-of-time evaluation; a random split of D would leak D into training).

Why a component and not a resolver: Kubeflow's V2 runner compiles only the LatestBlessedModel and
LatestArtifact (one artifact) resolver strategies, so a span-range resolver cannot carry the window
there. This component writes ExampleGen's `input_config`, which ExampleGen takes as a placeholder; the
same code then runs locally and on Kubeflow, where a schedule passes the scheduled date.
"""


import datetime as dt
import posixpath
from typing import List

import mtrank  # noqa: F401
import tensorflow as tf
from tfx import v1 as tfx
from tfx.proto import example_gen_pb2
from tfx.utils import proto_utils

from components import input_checks, label_checks
from mtrank.config import DATE_SPEC, day_pattern  # noqa: F401  (day_pattern: TF-free, `mtrank import` uses it)

EVAL_SPLIT = "eval"

def train_splits(train_days: int) -> List[str]:
    return [f"train_{k}" for k in range(1, train_days + 1)]


def days_present(data_root: str, span_pattern: str) -> List[dt.date]:
    """Day folders under `data_root` that hold at least one file matching the pattern, oldest first."""
    prefix = span_pattern.split(DATE_SPEC)[0]
    days = []
    for name in tf.io.gfile.listdir(posixpath.join(data_root, prefix) if prefix else data_root):
        try:
            day = dt.date.fromisoformat(name.rstrip("/"))
        except ValueError:
            continue
        if tf.io.gfile.glob(posixpath.join(data_root, day_pattern(span_pattern, day))):
            days.append(day)
    return sorted(days)


def window_input_config(data_root: str, span_pattern: str, run_date: str, train_days: int,
                        rules: label_checks.LabelRules = label_checks.LabelRules()) -> example_gen_pb2.Input:
    """The Input proto for a run; an empty `run_date` means the newest day present. Names what is missing,
    and stops on broken files or labels that cannot be true (components/input_checks.py, label_checks.py)."""
    present = days_present(data_root, span_pattern)
    if not present:
        raise FileNotFoundError(f"{data_root}: no day folder matches {span_pattern!r}; nothing to train on")
    day = dt.date.fromisoformat(run_date) if run_date else present[-1]
    splits = [example_gen_pb2.Input.Split(name=EVAL_SPLIT, pattern=day_pattern(span_pattern, day))]
    for name, k in zip(train_splits(train_days), range(1, train_days + 1)):
        splits.append(example_gen_pb2.Input.Split(name=name, pattern=day_pattern(span_pattern, day - dt.timedelta(days=k))))
    missing = [s.pattern for s in splits if not tf.io.gfile.glob(posixpath.join(data_root, s.pattern))]
    if missing:
        raise FileNotFoundError(
            f"{data_root}: the run for {day} needs {missing}, which match no file. A run for day D reads D and "
            f"the {train_days} day(s) before it; simulate or ingest those days first.")
    # Structure (empty or header-only files, malformed rows, columns that differ between days) is checked
    # here, where the files are known, so the error names the day, file and line (components/input_checks.py).
    input_checks.check_window(data_root, {(day - dt.timedelta(days=k)).isoformat(): s.pattern
                                          for k, s in enumerate(splits)}, rules)
    return example_gen_pb2.Input(splits=splits)


@tfx.dsl.components.component
def DayWindow(
    data_root: tfx.dsl.components.Parameter[str],
    span_pattern: tfx.dsl.components.Parameter[str],
    run_date: tfx.dsl.components.Parameter[str],
    train_days: tfx.dsl.components.Parameter[int],
    input_config: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.String],
    label_rules: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """Writes ExampleGen's input config for the day being run (see the module docstring); `label_rules` is
    label_checks.LabelRules as JSON, built from the configuration."""
    config = window_input_config(data_root, span_pattern, run_date, train_days,
                                 label_checks.LabelRules.from_json(label_rules))
    input_config.value = proto_utils.proto_to_json(config)
