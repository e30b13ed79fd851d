"""Data that cannot be true never trains: DayWindow's checks of encodings, headers and label semantics
(components/input_checks.py, components/label_checks.py), each with the message a person acts on.

Unit tests on real simulated files through `check_window`, the function DayWindow runs; one test runs
`mtrank run` on a day with impossible labels: exit code 2, one message, nothing trained.
"""

import dataclasses
import datetime as dt
import gzip
import re

import numpy as np
import pandas as pd
import pytest

from components import input_checks, label_checks
from mtrank import config as config_lib
from mtrank import simulate

START = dt.date(2026, 7, 1)
ROWS = 12_000  # the default configuration's evaluated day needs 10,000 rows and 50 purchases


@pytest.fixture(scope="module")
def rules(cfg):
    return label_checks.LabelRules.from_config(cfg)


@pytest.fixture()
def window(tmp_path):
    """Two days (train_1, eval) that pass every check; tests break one thing each."""
    files = simulate.simulate(tmp_path / "data", START, 2, ROWS)
    patterns = {(START + dt.timedelta(days=k)).isoformat(): f"{(START + dt.timedelta(days=k)).isoformat()}/*.csv"
                for k in (0, 1)}
    return tmp_path / "data", patterns, files


def _error(window, rules, kind=label_checks.LabelError) -> str:
    data_root, patterns, _ = window
    with pytest.raises(kind) as caught:
        input_checks.check_window(str(data_root), patterns, rules)
    return str(caught.value)


def _edit(path, change):
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    change(frame)
    frame.to_csv(path, index=False)


def test_a_clean_window_passes_and_counts_labels(window, rules):
    data_root, patterns, _ = window
    checked = input_checks.check_window(str(data_root), patterns, rules)
    counts = checked[START.isoformat()]["labels"]
    assert counts.rows == ROWS and 0.05 < counts.positives["click"] / ROWS < 0.12
    assert counts.positives["purchase"] >= 50 and not counts.impossible


def test_a_purchase_without_a_click_is_named_with_file_lines_and_count(window, rules):
    _, _, files = window
    rows = []

    def break_labels(frame):
        no_click = np.flatnonzero(frame["click"].to_numpy() == "0")[:360]  # 3 % of the day
        frame.loc[no_click, "purchase"] = "1"
        rows.extend(no_click)

    _edit(files[1], break_labels)
    message = _error(window, rules)
    day = (START + dt.timedelta(days=1)).isoformat()
    assert f"day {day}: file {files[1]}" in message
    assert "360 of 12,000 rows (3.00 %) have purchase = 1 where click = 0" in message
    assert f"lines {rows[0] + 2}, {rows[1] + 2}" in message  # line 1 is the header
    assert "'purchase' follows the 'click' task" in message and "nothing was trained on them" in message


def test_a_day_with_every_label_zero_stops(window, rules):
    _, _, files = window

    def no_clicks(frame):
        frame["click"] = "0"
        frame["purchase"] = "0"

    _edit(files[0], no_clicks)
    message = _error(window, rules)
    assert f"day {START}" in message and "column 'click' (task 'click') has no positive among 12,000 rows" in message


def test_a_rate_outside_the_configured_band_stops(window, rules):
    _, _, files = window

    def click_rate_60_percent(frame):
        frame["click"] = np.where(np.arange(len(frame)) % 10 < 6, "1", "0")
        frame["purchase"] = "0"
        frame.loc[np.arange(100) * 10, "purchase"] = "1"  # on clicked rows

    _edit(files[1], click_rate_60_percent)
    message = _error(window, rules)
    assert "the 'click' rate is 0.6000" in message and "outside the band [0.005, 0.5]" in message


def test_a_rate_far_from_the_other_days_stops_but_a_small_days_noise_does_not(window, rules, tmp_path):
    _, _, files = window

    def quarter_of_the_clicks(frame):
        clicked = np.flatnonzero(frame["click"].to_numpy() == "1")
        drop = clicked[np.arange(len(clicked)) % 4 != 0]
        frame.loc[drop, ["click", "purchase"]] = "0"

    _edit(files[1], quarter_of_the_clicks)
    message = _error(window, rules)
    assert re.search(r"the 'click' rate 0\.0\d+ is [34]\.\dx below the median", message), message
    assert "Fisher's exact test p = " in message and "tolerates 3.0x (data.max_label_rate_ratio)" in message

    # 300-row days: a 3.5x difference in purchases (2 against 7) is noise, and is let through.
    small = simulate.simulate(tmp_path / "small", START, 2, 300)
    for path, purchases in zip(small, (2, 7)):
        def set_purchases(frame, n=purchases):
            frame["click"] = np.where(np.arange(len(frame)) % 10 == 0, "1", "0")
            frame["purchase"] = np.where(np.arange(len(frame)) % 10 == 0, "0", "0")
            frame.loc[np.arange(n) * 10, "purchase"] = "1"
        _edit(path, set_purchases)
    patterns = {(START + dt.timedelta(days=k)).isoformat(): f"{(START + dt.timedelta(days=k)).isoformat()}/*.csv"
                for k in (0, 1)}
    no_minimum = dataclasses.replace(rules, min_eval_rows=0, min_eval_positives=0)
    input_checks.check_window(str(tmp_path / "small"), patterns, no_minimum)


def test_an_evaluated_day_too_small_for_its_thresholds_says_what_it_needs(tmp_path, rules):
    files = simulate.simulate(tmp_path / "data", START, 2, 5_000)

    def twenty_purchases(frame):
        clicked = np.flatnonzero(frame["click"].to_numpy() == "1")
        frame["purchase"] = "0"
        frame.loc[clicked[:20], "purchase"] = "1"

    _edit(files[1], twenty_purchases)
    patterns = {(START + dt.timedelta(days=k)).isoformat(): f"{(START + dt.timedelta(days=k)).isoformat()}/*.csv"
                for k in (0, 1)}
    message = _error((tmp_path / "data", patterns, None), rules)
    assert f"day {START + dt.timedelta(days=1)}" in message and "too small to judge" in message
    assert "5,000 rows (needs 10,000, evaluation.min_rows)" in message
    assert "20 positives for purchase (needs 50, evaluation.min_positives)" in message


@pytest.mark.parametrize("defect,expected", [
    ("gzip", "is gzip-compressed, not CSV text"),
    ("bom", "starts with a UTF-8 byte-order mark (BOM"),
    ("binary", "holds a NUL byte at byte"),
    ("latin-1", "is not UTF-8"),
])
def test_every_file_of_a_day_is_checked_for_its_encoding(window, rules, defect, expected):
    _, _, files = window
    second = files[1].parent / "impressions-2.csv"  # a second file of the day, after a good first one
    text = files[1].read_bytes()
    body = {"gzip": gzip.compress(text), "bom": b"\xef\xbb\xbf" + text, "binary": b"\x00\x01\x02" * 100,
            "latin-1": text.replace(b"mobile", "mobilé".encode("latin-1"), 1)}[defect]
    second.write_bytes(body)
    message = _error(window, rules, input_checks.BadInputError)
    assert f"file {second}" in message and expected in message


def test_a_second_file_with_another_column_order_is_named(window, rules):
    _, _, files = window
    frame = pd.read_csv(files[1], keep_default_na=False, dtype=str)
    columns = list(frame.columns)
    columns[1], columns[2] = columns[2], columns[1]
    second = files[1].parent / "z-more.csv"
    frame[columns].head(100).to_csv(second, index=False)
    message = _error(window, rules, input_checks.BadInputError)
    assert f"file {second} has the columns of file {files[1]} in another order" in message


def test_rules_survive_the_trip_through_the_pipeline_parameter(rules):
    assert label_checks.LabelRules.from_json(rules.to_json()) == rules
    assert [t.name for t in rules.tasks] == ["click", "purchase"] and rules.tasks[1].follows_label == "click"


def test_label_settings_are_validated(cfg):
    raw = config_lib.yaml.safe_load(config_lib.DEFAULT_CONFIG_PATH.read_text())
    raw["tasks"][0]["rate_band"] = [0.5, 0.1]
    with pytest.raises(config_lib.ConfigError, match="rate_band must be"):
        config_lib.from_dict(raw, "x.yaml")
    raw["tasks"][0]["rate_band"] = None
    raw["data"]["max_label_rate_ratio"] = 0.5
    with pytest.raises(config_lib.ConfigError, match="max_label_rate_ratio must be > 1"):
        config_lib.from_dict(raw, "x.yaml")


@pytest.mark.slow
def test_mtrank_run_on_impossible_labels_exits_2_with_one_message_and_trains_nothing(window, tmp_path, capsys):
    from mtrank import cli

    data_root, _, files = window
    _edit(files[1], lambda frame: frame.__setitem__("purchase", np.where(frame["click"] == "0", "1", "0")))
    workspace = tmp_path / "workspace"
    code = cli.main(["run", "--workspace", str(workspace), "--data-root", str(data_root),
                     "--date", (START + dt.timedelta(days=1)).isoformat()])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("mtrank: day ") and "where click = 0" in err and "Traceback" not in err
    log_file = re.search(r"\(traceback: (\S+)\)", err).group(1)
    assert "Traceback" in open(log_file).read()  # the detail is in the run's log
    assert not (workspace / "pipeline_root" / "mtrank-impressions" / "Transform").exists()


def _counts(rows, clicks, purchases):
    return label_checks.LabelCounts(rows=rows, positives={"click": clicks, "purchase": purchases})


def test_the_minimums_apply_to_the_evaluators_sample_of_a_large_day(rules):
    patterns = {"2026-07-01": "2026-07-01/*.csv", "2026-07-02": "2026-07-02/*.csv"}
    days = {"2026-07-01": _counts(100_000, 8_000, 800), "2026-07-02": _counts(100_000, 8_000, 240)}
    # 240 purchases in 100,000 rows: the 20,000-row sample holds ~48, under the 50 the thresholds need.
    with pytest.raises(label_checks.LabelError, match=r"48 positives for purchase in the Evaluator's sample of "
                                                      r"~20,000 rows \(evaluation.max_eval_rows\) \(needs 50"):
        label_checks.check_days(dataclasses.replace(rules, max_rate_ratio=0), days, patterns, "2026-07-02")


def test_only_the_evaluated_day_is_compared_so_an_accepted_shift_stops_no_later_run(rules):
    patterns = {d: f"{d}/*.csv" for d in ("2026-07-01", "2026-07-02", "2026-07-03")}
    # The click rate halved... tripled on 07-02 and was accepted then; 07-03 keeps the new rate.
    days = {"2026-07-01": _counts(20_000, 800, 80), "2026-07-02": _counts(20_000, 3_000, 90),
            "2026-07-03": _counts(20_000, 3_100, 95)}
    label_checks.check_days(rules, days, patterns, "2026-07-03")


def test_a_small_day_without_purchases_is_plausible_a_large_one_is_not(rules):
    patterns = {"2026-07-01": "2026-07-01/*.csv", "2026-07-02": "2026-07-02/*.csv"}
    no_minimum = dataclasses.replace(rules, min_eval_rows=0, min_eval_positives=0)
    small = {"2026-07-01": _counts(300, 30, 0), "2026-07-02": _counts(12_000, 960, 108)}  # 0.991^300 = 7 %
    label_checks.check_days(no_minimum, small, patterns, "2026-07-02")
    large = {"2026-07-01": _counts(12_000, 960, 0), "2026-07-02": _counts(12_000, 960, 108)}
    with pytest.raises(label_checks.LabelError, match="has no positive among 12,000 rows"):
        label_checks.check_days(no_minimum, large, patterns, "2026-07-02")
