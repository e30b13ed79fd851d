"""Warm start: continue from the weights of the model now in production.

The Trainer receives that model's serving directory as `fn_args.base_model`: ProductionModel's copy
of the version being served (components/production_model.py), a folder with no model in it while
nothing is served. A SavedModel's `variables/` folder is a
TensorFlow checkpoint whose root is the Keras model, so the new model reads it directly. All or
nothing: if the architecture, a vocabulary size or any shape changed, no half-restored model is
trained; training starts cold and the reason is logged.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import mtrank  # noqa: F401
import tensorflow as tf
import tf_keras as keras
from absl import logging


@dataclasses.dataclass(frozen=True)
class WarmStart:
    warm: bool
    source: Optional[str]
    reason: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _snapshot(model: keras.Model):
    return [v.numpy() for v in model.weights]


def restore(model: keras.Model, base_model_dir: Optional[str], enabled: bool = True) -> WarmStart:
    """Loads `base_model_dir`'s weights into `model` when every weight matches; otherwise leaves it cold."""
    if not enabled:
        return WarmStart(False, base_model_dir, "warm start is switched off in the configuration")
    if not base_model_dir or not tf.io.gfile.exists(os.path.join(base_model_dir, "saved_model.pb")):
        return WarmStart(False, None, "no model in production yet: first run, cold start")
    prefix = os.path.join(base_model_dir, "variables", "variables")
    if not tf.io.gfile.exists(prefix + ".index"):
        return WarmStart(False, base_model_dir, f"{base_model_dir} holds no variables checkpoint; cold start")
    before = _snapshot(model)
    try:
        status = model.load_weights(prefix)
        status.expect_partial()  # the SavedModel also holds the Transform layer and signatures
        status.assert_existing_objects_matched()  # every weight of the new model found its value
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        for variable, value in zip(model.weights, before):  # never train a half-restored model
            variable.assign(value)
        reason = (f"the model in production {base_model_dir} does not fit this model (architecture, vocabulary "
                  f"or shape changed): cold start. Detail: {str(e).splitlines()[0][:300]}")
        logging.warning(reason)
        return WarmStart(False, base_model_dir, reason)
    logging.info("Warm start from the model in production %s", base_model_dir)
    return WarmStart(True, base_model_dir, "weights of the model in production")


def initial_loss(model: keras.Model, dataset: tf.data.Dataset, batches: int = 5) -> float:
    """Loss before the first step: the evidence that a warm start started from somewhere."""
    return float(model.evaluate(dataset.take(batches), verbose=0, return_dict=True)["loss"])
