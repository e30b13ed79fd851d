"""The export contract: every name that the Trainer's SavedModel, Transform's outputs, the Evaluator, the
Pusher, serving and its clients must agree on, defined once. A module that writes one of these names and a
module that reads it both import it from here; a name changed here changes on both sides. Clients outside
this project read the same names in serving/README.md.

No TensorFlow here: the configuration, the CLI and the clients import this module.
"""

from __future__ import annotations

import os

# ---- signatures of the exported SavedModel (TF Serving answers the first three by name)
SERVING_SIGNATURE = "serving_default"  # {examples: serialized tf.Examples} -> task outputs and the fused score
RAW_SIGNATURE = "raw_features"  # one [N] tensor per input column -> the same outputs
CONTEXT_SIGNATURE = "ranking_request"  # {examples: context row + candidates, is_context} -> one value per row
TRANSFORM_SIGNATURE = "transform_features"  # raw tf.Examples -> Transform's outputs, labels too (TFMA's preprocessing)
SERVED_SIGNATURES = (SERVING_SIGNATURE, RAW_SIGNATURE, CONTEXT_SIGNATURE)  # the ones TF Serving's warm-up replays

# ---- their inputs and outputs
EXAMPLES_INPUT = "examples"  # serialized tf.Examples (serving_default and ranking_request)
CONTEXT_FLAG_INPUT = "is_context"  # ranking_request: true on the row holding the request's shared columns
SCORE_OUTPUT = "score"  # the fused ranking score every signature returns beside the task outputs; a reserved task name

# ---- Transform's output keys (what the Trainer reads, and TFMA through transform_features)
REQUEST_KEY = "request_key"  # int64 hash of the ranked list's request (ranking.request_column)


def transformed_name(name: str) -> str:
    """A feature's (or the position column's) model input."""
    return f"{name}_xf"


def label_key(task: str) -> str:
    """A task's label after Transform; TFMA reads labels from here, so evaluation sees what training saw."""
    return f"{task}_label"


def weight_key(task: str) -> str:
    """A task's example weight (a regression task defined on a subset, e.g. dwell after a click)."""
    return f"{task}_weight"


def raw_copy_name(column: str) -> str:
    """A raw float copy of a column the Trainer's weight search measures (objective labels and values)."""
    return f"{column}_raw"


# ---- files beside the SavedModel and in the Trainer's run folder
FUSION_FILE = "fusion.json"  # the fusion weights served (assets.extra) and how they were chosen (run folder)
SUMMARY_FILE = "training_summary.json"  # the Trainer's run folder: epochs, best epoch, warm start
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")  # TF Serving replays it on load
# Adam's moments and step count, and the warm runs behind the model: what the next warm start continues
# (components/warm_start.py). In assets.extra, which TF Serving never loads.
OPTIMIZER_STATE_FILE = os.path.join("assets.extra", "optimizer_state.npz")
COMPLETE_MARKER = "saved_model.pb"  # written last by the Pusher (a rename locally, the last copy on gs://)
