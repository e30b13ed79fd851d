"""TFX's Evaluator, judged against the model in production when there is one.

The baseline comes from ProductionModel (components/production_model.py), whose artifact is empty while
nothing is served. TFX's executor decides "there is a baseline" from the presence of the input alone
(`has_baseline = bool(input_dict.get('baseline_model'))`) and would then try to load a model that is
not there. This executor drops an empty baseline first, so TFX's own rule applies: no baseline, change
thresholds skipped, floors still checked (`update_eval_config_with_defaults(..., rubber_stamp=True)`).

It also moves what does not gate out of TFMA (components/slice_metrics.py says why): TFX's Evaluator runs
TFMA on the overall slice with the metrics that carry a threshold (their change against the model in
production and their intervals included), and the rest of the same EvalConfig (the overall slice's other
metrics, every metric of the other slicing specs) is then measured from one pass of the candidate model over
the same rows and written into the same evaluation folder, the overall values into TFMA's own overall record.
Everything else is TFX's Evaluator, unchanged.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List

import mtrank  # noqa: F401
import tensorflow_model_analysis as tfma
from absl import logging
from tfx import types
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, json_utils, path_utils, proto_utils

from components import production_model, slice_metrics, tfma_fixes  # noqa: F401  (tfma_fixes corrects TFMA on import)

BASELINE_KEY = standard_component_specs.BASELINE_MODEL_KEY


class Executor(evaluator_executor.Executor):
    """TFX's Evaluator executor; a baseline artifact holding no model counts as no baseline."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        baselines = input_dict.get(BASELINE_KEY) or []
        if baselines and not all(production_model.holds_model(a.uri) for a in baselines):
            logging.info("nothing in production: evaluated without a baseline, change thresholds skipped")
            input_dict = {k: v for k, v in input_dict.items() if k != BASELINE_KEY}
        raw_config = exec_properties.get(standard_component_specs.EVAL_CONFIG_KEY)
        if not raw_config:
            return super().Do(input_dict, output_dict, exec_properties)
        eval_config = tfma.EvalConfig()
        proto_utils.json_to_proto(raw_config, eval_config)
        kept, moved = slice_metrics.split(eval_config)
        super().Do(input_dict, output_dict, {**exec_properties,
                                             standard_component_specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(kept)})
        if moved:
            self._slices(eval_config, moved, input_dict, output_dict, exec_properties)

    @staticmethod
    def _slices(eval_config, moved, input_dict, output_dict, exec_properties) -> None:
        started = time.perf_counter()
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        model_path = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
        splits = json_utils.loads(exec_properties.get(standard_component_specs.EXAMPLE_SPLITS_KEY) or "null") or ["eval"]
        patterns = [io_utils.all_files_pattern(uri) for split in splits
                    for uri in artifact_utils.get_split_uris(input_dict[standard_component_specs.EXAMPLES_KEY], split)]
        output = artifact_utils.get_single_uri(output_dict[standard_component_specs.EVALUATION_KEY])
        written = slice_metrics.evaluate_slices(eval_config, moved, model_path, patterns, output)
        logging.info("%d slices of %d slicing specs measured from the model's predictions in %.1f s",
                     written, len(moved), time.perf_counter() - started)


class Evaluator(evaluator_component.Evaluator):
    """`tfx.components.Evaluator` with the executor above (same inputs, outputs and parameters)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
