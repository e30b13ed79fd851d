"""The run report: built from a hand-made result (fast), and from the shared real pipeline run (slow)."""

import math

import pytest

from pipeline import report, results


def _result(blessed=False):
    overall = {"click": {"auc": 0.70, "auc_diff": -0.03, "gauc": 0.62, "auc_precision_recall": 0.2,
                         "binary_crossentropy": 0.25, "calibration": 1.02, "expected_calibration_error": 0.004,
                         "mean_label": 0.08, "mean_prediction": 0.081, "example_count": 1000.0},
               "purchase": {"auc": 0.75, "auc_diff": 0.001, "example_count": 1000.0, "mean_label": 0.01},
               "dwell": {"mean_squared_error": 0.9, "mean_squared_error_diff": 0.01, "example_count": 80.0}}
    slices = {"device=mobile": {"click": {"auc": 0.68, "example_count": 600.0, "mean_label": 0.08}},
              "device=tablet": {"click": {"auc": 0.0, "example_count": 5.0, "mean_label": 0.0}}}
    return results.RunResult(
        pipeline_name="mtrank-impressions", run_id="run-1", components={}, metrics={"Overall": overall, **slices},
        validation_ok=blessed, validation_failures=[] if blessed else [
            "click auc change vs. the model in production = -0.0300 does not meet ..."],
        blessed=blessed, pushed_path=None, oracle_auc={"click": 0.80, "purchase": 0.85}, eval_rows=1000,
        oracle_auc_by_slice={"device=mobile": {"click": 0.79}, "device=tablet": {"click": math.nan}},
        calibration={"click": [{"lower": 0.0, "upper": 0.1, "weight": 900.0, "mean_prediction": 0.05, "mean_label": 0.06},
                               {"lower": 0.1, "upper": 0.2, "weight": 100.0, "mean_prediction": 0.15, "mean_label": 0.12}]})


def test_the_backfill_table_shows_each_days_calibration_in_columns_as_wide_as_their_names(cfg):
    """A warm chain drifting off calibration (issue 15: mean predicted CTR 0.083 -> 0.063 while the true rate
    stayed 0.079) shows day by day; a long task name does not push its figures out of their column."""
    import dataclasses
    import datetime as dt

    from pipeline import daily

    long_cfg = cfg.replace(tasks=[dataclasses.replace(t, name="click_through_long_name") if t.name == "click" else t
                                  for t in cfg.tasks])
    result = _result()
    result.metrics["Overall"]["click_through_long_name"] = result.metrics["Overall"]["click"]
    days = [daily.DayOutcome(dt.date(2026, 11, d), "pushed", 12.5, 1, result, {"warm_start": {"warm": d > 2}})
            for d in (2, 3)]
    lines = daily.format_days(long_cfg, days).splitlines()
    head = lines[0]
    assert "click_through_long_name AUC" in head and "click_through_long_name calib" in head
    for line in lines[1:]:
        assert len(line) == len(head)
        for title, figure in (("click_through_long_name AUC", "0.7000"), ("click_through_long_name calib", "1.0200"),
                              ("purchase AUC", "0.7500")):
            end = head.index(title) + len(title)  # every figure right-aligned under its own title
            assert line[end - len(figure):end] == figure, (title, line)
    assert lines[2].split()[2] == "warm" and lines[1].split()[2] == "cold"


def test_report_says_why_a_model_was_not_blessed_and_where_it_is_weak(cfg, tmp_path):
    history = [{"run_id": "r0", "run_date": "2026-11-02", "blessed": True, "metrics": {"click": {"auc": 0.73}}},
               {"run_id": "r1", "run_date": "2026-11-03", "blessed": False, "metrics": {"click": {"auc": 0.70}}}]
    summary = {"history": {"loss": [0.5, 0.4], "val_loss": [0.55, 0.45]}, "parameters": 1234,
               "gate_weights": {"click": [0.7, 0.3], "purchase": [0.2, 0.8]},
               "gate_experts": {"click": ["expert_0", "expert_1"], "purchase": ["expert_0", "expert_1"]}}
    path = report.build_report(cfg, _result(blessed=False), tmp_path, history=history, summary=summary)
    text = path.read_text()
    assert "**Not blessed**" in text
    assert "| click | auc | 0.7000 | ≥ 0.6 | 0.7300 | -0.0300 | −0.01 | fails |" in text
    assert "| purchase | auc | 0.7500 |" in text and "passes" in text
    assert "| dwell | mean_squared_error | 0.9000 | ≤ 4 |" in text  # lower is better: a ceiling, not a floor
    assert "Weakest: device=mobile (0.6800)" in text  # the 5-row one-class tablet slice is not called weakest
    assert "| device=tablet | – |" in text  # AUC 0.0 of a one-class slice is shown as undefined
    assert "| click | 0.7000 | 0.8000 | 0.1000 | 0.6200 |" in text  # AUC, oracle, gap, GAUC
    for png in ("calibration.png", "training_curves.png", "gate_weights.png", "auc_by_day.png"):
        assert (tmp_path / png).stat().st_size > 1000, png
        assert f"({png})" in text


@pytest.mark.slow
def test_the_real_run_writes_a_report_with_every_metric_per_task_and_slice(pipeline_run):
    cfg, result, workspace = pipeline_run.cfg, pipeline_run.result, pipeline_run.workspace
    # the metrics of the issue, per task, on the overall slice and on every configured slice kind
    kinds = {tuple(col for col, _ in results.parse_slice_name(name)) for name in result.metrics}
    assert kinds == {(), ("device",), ("category",), ("position",), ("device", "position")}
    for slice_name in ("Overall", "device=mobile", "position=1"):
        for task in ("click", "purchase"):
            m = result.metrics[slice_name][task]
            for name in ("auc", "auc_precision_recall", "binary_crossentropy", "calibration",
                         "expected_calibration_error", "gauc", "example_count"):
                assert name in m and math.isfinite(m[name]), (slice_name, task, name)
        dwell = result.metrics[slice_name]["dwell"]
        for name in ("mean_squared_error", "mean_absolute_error", "mean_label", "mean_prediction"):
            assert math.isfinite(dwell[name]), (slice_name, name)
    assert 0.5 < result.metric("click", "gauc") < 1.0
    assert result.metrics["Overall"]["click"]["gauc_groups"] > 10
    # the oracle per task and slice, on the same rows
    assert result.oracle_auc_by_slice["Overall"]["click"] == pytest.approx(result.oracle_auc["click"])
    assert result.oracle_auc_by_slice["device=mobile"]["click"] > result.metric("click", "auc", "device=mobile")
    cross = next(name for name in result.metrics if " * " in name)
    for name in ("position=1", "position=10", cross):  # int-valued and crossed slices find their rows too
        assert 0.5 < result.oracle_auc_by_slice[name]["click"] < 1.0, name
    assert len(result.calibration["click"]) >= 3  # calibration plot buckets
    # the report the run_day hook wrote
    path = report.report_dir(workspace.root, result) / report.REPORT_FILE
    text = path.read_text()
    for heading in ("## Blessing", "## How good is each task", "## The ranked lists", "## Per slice",
                    "## Gate weights", "## Training", "## Across runs"):
        assert heading in text, heading
    for png in ("calibration.png", "training_curves.png", "gate_weights.png", "auc_by_day.png", "fusion_pareto.png"):
        assert (path.parent / png).exists(), png
    history = results.run_history(str(workspace.metadata_path), result.pipeline_name)
    assert [h["run_date"] for h in history][-1] == result.run_date
