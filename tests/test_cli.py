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
