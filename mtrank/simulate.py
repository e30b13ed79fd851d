"""Impression simulator with ground truth: the project's default data set.

Why simulate: only on data whose true click and purchase probabilities are known can an evaluation
say how far a model is from the best possible ranking (the oracle, or Bayes, AUC).

The world: users and items live in a latent space; items belong to categories and have prices. A
request shows one user a list of items at positions 1..L on a device at an hour of the day.

    affinity z = u ⊙ v (element-wise, so each coordinate is a unit-variance "reason to like")
    click logit    = b_c + w_c·z + user bias + item popularity + device + hour + price effects
    purchase logit = b_p + w_p·z + user bias - price sensitivity · log(price) + device
    w_c = u1, w_p = ρ·u1 + √(1−ρ²)·u2 with u1 ⟂ u2, so ρ (`correlation`) is the correlation
    of what drives clicks and what drives purchases, as in the MMoE paper's synthetic study.
    p_click = examine(position) · σ(click logit)         (position bias: people look at the top)
    purchase only after a click, with p_purchase_given_click = σ(purchase logit)
    dwell seconds (clicked rows only) = exp(μ + 0.5·purchase logit + noise)

Intercepts b_c and b_p are solved so the mean click and conversion rates hit their targets. The
true probabilities are written in `true_p_*` columns that the schema marks as never being inputs.
`oracle_p_click` and `oracle_p_purchase` are the same probabilities without the position factor (the
item's own appeal, had it been examined): what a re-ranking moves, so the counterfactual value of any
order of a request's items is Σ over ranks r of examine(r) × oracle_p of the item placed at r
(mtrank/ranking.py), with nothing to divide out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from scipy import optimize

COLUMNS = [
    "request_id",
    "user_id",
    "user_segment",
    "item_id",
    "category",
    "price",
    "device",
    "hour",
    "position",
    "click",
    "purchase",
    "dwell_seconds",
    "true_p_click",
    "true_p_purchase_given_click",
    "true_p_purchase",
    "oracle_p_click",
    "oracle_p_purchase",
]
FLOAT_FORMATS = {
    "price": "%.2f",
    "dwell_seconds": "%.1f",
    "true_p_click": "%.6f",
    "true_p_purchase_given_click": "%.6f",
    "true_p_purchase": "%.6f",
    "oracle_p_click": "%.6f",
    "oracle_p_purchase": "%.6f",
}
DEVICES = np.array(["mobile", "desktop", "tablet"])
DAY_FOLDER_FORMAT = "%Y-%m-%d"  # matches the span pattern {YYYY}-{MM}-{DD}: a day is a span


@dataclasses.dataclass(frozen=True)
class SimulatorSpec:
    num_users: int = 5_000
    num_items: int = 2_000
    num_categories: int = 24
    num_segments: int = 12  # users' taste clusters, written as `user_segment` (a CRM segment, say)
    latent_dim: int = 8
    list_length: int = 10
    correlation: float = 0.5  # ρ between click and purchase drivers
    click_rate: float = 0.08
    conversion_rate: float = 0.12  # purchases per click
    affinity_scale: float = 1.2
    position_decay: float = 0.6  # examine(pos) = pos ** -decay
    seed: int = 0
    # Arrivals: users and items that join the world each day after its first (num_users/num_items are the
    # first day's). The world holds `arrival_days` days of them; `simulate` sets it to the days it writes.
    # Newcomers are drawn from their own random stream: a world without arrivals is the one it always was.
    new_users_per_day: int = 0
    new_items_per_day: int = 0
    arrival_days: int = 0


@dataclasses.dataclass
class World:
    """The fixed part of the simulation (users, items, effects); days are drawn from it."""

    spec: SimulatorSpec
    user_vec: np.ndarray
    user_segment: np.ndarray
    user_bias: np.ndarray
    user_price_sensitivity: np.ndarray
    item_vec: np.ndarray
    item_category: np.ndarray
    item_popularity: np.ndarray
    item_log_price: np.ndarray
    w_click: np.ndarray
    w_purchase: np.ndarray
    device_click: np.ndarray
    device_purchase: np.ndarray
    click_intercept: float = 0.0
    purchase_intercept: float = 0.0
    first_day: int = 0  # day index (days since 1970-01-01) of the world's first day: arrivals count from it

    def active(self, day_index: int) -> tuple:
        """How many users and items exist on a day: the first day's, plus the arrivals since."""
        s = self.spec
        days = int(np.clip(day_index - self.first_day, 0, s.arrival_days))
        return s.num_users + s.new_users_per_day * days, s.num_items + s.new_items_per_day * days


def _driver_vectors(dim: int, rho: float, rng: np.random.Generator):
    q, _ = np.linalg.qr(rng.normal(size=(dim, 2)))
    u1, u2 = q[:, 0], q[:, 1]
    return u1, rho * u1 + np.sqrt(max(0.0, 1.0 - rho * rho)) * u2


def build_world(spec: SimulatorSpec, first_day: int = 0) -> World:
    if not -1.0 <= spec.correlation <= 1.0:
        raise ValueError(f"correlation must lie in [-1, 1], got {spec.correlation}")
    if min(spec.new_users_per_day, spec.new_items_per_day, spec.arrival_days) < 0:
        raise ValueError("new_users_per_day, new_items_per_day and arrival_days must not be negative")
    if (spec.new_users_per_day or spec.new_items_per_day) and not spec.arrival_days:
        raise ValueError("new_users_per_day/new_items_per_day need arrival_days (how many days of newcomers the "
                         "world holds); simulate() sets it to the days it writes")
    rng = np.random.default_rng(spec.seed)
    d = spec.latent_dim
    category_centres = rng.normal(size=(spec.num_categories, d))
    item_category = rng.integers(0, spec.num_categories, size=spec.num_items)
    item_vec = 0.9 * category_centres[item_category] + 0.45 * rng.normal(size=(spec.num_items, d))
    segment_centres = rng.normal(size=(spec.num_segments, d))
    user_segment = rng.integers(0, spec.num_segments, size=spec.num_users)
    user_vec = 0.9 * segment_centres[user_segment] + 0.45 * rng.normal(size=(spec.num_users, d))
    category_log_price = rng.normal(3.2, 0.8, size=spec.num_categories)
    w_click, w_purchase = _driver_vectors(d, spec.correlation, rng)
    user_bias = rng.normal(0.0, 0.5, size=spec.num_users)
    user_price_sensitivity = np.abs(rng.normal(0.6, 0.3, size=spec.num_users))
    item_popularity = rng.normal(0.0, 0.5, size=spec.num_items)
    item_log_price = category_log_price[item_category] + rng.normal(0.0, 0.4, size=spec.num_items)

    # Newcomers: the same distributions, one stream per arrival day (the first day's world is unchanged by
    # arrivals, and day k's newcomers are the same however many days the world holds).
    for k in range(1, spec.arrival_days + 1):
        extra = np.random.default_rng([spec.seed, 2, k])
        nu, ni = spec.new_users_per_day, spec.new_items_per_day
        new_segment = extra.integers(0, spec.num_segments, size=nu)
        user_segment = np.concatenate([user_segment, new_segment])
        user_vec = np.concatenate([user_vec, 0.9 * segment_centres[new_segment] + 0.45 * extra.normal(size=(nu, d))])
        user_bias = np.concatenate([user_bias, extra.normal(0.0, 0.5, size=nu)])
        user_price_sensitivity = np.concatenate([user_price_sensitivity, np.abs(extra.normal(0.6, 0.3, size=nu))])
        new_category = extra.integers(0, spec.num_categories, size=ni)
        item_category = np.concatenate([item_category, new_category])
        item_vec = np.concatenate([item_vec, 0.9 * category_centres[new_category] + 0.45 * extra.normal(size=(ni, d))])
        item_popularity = np.concatenate([item_popularity, extra.normal(0.0, 0.5, size=ni)])
        item_log_price = np.concatenate([item_log_price,
                                         category_log_price[new_category] + extra.normal(0.0, 0.4, size=ni)])
    world = World(
        spec=spec,
        user_vec=user_vec,
        user_segment=user_segment,
        user_bias=user_bias,
        user_price_sensitivity=user_price_sensitivity,
        item_vec=item_vec,
        item_category=item_category,
        item_popularity=item_popularity,
        item_log_price=item_log_price,
        w_click=w_click,
        w_purchase=w_purchase,
        device_click=np.array([0.15, 0.0, -0.1]),
        device_purchase=np.array([-0.3, 0.25, 0.0]),
        first_day=first_day,
    )
    _calibrate(world, rng)
    return world


def _logits(world: World, users, items, devices, hours):
    s = world.spec
    z = world.user_vec[users] * world.item_vec[items] * s.affinity_scale
    log_price = world.item_log_price[items]
    click = (
        z @ world.w_click
        + world.user_bias[users]
        + world.item_popularity[items]
        + world.device_click[devices]
        + 0.3 * np.sin(2 * np.pi * (hours - 14) / 24.0)
        - 0.1 * (log_price - 3.2)
    )
    purchase = (
        z @ world.w_purchase
        + 0.5 * world.user_bias[users]
        - world.user_price_sensitivity[users] * (log_price - 3.2)
        + world.device_purchase[devices]
    )
    return click, purchase


def _examine(world: World, positions: np.ndarray) -> np.ndarray:
    return positions.astype(np.float64) ** (-world.spec.position_decay)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _solve_intercept(rate, target: float, what: str) -> float:
    """The intercept b in [-20, 20] at which `rate(b)` (increasing in b) meets `target`: scipy's Brent root
    finder. A target the simulated world cannot reach (a click rate above the mean examination probability,
    say) is refused, naming the option and the rates it can reach."""
    low, high = float(rate(-20.0)), float(rate(20.0))
    if not low < target < high:
        raise ValueError(f"{what} {target:g} cannot be simulated: with this world's position decay and list length "
                         f"it must lie between {low:.4g} and {high:.4g}")
    return float(optimize.brentq(lambda b: rate(b) - target, -20.0, 20.0, xtol=1e-12))


def _calibrate(world: World, rng: np.random.Generator) -> None:
    """Finds intercepts so that the mean CTR and the mean CVR (per click) hit their targets."""
    n = 200_000
    users, items, devices, hours, positions = _draw_context(world, n, rng, world.first_day)
    click_logit, purchase_logit = _logits(world, users, items, devices, hours)
    exam = _examine(world, positions)
    world.click_intercept = _solve_intercept(lambda b: np.mean(exam * _sigmoid(click_logit + b)), world.spec.click_rate,
                                             "--click-rate")
    p_click = exam * _sigmoid(click_logit + world.click_intercept)
    # CVR target is per click: weight each row's conversion probability by its click probability.
    world.purchase_intercept = _solve_intercept(
        lambda b: np.sum(p_click * _sigmoid(purchase_logit + b)) / np.sum(p_click), world.spec.conversion_rate,
        "--conversion-rate")


def _draw_context(world: World, n: int, rng: np.random.Generator, day_index: int):
    s = world.spec
    num_users, num_items = world.active(day_index)
    num_requests = -(-n // s.list_length)
    req_users = rng.integers(0, num_users, size=num_requests)
    req_devices = rng.choice(3, size=num_requests, p=[0.6, 0.3, 0.1])
    req_hours = np.clip(np.round(rng.normal(15, 5, size=num_requests)), 0, 23).astype(np.int64)
    users = np.repeat(req_users, s.list_length)[:n]
    devices = np.repeat(req_devices, s.list_length)[:n]
    hours = np.repeat(req_hours, s.list_length)[:n]
    positions = np.tile(np.arange(1, s.list_length + 1), num_requests)[:n]
    # Popular items are shown more often: Zipf-like exposure (a newcomer joins the long tail).
    weights = 1.0 / np.arange(1, num_items + 1) ** 0.8
    items = rng.choice(num_items, size=n, p=weights / weights.sum())
    return users, items, devices, hours, positions


def simulate_day(world: World, day_index: int, rows: int) -> Dict[str, np.ndarray]:
    """Draws one day of impressions; the same (world seed, day_index, rows) always gives the same rows."""
    rng = np.random.default_rng([world.spec.seed, 1 + day_index])
    users, items, devices, hours, positions = _draw_context(world, rows, rng, day_index)
    click_logit, purchase_logit = _logits(world, users, items, devices, hours)
    p_click_examined = _sigmoid(click_logit + world.click_intercept)  # had the item been looked at
    p_click = _examine(world, positions) * p_click_examined
    p_cvr = _sigmoid(purchase_logit + world.purchase_intercept)
    click = rng.random(rows) < p_click
    purchase = click & (rng.random(rows) < p_cvr)
    log_dwell = 4.0 + 0.5 * (purchase_logit + world.purchase_intercept) + rng.normal(0.0, 0.5, size=rows)
    dwell = np.where(click, np.exp(log_dwell), 0.0)
    request = np.arange(rows) // world.spec.list_length
    price = np.maximum(np.exp(world.item_log_price[items]), 0.01)
    return {
        "request_id": np.char.add(f"d{day_index}-r", request.astype(str)),
        "user_id": np.char.add("u", users.astype(str)),
        "user_segment": np.char.add("s", world.user_segment[users].astype(str)),
        "item_id": np.char.add("i", items.astype(str)),
        "category": np.char.add("c", world.item_category[items].astype(str)),
        "price": price,
        "device": DEVICES[devices],
        "hour": hours,
        "position": positions,
        "click": click.astype(np.int64),
        "purchase": purchase.astype(np.int64),
        "dwell_seconds": dwell,
        "true_p_click": p_click,
        "true_p_purchase_given_click": p_cvr,
        "true_p_purchase": p_click * p_cvr,
        "oracle_p_click": p_click_examined,
        "oracle_p_purchase": p_click_examined * p_cvr,
    }


def write_csv(columns: Dict[str, np.ndarray], path: Path) -> None:
    """Writes with a header row, then renames into place so a reader never sees a half-written file.

    Float columns always carry a decimal point: CsvExampleGen infers each column's type from its
    values, and a price column that happened to hold only whole numbers would turn into INT.
    """
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame = pd.DataFrame({c: columns[c] for c in COLUMNS})
    for col, fmt in FLOAT_FORMATS.items():
        frame[col] = np.char.mod(fmt, columns[col])
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def day_folder(date: dt.date) -> str:
    return date.strftime(DAY_FOLDER_FORMAT)


def simulate(
    out_dir: str | os.PathLike,
    start: dt.date,
    days: int,
    rows_per_day: int,
    spec: Optional[SimulatorSpec] = None,
    progress=None,
) -> List[Path]:
    """Writes `days` day folders `<out_dir>/<YYYY-MM-DD>/impressions.csv`; returns the files written.

    With arrivals (`new_users_per_day`, `new_items_per_day`) the world begins on `start`: day N then depends
    on where the simulation started (not on how many days it writes); without them it never does."""
    spec = spec or SimulatorSpec()
    arrivals = spec.new_users_per_day or spec.new_items_per_day
    if arrivals:
        spec = dataclasses.replace(spec, arrival_days=max(spec.arrival_days, days - 1))
    first_day = (start - dt.date(1970, 1, 1)).days if arrivals else 0
    world = build_world(spec, first_day)
    written = []
    for i in range(days):
        date = start + dt.timedelta(days=i)
        # The day's draw depends on its date, not on where the run started: day N is the same in any backfill.
        day_index = (date - dt.date(1970, 1, 1)).days
        path = Path(out_dir) / day_folder(date) / "impressions.csv"
        write_csv(simulate_day(world, day_index, rows_per_day), path)
        written.append(path)
        if progress:
            progress(i + 1, days, path)
    return written
