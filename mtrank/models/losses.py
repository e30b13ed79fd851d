"""Per-task losses and how they are weighed against each other.

fixed        each task's `loss_weight` from the configuration.
uncertainty  Kendall, Gal & Cipolla (CVPR 2018): one learned log-variance s_k per task, no cap.
             binary task:     exp(-s_k) · L_k + s_k / 2      (1/σ² · L + log σ)
             regression task: exp(-s_k) · L_k / 2 + s_k / 2  (1/(2σ²) · L + log σ)
             The learned weights replace the configured loss_weight.
Sample weights (`weight_by`) apply inside L_k in both cases, so a task observed on a subset only
(dwell on clicks, or conversion on clicks when ESMM is off) is averaged over that subset's rows.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import mtrank  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from mtrank import config as config_lib
from mtrank.models import layers

DEFAULT_LOSS = {"binary": "binary_crossentropy", "regression": "mse"}


def task_loss(task: config_lib.TaskSpec) -> keras.losses.Loss:
    name = task.loss or DEFAULT_LOSS[task.type]
    if name == "binary_crossentropy":
        return keras.losses.BinaryCrossentropy()
    if name == "huber":
        return keras.losses.Huber()
    return keras.losses.MeanSquaredError()


class UncertaintyWeighted(keras.losses.Loss):
    """A task's reduced loss L_k turned into factor · exp(-s_k) · L_k + s_k / 2, s_k read from the model."""

    def __init__(self, base: keras.losses.Loss, uncertainty: layers.TaskUncertainty, task: str, factor: float):
        super().__init__(name=f"uncertainty_{task}")
        self.base, self.uncertainty, self.task, self.factor = base, uncertainty, task, factor

    def __call__(self, y_true, y_pred, sample_weight=None):
        s = self.uncertainty.log_var(self.task)
        return self.factor * tf.exp(-s) * self.base(y_true, y_pred, sample_weight=sample_weight) + 0.5 * s

    def call(self, y_true, y_pred):  # not used: __call__ reduces through the base loss
        return self.base.call(y_true, y_pred)


def losses(cfg: config_lib.Config, uncertainty: Optional[layers.TaskUncertainty] = None
           ) -> Tuple[Dict[str, keras.losses.Loss], Dict[str, float]]:
    """Loss and loss weight per trained output; outputs without an entry (pCVR, score) get no loss."""
    if cfg.model.loss_weighting == "uncertainty" and uncertainty is None:
        raise ValueError(f"{cfg.source}: model.loss_weighting is 'uncertainty'; pass the built model's "
                         "TaskUncertainty layer (builder.losses(cfg, net))")
    loss, weights = {}, {}
    for t in cfg.tasks:
        if cfg.model.loss_weighting == "uncertainty":
            factor = 1.0 if t.type == "binary" else 0.5
            loss[t.name] = UncertaintyWeighted(task_loss(t), uncertainty, t.name, factor)
            weights[t.name] = 1.0
        else:
            loss[t.name] = task_loss(t)
            weights[t.name] = t.loss_weight
    return loss, weights
