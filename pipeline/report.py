"""The run report: one markdown page and its PNG plots per run, for a person deciding whether to trust it.

`<workspace>/reports/<run date>/report.md` answers without opening code: how good each task is (per
slice), where it is weak, how far it is from the oracle (simulated data), why the model was or was not
blessed (every configured rule with its value, the baseline's value and the change), what the gates
learned, how training went, how calibrated the probabilities are, and how each task's AUC moved from
day to day (every run of the pipeline, read from ml-metadata).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import mtrank  # noqa: F401

from mtrank import config as config_lib
from mtrank import fusion as fusion_lib
from mtrank import metrics as metrics_lib
from pipeline import results

REPORT_FILE = "report.md"
# A slice is listed always, but called "weakest" only with enough data for its metric to mean something:
MIN_SLICE_ROWS = 200  # regression: rows
MIN_SLICE_CLASS = 20  # binary: positives and negatives each


def binary_columns(cfg: config_lib.Config):
    """The binary metric columns of the tables, (title, TFMA key, format) from the metric table; GAUC only
    when the configuration names a group column."""
    return metrics_lib.report_columns(metrics_lib.BINARY, cfg.evaluation.group_column)


REGRESSION_COLUMNS = metrics_lib.report_columns(metrics_lib.REGRESSION, None)


def report_dir(workspace_root: os.PathLike, result: results.RunResult) -> Path:
    return Path(workspace_root) / "reports" / (result.run_date or result.run_id)


def _fmt(value: Optional[float], spec: str = ".4f") -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return format(value, spec)


def _with_interval(value: float, interval, spec: str = ".4f") -> str:
    """`0.6612 [0.6551, 0.6673]`: the value and TFMA's 95 % interval when there is one."""
    if interval is None or not all(math.isfinite(b) for b in interval):
        return _fmt(value, spec)
    return f"{_fmt(value, spec)} [{_fmt(interval[0], spec)}, {_fmt(interval[1], spec)}]"


def training_summary(result: results.RunResult) -> dict:
    """The Trainer's training_summary.json (losses per epoch, gate weights), {} when absent."""
    trainer = result.components.get("Trainer")
    path = os.path.join(trainer.outputs["model_run"][0], "training_summary.json") \
        if trainer and trainer.outputs.get("model_run") else None
    if not path or not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


# ---- sections -----------------------------------------------------------------------------------------


def blessing_section(cfg: config_lib.Config, result: results.RunResult) -> List[str]:
    lines = ["## Blessing: was it pushed, and why", ""]
    if result.blessed is None:
        return lines + ["The Evaluator did not run: nothing was decided.", ""]
    has_baseline = any(k.endswith("_diff") for by_out in result.metrics.get("Overall", {}).values() for k in by_out)
    verdict = "**Blessed**" if result.blessed else "**Not blessed**"
    pushed = f"pushed to `{result.pushed_path}`" if result.pushed_path else "not pushed; serving keeps the previous version"
    lines.append(f"{verdict}: {pushed}.")
    if not has_baseline:
        lines.append("No blessed model existed before this run: the change thresholds were skipped (first run), "
                     "only the floors applied.")
    intervals = bool(result.intervals)
    if intervals:
        lines.append("Values and changes carry TFMA's 95 % jackknife interval (20 buckets of the evaluated rows; the "
                     "change is paired: both models on the same buckets). A drop marked *significant* refuses the "
                     "model only when the change's whole interval lies beyond it.")
    lines += ["", "| task | metric | value | floor | baseline | change | largest tolerated drop | result |",
              "|---|---|---|---|---|---|---|---|"]
    failed_keys = {tuple(f.split(" ")[:2]) for f in result.validation_failures}
    for th in cfg.evaluation.thresholds:
        name = metrics_lib.key_name(th.metric)
        lower_better = metrics_lib.lower_is_better(th.metric)
        value = result.metric(th.task, name)
        diff = result.metric(th.task, f"{name}_diff")
        baseline = value - diff if math.isfinite(diff) else float("nan")
        floor = "–" if th.lower_bound is None else f"{'≤' if lower_better else '≥'} {th.lower_bound:g}"
        drop = "–" if th.max_drop is None else f"{'+' if lower_better else '−'}{th.max_drop:g}"
        drop += " (significant)" if th.significant else ""
        failed = {(th.task, name), (th.task, name + metrics_lib.CHANGE_BOUND_SUFFIX)} & failed_keys
        lines.append(f"| {th.task} | {name} | {_with_interval(value, result.interval(th.task, name))} | {floor} | "
                     f"{_fmt(baseline)} | {_with_interval(diff, result.interval(th.task, f'{name}_diff'), '+.4f')} | "
                     f"{drop} | {'fails' if failed else 'passes'} |")
    if result.validation_failures:
        lines += ["", "TFMA's reasons:", ""] + [f"- `{f}`" for f in result.validation_failures]
    return lines + [""]


def overall_section(cfg: config_lib.Config, result: results.RunResult) -> List[str]:
    lines = ["## How good is each task (overall slice)", ""]
    binary = [t for t in cfg.tasks if t.type == "binary"]
    if binary:
        oracle = bool(result.oracle_auc)
        columns = binary_columns(cfg)
        head = ["task"] + [c for c, _, _ in columns[:1]] + (["oracle AUC", "gap"] if oracle else []) + \
            [c for c, _, _ in columns[1:]]
        lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for t in binary:
            cells = [t.name, _fmt(result.metric(t.name, "auc"))]
            if oracle:
                o = result.oracle_auc.get(t.name, float("nan"))
                cells += [_fmt(o), _fmt(o - result.metric(t.name, "auc"))]
            cells += [_fmt(result.metric(t.name, m), f) for _, m, f in columns[1:]]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if oracle:
            lines += ["The oracle AUC is the AUC of the simulator's true probabilities on the same rows: the "
                      "ceiling no model can pass; the gap is what is left to win.", ""]
    regression = [t for t in cfg.tasks if t.type == "regression"]
    if regression:
        head = ["task"] + [c for c, _, _ in REGRESSION_COLUMNS]
        lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for t in regression:
            note = " (log1p)" if t.label_log1p else ""
            lines.append("| " + " | ".join([t.name + note] + [_fmt(result.metric(t.name, m), f)
                                                                for _, m, f in REGRESSION_COLUMNS]) + " |")
        lines.append("")
    return lines


def ranking_section(cfg: config_lib.Config, result: results.RunResult, out: Path) -> List[str]:
    """The ranked lists (what serving returns) and the weight search's Pareto front (its PNG copied here)."""
    table = results.ranking_lines(cfg, result)
    if not table:
        return []
    lines = ["## The ranked lists", "", "```", *table[1:], "```", "",
             "Share of the oracle's gain: the counterfactual gain@K of each ranking under the examination model "
             "r^-discount, with the simulator's true position-free probabilities, as a share of what the oracle's "
             "order gains over a random one (1 = oracle, 0 = chance). NDCG@K uses the observed labels.", ""]
    trainer = result.components.get("Trainer")
    uris = trainer.outputs.get("model_run", []) if trainer else []
    plot = os.path.join(uris[0], fusion_lib.PARETO_PLOT) if uris else ""
    if plot and os.path.exists(plot):
        shutil.copy(plot, out / fusion_lib.PARETO_PLOT)
        lines += [f"![Pareto front of the fusion weights]({fusion_lib.PARETO_PLOT})", "",
                  f"Every grid point of the weight search on the held-out requests (grey), its Pareto front (blue), "
                  f"the configured and the chosen weights; the whole grid is `{fusion_lib.PARETO_TABLE}` in the "
                  "Trainer's run folder.", ""]
    return lines


def slice_section(cfg: config_lib.Config, result: results.RunResult) -> List[str]:
    lines = ["## Per slice", "",
             f"Weakest slices: the lowest AUC among slices with at least {MIN_SLICE_CLASS} positives and "
             f"{MIN_SLICE_CLASS} negatives (regression: the highest MSE among slices of {MIN_SLICE_ROWS} rows or more). "
             "AUC is undefined on a slice holding one class (shown as –).", ""]
    slices = sorted(s for s in result.metrics if s != "Overall")
    for t in cfg.tasks:
        binary = t.type == "binary"
        columns = binary_columns(cfg) if binary else REGRESSION_COLUMNS
        oracle = binary and bool(result.oracle_auc_by_slice)
        rows = []
        for s in slices:
            m = result.metrics[s].get(t.name, {})
            count = m.get("example_count", float("nan"))
            positives = count * m.get(metrics_lib.MEAN_LABEL, float("nan")) if binary else None
            one_class = binary and (not positives or positives >= count)
            values = {k: (float("nan") if one_class and k in metrics_lib.UNDEFINED_WITH_ONE_CLASS else v)
                      for k, v in m.items()}
            rows.append((s, values, count))
        key = "auc" if binary else "mean_squared_error"
        ranked = [r for r in rows if _enough(r[1], r[2], binary) and math.isfinite(r[1].get(key, math.nan))]
        ranked.sort(key=lambda r: r[1][key], reverse=not binary)
        weakest = ", ".join(f"{r[0]} ({_fmt(r[1][key])})" for r in ranked[:3]) or "–"
        lines += [f"### {t.name}", "", f"Weakest: {weakest}", ""]
        head = ["slice"] + [c for c, _, _ in columns[:1]] + (["oracle AUC", "gap"] if oracle else []) + \
            [c for c, _, _ in columns[1:]]
        lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for s, values, _ in rows:
            first = columns[0][1]
            cells = [s, _fmt(values.get(first, math.nan), columns[0][2])]
            if oracle:
                o = result.oracle_auc_by_slice.get(s, {}).get(t.name, math.nan)
                cells += [_fmt(o), _fmt(o - values.get("auc", math.nan))]
            cells += [_fmt(values.get(m, math.nan), f) for _, m, f in columns[1:]]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _enough(values: Dict[str, float], count: float, binary: bool) -> bool:
    if not binary:
        return count >= MIN_SLICE_ROWS
    positives = count * values.get(metrics_lib.MEAN_LABEL, math.nan)
    return positives >= MIN_SLICE_CLASS and count - positives >= MIN_SLICE_CLASS


def gate_section(summary: dict) -> List[str]:
    weights, experts = summary.get("gate_weights") or {}, summary.get("gate_experts") or {}
    lines = ["## Gate weights per task", ""]
    if not weights:
        return lines + ["This architecture has no gates (or the Trainer wrote no summary).", ""]
    from mtrank.models import diagnostics

    return lines + ["Mean weight each task's gate gives each expert on evaluation data: one expert taking "
                    "everything, or uniform weights, says the experts are not specialised.", "",
                    diagnostics.gate_markdown(weights, experts), "![gate weights](gate_weights.png)", ""]


def training_section(summary: dict) -> List[str]:
    history = summary.get("history") or {}
    lines = ["## Training", ""]
    if not history:
        return lines + ["No training history was recorded.", ""]
    start = summary.get("warm_start") or {}
    if start:
        how = "warm (from the model in production)" if start.get("warm") else "cold"
        lines.append(f"Start: {how}. {start.get('reason', '')}".rstrip())
        remapped = start.get("remapped") or {}
        if start.get("warm") and remapped:  # rows restored by category (components/warm_start.py)
            lines += ["", "| feature | categories restored | of them at another row | new today | gone today |",
                      "|---|---:|---:|---:|---:|"]
            lines += [f"| {name} | {c['kept']} | {c['moved']} | {c['new']} | {c['dropped']} |"
                      for name, c in sorted(remapped.items())]
            lines.append("")
    optimizer = summary.get("optimizer_start") or {}
    if start.get("warm") and optimizer:  # Adam's state carried over (components/warm_start.restore_moments)
        lines.append(f"Optimizer: {optimizer.get('reason', '')}; learning rate {_fmt(summary.get('learning_rate'), '.3g')}.")
    lines.append(f"Parameters: {summary.get('parameters', '?')}; epochs: {summary.get('epochs', len(next(iter(history.values()))))}.")
    stopping = summary.get("early_stopping") or {}
    if stopping.get("active"):
        lines.append(f"Early stopping on {stopping['monitor']} (held-out requests of the training window): "
                     f"{summary.get('epochs_run', '?')} epoch(s) run, the weights of epoch {stopping['best_epoch']} "
                     f"({stopping['monitor']} {_fmt(stopping['best'])}) exported.")
    lines += ["", "| curve | first epoch | last epoch |", "|---|---|---|"]
    for name, values in sorted(history.items()):
        if values:
            lines.append(f"| {name} | {_fmt(values[0])} | {_fmt(values[-1])} |")
    return lines + ["", "![training curves](training_curves.png)", ""]


def history_section(cfg: config_lib.Config, history: List[Dict[str, object]]) -> List[str]:
    binary = [t.name for t in cfg.tasks if t.type == "binary"]
    lines = ["## Across runs: AUC per day", "", "| run date | blessed | " + " | ".join(f"{t} AUC" for t in binary)
             + " |", "|---|---|" + "---|" * len(binary)]
    for h in history:
        metrics = h["metrics"]
        lines.append(f"| {h['run_date'] or h['run_id']} | {'yes' if h['blessed'] else 'no'} | "
                     + " | ".join(_fmt(metrics.get(t, {}).get("auc")) for t in binary) + " |")
    return lines + ["", "![AUC per day](auc_by_day.png)", ""]


# ---- plots -----------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_calibration(path: Path, calibration: Dict[str, List[Dict[str, float]]], tasks: Sequence[str]) -> bool:
    tasks = [t for t in tasks if calibration.get(t)]
    if not tasks:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        buckets = calibration[task]
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
        ax.plot([b["mean_prediction"] for b in buckets], [b["mean_label"] for b in buckets], marker="o", label="model")
        top = max(max(b["mean_prediction"] for b in buckets), max(b["mean_label"] for b in buckets)) * 1.1
        ax.set_xlim(0, min(1, top)), ax.set_ylim(0, min(1, top))
        ax.set_title(f"{task}: calibration"), ax.set_xlabel("mean prediction in bucket"), ax.set_ylabel("observed rate")
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_training(path: Path, history: Dict[str, List[float]]) -> bool:
    if not history:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in sorted(history.items()):
        if values and "loss" in name:
            ax.plot(range(1, len(values) + 1), values, marker=".", label=name,
                    linestyle="--" if name.startswith("val_") else "-")
    ax.set_xlabel("epoch"), ax.set_ylabel("loss"), ax.set_title("training curves (val_ = held-out validation rows)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_gates(path: Path, weights: Dict[str, List[float]], experts: Dict[str, List[str]]) -> bool:
    if not weights:
        return False
    plt = _pyplot()
    columns = list(dict.fromkeys(label for task in weights for label in (experts.get(task) or
                                                                       [f"expert_{i}" for i in range(len(weights[task]))])))
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(columns) * len(weights)), 3.5))
    width = 0.8 / len(weights)
    for i, (task, values) in enumerate(weights.items()):
        labels = experts.get(task) or [f"expert_{j}" for j in range(len(values))]
        xs = [columns.index(label) + i * width for label in labels]
        ax.bar(xs, values, width=width, label=task)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(columns))], columns, rotation=30, fontsize=7)
    ax.set_ylabel("mean gate weight"), ax.set_title("gate weights per task"), ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_auc_by_day(path: Path, history: List[Dict[str, object]], tasks: Sequence[str]) -> bool:
    if not history:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    days = [str(h["run_date"] or h["run_id"]) for h in history]
    for task in tasks:
        ax.plot(days, [h["metrics"].get(task, {}).get("auc", float("nan")) for h in history], marker="o", label=task)
    for i, h in enumerate(history):
        if h["blessed"] is False:
            ax.axvline(i, color="red", alpha=0.2)
    ax.set_ylabel("AUC (overall)"), ax.set_title("AUC per evaluated day (red: not blessed)"), ax.legend()
    ax.tick_params(axis="x", rotation=30, labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# ---- the report ------------------------------------------------------------------------------------------


def build_report(cfg: config_lib.Config, result: results.RunResult, out_dir: os.PathLike,
                 history: Optional[List[Dict[str, object]]] = None, summary: Optional[dict] = None) -> Path:
    """Writes report.md and its plots into `out_dir`; returns the report's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = training_summary(result) if summary is None else summary
    history = history or []
    binary = [t.name for t in cfg.tasks if t.type == "binary"]
    window = result.window()
    lines = [f"# Run report: {result.run_date or result.run_id}", "",
             f"Pipeline `{result.pipeline_name}`, run `{result.run_id}`, configuration `{cfg.source}`."]
    if window:
        lines.append(f"Trained on {', '.join(window['train'])}; evaluated on {window['eval']}.")
    lines.append("")
    lines += blessing_section(cfg, result)
    lines += overall_section(cfg, result)
    if plot_calibration(out / "calibration.png", result.calibration, binary):
        lines += ["![calibration](calibration.png)", "",
                  "Calibration plot: each point is a bucket of predictions (overall slice); on the diagonal the "
                  "predicted probabilities are the observed rates. ECE is the weighted mean distance to it.", ""]
    lines += ranking_section(cfg, result, out)
    lines += slice_section(cfg, result)
    plot_gates(out / "gate_weights.png", summary.get("gate_weights") or {}, summary.get("gate_experts") or {})
    lines += gate_section(summary)
    plot_training(out / "training_curves.png", summary.get("history") or {})
    lines += training_section(summary)
    if history:
        plot_auc_by_day(out / "auc_by_day.png", history, binary)
        lines += history_section(cfg, history)
    path = out / REPORT_FILE
    path.write_text("\n".join(lines))
    return path


def write_run_report(cfg: config_lib.Config, workspace, result: results.RunResult) -> Optional[Path]:
    """The hook after every run (`workspace` is a local_runner.Workspace): writes
    `<workspace>/reports/<run date>/report.md`. A report that cannot be written is reported and does not
    fail a run whose model was already judged (and maybe pushed)."""
    try:
        history = results.run_history(str(workspace.metadata_path), result.pipeline_name)
        path = build_report(cfg, result, report_dir(workspace.root, result), history=history)
    except Exception as e:  # noqa: BLE001 - the report is a view of the run, not part of it
        print(f"[report] could not write the run report: {type(e).__name__}: {e}", flush=True)
        return None
    print(f"[report] {path}", flush=True)
    return path
