"""Reads a finished pipeline run back from ml-metadata: what ran, how long, what it measured, what it pushed.

Used by `mtrank run` and `make demo` to print the per-task figures, and by the end-to-end tests to
assert on what a user would look at.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
from typing import Dict, List, Optional, Tuple

import mtrank  # noqa: F401
import numpy as np
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from mtrank import config as config_lib
from mtrank import export_contract
from mtrank import fusion as fusion_lib
from mtrank import metrics as metrics_lib
from mtrank import ranking


@dataclasses.dataclass
class ComponentRun:
    node: str
    state: str  # COMPLETE, CACHED, FAILED, ...
    seconds: float
    outputs: Dict[str, List[str]]  # output key -> artifact URIs
    properties: Dict[str, Dict[str, object]]  # artifact URI -> custom properties
    exec_properties: Dict[str, object]


@dataclasses.dataclass
class RunResult:
    pipeline_name: str
    run_id: str
    components: Dict[str, ComponentRun]
    metrics: Dict[str, Dict[str, Dict[str, float]]]  # slice -> output -> metric -> value
    validation_ok: Optional[bool]
    validation_failures: List[str]
    blessed: Optional[bool]
    pushed_path: Optional[str]
    oracle_auc: Dict[str, float]
    eval_rows: int
    # slice -> task -> AUC of the simulator's true probabilities on that slice's eval rows
    oracle_auc_by_slice: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
    # task -> calibration buckets of the overall slice: {"lower", "upper", "weight", "mean_prediction", "mean_label"}
    calibration: Dict[str, List[Dict[str, float]]] = dataclasses.field(default_factory=dict)
    evaluation_uri: Optional[str] = None
    # slice -> output -> metric -> 95 % interval (TFMA's jackknife), when evaluation.confidence_intervals is on
    intervals: Dict[str, Dict[str, Dict[str, Tuple[float, float]]]] = dataclasses.field(default_factory=dict)

    @property
    def run_date(self) -> Optional[str]:
        """The day the run evaluated (DayWindow's run date, else the eval folder of ExampleGen)."""
        day_window = self.components.get("DayWindow")
        date = day_window.exec_properties.get("run_date") if day_window else None
        return date or self.window().get("eval")

    def window(self) -> Dict[str, object]:
        """Day folders of the run, from ExampleGen's input config: {'eval': day, 'train': [days]}."""
        example_gen = self.components.get("CsvExampleGen")
        raw = example_gen.exec_properties.get("input_config") if example_gen else None
        if not raw:
            return {}
        splits = {s["name"]: s["pattern"].split("/")[0] for s in json.loads(raw).get("splits", [])}
        return {"eval": splits.get("eval", "?"),
                "train": sorted(v for k, v in splits.items() if k != "eval")}

    def production_model(self) -> Optional[Dict[str, object]]:
        """ProductionModel's properties (in_production, production_version, production_path), if it ran."""
        run = self.components.get("ProductionModel")
        uris = run.outputs.get("model", []) if run else []
        return run.properties.get(uris[0], {}) if uris else None

    def metric(self, output: str, name: str, slice_name: str = "Overall") -> float:
        return self.metrics.get(slice_name, {}).get(output, {}).get(name, float("nan"))

    def interval(self, output: str, name: str, slice_name: str = "Overall") -> Optional[Tuple[float, float]]:
        return self.intervals.get(slice_name, {}).get(output, {}).get(name)


def _store(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _value(v: metadata_store_pb2.Value):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def component_runs(store, run_context) -> Dict[str, ComponentRun]:
    runs = {}
    for execution in store.get_executions_by_context(run_context.id):
        node = next((c.name.split(".", 1)[-1] for c in store.get_contexts_by_execution(execution.id)
                     if store.get_context_types_by_id([c.type_id])[0].name == "node"), str(execution.id))
        outputs: Dict[str, List[str]] = {}
        properties = {}
        events = [e for e in store.get_events_by_execution_ids([execution.id])
                  if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
        for e in events:
            artifact = artifacts[e.artifact_id]
            key = e.path.steps[0].key if e.path.steps else "output"
            outputs.setdefault(key, []).append(artifact.uri)
            properties[artifact.uri] = {k: _value(v) for k, v in artifact.custom_properties.items()}
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0
        state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        exec_properties = {k: _value(v) for k, v in execution.custom_properties.items()}
        runs[node] = ComponentRun(node=node, state=state, seconds=seconds, outputs=outputs, properties=properties,
                                  exec_properties=exec_properties)
    return runs


def _slice_name(slice_key) -> str:
    if not slice_key:
        return "Overall"
    return " * ".join(f"{k}={v.decode() if isinstance(v, bytes) else v}" for k, v in slice_key)


def read_tfma(evaluation_uri: str):
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri)
    metrics: Dict[str, Dict[str, Dict[str, float]]] = {}
    intervals: Dict[str, Dict[str, Dict[str, Tuple[float, float]]]] = {}
    for slice_key, by_output in result.slicing_metrics:
        out = metrics.setdefault(_slice_name(slice_key), {})
        for output_name, by_sub_key in by_output.items():
            for values in by_sub_key.values():
                for metric_name, value in values.items():
                    if isinstance(value, dict) and "doubleValue" in value:
                        out.setdefault(output_name, {})[metric_name] = float(value["doubleValue"])
                    elif isinstance(value, dict) and "boundedValue" in value:  # with confidence intervals
                        bounded = value["boundedValue"]
                        out.setdefault(output_name, {})[metric_name] = _finite(bounded.get("value"))
                        intervals.setdefault(_slice_name(slice_key), {}).setdefault(output_name, {})[metric_name] = (
                            _finite(bounded.get("lowerBound")), _finite(bounded.get("upperBound")))
    undefined = set()  # (slice, output): AUC-like metrics absent there, not TFMA's 0.0
    for slice_name, by_output in metrics.items():
        for output_name, values in by_output.items():
            if metrics_lib.one_class(values):
                undefined.add((slice_name, output_name))
                for name in metrics_lib.UNDEFINED_WITH_ONE_CLASS:
                    if name in values:
                        values[name] = math.nan
    validation = tfma.load_validation_result(evaluation_uri)
    failures = []
    for per_slice in validation.metric_validations_per_slice:
        slice_name = _slice_name(tfma.slicer.deserialize_slice_key(per_slice.slice_key)) \
            if per_slice.HasField("slice_key") else "Overall"
        for failure in per_slice.failures:
            key = failure.metric_key
            if (slice_name, key.output_name) in undefined and key.name in metrics_lib.UNDEFINED_WITH_ONE_CLASS:
                mean = metrics[slice_name][key.output_name][metrics_lib.MEAN_LABEL]
                failures.append(f"{key.output_name} {key.name} is undefined on slice {slice_name}: every label is "
                                f"{mean:g} (one class), so its threshold fails")
                continue
            what = "change vs. the model in production" if key.is_diff else "value"
            if key.name.endswith(metrics_lib.CHANGE_BOUND_SUFFIX):
                what = "change vs. the model in production, its 95 % bound on the favourable side,"
            threshold = " ".join(str(failure.metric_threshold).split())
            failures.append(f"{key.output_name} {key.name} {what} = {failure.metric_value.double_value.value:.4f}"
                            f" does not meet {threshold} {failure.message}".rstrip())
    return metrics, validation.validation_ok, failures, intervals


def _finite(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def read_calibration(evaluation_uri: str) -> Dict[str, List[Dict[str, float]]]:
    """Calibration buckets per output on the overall slice, from TFMA's CalibrationPlot (empty ones dropped)."""
    import tensorflow_model_analysis as tfma

    try:
        plots = tfma.load_eval_result(evaluation_uri).plots or []
    except Exception:  # an evaluation written without plots
        return {}
    out: Dict[str, List[Dict[str, float]]] = {}
    for slice_key, by_output in plots:
        if slice_key:
            continue
        for output_name, by_sub_key in (by_output or {}).items():
            for plot in (by_sub_key or {}).values():
                buckets = (plot or {}).get("calibrationHistogramBuckets", {}).get("buckets", [])
                rows = []
                for b in buckets:
                    weight = _finite(b.get("numWeightedExamples", 0.0))
                    if not weight > 0:
                        continue
                    rows.append({"lower": _finite(b.get("lowerThresholdInclusive", 0.0)),
                                 "upper": _finite(b.get("upperThresholdExclusive", 1.0)), "weight": weight,
                                 "mean_prediction": _finite(b.get("totalWeightedRefinedPrediction", 0.0)) / weight,
                                 "mean_label": _finite(b.get("totalWeightedLabel", 0.0)) / weight})
                if rows:
                    out[output_name] = rows
    return out


def read_eval_table(examples_uri: str, columns: List[str], split: str = "eval") -> Dict[str, list]:
    """The given columns of ExampleGen's split with their own types (str, int, float; None when absent)."""
    import tensorflow as tf

    files = sorted(glob.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    values: Dict[str, list] = {c: [] for c in columns}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        example = tf.train.Example.FromString(record)
        for c in columns:
            feature = example.features.feature[c]
            kind = feature.WhichOneof("kind")
            raw = list(getattr(feature, kind).value) if kind else []
            value = raw[0] if raw else None
            values[c].append(value.decode() if isinstance(value, bytes) else value)
    return values


def parse_slice_name(name: str) -> List[tuple]:
    """'device=mobile * position=3' -> [('device', 'mobile'), ('position', '3')]; 'Overall' -> []."""
    if name == "Overall":
        return []
    return [tuple(part.split("=", 1)) for part in name.split(" * ")]


def oracle_auc_by_slice(cfg: config_lib.Config, examples_uri: str,
                        slice_names: List[str]) -> Tuple[Dict[str, Dict[str, float]], int]:
    """AUC of each task's oracle column on the eval rows of every named slice ('Overall' included), and
    the number of eval rows: one pass over the split TFMA evaluated (the same rows)."""
    tasks = [t for t in cfg.tasks if t.oracle and t.type == "binary"]
    if not tasks:
        return {}, 0
    slice_columns = sorted({col for name in slice_names for col, _ in parse_slice_name(name)})
    table = read_eval_table(examples_uri, sorted({c for t in tasks for c in (t.label, t.oracle)} | set(slice_columns)))
    rows = len(table[tasks[0].label])
    as_text = {c: np.asarray([_slice_text(v) for v in table[c]], dtype=object) for c in slice_columns}
    labels = {t.name: np.asarray(table[t.label], dtype=np.float64) for t in tasks}
    oracles = {t.name: np.asarray(table[t.oracle], dtype=np.float64) for t in tasks}
    out: Dict[str, Dict[str, float]] = {}
    for name in slice_names:
        mask = np.ones(rows, dtype=bool)
        for col, value in parse_slice_name(name):
            mask &= as_text[col] == value
        out[name] = {t.name: metrics_lib.auc(labels[t.name][mask], oracles[t.name][mask]) for t in tasks}
    return out, rows


def _slice_text(value) -> str:
    """A raw value as it appears in a slice name."""
    return str(value)


def latest_component_runs(metadata_path: str, pipeline_name: str) -> Dict[str, ComponentRun]:
    """Components of the newest run with their wall times, without reading any output (for benchmarks)."""
    store = _store(metadata_path)
    run_contexts = _run_contexts(store, pipeline_name)
    if not run_contexts:
        raise LookupError(f"{metadata_path}: pipeline {pipeline_name!r} has no recorded run")
    return component_runs(store, max(run_contexts.values(), key=lambda c: (c.create_time_since_epoch, c.id)))


def _run_contexts(store, pipeline_name: str):
    """Pipeline-run contexts of a pipeline, each with the run date its DayWindow was given."""
    pipeline_ctx = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_ctx is None:
        return {}
    run_type = store.get_context_type("pipeline_run")
    runs = {}
    for execution in store.get_executions_by_context(pipeline_ctx.id):
        for c in store.get_contexts_by_execution(execution.id):
            if c.type_id == run_type.id:
                runs.setdefault(c.id, c)
    return runs


def finished_run_for_day(metadata_path: str, pipeline_name: str, day: str) -> Optional[str]:
    """The run id of a finished run for `day`: its Evaluator decided, and a blessed model was pushed.

    A day that is finished is not run again (re-running it would warm-start from its own model and
    push a near-copy). A run killed half-way is not finished, and TFX's cache resumes it.
    """
    if not os.path.exists(metadata_path):
        return None
    store = _store(metadata_path)
    done = ("COMPLETE", "CACHED")
    for run_ctx in sorted(_run_contexts(store, pipeline_name).values(), key=lambda c: -c.create_time_since_epoch):
        runs = component_runs(store, run_ctx)
        window_run, evaluator = runs.get("DayWindow"), runs.get("Evaluator")
        if not window_run or window_run.exec_properties.get("run_date") != day:
            continue
        if not evaluator or evaluator.state not in done:
            continue
        blessed = bool(evaluator.properties[evaluator.outputs["blessing"][0]].get("blessed"))
        if not blessed or (runs.get("Pusher") and runs["Pusher"].state in done):
            return run_ctx.name
    return None


def latest_run(metadata_path: str, pipeline_name: str, cfg: config_lib.Config,
               run_id: Optional[str] = None) -> RunResult:
    """Results of the newest run of the pipeline, or of the run named `run_id`."""
    store = _store(metadata_path)
    run_contexts = _run_contexts(store, pipeline_name)
    if not run_contexts:
        raise LookupError(f"{metadata_path}: pipeline {pipeline_name!r} has no recorded run")
    if run_id:
        run_ctx = next((c for c in run_contexts.values() if c.name == run_id), None)
        if run_ctx is None:
            raise LookupError(f"{metadata_path}: pipeline {pipeline_name!r} has no run {run_id!r}")
    else:
        run_ctx = max(run_contexts.values(), key=lambda c: (c.create_time_since_epoch, c.id))
    components = component_runs(store, run_ctx)

    metrics, validation_ok, failures, intervals = {}, None, [], {}
    evaluator = components.get("Evaluator")
    if evaluator and evaluator.outputs.get("evaluation"):
        metrics, validation_ok, failures, intervals = read_tfma(evaluator.outputs["evaluation"][0])
    blessed = None
    if evaluator and evaluator.outputs.get("blessing"):
        blessed = bool(evaluator.properties[evaluator.outputs["blessing"][0]].get("blessed"))
    pushed_path = None
    pusher = components.get("Pusher")
    if pusher and pusher.outputs.get("pushed_model"):
        props = pusher.properties[pusher.outputs["pushed_model"][0]]
        if props.get("pushed"):
            pushed_path = props.get("pushed_destination")
    oracle, rows, oracle_slices = {}, 0, {}
    # The rows TFMA evaluated: EvalSample's when the day was sampled, else ExampleGen's eval split.
    evaluated = components.get("EvalSample") or components.get("CsvExampleGen")
    evaluated_key = "sample" if evaluated is components.get("EvalSample") else "examples"
    if evaluated and evaluated.outputs.get(evaluated_key):
        oracle_slices, rows = oracle_auc_by_slice(cfg, evaluated.outputs[evaluated_key][0],
                                                  sorted(set(metrics) | {"Overall"}))
        oracle = oracle_slices.get("Overall", {})
    if not rows and metrics:  # no oracle column to count rows by: TFMA's example count of the overall slice
        counts = [m.get("example_count", 0.0) for m in metrics.get("Overall", {}).values()]
        rows = int(max(counts, default=0.0))
    evaluation_uri = evaluator.outputs["evaluation"][0] if evaluator and evaluator.outputs.get("evaluation") else None
    return RunResult(pipeline_name=pipeline_name, run_id=run_ctx.name, components=components, metrics=metrics,
                     validation_ok=validation_ok, validation_failures=failures, blessed=blessed,
                     pushed_path=pushed_path, oracle_auc=oracle, eval_rows=rows, oracle_auc_by_slice=oracle_slices,
                     calibration=read_calibration(evaluation_uri) if evaluation_uri else {},
                     evaluation_uri=evaluation_uri, intervals=intervals)


def run_history(metadata_path: str, pipeline_name: str) -> List[Dict[str, object]]:
    """Every run of the pipeline whose Evaluator finished, oldest first: run id, run date, blessed, and the
    overall metrics per task (read from each run's TFMA output). Feeds the report's AUC-per-day plot."""
    if not os.path.exists(metadata_path):
        return []
    store = _store(metadata_path)
    history = []
    for run_ctx in sorted(_run_contexts(store, pipeline_name).values(), key=lambda c: (c.create_time_since_epoch, c.id)):
        runs = component_runs(store, run_ctx)
        evaluator, day_window = runs.get("Evaluator"), runs.get("DayWindow")
        if not evaluator or evaluator.state not in ("COMPLETE", "CACHED") or not evaluator.outputs.get("evaluation"):
            continue
        try:
            metrics = read_tfma(evaluator.outputs["evaluation"][0])[0]
        except Exception:  # an evaluation folder removed by hand: skip that run, keep the others
            continue
        blessing = evaluator.outputs.get("blessing")
        history.append({"run_id": run_ctx.name,
                        "run_date": day_window.exec_properties.get("run_date") if day_window else None,
                        "blessed": bool(evaluator.properties[blessing[0]].get("blessed")) if blessing else None,
                        "metrics": metrics.get("Overall", {})})
    return history


def _cell(value: float, width: int, spec: str) -> str:
    """A number right-aligned, or "n/a" where it is undefined (AUC on one class, no oracle column)."""
    return f"{format(value, spec) if math.isfinite(value) else 'n/a':>{width}}"


def fusion_summary(result: RunResult) -> Optional[Dict[str, object]]:
    """The Trainer's fusion.json (chosen and configured weights, their gain@K on held-out requests), if any."""
    import tensorflow as tf

    trainer = result.components.get("Trainer")
    uris = trainer.outputs.get("model_run", []) if trainer else []
    path = os.path.join(uris[0], fusion_lib.FUSION_FILE) if uris else ""
    if not path or not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


RANKERS = ((export_contract.SCORE_OUTPUT, "score (served)"), ("score_configured", "score, configured weights"))


def ranking_lines(cfg: config_lib.Config, result: RunResult) -> List[str]:
    """Per ranking (served score, configured weights, each task output) and objective: the share of the
    oracle's gain captured where the data has oracle columns, and NDCG@K."""
    r = cfg.ranking
    if not r.request_column or not r.objectives:
        return []
    k = r.top_k
    rankers = list(RANKERS) + [(t.name, t.name) for t in cfg.tasks if t.type == "binary"]
    oracle = all(o.oracle for o in r.objectives)
    measure = "oracle_share" if oracle else "gain"
    lines = ["", f"Ranked lists, top {k} per request ({'share of the oracle' + chr(39) + 's gain captured' if oracle else f'gain@{k}'}"
                 f" / NDCG@{k}, observed labels):"]
    lines.append(f"{'ranking by':<28}" + "".join(f"{o.name:>18}" for o in r.objectives))
    for output, label in rankers:
        cells = []
        for o in r.objectives:
            first = result.metric(output, ranking.metric_name(o.name, measure, k))
            second = result.metric(output, ranking.metric_name(o.name, "ndcg", k))
            cells.append(f"{_cell(first, 8, '.3f')} /{_cell(second, 7, '.3f')}")
        lines.append(f"{label:<28}" + "".join(f"{c:>18}" for c in cells))
    summary = fusion_summary(result)
    if summary:
        counted = summary.get("held_out_rows_with_gain", {})
        counts = f" ({', '.join(f'{v:,} {n}' for n, v in counted.items() if n in r.fusion.guardrails)})" \
            if r.fusion.guardrails and counted else ""
        lines += [f"Served score: {summary['chosen_formula']}, searched on {summary['held_out_requests']:,} held-out "
                  f"requests of the training window{counts}",
                  f"  ({summary['reason']}); before the search: {summary['configured_formula']}"]
    return lines


def gate_lines(cfg: config_lib.Config, result: RunResult) -> List[str]:
    """The blessing thresholds with TFMA's 95 % intervals, when the Evaluator computed them."""
    if not result.intervals:
        return []
    lines = ["", "Gate (95 % jackknife intervals; change = candidate − model in production on the same rows):"]
    for th in cfg.evaluation.thresholds:
        name = metrics_lib.key_name(th.metric)
        value, change = result.metric(th.task, name), result.metric(th.task, f"{name}_diff")
        low, high = result.interval(th.task, name) or (math.nan, math.nan)
        text = f"  {th.task} {name} {value:.4f} [{low:.4f}, {high:.4f}]"
        if math.isfinite(change):
            c_low, c_high = result.interval(th.task, f"{name}_diff") or (math.nan, math.nan)
            text += f", change {change:+.4f} [{c_low:+.4f}, {c_high:+.4f}]"
        if th.max_drop is not None:
            sign = "+" if metrics_lib.lower_is_better(th.metric) else "−"
            text += f", tolerated {sign}{th.max_drop:g}{' unless significant' if th.significant else ''}"
        lines.append(text)
    return lines


def format_run(cfg: config_lib.Config, result: RunResult) -> str:
    lines = [f"Run {result.run_id} of pipeline {result.pipeline_name}", "",
             f"{'component':<34}{'state':<10}{'seconds':>8}"]
    for run in sorted(result.components.values(), key=lambda r: r.node):
        lines.append(f"{run.node:<34}{run.state:<10}{run.seconds:>8.1f}")
    window = result.window()
    if window:
        lines += ["", f"Window: trained on {', '.join(window['train'])}; evaluated on {window['eval']}"]
    production = result.production_model()
    if production is not None:
        lines.append("Judged against: " + (f"version {production['production_version']} in production (also the warm "
                                          f"start), {production['production_path']}"
                                          if production.get("in_production") else "nothing in production (floors only)"))
    lines += ["", f"Evaluation on {result.eval_rows:,} held-out rows (overall slice):"]
    binary = [t for t in cfg.tasks if t.type == "binary"]
    if binary:
        grouped = bool(cfg.evaluation.group_column)  # GAUC only when a group column is configured
        gauc_head = f"{'GAUC':>8}" if grouped else ""
        lines.append(f"{'task':<12}{'AUC':>8}{'oracle':>8}{'gap':>8}{gauc_head}{'PR-AUC':>8}"
                     f"{'logloss':>9}{'calib':>8}{'ECE':>8}{'rows':>9}")
        for t in binary:
            model_auc = result.metric(t.name, "auc")
            oracle = result.oracle_auc.get(t.name, float("nan"))
            gauc = _cell(result.metric(t.name, 'gauc'), 8, ".4f") if grouped else ""
            lines.append(
                f"{t.name:<12}{_cell(model_auc, 8, '.4f')}{_cell(oracle, 8, '.4f')}{_cell(oracle - model_auc, 8, '.4f')}"
                f"{gauc}{_cell(result.metric(t.name, 'auc_precision_recall'), 8, '.4f')}"
                f"{result.metric(t.name, 'binary_crossentropy'):>9.4f}{result.metric(t.name, 'calibration'):>8.3f}"
                f"{result.metric(t.name, 'expected_calibration_error'):>8.4f}"
                f"{result.metric(t.name, 'example_count'):>9.0f}")
    for t in cfg.tasks:
        if t.type == "regression":
            lines.append(f"{t.name:<12} MSE {result.metric(t.name, 'mean_squared_error'):.4f}"
                         f"  MAE {result.metric(t.name, 'mean_absolute_error'):.4f}"
                         f"  mean label {result.metric(t.name, 'mean_label'):.3f}"
                         f"  mean prediction {result.metric(t.name, 'mean_prediction'):.3f}"
                         f"{'  (log1p of ' + t.label + ')' if t.label_log1p else ''}")
    lines += ranking_lines(cfg, result)
    lines += gate_lines(cfg, result)
    lines.append("")
    if result.blessed is None:
        lines.append("Blessing: the Evaluator did not run.")
    else:
        lines.append(f"Blessed: {'yes' if result.blessed else 'no'}")
        for failure in result.validation_failures:
            lines.append(f"  failed: {failure}")
    lines.append(f"Pushed model: {result.pushed_path or 'nothing pushed'}")
    return "\n".join(lines)
