"""`mtrank run --direct-running-mode auto`: the Beam mode that measured faster for the window's size."""

import datetime as dt

from pipeline import local_runner


def _day(root, date: str, size: int) -> None:
    folder = root / date
    folder.mkdir(parents=True)
    (folder / "impressions.csv").write_bytes(b"x" * size)


def test_the_window_is_measured_over_the_evaluated_day_and_the_days_before_it(tmp_path):
    for i, size in enumerate([1000, 200, 30, 4]):
        _day(tmp_path, (dt.date(2026, 11, 1) + dt.timedelta(days=i)).isoformat(), size)
    pattern = "{YYYY}-{MM}-{DD}/*.csv"
    assert local_runner.window_bytes(str(tmp_path), pattern, "2026-11-03", 2) == 1230  # 11-03 plus 11-01, 11-02
    assert local_runner.window_bytes(str(tmp_path), pattern, "", 1) == 34  # empty run date: the newest day


def test_small_windows_stay_in_process_and_large_ones_use_every_core():
    small, why = local_runner.choose_running_mode(4 * 2**20)  # a 50k-row day
    assert small == "in_memory" and "4 MiB" in why
    large, why = local_runner.choose_running_mode(120 * 2**20)  # 1.5M rows
    assert large == "multi_processing" and "120 MiB" in why
