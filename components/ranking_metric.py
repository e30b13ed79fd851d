"""Per-request ranking metrics as TFMA metrics: gain@K, NDCG@K and the share of the oracle's gain.

Serving returns a ranked list per request, so the Evaluator measures ranked lists: each request's rows
(grouped by `ranking.request_column`) are ordered by each model output (the fused `score`, every task
output, and the configured fusion as `score_configured`: the "before the weight search" ranking) and
valued for each objective (clicks, purchases, revenue = purchase × price) with mtrank/ranking.py.

Why not TFMA's own NDCG: its gain is one feature (`gain_key`), so revenue (a product of columns) cannot
be expressed; it needs a MetricsSpec of its own with `query_key`, which groups the data once more per
spec; and it gives neither the examination-discounted gain@K nor the oracle's counterfactual. Here one
combiner per model keeps the rows of a slice (like GAUC) and every (output, objective, measure) is
read from it by a derived metric, so each value has a metric name a threshold can name:

    tfma.MetricConfig(class_name="RankingMetric", module="components.ranking_metric",
                      config='{"measure": "oracle_share", "objective": "revenue", "settings": {...}}')

`settings` (identical for every instance, so TFMA computes the shared combiner once: it de-duplicates
computations by combiner name and keys) holds the request column, K, the discount, the objectives and
the configured fusion. The metric is named `<objective>_<measure>@<K>`, e.g. `revenue_oracle_share@3`.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import mtrank  # noqa: F401
import apache_beam as beam
import numpy as np
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.proto import config_pb2

from mtrank import config as config_lib
from mtrank import export_contract
from mtrank import fusion as fusion_lib
from mtrank import ranking

MEASURES = ranking.MEASURES
CONFIGURED_OUTPUT = "score_configured"  # the configured fusion's ranking, reported beside `score`
_LISTS = "_ranking_lists"  # private key of the shared combiner's result (TFMA drops private metrics)


def settings(cfg: config_lib.Config) -> Dict[str, object]:
    """What every RankingMetric instance of a configuration shares (JSON-serialisable)."""
    r = cfg.ranking
    return {"request_key": r.request_column, "top_k": r.top_k, "discount": r.discount,
            "outputs": ranked_outputs(cfg),
            "objectives": [{"name": o.name, "label": o.label, "value": o.value, "oracle": o.oracle}
                           for o in r.objectives],
            "configured": fusion_lib.configured(cfg).as_dict()}


def ranked_outputs(cfg: config_lib.Config) -> List[str]:
    """The outputs whose ranking is measured: the fused score and every task output."""
    return [export_contract.SCORE_OUTPUT] + [t.name for t in cfg.tasks]


def metric_names(cfg: config_lib.Config) -> List[tuple]:
    """(objective, measure, metric name) of every ranking metric the configuration computes."""
    r = cfg.ranking
    if not r.request_column:
        return []
    return [(o.name, m, ranking.metric_name(o.name, m, r.top_k)) for o in r.objectives for m in MEASURES
            if m != "oracle_share" or o.oracle]


class RankingMetric(metric_types.Metric):
    """One (objective, measure) of the ranked lists, for every output of the MetricsSpec."""

    def __init__(self, measure: str = "gain", objective: str = "clicks", settings: Optional[Dict] = None,
                 name: Optional[str] = None):
        if measure not in MEASURES:
            raise ValueError(f"RankingMetric: measure {measure!r} is not one of {MEASURES}")
        settings = settings or {}
        name = name or ranking.metric_name(objective, measure, int(settings.get("top_k", 3)))
        super().__init__(_computations, measure=measure, objective=objective, settings=settings, name=name)


metric_types.register_metric(RankingMetric)


def _columns(settings: Dict) -> List[str]:
    columns = [settings["request_key"]]
    for o in settings["objectives"]:
        columns += [c for c in (o["label"], o["value"], o["oracle"]) if c]
    configured = settings["configured"]
    if configured.get("value"):
        columns.append(configured["value"])
    return list(dict.fromkeys(columns))


def _computations(measure: str, objective: str, settings: Dict, name: str,
                  eval_config: Optional[config_pb2.EvalConfig] = None, model_names: Optional[List[str]] = None,
                  output_names: Optional[List[str]] = None, sub_keys=None,
                  example_weighted: bool = False) -> metric_types.MetricComputations:
    outputs = [o for o in (output_names or []) if o]
    if not outputs:
        raise ValueError("RankingMetric needs the MetricsSpec's output_names: the outputs to rank by")
    ranked = list(settings.get("outputs") or outputs)  # every instance ranks all of them: one shared combiner
    computations: metric_types.MetricComputations = []
    for model_name in model_names or [""]:
        lists_key = metric_types.MetricKey(name=_LISTS, model_name=model_name, example_weighted=example_weighted)
        computations.append(metric_types.MetricComputation(
            keys=[lists_key],
            preprocessors=[_RankingRowPreprocessor(model_name, ranked, _columns(settings))],
            combiner=_RankingListsCombiner(lists_key, ranked, settings)))
        for output_name in outputs:
            key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                         example_weighted=example_weighted)
            keys = [key]
            if output_name == export_contract.SCORE_OUTPUT:
                keys.append(key._replace(output_name=CONFIGURED_OUTPUT))

            def result(metrics, keys=keys, lists_key=lists_key):
                lists = metrics[lists_key]
                values = {k: lists.get((k.output_name, objective), {}).get(measure) for k in keys}
                return {k: float("nan") if v is None else float(v) for k, v in values.items()}

            computations.append(metric_types.DerivedMetricComputation(keys=keys, result=result))
    return computations


def _first(value) -> object:
    value = np.asarray(value).ravel()
    if value.size == 0:
        return None
    item = value[0]
    return item.decode() if isinstance(item, bytes) else item.item() if hasattr(item, "item") else item


class _RankingRowPreprocessor(metric_types.Preprocessor):
    """One example's extracts -> (model outputs, raw columns) as plain Python tuples.

    Why not TFMA's FeaturePreprocessor: TFMA merges every FeaturePreprocessor into the one
    StandardMetricInputs all metrics share, so the ranking columns would ride along every element of
    every combiner, and Beam pickles each NumPy value of it separately between stages (measured: 19x the
    pickling, +40 % Evaluator time on one slicing). A tuple of floats and strings is encoded by Beam's
    fast coder."""

    def __init__(self, model_name: str, outputs: List[str], columns: List[str]):
        super().__init__(name=f"_ranking_rows_{model_name}")
        self._model_name, self._outputs, self._columns = model_name, outputs, columns

    def process(self, extracts):
        features = extracts.get(constants.FEATURES_KEY) or {}
        missing = [c for c in self._columns if c not in features]
        if missing:
            raise ValueError(f"ranking metrics: columns {missing} (ranking.request_column, objectives) are not "
                             f"among the evaluated features {sorted(features)}; they must be columns of the eval data")
        predictions = extracts[constants.PREDICTIONS_KEY]
        if self._model_name and isinstance(predictions, dict) and self._model_name in predictions:
            predictions = predictions[self._model_name]
        yield (tuple(float(np.asarray(predictions[o]).ravel()[0]) for o in self._outputs),
               tuple(_first(features[c]) for c in self._columns))


class _RankingListsCombiner(beam.CombineFn):
    """Keeps (outputs, raw columns) of every row; the lists are ranked and valued at the end."""

    def __init__(self, key: metric_types.MetricKey, outputs: List[str], settings: Dict):
        self._key, self._outputs, self._settings = key, outputs, settings
        self._columns = _columns(settings)

    def create_accumulator(self) -> Dict[str, list]:
        return {"outputs": [], "columns": []}

    def add_input(self, accumulator: Dict[str, list], element: tuple) -> Dict[str, list]:
        outputs, columns = element
        accumulator["outputs"].append(outputs)
        accumulator["columns"].append(columns)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[Dict[str, list]]) -> Dict[str, list]:
        accumulators = iter(accumulators)
        result = next(accumulators)
        for other in accumulators:
            result["outputs"].extend(other["outputs"])
            result["columns"].extend(other["columns"])
        return result

    def extract_output(self, accumulator: Dict[str, list]) -> Dict[metric_types.MetricKey, object]:
        outputs = {o: [row[i] for row in accumulator["outputs"]] for i, o in enumerate(self._outputs)}
        columns = {c: [row[i] for row in accumulator["columns"]] for i, c in enumerate(self._columns)}
        return {self._key: rank_lists(outputs, columns, self._settings)}


def rank_lists(outputs: Dict[str, list], columns: Dict[str, list], settings: Dict) -> Dict[tuple, Dict[str, float]]:
    """{(output, objective): {gain, ndcg, oracle_share, ...}} of the rows: `outputs` the model's predictions,
    `columns` the raw columns (request, labels, values, oracles)."""
    s = settings
    if not len(columns[s["request_key"]]):
        return {}
    codes = ranking.request_codes(np.asarray(columns[s["request_key"]]).astype(str))
    if codes.max() + 1 == len(codes):  # one row per request (a slice by position): there is no list to rank
        return {}
    raw = {c: np.asarray(v, dtype=np.float64) for c, v in columns.items() if c != s["request_key"]}
    scores = {o: np.asarray(v, dtype=np.float64) for o, v in outputs.items()}
    configured = fusion_lib.Fusion.from_dict(s["configured"])
    if export_contract.SCORE_OUTPUT in outputs and all(t in scores for t in configured.weights):
        scores[CONFIGURED_OUTPUT] = configured.numpy(scores, raw.get(configured.value) if configured.value else None)
    result = {}
    for o in s["objectives"]:
        objective = config_lib.ObjectiveSpec(**o)
        observed, true = ranking.objective_gains(objective, raw)
        for output, score in scores.items():
            result[(output, objective.name)] = ranking.measure(codes, score, observed, s["top_k"], s["discount"],
                                                               true).as_dict()
    return result
