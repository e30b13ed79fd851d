import dataclasses
import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pytest

from mtrank import simulate
from mtrank.metrics import auc


@pytest.fixture(scope="module")
def day():
    world = simulate.build_world(simulate.SimulatorSpec(seed=3))
    return simulate.simulate_day(world, 20_000, 200_000)


def test_purchase_only_after_click(day):
    assert day["purchase"].sum() > 0
    assert np.all(day["click"][day["purchase"] == 1] == 1)
    assert np.all(day["dwell_seconds"][day["click"] == 0] == 0)
    assert np.all(day["dwell_seconds"][day["click"] == 1] > 0)


def test_rates_hit_their_targets(day):
    spec = simulate.SimulatorSpec()
    assert day["click"].mean() == pytest.approx(spec.click_rate, rel=0.06)
    assert day["purchase"].sum() / day["click"].sum() == pytest.approx(spec.conversion_rate, rel=0.08)


def test_true_probabilities_are_consistent_and_informative(day):
    np.testing.assert_allclose(day["true_p_purchase"], day["true_p_click"] * day["true_p_purchase_given_click"])
    assert day["true_p_click"].mean() == pytest.approx(day["click"].mean(), rel=0.05)
    assert auc(day["click"], day["true_p_click"]) > 0.7  # the oracle ranks clicks far better than chance
    assert auc(day["purchase"], day["true_p_purchase"]) > 0.75


def test_position_bias_lowers_clicks_further_down_the_list(day):
    top = day["click"][day["position"] == 1].mean()
    bottom = day["click"][day["position"] == 10].mean()
    assert top > 2 * bottom


@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0])
def test_correlation_sets_the_angle_between_click_and_purchase_drivers(rho):
    world = simulate.build_world(simulate.SimulatorSpec(correlation=rho))
    assert float(world.w_click @ world.w_purchase) == pytest.approx(rho, abs=1e-9)
    assert np.linalg.norm(world.w_purchase) == pytest.approx(1.0)


def test_correlation_out_of_range_is_refused():
    with pytest.raises(ValueError, match="correlation"):
        simulate.build_world(simulate.SimulatorSpec(correlation=1.5))


def _digest(paths):
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


@pytest.mark.parametrize("option, spec", [("--click-rate", {"click_rate": 0.6}),
                                          ("--conversion-rate", {"conversion_rate": 1.0})])
def test_a_rate_the_world_cannot_reach_is_refused_with_the_reachable_range(option, spec):
    """The highest click rate is the mean examination probability (about 0.445 with 10 items and decay 0.6):
    a bisection silently returned an intercept of 20 there; the message names the option and the range."""
    with pytest.raises(ValueError, match=rf"{option} .* cannot be simulated: .* between"):
        simulate.build_world(simulate.SimulatorSpec(**spec))


def test_deterministic_for_a_seed_and_one_folder_per_day(tmp_path):
    spec = simulate.SimulatorSpec(seed=11)
    a = simulate.simulate(tmp_path / "a", dt.date(2026, 11, 1), 2, 3_000, spec)
    b = simulate.simulate(tmp_path / "b", dt.date(2026, 11, 1), 2, 3_000, spec)
    c = simulate.simulate(tmp_path / "c", dt.date(2026, 11, 1), 2, 3_000, simulate.SimulatorSpec(seed=12))
    assert [p.parent.name for p in a] == ["2026-11-01", "2026-11-02"]
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    # A day is the same whichever day a backfill starts from.
    d = simulate.simulate(tmp_path / "d", dt.date(2026, 11, 2), 1, 3_000, spec)
    assert _digest(d) == _digest(a[1:])


def test_csv_has_header_oracle_columns_and_float_points(tmp_path):
    (path,) = simulate.simulate(tmp_path, dt.date(2026, 11, 1), 1, 500)
    frame = pd.read_csv(path)
    assert list(frame.columns) == simulate.COLUMNS
    assert {"true_p_click", "true_p_purchase_given_click", "true_p_purchase"} <= set(frame.columns)
    assert frame["true_p_click"].between(0, 1).all()
    lines = path.read_text().splitlines()[1:50]
    price_column = simulate.COLUMNS.index("price")
    assert all("." in line.split(",")[price_column] for line in lines)  # stays FLOAT for CsvExampleGen


def test_users_and_items_arrive_each_day_and_the_first_day_is_the_world_without_arrivals(tmp_path):
    """The learning-curve benchmark's world: the first day is exactly the world without arrivals (same
    users, items and draws); later days show newcomers, ids beyond the first day's, more of them each day."""
    spec = simulate.SimulatorSpec(num_users=300, num_items=200, seed=4)
    growing = dataclasses.replace(spec, new_users_per_day=30, new_items_per_day=20)
    fixed = simulate.simulate(tmp_path / "fixed", dt.date(2026, 11, 1), 1, 20_000, spec)
    days = simulate.simulate(tmp_path / "growing", dt.date(2026, 11, 1), 3, 20_000, growing)
    assert _digest(days[:1]) == _digest(fixed)

    def newcomers(path):
        frame = pd.read_csv(path)
        return ((frame["user_id"].str[1:].astype(int) >= 300).sum(),
                (frame["item_id"].str[1:].astype(int) >= 200).sum(),
                frame["user_id"].str[1:].astype(int).max(), frame["item_id"].str[1:].astype(int).max())

    first, second, third = (newcomers(p) for p in days)
    assert first[:2] == (0, 0)
    assert 0 < second[0] < third[0] and 0 < second[1] < third[1]
    assert second[2] < 330 <= third[2] < 360 and second[3] < 220 <= third[3] < 240
    # A day's newcomers do not depend on how many days the world was simulated for.
    shorter = simulate.simulate(tmp_path / "shorter", dt.date(2026, 11, 1), 2, 20_000, growing)
    assert _digest(shorter) == _digest(days[:2])
    with pytest.raises(ValueError, match="arrival_days"):
        simulate.build_world(growing)  # arrivals without a horizon would silently be none
