import os
import subprocess
import sys

import pandas as pd

from mtrank import cli


def _mtrank(*args):
    exe = os.path.join(os.path.dirname(sys.executable), "mtrank")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def test_help_lists_the_subcommands():
    out = _mtrank("--help")
    assert out.returncode == 0
    for command in ("simulate", "run"):
        assert command in out.stdout
    for command in ("simulate", "run"):
        sub = _mtrank(command, "--help")
        assert sub.returncode == 0 and "--config" in sub.stdout


def test_simulate_writes_day_folders(tmp_path):
    assert cli.main(["simulate", "--out", str(tmp_path), "--days", "2", "--rows-per-day", "300",
                     "--start", "2026-11-05"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-11-05", "2026-11-06"]
    assert len(pd.read_csv(tmp_path / "2026-11-06" / "impressions.csv")) == 300


def test_bad_configuration_is_reported_not_thrown(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {root: x}\nfeatures: []\ntasks: []\n")
    assert cli.main(["simulate", "--config", str(bad), "--out", str(tmp_path)]) == 2
    assert f"{bad}: 'features' is empty" in capsys.readouterr().err


def test_span_of_a_date_is_the_span_tfx_gives_its_folder():
    import datetime as dt

    from tfx.components.example_gen import utils

    assert cli.span_of(dt.date(1970, 1, 2)) == 1
    assert cli.span_of(dt.date(2026, 11, 3)) == utils.date_to_span_number(2026, 11, 3)


def test_every_refusal_is_one_message_with_exit_code_2(tmp_path, capsys, monkeypatch):
    """DataGate's refusal (a ValueError since issue 16) and a day the Evaluator did not bless both exit 2
    with one line per refusal on stderr, never a traceback; serving is untouched."""
    import datetime as dt
    import types

    from components import data_gate
    from pipeline import daily, report, results

    def gate_refuses(*args, **kwargs):
        error = data_gate.DataAnomalyError("1 data anomaly against the curated schema; the run stops before "
                                           "Transform, nothing is trained or pushed:\n  day 2026-11-03 ...")
        error.log_file = str(tmp_path / "run.log")
        raise error

    monkeypatch.setattr(daily, "run_day", gate_refuses)
    assert cli.main(["run", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mtrank: 1 data anomaly") and f"(traceback: {tmp_path / 'run.log'})" in err
    assert "Traceback (most recent call last)" not in err

    refused = types.SimpleNamespace(day=dt.date(2026, 11, 3), status="not blessed", seconds=1.0, result=types.SimpleNamespace(
        validation_failures=["click auc value = 0.5500 does not meet lower_bound 0.6"]))
    monkeypatch.setattr(daily, "run_day", lambda *a, **k: refused)
    monkeypatch.setattr(results, "format_run", lambda *a: "table")
    monkeypatch.setattr(report, "report_dir", lambda *a: tmp_path)
    assert cli.main(["run", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == ("mtrank: 2026-11-03 was not blessed (click auc value = 0.5500 does not meet lower_bound 0.6); "
                   "nothing was pushed and serving keeps the model in production.\n")
