"""Builds a multi-task Keras model from the configuration.

The architecture (the "bottom", see `bottoms`) turns the shared input into one representation per
task; what follows is common to all: a tower per task, the output activation by task type, ESMM
chaining for tasks that follow another (p(purchase) = p(click) · p(purchase | click)). The fused
ranking score is not part of the model: serving computes it from the outputs (mtrank/fusion.py), so its
weights change without retraining. No feature or task name appears here; they all come from the configuration.

Two Keras models share every weight: `model` (serving: transformed features in, outputs out) and
`training_model` (what is compiled and fitted: the same, plus the position input and its bias tower
when `model.position_bias` is set). The serving model is never compiled, so its export carries no
training-only object (custom losses, the optimizer, the position tower).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

import mtrank  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from mtrank import config as config_lib
from mtrank import feature_kinds
from mtrank.models import bottoms, layers
from mtrank.models import losses as losses_lib

ARCHITECTURES = bottoms.ARCHITECTURES


@dataclasses.dataclass
class MultiTaskModel:
    model: keras.Model  # inputs: transformed features; outputs: {task, <task>_given_<parent>}
    gates: keras.Model  # same inputs; outputs: {task: gate weights over experts}
    training_model: Optional[keras.Model] = None  # fit this one; shares all weights with `model`
    uncertainty: Optional[layers.TaskUncertainty] = None  # learned log-variances (loss_weighting: uncertainty)
    experts: Dict[str, List[str]] = dataclasses.field(default_factory=dict)  # task -> labels of gated experts

    @property
    def trained_outputs(self):
        return [name for name in self.model.output_names]

    @property
    def trainee(self) -> keras.Model:
        return self.training_model if self.training_model is not None else self.model


def default_cardinalities(cfg: config_lib.Config, vocabulary_size: int = 100) -> Dict[str, int]:
    """Embedding table sizes when no Transform output is at hand (unit tests, shape checks)."""
    return {f.name: cardinality(f, vocabulary_size) for f in cfg.features if f.is_embedded}


def cardinality(feature: config_lib.FeatureSpec, vocabulary_size: int) -> int:
    """Rows of an embedded feature's table, as its kind sizes it (mtrank/feature_kinds.py)."""
    return feature_kinds.of(feature).cardinality(feature, vocabulary_size)


def heads(cfg: config_lib.Config, logits: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Task logits -> named outputs: activations by task type, ESMM products."""
    outputs: Dict[str, tf.Tensor] = {}
    for t in cfg.tasks:
        if t.type == "regression":
            outputs[t.name] = keras.layers.Activation("linear", name=t.name)(logits[t.name])
        elif t.follows is None:
            outputs[t.name] = keras.layers.Activation("sigmoid", name=t.name)(logits[t.name])
    for t in cfg.tasks:
        if t.follows is not None:  # ESMM: the conditional is exported, the product is what is trained
            conditional = keras.layers.Activation("sigmoid", name=t.conditional_output)(logits[t.name])
            outputs[t.conditional_output] = conditional
            outputs[t.name] = keras.layers.Multiply(name=t.name)([outputs[t.follows], conditional])
    return outputs  # the ranking score is fused after the model, in the serving signatures (mtrank/fusion.py)


def _with_position_bias(cfg: config_lib.Config, logits: Dict[str, tf.Tensor]):
    """Training-only: the position input, and the logits with the bias tower's logit added to one task."""
    pb = cfg.model.position_bias
    position = keras.Input(shape=(), name=pb.transformed_name, dtype=tf.int64)
    bias = layers.PositionTower(pb.num_buckets, pb.embedding_dim, pb.units, seed=cfg.model.seed,
                                name="position_tower")(position)
    biased = dict(logits)
    biased[pb.task] = keras.layers.Add(name=f"{pb.task}_logit_with_position")([logits[pb.task], bias])
    return position, biased


def build(cfg: config_lib.Config, cardinalities: Dict[str, int]) -> MultiTaskModel:
    tf.random.set_seed(cfg.model.seed)
    m = cfg.model
    inputs = layers.feature_inputs(cfg)
    looked_up = layers.admit_ids(cfg, inputs, cardinalities)  # ids under their min_count -> the shared row
    parts = layers.embed_features(cfg, looked_up, cardinalities)
    shared = layers.shared_input(cfg, parts)
    task_names = [t.name for t in cfg.tasks]
    uncertainty = None
    if m.loss_weighting == "uncertainty":
        uncertainty = layers.TaskUncertainty(task_names, name="uncertainty_weighting")
        shared = uncertainty(shared)  # identity: puts the log-variances into the model's weights
    bottom = ARCHITECTURES[m.architecture](m, task_names, shared)

    logits = {
        t.name: layers.Tower(m.tower_units, dropout=m.dropout, seed=m.seed,
                             name=f"tower_{t.name}")(bottom.reps[t.name])
        for t in cfg.tasks
    }
    # Beside the deep part, terms added straight into a task's logit: per-value biases (the wide part) and
    # the configured embedding products (the factorisation-machine part, `model.interaction_weights`).
    for kind, terms in (("biases", layers.value_biases(cfg, looked_up, cardinalities, task_names)),
                        ("interactions", layers.pair_interactions(cfg, parts, task_names))):
        for task, term in terms.items():
            logits[task] = keras.layers.Add(name=f"{task}_logit_with_{kind}")([logits[task], term])
    model = keras.Model(inputs=inputs, outputs=heads(cfg, logits), name=f"{m.architecture}_ranker")
    if m.position_bias is not None:
        position, biased = _with_position_bias(cfg, logits)
        training_model = keras.Model(inputs={**inputs, m.position_bias.transformed_name: position},
                                     outputs=heads(cfg, biased), name=f"{m.architecture}_ranker_training")
    else:
        training_model = keras.Model(inputs=inputs, outputs=model.outputs, name=f"{m.architecture}_ranker_training")
    gate_model = keras.Model(inputs=inputs, outputs=bottom.gates, name="gates")
    return MultiTaskModel(model=model, gates=gate_model, training_model=training_model,
                          uncertainty=uncertainty, experts=bottom.experts)


def losses(cfg: config_lib.Config, net: Optional[MultiTaskModel] = None):
    """Loss and loss weight per trained output; outputs without an entry (pCVR) get no loss.

    Uncertainty weighting needs the built model (`net`), which owns the learned log-variances.
    """
    return losses_lib.losses(cfg, net.uncertainty if net is not None else None)
