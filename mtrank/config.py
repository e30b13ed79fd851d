"""One configuration for the whole project.

A YAML file names the data, the features and their kind, the tasks, the model, the evaluation and
the serving model. Preprocessing, training, evaluation and serving all read the same `Config`, so a
data set change is a configuration change. The file is validated on load, and every error names the
file and the key at fault.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from mtrank import feature_kinds
from mtrank import export_contract
from mtrank import metrics as metrics_lib
from mtrank import ranking

TASK_TYPES = ("binary", "regression")
ARCHITECTURES = ("shared_bottom", "omoe", "mmoe", "cgc", "ple")
OPTIMIZERS = ("adam", "lazy_adam")  # model.optimizer (mtrank/models/optimizers.py)
LOSS_WEIGHTINGS = ("fixed", "uncertainty")
TASK_LOSSES = {"binary": ("binary_crossentropy",), "regression": ("mse", "huber")}

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = REPO_ROOT / "configs" / "impressions.yaml"


DATE_SPEC = "{YYYY}-{MM}-{DD}"


def day_pattern(span_pattern: str, day: dt.date) -> str:
    """`{YYYY}-{MM}-{DD}/*.csv` for 2026-11-03 -> `2026-11-03/*.csv`."""
    if DATE_SPEC not in span_pattern:
        raise ValueError(f"data.span_pattern {span_pattern!r} must contain {DATE_SPEC} (one folder per day)")
    return span_pattern.replace(DATE_SPEC, day.isoformat())


def parse_day(text: str) -> dt.date:
    """A command line's YYYY-MM-DD (argparse type)."""
    import argparse

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write YYYY-MM-DD") from None


class ConfigError(ValueError):
    """A configuration file that cannot drive the pipeline; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """A raw input column and how Transform turns it into a model input."""

    name: str
    kind: str
    dtype: str = "string"  # string | int | float, the raw column's type
    column: Optional[str] = None  # raw column, when it differs from `name` (one column, two encodings)
    hash_buckets: int = 0  # id
    # id: an id seen fewer times than this in the training window shares one row with every other such id
    # and with ids never seen (frequency threshold, as NVTabular's Categorify freq_threshold); 0 = none.
    min_count: int = 0
    top_k: int = 0  # categorical: vocabulary size cap (0 = all values)
    num_oov_buckets: int = 1  # categorical
    num_buckets: int = 0  # bucketized: quantile buckets
    log1p: bool = False  # numeric: log1p before z-score (heavy-tailed prices, counts)
    embedding_dim: int = 8
    # Embedded kinds: L2 on the rows each batch looks up (mean over its examples), so a value seen often is
    # held back in proportion to how often it is seen; the same weight on its `bias` rows. 0 = none.
    l2: float = 0.0
    # Embedded kinds: a learned scalar per value and per task, added to that task's logit (the "wide",
    # logistic-regression part: a user's or an item's own click and purchase propensity).
    bias: bool = False
    # Embedded kinds: false keeps the embedding out of the experts' shared input, so only the feature's
    # `bias` and its `model.interactions` read it (ids in the wide and FM parts only, as in DeepFM).
    deep: bool = True

    @property
    def source(self) -> str:
        return self.column or self.name

    @property
    def transformed_name(self) -> str:
        return export_contract.transformed_name(self.name)

    @property
    def is_embedded(self) -> bool:
        return feature_kinds.KINDS[self.kind].embedded


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One prediction target: its label column, its type, and how it enters loss and score."""

    name: str
    label: str
    type: str = "binary"
    loss_weight: float = 1.0
    follows: Optional[str] = None  # ESMM: this task is only defined after `follows` (purchase after click)
    weight_by: Optional[str] = None  # regression defined on a subset (dwell only for clicks)
    oracle: Optional[str] = None  # column holding the simulator's true probability, never a model input
    label_log1p: bool = False  # regression on log1p(label): dwell times and order values are heavy-tailed
    score_weight: float = 0.0  # weight of this task's output in the fused ranking score
    loss: Optional[str] = None  # binary_crossentropy (binary); mse or huber (regression); None = first
    rate_band: Optional[List[float]] = None  # binary: [low, high] positive rate a day may have (components/label_checks.py)

    @property
    def transformed_label(self) -> str:
        """Key of the label after Transform; TFMA reads labels from here, so eval sees what training saw."""
        return export_contract.label_key(self.name)

    @property
    def transformed_weight(self) -> str:
        return export_contract.weight_key(self.name)

    @property
    def conditional_output(self) -> str:
        """Name of the exported conditional probability of an ESMM task (pCVR)."""
        return f"{self.name}_given_{self.follows}"


@dataclasses.dataclass(frozen=True)
class PositionBiasSpec:
    """Shallow tower (YouTube, RecSys 2019): position feeds only a small tower whose logit is added to
    one task's logit while training; serving leaves the tower out, so position is never a serving input."""

    column: str  # raw column holding the shown position (1 = top); Transform emits `<column>_xf`
    task: str  # the binary task whose logit absorbs the bias (usually click)
    num_buckets: int = 20  # positions >= num_buckets share the last bucket
    embedding_dim: int = 4
    units: List[int] = dataclasses.field(default_factory=lambda: [8])

    @property
    def transformed_name(self) -> str:
        return export_contract.transformed_name(self.column)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    architecture: str = "mmoe"  # shared_bottom | omoe | mmoe | cgc | ple
    num_experts: int = 4  # experts shared by all tasks (shared_bottom: ignored, one shared network)
    expert_units: List[int] = dataclasses.field(default_factory=lambda: [64])
    tower_units: List[int] = dataclasses.field(default_factory=lambda: [32])
    gate_units: List[int] = dataclasses.field(default_factory=list)  # [] = softmax layer; else a gate MLP
    task_experts: int = 1  # cgc/ple: experts owned by each task, beside the num_experts shared ones
    levels: Optional[int] = None  # ple: extraction levels, 2 when not given (ple with 1 level is cgc)
    loss_weighting: str = "fixed"  # fixed (tasks' loss_weight) | uncertainty (Kendall et al. 2018)
    position_bias: Optional[PositionBiasSpec] = None
    dropout: float = 0.0
    l2: float = 0.0
    learning_rate: float = 2e-3
    batch_size: int = 512
    epochs: int = 3
    # Training steps per call into the compiled graph: the same batches and updates, but Python and the
    # callbacks run once per `steps_per_execution` steps (bench/trainer_throughput.py measures the gain).
    steps_per_execution: int = 1
    jit_compile: bool = False  # XLA for the training step (measured in bench/trainer_throughput.py)
    # Read the training window into memory once (one pass over Transform's gzipped TFRecords), then draw
    # shuffled batches from it every epoch; off streams the files every epoch (for windows that do not fit).
    examples_in_memory: bool = True
    warm_start: bool = True
    warm_start_epochs: int = 1
    # A warm run fits on the newest `warm_start_days` days of the window only (0 = all of it): the model it
    # starts from has already been trained on the older ones. Validation (early stopping) and the weight
    # search keep the held-out requests of the whole window, which no run ever trains on.
    warm_start_days: int = 0
    warm_start_learning_rate: Optional[float] = None  # a warm run's Adam rate; None = learning_rate
    # A warm run's rate shrinks with the chain's age: rate × (w / (w + n)) ** warm_start_decay, w the window's
    # days (data.train_days), n the warm runs the model in production has behind it. In a stationary world
    # each new window is a shrinking share of what the chain has learned from, so a constant rate lets the
    # newest days wash out the older ones (bench/results/learning_curve.md). 0 = the same rate every day.
    warm_start_decay: float = 0.0
    # ... but never below this share of the warm rate: real data drift, and a chain whose rate decayed to
    # nothing would stop following them (0.25 is reached after 30 warm runs with a 2-day window and 0.5).
    warm_start_decay_floor: float = 0.25
    # A warm run continues the optimizer of the model it starts from (Adam's moments, remapped by token as the
    # rows are, and its step count: components/warm_start.py); false gives every run a fresh Adam.
    warm_start_optimizer: bool = True
    # Early stopping on the requests held out of the training window (ranking.validation_fraction; never
    # the evaluated day): training stops once the monitored validation loss has not improved for this many
    # epochs, and the best epoch's weights are the ones exported. 0 = every epoch, the last one's weights.
    early_stopping_patience: int = 0
    early_stopping_monitor: str = "loss"  # loss (all tasks, as weighted in training) | a task's name (its own)
    # Pairs of embedded features whose embeddings' product enters every task's logit (DeepFM's FM term),
    # e.g. [[user_segment, category], [user_id, item_id]]; the two of a pair share an embedding_dim.
    interactions: List[List[str]] = dataclasses.field(default_factory=list)
    # How a task weighs an interaction: `pair`, one weight per pair on its dot product (DeepFM's FM term);
    # `dimension`, one weight per coordinate of the pair's element-wise product (NCF's GMF, He et al. 2017),
    # so each task has its own bilinear form u·diag(h_task)·v and tasks that like different things in the
    # same user and item (click and purchase) need not share one dot product.
    interaction_weights: str = "pair"
    # adam: tf_keras's Adam, which decays the moments of whole embedding tables and moves every row on every
    # step; lazy_adam: only the rows a batch looked up (mtrank/models/optimizers.py), so a step costs the
    # same whatever the tables' hash_buckets.
    optimizer: str = "lazy_adam"
    seed: int = 7

    def early_stopping_key(self) -> str:
        """The Keras history key early stopping watches."""
        return "val_loss" if self.early_stopping_monitor == "loss" else f"val_{self.early_stopping_monitor}_loss"

    @property
    def extraction_levels(self) -> int:
        """PLE's levels: as given, else 2 (the paper's; one level is CGC, an architecture of its own)."""
        if self.architecture != "ple":
            return 1
        return self.levels if self.levels is not None else 2


@dataclasses.dataclass(frozen=True)
class ThresholdSpec:
    """Blessing rule for one task's metric on the overall slice."""

    task: str
    metric: str = "auc"
    lower_bound: Optional[float] = None  # absolute floor
    max_drop: Optional[float] = None  # largest tolerated drop against the model in production
    # True: refuse only a drop beyond max_drop that is significant, i.e. the 95 % confidence interval of the
    # paired change (candidate - production, same rows) lies wholly beyond it. Needs confidence_intervals.
    significant: bool = False


@dataclasses.dataclass(frozen=True)
class EvaluationSpec:
    slices: List[str] = dataclasses.field(default_factory=list)
    thresholds: List[ThresholdSpec] = dataclasses.field(default_factory=list)
    group_column: Optional[str] = None  # raw column to group by for GAUC (e.g. user_id); None = no GAUC
    ece_bins: int = 10  # equal-width prediction bins of the expected calibration error and calibration plot
    # Rows of the evaluated day the Evaluator reads: a hash sample above this (components/eval_sample.py); 0 = all.
    max_eval_rows: int = 0
    # The evaluated day must hold this many rows, and this many positives for each task with a threshold, or
    # the run stops before training: below them the thresholds decide by chance (components/label_checks.py).
    min_rows: int = 0
    min_positives: int = 0
    # TFMA's jackknife (20 delete-d buckets): a 95 % confidence interval for every metric and for every change
    # against the model in production (paired: both models scored on the same buckets), shown in the report.
    confidence_intervals: bool = False


@dataclasses.dataclass(frozen=True)
class DerivedColumnSpec:
    """A 0/1 column `mtrank import` computes from a raw one, e.g. a label that is `income in (>50K, >50K.)`.
    Exactly one rule: `equals` a value, `one_of` several, or a number `above` a threshold."""

    name: str
    column: str
    equals: Optional[str] = None
    one_of: Optional[List[str]] = None
    above: Optional[float] = None

    def rule(self) -> str:
        if self.equals is not None:
            return f"{self.column} == {self.equals}"
        if self.one_of is not None:
            return f"{self.column} in {', '.join(self.one_of)}"
        return f"{self.column} > {self.above:g}"


@dataclasses.dataclass(frozen=True)
class RawCsvSpec:
    """How `mtrank import` turns a raw CSV file (no header, text labels) into a day folder's CSV with a
    header and 0/1 labels; the pipeline itself reads only the day folders, so none of this is in its cache key."""

    columns: List[str] = dataclasses.field(default_factory=list)  # the header of headerless files; [] = a header row
    delimiter: str = ","
    comment: str = ""  # lines starting with this are skipped (UCI's adult.test opens with '|1x3 Cross validator')
    derived: List[DerivedColumnSpec] = dataclasses.field(default_factory=list)
    # Columns not written. The source column of every derived column is never written either: a label's
    # source (income, marital_status) must not be a model input by mistake.
    drop: List[str] = dataclasses.field(default_factory=list)

    @property
    def dropped(self) -> List[str]:
        return list(dict.fromkeys(self.drop + [d.column for d in self.derived]))


@dataclasses.dataclass(frozen=True)
class DataSpec:
    root: str
    span_pattern: str = "{YYYY}-{MM}-{DD}/*.csv"
    schema: str = "schemas/impressions/schema.pbtxt"
    train_days: int = 1  # a run for day D trains on the days D-train_days .. D-1 and is evaluated on D
    # TFDV anomaly types (e.g. ENUM_TYPE_UNEXPECTED_STRING_VALUES) that DataGate logs but lets through;
    # empty = every anomaly stops the run. Tolerated shares (unseen categories) belong in the schema.
    tolerated_anomalies: List[str] = dataclasses.field(default_factory=list)
    # A day whose positive rate for a task is more than this factor above or below the median of the window's
    # other days stops the run, when Fisher's exact test also gives p < label_rate_p_value; 0 = no comparison.
    max_label_rate_ratio: float = 0.0
    label_rate_p_value: float = 0.001
    raw: Optional[RawCsvSpec] = None  # `mtrank import`: raw CSV files -> day folders
    # The pipeline's name: its runs per day, its metadata and its cache (TFX reuses a component's output only
    # within one pipeline). "" = mtrank-<configuration file name>; two files of the same data (a model change
    # tried in its own file) give the same name here to share Transform's cached output. They share the record
    # of finished days too: the second file's run for a day the first finished needs `mtrank run --force`.
    pipeline_name: str = ""


@dataclasses.dataclass(frozen=True)
class ServingSpec:
    model_name: str = "ranker"
    max_candidates: int = 10_000  # `mtrank serve` refuses a request declaring more (INVALID_ARGUMENT, before any work)


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
    """What a ranked list is worth: the `label` (times `value`) of the items placed in the top K."""

    name: str  # clicks, purchases, revenue: names the metrics (revenue_gain@3, ...)
    label: str  # raw 0/1 (or count) column counted as the gain of an item
    value: Optional[str] = None  # raw column multiplying the label (revenue = purchase × price)
    oracle: Optional[str] = None  # simulated data: true position-free probability of `label` (mtrank/simulate.py)


FUSION_MODES = ("fixed", "product", "search")


@dataclasses.dataclass(frozen=True)
class FusionSpec:
    """How serving's `score` fuses the task outputs (mtrank/fusion.py).

    fixed:   Σ score_weight_t · output_t (the tasks' `score_weight`)
    product: Π output_t ^ exponents[t] · value ^ exponents[value]  (exponents given here)
    search:  the product's exponents chosen by the Trainer on held-out requests of the training window,
             maximising `objective` while every objective in `guardrails` keeps that share of its reference
             ranking's lift over a random order, at the one-sided 95 % bound (mtrank/fusion.py).
    """

    mode: str = "fixed"
    objective: str = ""  # search: the objective maximised
    guardrails: Dict[str, float] = dataclasses.field(default_factory=dict)  # objective -> share of its reference's lift
    tasks: List[str] = dataclasses.field(default_factory=list)  # binary outputs in the product ([] = all binary)
    value: Optional[str] = None  # input column entering the product as value ^ exponent (e.g. price)
    exponents: Dict[str, float] = dataclasses.field(default_factory=dict)  # product: output or value -> exponent
    grid_step: float = 0.05  # search: exponents on a simplex grid of this step (only their ratios rank)


@dataclasses.dataclass(frozen=True)
class RankingSpec:
    """The ranked list as a product: per-request metrics (components/ranking_metric.py), the weight
    search and the held-out requests it uses."""

    request_column: Optional[str] = None  # raw column grouping a ranked list; None = no ranking metrics
    top_k: int = 3
    discount: float = 0.6  # examination weight of rank r: r ** -discount (gain@K and the oracle's counterfactual)
    objectives: List[ObjectiveSpec] = dataclasses.field(default_factory=list)
    # Requests of the training window held out by hash: Keras validation (not the evaluated day) and the search.
    validation_fraction: float = 0.1
    fusion: FusionSpec = FusionSpec()


BEAM_RUNNERS = ("direct", "dataflow", "flink", "spark")
DISTRIBUTIONS = ("none", "mirrored", "multi_worker_mirrored")


@dataclasses.dataclass(frozen=True)
class KubeflowSpec:
    """Where and how the pipeline runs on Kubeflow Pipelines or Vertex AI (docs/kubeflow.md). Only
    `distribution` matters locally: the Trainer reads it wherever it runs."""

    image: str = ""  # the pipeline image (Dockerfile), e.g. gcr.io/<project>/mtrank:0.1.0
    pipeline_root: str = ""  # gs://, s3:// or a volume path mounted in every pod
    data_root: str = ""  # one folder per day, as the pods see it
    serving_root: str = ""  # where the Pusher writes <model>/<version>/
    schema: str = ""  # schema file as the pods see it; "" = data.schema inside the image, under image_workdir
    image_workdir: str = "/mtrank"  # where the Dockerfile copies this repository
    beam_runner: str = "direct"  # direct | dataflow | flink | spark: the one setting that moves data processing
    beam_options: Dict[str, Any] = dataclasses.field(default_factory=dict)  # --key=value for the runner
    component_beam_args: Dict[str, List[str]] = dataclasses.field(default_factory=dict)  # component id -> args
    trainer_cpu: float = 0.0  # Trainer pod limits (0 = the cluster's default)
    trainer_memory_gb: float = 0.0
    trainer_gpus: int = 0
    trainer_gpu_type: str = "NVIDIA_TESLA_T4"
    distribution: str = "none"  # none | mirrored | multi_worker_mirrored (tf.distribute in the Trainer)


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataSpec
    features: List[FeatureSpec]
    tasks: List[TaskSpec]
    model: ModelSpec = ModelSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    serving: ServingSpec = ServingSpec()
    kubeflow: KubeflowSpec = KubeflowSpec()
    ranking: RankingSpec = RankingSpec()
    source: str = "<memory>"

    # ---- derived views used by every stage -------------------------------------------------
    @property
    def label_columns(self) -> List[str]:
        cols = [t.label for t in self.tasks]
        cols += [t.weight_by for t in self.tasks if t.weight_by and t.weight_by not in cols]
        return cols

    @property
    def input_columns(self) -> List[str]:
        """Raw columns the model reads at serving time, in configuration order, without repeats."""
        return list(dict.fromkeys(f.source for f in self.features))

    def feature_dtype(self, column: str) -> str:
        return next(f.dtype for f in self.features if f.source == column)

    @property
    def oracle_columns(self) -> List[str]:
        return [t.oracle for t in self.tasks if t.oracle]

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"{self.source}: no task named {name!r}; tasks are {[t.name for t in self.tasks]}")

    def resolve_path(self, path: str) -> str:
        """Relative paths in a configuration file are relative to that file's folder."""
        if "://" in path or os.path.isabs(path):
            return path
        base = Path(self.source).resolve().parent if os.path.exists(self.source) else Path.cwd()
        return str((base / path).resolve())

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("source")
        return d

    def to_json(self, compact: bool = False) -> str:
        """Serialized form passed to Transform and Trainer as `custom_config` (works on Kubeflow too).
        `compact` leaves out every value equal to its field's default (`from_json` puts them back): a key
        that stays the same when a later version adds a field with a default."""
        body = _non_defaults(self) if compact else self.to_dict()
        if compact:
            body.pop("source", None)
        return json.dumps({"config": body, "source": self.source}, sort_keys=True)

    def replace(self, **sections: Any) -> "Config":
        return dataclasses.replace(self, **sections)


def _non_defaults(value: Any) -> Any:
    """A dataclass as a dict of its fields that differ from their defaults (fields without one always),
    recursively; lists item by item."""
    if dataclasses.is_dataclass(value):
        kept = {}
        for field in dataclasses.fields(value):
            if field.default is not dataclasses.MISSING:
                default = field.default
            elif field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            else:
                default = dataclasses.MISSING
            item = getattr(value, field.name)
            if default is dataclasses.MISSING or item != default:
                kept[field.name] = _non_defaults(item)
        return kept
    if isinstance(value, (list, tuple)):
        return [_non_defaults(v) for v in value]
    return value


# ---- loading and validation ---------------------------------------------------------------------


def _build(cls, raw: Any, where: str, source: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {type(raw).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} in '{where}'; allowed: {sorted(names)}")
    try:
        return cls(**raw)
    except TypeError as e:
        raise ConfigError(f"{source}: '{where}' is incomplete: {e}") from None


def from_dict(raw: Dict[str, Any], source: str = "<memory>") -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    for key in ("data", "features", "tasks"):
        if key not in raw:
            raise ConfigError(f"{source}: missing required section '{key}'")
    allowed = {"data", "features", "tasks", "model", "evaluation", "serving", "kubeflow", "ranking"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; allowed: {sorted(allowed)}")
    features = [_build(FeatureSpec, f, f"features[{i}]", source) for i, f in enumerate(raw["features"] or [])]
    tasks = [_build(TaskSpec, t, f"tasks[{i}]", source) for i, t in enumerate(raw["tasks"] or [])]
    evaluation_raw = dict(raw.get("evaluation") or {})
    thresholds = [
        _build(ThresholdSpec, t, f"evaluation.thresholds[{i}]", source)
        for i, t in enumerate(evaluation_raw.pop("thresholds", []) or [])
    ]
    evaluation = _build(EvaluationSpec, {**evaluation_raw, "thresholds": thresholds}, "evaluation", source)
    cfg = Config(
        data=_data_spec(raw["data"], source),
        features=features,
        tasks=tasks,
        model=_model_spec(raw.get("model"), source),
        evaluation=evaluation,
        serving=_build(ServingSpec, raw.get("serving"), "serving", source),
        kubeflow=_build(KubeflowSpec, raw.get("kubeflow"), "kubeflow", source),
        ranking=_ranking_spec(raw.get("ranking"), source),
        source=source,
    )
    validate(cfg)
    return cfg


def _data_spec(raw: Any, source: str) -> DataSpec:
    if isinstance(raw, dict) and raw.get("raw") is not None:
        raw = dict(raw)
        raw_csv = dict(raw["raw"]) if isinstance(raw["raw"], dict) else raw["raw"]
        if isinstance(raw_csv, dict):
            raw_csv["derived"] = [_build(DerivedColumnSpec, d, f"data.raw.derived[{i}]", source)
                                  for i, d in enumerate(raw_csv.get("derived") or [])]
        raw["raw"] = _build(RawCsvSpec, raw_csv, "data.raw", source)
    return _build(DataSpec, raw, "data", source)


def _validate_raw_csv(cfg: Config) -> None:
    raw = cfg.data.raw
    if raw is None:
        return
    check_raw_csv(raw, cfg.source)
    leaks = sorted(set(raw.dropped) & set(cfg.input_columns))
    if leaks:
        raise ConfigError(f"{cfg.source}: feature column(s) {leaks} are dropped on import (a derived label's source "
                          "or data.raw.drop); a label's source must never be a model input")


def check_raw_csv(raw: RawCsvSpec, src: str) -> None:
    """`data.raw` on its own (also what `mtrank init` checks before it reads anything)."""
    if not isinstance(raw.delimiter, str) or len(raw.delimiter) != 1:
        raise ConfigError(f"{src}: data.raw.delimiter must be one character, got {raw.delimiter!r}")
    for key in ("columns", "drop"):
        values = getattr(raw, key)
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ConfigError(f"{src}: data.raw.{key} must be a list of column names, got {values!r}")
    if len(set(raw.columns)) != len(raw.columns):
        raise ConfigError(f"{src}: data.raw.columns names a column twice")
    if raw.columns and not set(raw.drop) <= set(raw.columns):
        raise ConfigError(f"{src}: data.raw.drop names {sorted(set(raw.drop) - set(raw.columns))}, which are not in "
                          "data.raw.columns")
    names = [d.name for d in raw.derived]
    if len(set(names)) != len(names):
        raise ConfigError(f"{src}: data.raw.derived names a column twice: {names}")
    for d in raw.derived:
        rules = [r for r in (d.equals, d.one_of, d.above) if r is not None]
        if len(rules) != 1:
            raise ConfigError(f"{src}: derived column {d.name!r} needs exactly one of equals, one_of, above")
        if d.one_of is not None and (not isinstance(d.one_of, list) or not d.one_of):
            raise ConfigError(f"{src}: derived column {d.name!r}: one_of must be a non-empty list, got {d.one_of!r}")
        values = [d.equals] if d.equals is not None else d.one_of or []
        if any(not isinstance(v, str) for v in values):
            raise ConfigError(f"{src}: derived column {d.name!r} compares {d.column!r} with {values!r}; quote the "
                              "value(s) (YAML reads yes/no/on/off as booleans and 1 as a number), e.g. equals: \"yes\"")
        if d.above is not None and (isinstance(d.above, bool) or not isinstance(d.above, (int, float))):
            raise ConfigError(f"{src}: derived column {d.name!r}: above must be a number, got {d.above!r}")
        if raw.columns and d.column not in raw.columns:
            raise ConfigError(f"{src}: derived column {d.name!r} reads {d.column!r}, which is not in data.raw.columns")
        if d.name in raw.columns:
            raise ConfigError(f"{src}: derived column {d.name!r} has the name of a raw column; give it another")


def _ranking_spec(raw: Any, source: str) -> RankingSpec:
    raw = dict(raw or {}) if isinstance(raw, dict) or raw is None else raw
    if isinstance(raw, dict):
        raw["objectives"] = [_build(ObjectiveSpec, o, f"ranking.objectives[{i}]", source)
                             for i, o in enumerate(raw.get("objectives") or [])]
        raw["fusion"] = _build(FusionSpec, raw.get("fusion"), "ranking.fusion", source)
    return _build(RankingSpec, raw, "ranking", source)


def _model_spec(raw: Any, source: str) -> ModelSpec:
    raw = dict(raw or {}) if isinstance(raw, dict) or raw is None else raw
    if isinstance(raw, dict) and raw.get("position_bias") is not None:
        raw["position_bias"] = _build(PositionBiasSpec, raw["position_bias"], "model.position_bias", source)
    return _build(ModelSpec, raw, "model", source)


def _validate_model(cfg: Config) -> None:
    src, m = cfg.source, cfg.model
    if m.architecture not in ARCHITECTURES:
        raise ConfigError(f"{src}: model.architecture {m.architecture!r} is unknown; use one of {ARCHITECTURES}")
    if m.num_experts < 1:
        raise ConfigError(f"{src}: model.num_experts must be >= 1")
    if not m.expert_units or any(u < 1 for u in m.expert_units):
        raise ConfigError(f"{src}: model.expert_units must list at least one positive width")
    if any(u < 1 for u in list(m.tower_units) + list(m.gate_units)):
        raise ConfigError(f"{src}: model.tower_units and model.gate_units must be positive widths")
    if m.task_experts < 1 and m.architecture in ("cgc", "ple"):
        raise ConfigError(f"{src}: model.task_experts must be >= 1 for {m.architecture}")
    if m.levels is not None and m.levels < 1:
        raise ConfigError(f"{src}: model.levels must be >= 1")
    if m.steps_per_execution < 1 or m.batch_size < 1:
        raise ConfigError(f"{src}: model.batch_size and model.steps_per_execution must be >= 1")
    if m.levels is not None and m.levels > 1 and m.architecture != "ple":
        raise ConfigError(f"{src}: model.levels = {m.levels} needs architecture ple (got {m.architecture!r})")
    if m.warm_start_days < 0:
        raise ConfigError(f"{src}: model.warm_start_days must be >= 0 (0 = the whole window)")
    if m.warm_start_learning_rate is not None and m.warm_start_learning_rate <= 0:
        raise ConfigError(f"{src}: model.warm_start_learning_rate must be > 0 (or left out: model.learning_rate)")
    if not 0.0 <= m.warm_start_decay_floor <= 1.0:
        raise ConfigError(f"{src}: model.warm_start_decay_floor must lie in [0, 1] (a share of the warm rate); "
                          f"got {m.warm_start_decay_floor}")
    if not 0.0 <= m.warm_start_decay <= 2.0:
        raise ConfigError(f"{src}: model.warm_start_decay must lie in [0, 2] (0 = the same rate every warm day, "
                          f"0.5 = the square root of the chain's age); got {m.warm_start_decay}")
    if m.early_stopping_patience < 0:
        raise ConfigError(f"{src}: model.early_stopping_patience must be >= 0 (0 = off)")
    if m.early_stopping_monitor != "loss" and m.early_stopping_monitor not in {t.name for t in cfg.tasks}:
        raise ConfigError(f"{src}: model.early_stopping_monitor {m.early_stopping_monitor!r} is neither 'loss' nor "
                          f"a task; use one of {['loss'] + [t.name for t in cfg.tasks]}")
    if m.optimizer not in OPTIMIZERS:
        raise ConfigError(f"{src}: model.optimizer {m.optimizer!r} is unknown; use one of {OPTIMIZERS}")
    if m.loss_weighting not in LOSS_WEIGHTINGS:
        raise ConfigError(f"{src}: model.loss_weighting {m.loss_weighting!r} is unknown; use one of {LOSS_WEIGHTINGS}")
    pb = m.position_bias
    if pb is not None:
        task = next((t for t in cfg.tasks if t.name == pb.task), None)
        if task is None or task.type != "binary" or task.follows is not None:
            raise ConfigError(f"{src}: model.position_bias.task {pb.task!r} must name a binary task that "
                              "follows no other task")
        if pb.column in cfg.input_columns or pb.column in cfg.label_columns:
            raise ConfigError(f"{src}: model.position_bias.column {pb.column!r} is also a feature or a label; "
                              "position must feed only the bias tower")
        if pb.num_buckets < 2 or pb.embedding_dim < 1:
            raise ConfigError(f"{src}: model.position_bias needs num_buckets >= 2 and embedding_dim >= 1")


INTERACTION_WEIGHTS = ("pair", "dimension")  # model.interaction_weights (models/layers.pair_interactions)


def _check_interactions(cfg: Config) -> None:
    """model.interactions: pairs of embedded features of one width; and a feature kept out of the experts
    (deep: false) must be read by its bias or an interaction. Run after each feature's own checks."""
    src = cfg.source
    if cfg.model.interaction_weights not in INTERACTION_WEIGHTS:
        raise ConfigError(f"{src}: model.interaction_weights {cfg.model.interaction_weights!r} is not one of "
                          f"{list(INTERACTION_WEIGHTS)}")
    embedded = {f.name: f for f in cfg.features if f.is_embedded}
    for pair in cfg.model.interactions:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or any(name not in embedded for name in pair):
            raise ConfigError(f"{src}: model.interactions entry {pair!r} must name two embedded features "
                              f"(kinds {feature_kinds.embedded_kinds()}); embedded here: {sorted(embedded)}")
        if embedded[pair[0]].embedding_dim != embedded[pair[1]].embedding_dim:
            raise ConfigError(f"{src}: model.interactions {pair!r}: the two features need one embedding_dim "
                              f"(got {embedded[pair[0]].embedding_dim} and {embedded[pair[1]].embedding_dim})")
    for f in cfg.features:
        if not f.deep and not f.bias and not any(f.name in pair for pair in cfg.model.interactions):
            raise ConfigError(f"{src}: feature {f.name!r} has deep: false but neither bias nor an interaction; "
                              "nothing would read it")


def validate(cfg: Config) -> None:
    src = cfg.source
    if not cfg.features:
        raise ConfigError(f"{src}: 'features' is empty; list at least one input column")
    if not cfg.tasks:
        raise ConfigError(f"{src}: 'tasks' is empty; list at least one task")
    seen = set()
    for f in cfg.features:
        if f.name in seen:
            raise ConfigError(f"{src}: feature {f.name!r} is listed twice")
        seen.add(f.name)
        if f.kind not in feature_kinds.KINDS:  # mtrank/feature_kinds.py: what each kind means
            raise ConfigError(f"{src}: feature {f.name!r} has kind {f.kind!r}; use one of {tuple(feature_kinds.KINDS)}")
        if f.dtype not in feature_kinds.RAW_TYPES:
            raise ConfigError(f"{src}: feature {f.name!r} has dtype {f.dtype!r}; use one of "
                              f"{tuple(feature_kinds.RAW_TYPES)}")
        problem = feature_kinds.of(f).check(f)
        if problem:
            raise ConfigError(f"{src}: {problem}")
        if f.l2 < 0:
            raise ConfigError(f"{src}: feature {f.name!r} has l2 {f.l2}; use a value >= 0")
        if f.bias and not f.is_embedded:
            raise ConfigError(f"{src}: feature {f.name!r}: bias is for embedded kinds {feature_kinds.embedded_kinds()}")
    _check_interactions(cfg)
    if not any(f.deep for f in cfg.features):
        raise ConfigError(f"{src}: every feature has deep: false; the experts need at least one input")
    for column in cfg.input_columns:
        dtypes = {f.dtype for f in cfg.features if f.source == column}
        if len(dtypes) > 1:
            raise ConfigError(f"{src}: column {column!r} is given two dtypes {sorted(dtypes)}")
    task_names = [t.name for t in cfg.tasks]
    if len(set(task_names)) != len(task_names):
        raise ConfigError(f"{src}: task names must be unique, got {task_names}")
    reserved = {export_contract.SCORE_OUTPUT}
    for t in cfg.tasks:
        if t.name in reserved:
            raise ConfigError(f"{src}: task name {t.name!r} is reserved for the fused ranking score")
        if t.label_log1p and t.type != "regression":
            raise ConfigError(f"{src}: task {t.name!r}: label_log1p is for regression tasks")
        if t.type not in TASK_TYPES:
            raise ConfigError(f"{src}: task {t.name!r} has type {t.type!r}; use one of {TASK_TYPES}")
        if t.follows is not None:
            if t.follows not in task_names or t.follows == t.name:
                raise ConfigError(f"{src}: task {t.name!r} follows {t.follows!r}, which is not another task")
            parent = next(p for p in cfg.tasks if p.name == t.follows)
            if t.type != "binary" or parent.type != "binary" or parent.follows is not None:
                raise ConfigError(
                    f"{src}: task {t.name!r}: ESMM chaining ('follows') needs two binary tasks and one level only"
                )
        if t.loss is not None and t.loss not in TASK_LOSSES[t.type]:
            raise ConfigError(f"{src}: task {t.name!r} has loss {t.loss!r}; a {t.type} task takes one of "
                              f"{TASK_LOSSES[t.type]}")
        if t.rate_band is not None:
            band = t.rate_band
            if t.type != "binary" or not (isinstance(band, list) and len(band) == 2 and 0 <= band[0] < band[1] <= 1):
                raise ConfigError(f"{src}: task {t.name!r}: rate_band must be [low, high] with 0 <= low < high <= 1, "
                                  f"on a binary task (got {band!r})")
        if t.follows is not None and t.weight_by:
            raise ConfigError(f"{src}: task {t.name!r}: ESMM ('follows') trains on every impression, so "
                              "'weight_by' contradicts it; drop one of them")
        for col in (t.label, t.weight_by, t.oracle):
            if col and col in cfg.input_columns:
                raise ConfigError(
                    f"{src}: column {col!r} of task {t.name!r} is also a feature; labels and oracle "
                    "columns must never be model inputs"
                )
    for th in cfg.evaluation.thresholds:
        if th.task not in task_names and th.task != export_contract.SCORE_OUTPUT:
            raise ConfigError(f"{src}: threshold names task {th.task!r}, which is not configured (nor 'score', "
                              "the fused ranking score, for a ranking metric)")
        if th.significant and (th.max_drop is None or not cfg.evaluation.confidence_intervals):
            raise ConfigError(f"{src}: the {th.task} {th.metric} threshold asks for a significant drop: it needs "
                              "max_drop and evaluation.confidence_intervals: true")
    if cfg.evaluation.max_eval_rows < 0:
        raise ConfigError(f"{src}: evaluation.max_eval_rows must be >= 0 (0 = every row), got {cfg.evaluation.max_eval_rows}")
    if cfg.serving.max_candidates < 1:
        raise ConfigError(f"{src}: serving.max_candidates must be >= 1, got {cfg.serving.max_candidates}")
    if min(cfg.evaluation.min_rows, cfg.evaluation.min_positives) < 0:
        raise ConfigError(f"{src}: evaluation.min_rows and evaluation.min_positives must be >= 0")
    if 0 < cfg.evaluation.max_eval_rows < cfg.evaluation.min_rows:
        raise ConfigError(f"{src}: evaluation.min_rows ({cfg.evaluation.min_rows}) is above max_eval_rows "
                          f"({cfg.evaluation.max_eval_rows}), the most rows the Evaluator reads: no day could pass")
    # Kubeflow's V2 compiler (TFX's pipeline_builder) accepts only these names; local runs take them too.
    if cfg.data.pipeline_name and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", cfg.data.pipeline_name):
        raise ConfigError(f"{src}: data.pipeline_name {cfg.data.pipeline_name!r}: use lower-case letters, digits and "
                          "'-', starting with a letter or digit (what Kubeflow Pipelines accepts)")
    if cfg.data.max_label_rate_ratio != 0 and cfg.data.max_label_rate_ratio <= 1:
        raise ConfigError(f"{src}: data.max_label_rate_ratio must be > 1 (a factor), or 0 to compare no days; "
                          f"got {cfg.data.max_label_rate_ratio}")
    if not 0 < cfg.data.label_rate_p_value < 1:
        raise ConfigError(f"{src}: data.label_rate_p_value must be between 0 and 1, got {cfg.data.label_rate_p_value}")
    if cfg.evaluation.ece_bins < 2:
        raise ConfigError(f"{src}: evaluation.ece_bins must be >= 2, got {cfg.evaluation.ece_bins}")
    for s in cfg.evaluation.slices:
        for col in s.split("*"):
            if col.strip() == "":
                raise ConfigError(f"{src}: empty slice name in evaluation.slices")
    _validate_model(cfg)
    _validate_raw_csv(cfg)
    _validate_ranking(cfg)
    _validate_kubeflow(cfg)


def _validate_ranking(cfg: Config) -> None:
    src, r = cfg.source, cfg.ranking
    f = r.fusion
    binary = [t.name for t in cfg.tasks if t.type == "binary"]
    # The ranking metrics the Evaluator computes (components/ranking_metric.metric_names: the oracle share
    # only for an objective with an oracle column); a threshold on any other ranking name would gate nothing.
    ranking_names = {ranking.metric_name(o.name, m, r.top_k) for o in r.objectives for m in ranking.MEASURES
                     if m != "oracle_share" or o.oracle} if r.request_column else set()
    for th in cfg.evaluation.thresholds:
        looks_ranked = "@" in th.metric and th.metric.split("@")[0].rsplit("_", 1)[-1] in (
            "gain", "ndcg", "share")
        if (th.task == export_contract.SCORE_OUTPUT or looks_ranked) and th.metric not in ranking_names:
            raise ConfigError(f"{src}: the {th.task} threshold names {th.metric!r}, which the Evaluator does not "
                              f"compute; ranking metrics here: {sorted(ranking_names) or 'none (no ranking.request_column)'}")
        if th.metric in ranking_names:
            continue
        metric = metrics_lib.BY_NAME.get(th.metric)
        task_type = next(t.type for t in cfg.tasks if t.name == th.task)
        named = sorted(n for n, m in metrics_lib.BY_NAME.items() if task_type in m.task_types)
        if metric is None or task_type not in metric.task_types:
            raise ConfigError(f"{src}: the {th.task} threshold names metric {th.metric!r}; a {task_type} task's "
                              f"thresholds take one of {named} (or a ranking metric)")
        if metric.needs_group and not cfg.evaluation.group_column:
            raise ConfigError(f"{src}: the {th.task} {th.metric} threshold needs evaluation.group_column (the raw "
                              "column whose groups it averages over, e.g. user_id)")
    if f.mode not in FUSION_MODES:
        raise ConfigError(f"{src}: ranking.fusion.mode is {f.mode!r}; use one of {FUSION_MODES}")
    for name in f.tasks:
        if name not in binary:
            raise ConfigError(f"{src}: ranking.fusion.tasks names {name!r}, which is not a binary task {binary}")
    if f.value is not None and f.value not in cfg.input_columns:
        raise ConfigError(f"{src}: ranking.fusion.value {f.value!r} must be an input column {cfg.input_columns}: "
                          "serving computes the score from the request")
    if f.mode == "product":
        known = set(f.tasks or binary) | ({f.value} if f.value else set())
        if not f.exponents or set(f.exponents) - known:
            raise ConfigError(f"{src}: ranking.fusion.exponents {f.exponents} must give exponents for {sorted(known)}")
    if r.request_column is None:
        if f.mode == "search" or r.objectives:
            raise ConfigError(f"{src}: ranking needs request_column (the column grouping one ranked list) for "
                              "objectives and the weight search")
        return
    if r.request_column in cfg.input_columns:
        raise ConfigError(f"{src}: ranking.request_column {r.request_column!r} is a model input; it only groups rows")
    if r.top_k < 1 or r.discount < 0:
        raise ConfigError(f"{src}: ranking.top_k must be >= 1 and ranking.discount >= 0")
    if not 0 < r.validation_fraction < 0.5:
        raise ConfigError(f"{src}: ranking.validation_fraction must be in (0, 0.5), got {r.validation_fraction}")
    names = [o.name for o in r.objectives]
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"{src}: ranking.objectives must name at least one objective, each once (got {names})")
    for o in r.objectives:
        if o.label in cfg.input_columns or (o.oracle and o.oracle in cfg.input_columns):
            raise ConfigError(f"{src}: objective {o.name!r}: label and oracle columns must never be model inputs")
    if f.mode == "search":
        if f.objective not in names:
            raise ConfigError(f"{src}: ranking.fusion.objective {f.objective!r} is not one of the objectives {names}")
        if not 0 < f.grid_step <= 0.5:
            raise ConfigError(f"{src}: ranking.fusion.grid_step must be in (0, 0.5], got {f.grid_step}")
    for name, share in f.guardrails.items():
        if name not in names or not 0 < share <= 1:
            raise ConfigError(f"{src}: ranking.fusion.guardrails {name!r}: {share} must name an objective {names} "
                              "with a share in (0, 1]")


def _validate_kubeflow(cfg: Config) -> None:
    src, k = cfg.source, cfg.kubeflow
    if k.beam_runner not in BEAM_RUNNERS:
        raise ConfigError(f"{src}: kubeflow.beam_runner {k.beam_runner!r} is unknown; use one of {BEAM_RUNNERS}")
    if k.distribution not in DISTRIBUTIONS:
        raise ConfigError(f"{src}: kubeflow.distribution {k.distribution!r} is unknown; use one of {DISTRIBUTIONS}")
    if not isinstance(k.beam_options, dict) or not isinstance(k.component_beam_args, dict):
        raise ConfigError(f"{src}: kubeflow.beam_options and kubeflow.component_beam_args must be mappings")
    for name, args in k.component_beam_args.items():
        if not isinstance(args, list) or not all(isinstance(a, str) and a.startswith("--") for a in args):
            raise ConfigError(f"{src}: kubeflow.component_beam_args.{name} must be a list of '--flag=value' strings")
    if min(k.trainer_cpu, k.trainer_memory_gb, k.trainer_gpus) < 0:
        raise ConfigError(f"{src}: kubeflow.trainer_cpu, trainer_memory_gb and trainer_gpus must be >= 0")


def load(path: Optional[os.PathLike | str] = None) -> Config:
    """Reads and validates a configuration file (the default data set's when no path is given)."""
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    if not path.exists():
        raise ConfigError(f"configuration file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return from_dict(raw, source=str(path))


def add_config_argument(parser, purpose: str = ""):
    """The `--config` option every `mtrank` subcommand takes; `purpose` says what that command reads from it."""
    detail = f"; {purpose}" if purpose else ""
    parser.add_argument("--config", default=str(DEFAULT_CONFIG_PATH),
                        help=f"configuration file{detail} (default: %(default)s)")
    return parser


def from_json(text: str) -> Config:
    """Inverse of `Config.to_json`, used inside Transform and Trainer."""
    payload = json.loads(text)
    return from_dict(payload["config"], source=payload.get("source", "<custom_config>"))
