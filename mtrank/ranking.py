"""What a ranked list is worth, per request: gain@K, NDCG@K and the share of the oracle's gain captured.

Flat arrays in, one value per request out, vectorised (one sort per ranking, `np.bincount` per sum), so
the Evaluator's metric (components/ranking_metric.py) and the Trainer's weight search (mtrank/fusion.py)
measure a ranking with the same code.

- gain@K: Σ over ranks r ≤ K of r^-discount × gain of the item placed at r, averaged over requests: the
  expected gain under the examination model `examine(r) = r^-discount` (the simulator's own).
- NDCG@K: DCG with TFMA's log2(r + 1) discount over the ideal DCG of the request, averaged over the
  requests with any gain. TFMA's NDCG also averages the requests without gain, as 0; that mean is ours
  times the share of requests with gain (tests/test_ranking.py checks the two against each other).
- share of the oracle's gain: with each item's true position-free gain (simulated data), the
  counterfactual gain@K of the model's order, of the order by true gain (the oracle) and of a random
  order (its expectation, exact: the mean gain times the summed discounts of the ranks filled):
  Σ(model − random) / Σ(oracle − random) over requests. 1 is the oracle, 0 is chance.

Tied scores count in expectation over their orders (`expected_rank_weights`, as sklearn's `ndcg_score`
does), never by row order: the rows of a request come in the order they were shown, and a constant score
must not inherit the logged ranking; nor may a slice's figure depend on the order Beam hands rows over.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Iterable, Optional

import numpy as np


MEASURES = ("gain", "ndcg", "oracle_share")  # what the Evaluator reports per (output, objective)


def metric_name(objective: str, measure: str, top_k: int) -> str:
    """The TFMA metric name of a ranking measure, e.g. revenue_oracle_share@3 (thresholds name it)."""
    return f"{objective}_{measure}@{top_k}"


def request_codes(requests: Iterable) -> np.ndarray:
    """Dense integer codes 0..R-1 of the request identifiers (any type)."""
    values = np.asarray(list(requests) if not isinstance(requests, np.ndarray) else requests)
    return np.unique(values.astype(str), return_inverse=True)[1].reshape(-1)


def expected_rank_weights(codes: np.ndarray, scores: np.ndarray,
                          weight_of_rank: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Each row's weight at its 1-based rank within its request by descending score. Rows tied on score
    share the mean weight of the ranks they occupy: the expectation over the orders a server may give them.

    Exact, and the same whatever order the rows come in. A seeded tie-break was neither: the Evaluator's rows
    come in Beam's order, and a position-blind model ties every item of one category and price in a request
    (measured: NDCG@3 of one category slice moved by 0.018 between two orders of the same rows)."""
    n = len(codes)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((-scores, codes))
    sorted_codes, sorted_scores = codes[order], scores[order]
    request_start = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    rank = np.arange(n) - np.repeat(request_start, np.diff(np.r_[request_start, n])) + 1
    weight = np.asarray(weight_of_rank(rank), dtype=np.float64)
    tie_start = np.flatnonzero(np.r_[True, (sorted_codes[1:] != sorted_codes[:-1])
                                     | (sorted_scores[1:] != sorted_scores[:-1])])
    sizes = np.diff(np.r_[tie_start, n])
    result = np.empty(n, dtype=np.float64)
    result[order] = np.repeat(np.add.reduceat(weight, tie_start) / sizes, sizes)
    return result


def _per_request(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.bincount(codes, weights=values, minlength=int(codes.max()) + 1 if len(codes) else 0)


def discounted_gain(codes: np.ndarray, scores: np.ndarray, gains: np.ndarray, k: int, discount: float) -> np.ndarray:
    """Per request: Σ over ranks r ≤ k (by `scores`, ties in expectation) of r^-discount × gain."""
    return _per_request(codes, expected_rank_weights(codes, scores, lambda r: rank_weights(r, k, discount)) * gains)


def rank_weights(rank: np.ndarray, k: int, discount: float) -> np.ndarray:
    """The examination weight of each row at its rank: r^-discount in the top k, else 0."""
    return np.where(rank <= k, rank.astype(np.float64) ** -discount, 0.0)


def random_gain(codes: np.ndarray, gains: np.ndarray, k: int, discount: float) -> np.ndarray:
    """Per request: the expected discounted gain of a uniformly random order (exact, no sampling)."""
    sizes = np.bincount(codes)
    mean = _per_request(codes, gains) / np.maximum(sizes, 1)
    filled = np.cumsum(np.arange(1, max(k, 1) + 1, dtype=np.float64) ** -discount)
    return mean * filled[np.minimum(sizes, k) - 1]


def ndcg(codes: np.ndarray, scores: np.ndarray, gains: np.ndarray, k: int) -> np.ndarray:
    """Per request NDCG@k (log2 discount, ties in expectation); NaN for requests without any gain."""
    def dcg(order_scores):
        weights = expected_rank_weights(codes, order_scores, lambda r: np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0))
        return _per_request(codes, weights * gains)

    ideal = dcg(gains)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ideal > 0, dcg(scores) / ideal, np.nan)


@dataclasses.dataclass(frozen=True)
class ListMeasures:
    """One ranking's worth for one objective, over a set of requests."""

    gain: float  # mean discounted gain@K per request (observed gains)
    ndcg: float  # mean NDCG@K over requests with a gain
    requests: int
    requests_with_gain: int
    oracle_share: Optional[float] = None  # share of the oracle's gain captured (needs true gains)
    expected_gain: Optional[float] = None  # mean counterfactual gain@K per request (true gains)
    oracle_gain: Optional[float] = None
    random_gain: Optional[float] = None

    def as_dict(self) -> Dict[str, Optional[float]]:
        return dataclasses.asdict(self)


def measure(codes: np.ndarray, scores: np.ndarray, gains: np.ndarray, k: int, discount: float,
            true_gains: Optional[np.ndarray] = None) -> ListMeasures:
    """gain@K and NDCG@K of ranking each request by `scores`; with `true_gains`, the oracle share too."""
    codes = np.unique(codes, return_inverse=True)[1].reshape(-1)  # dense: every code is a request present
    gains = np.asarray(gains, dtype=np.float64)
    per_ndcg = ndcg(codes, scores, gains, k)
    with_gain = ~np.isnan(per_ndcg)
    requests = int(codes.max()) + 1 if len(codes) else 0
    result = dict(gain=float(discounted_gain(codes, scores, gains, k, discount).mean()) if requests else np.nan,
                  ndcg=float(per_ndcg[with_gain].mean()) if with_gain.any() else np.nan,
                  requests=requests, requests_with_gain=int(with_gain.sum()))
    if true_gains is not None:
        true_gains = np.asarray(true_gains, dtype=np.float64)
        model = discounted_gain(codes, scores, true_gains, k, discount).sum()
        oracle = discounted_gain(codes, true_gains, true_gains, k, discount).sum()
        chance = random_gain(codes, true_gains, k, discount).sum()
        span = oracle - chance
        result.update(oracle_share=float((model - chance) / span) if span > 0 else np.nan,
                      expected_gain=float(model / max(requests, 1)), oracle_gain=float(oracle / max(requests, 1)),
                      random_gain=float(chance / max(requests, 1)))
    return ListMeasures(**result)


def objective_gains(objective, columns: Dict[str, np.ndarray]) -> tuple:
    """(observed gains, true gains or None) of an objective (config ObjectiveSpec) from raw columns."""
    value = np.asarray(columns[objective.value], dtype=np.float64) if objective.value else 1.0
    observed = np.asarray(columns[objective.label], dtype=np.float64) * value
    true = None
    if objective.oracle and objective.oracle in columns:
        true = np.asarray(columns[objective.oracle], dtype=np.float64) * value
    return observed, true
