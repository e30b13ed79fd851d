"""Builds a multi-task Keras model from the configuration.

The architecture (the "bottom") turns the shared input into one representation per task; what
follows is common to all: a tower per task, the output activation by task type, ESMM chaining for
tasks that follow another (p(purchase) = p(click) · p(purchase | click)), and the fused ranking score.
No feature or task name appears here; they all come from the configuration.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Tuple

import mtrank  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from mtrank import config as config_lib
from mtrank.models import layers

SCORE_OUTPUT = "score"

# bottom(cfg, shared_input) -> ({task: representation [B, U]}, {task: gate weights [B, N]})
Bottom = Callable[[config_lib.Config, tf.Tensor], Tuple[Dict[str, tf.Tensor], Dict[str, tf.Tensor]]]


def mmoe_bottom(cfg: config_lib.Config, shared: tf.Tensor):
    """Multi-gate Mixture-of-Experts (Ma et al., KDD 2018): shared experts, one softmax gate per task."""
    m = cfg.model
    experts = layers.Experts(m.num_experts, m.expert_units, dropout=m.dropout, l2=m.l2, seed=m.seed,
                             name="experts")(shared)
    reps, gates = {}, {}
    for i, task in enumerate(cfg.tasks):
        gates[task.name] = layers.Gate(m.num_experts, seed=m.seed + 101 + i, name=f"gate_{task.name}")(shared)
        reps[task.name] = layers.mix(experts, gates[task.name])
    return reps, gates


ARCHITECTURES: Dict[str, Bottom] = {"mmoe": mmoe_bottom}


@dataclasses.dataclass
class MultiTaskModel:
    model: keras.Model  # inputs: transformed features; outputs: {task, <task>_given_<parent>, score}
    gates: keras.Model  # same inputs; outputs: {task: gate weights over experts}

    @property
    def trained_outputs(self):
        return [name for name in self.model.output_names]


def default_cardinalities(cfg: config_lib.Config, vocabulary_size: int = 100) -> Dict[str, int]:
    """Embedding table sizes when no Transform output is at hand (unit tests, shape checks)."""
    return {f.name: cardinality(f, vocabulary_size) for f in cfg.features if f.is_embedded}


def cardinality(feature: config_lib.FeatureSpec, vocabulary_size: int) -> int:
    if feature.kind == "id":
        return feature.hash_buckets
    if feature.kind == "bucketized":
        return feature.num_buckets + 1
    return vocabulary_size + feature.num_oov_buckets


def build(cfg: config_lib.Config, cardinalities: Dict[str, int]) -> MultiTaskModel:
    tf.random.set_seed(cfg.model.seed)
    inputs = layers.feature_inputs(cfg)
    shared = layers.embed_inputs(cfg, inputs, cardinalities)
    reps, gates = ARCHITECTURES[cfg.model.architecture](cfg, shared)

    logits = {
        t.name: layers.Tower(cfg.model.tower_units, dropout=cfg.model.dropout, seed=cfg.model.seed + 13 * i,
                             name=f"tower_{t.name}")(reps[t.name])
        for i, t in enumerate(cfg.tasks)
    }
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
    weighted = [outputs[t.name] * t.score_weight for t in cfg.tasks if t.score_weight]
    score = tf.add_n(weighted) if weighted else tf.zeros_like(outputs[cfg.tasks[0].name])
    outputs[SCORE_OUTPUT] = keras.layers.Activation("linear", name=SCORE_OUTPUT)(score)

    model = keras.Model(inputs=inputs, outputs=outputs, name=f"{cfg.model.architecture}_ranker")
    gate_model = keras.Model(inputs=inputs, outputs=gates, name="gates")
    return MultiTaskModel(model=model, gates=gate_model)


def losses(cfg: config_lib.Config):
    """Loss and loss weight per trained output; outputs without an entry (pCVR, score) get no loss."""
    loss, weights = {}, {}
    for t in cfg.tasks:
        loss[t.name] = (keras.losses.BinaryCrossentropy() if t.type == "binary"
                        else keras.losses.MeanSquaredError())
        weights[t.name] = t.loss_weight
    return loss, weights
