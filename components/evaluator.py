"""TFX's Evaluator, judged against the model in production when there is one.

The baseline comes from ProductionModel (components/production_model.py), whose artifact is empty while
nothing is served. TFX's executor decides "there is a baseline" from the presence of the input alone
(`has_baseline = bool(input_dict.get('baseline_model'))`) and would then try to load a model that is
not there. This executor drops an empty baseline first, so TFX's own rule applies: no baseline, change
thresholds skipped, floors still checked (`update_eval_config_with_defaults(..., rubber_stamp=True)`).
Everything else is TFX's Evaluator, unchanged.
"""

from __future__ import annotations

from typing import Any, Dict, List

import mtrank  # noqa: F401
from absl import logging
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs

from components import production_model

BASELINE_KEY = standard_component_specs.BASELINE_MODEL_KEY


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator executor; a baseline artifact holding no model counts as no baseline."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        baselines = input_dict.get(BASELINE_KEY) or []
        if baselines and not all(production_model.holds_model(a.uri) for a in baselines):
            logging.info("nothing in production: evaluated without a baseline, change thresholds skipped")
            input_dict = {k: v for k, v in input_dict.items() if k != BASELINE_KEY}
        super().Do(input_dict, output_dict, exec_properties)


class Evaluator(evaluator_component.Evaluator):
    """`tfx.components.Evaluator` with the executor above (same inputs, outputs and parameters)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
