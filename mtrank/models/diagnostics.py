"""What a person needs to judge a trained multi-task model beyond its metrics.

Gate weights: the mean weight each task's gate gives each expert on evaluation data. One expert taking
everything, or a gate that stays uniform while the experts learned the same thing, is visible at a
glance in the table (`gate_weights.csv`, `gate_weights.md`) and in TensorBoard (`gates/<task>/<expert>`).
Parameter counts: per block, so architectures can be compared at equal size (the MMoE paper widened
Shared-Bottom to MMoE's parameter count).
"""

from __future__ import annotations

import csv
import os
from typing import Dict, List, Sequence

import mtrank  # noqa: F401
import tensorflow as tf
import tf_keras as keras

from mtrank.models import layers

GATE_CSV = "gate_weights.csv"
GATE_MARKDOWN = "gate_weights.md"

_BLOCKS = (
    (keras.layers.Embedding, "embeddings"),
    (layers.Experts, "experts"),
    (layers.Gate, "gates"),
    (layers.PositionTower, "position_tower"),
    (layers.Tower, "towers"),
    (layers.TaskUncertainty, "uncertainty"),
)


def parameter_counts(serving: keras.Model, training: keras.Model) -> Dict[str, int]:
    """Trainable and non-trainable parameters per block of the training model, and the two totals."""
    counts: Dict[str, int] = {}
    for layer in training.layers:
        block = next((name for cls, name in _BLOCKS if isinstance(layer, cls)), None)
        if block is not None and layer.weights:
            counts[block] = counts.get(block, 0) + int(layer.count_params())
    counts["serving_total"] = int(serving.count_params())
    counts["training_total"] = int(training.count_params())
    return counts


def mean_gate_weights(gates: keras.Model, dataset: tf.data.Dataset, max_batches: int = 20) -> Dict[str, List[float]]:
    """Mean gate weight per expert per task over up to `max_batches` (features, ...) batches."""
    names = set(gates.input_names)
    totals, count = {}, 0
    for batch in dataset.take(max_batches):
        features = {k: v for k, v in batch[0].items() if k in names}
        out = gates(features, training=False)
        for task, weights in out.items():
            totals[task] = totals.get(task, 0.0) + tf.reduce_sum(weights, axis=0).numpy()
        count += int(next(iter(out.values())).shape[0])
    return {task: (total / max(count, 1)).round(4).tolist() for task, total in totals.items()}


def gate_rows(weights: Dict[str, Sequence[float]], experts: Dict[str, Sequence[str]]) -> List[Dict[str, object]]:
    """One row per (task, expert): the long form, easy to read in a spreadsheet or to plot."""
    rows = []
    for task, values in weights.items():
        labels = experts.get(task) or [f"expert_{i}" for i in range(len(values))]
        rows += [{"task": task, "expert": label, "mean_weight": round(float(v), 4)} for label, v in zip(labels, values)]
    return rows


def gate_markdown(weights: Dict[str, Sequence[float]], experts: Dict[str, Sequence[str]]) -> str:
    """Tasks as rows, experts as columns (a task's experts it cannot see are left blank)."""
    columns = list(dict.fromkeys(label for task in weights for label in (experts.get(task) or [])))
    lines = ["| task | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for task, values in weights.items():
        by_label = dict(zip(experts.get(task) or [], values))
        cells = [f"{by_label[c]:.3f}" if c in by_label else "" for c in columns]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_gate_tables(out_dir: str, weights: Dict[str, Sequence[float]], experts: Dict[str, Sequence[str]]) -> None:
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(os.path.join(out_dir, GATE_CSV), "w") as f:
        writer = csv.DictWriter(f, fieldnames=["task", "expert", "mean_weight"])
        writer.writeheader()
        writer.writerows(gate_rows(weights, experts))
    with tf.io.gfile.GFile(os.path.join(out_dir, GATE_MARKDOWN), "w") as f:
        f.write(gate_markdown(weights, experts))


def log_gate_scalars(writer: tf.summary.SummaryWriter, weights: Dict[str, Sequence[float]],
                     experts: Dict[str, Sequence[str]], step: int) -> None:
    with writer.as_default():
        for row in gate_rows(weights, experts):
            tf.summary.scalar(f"gates/{row['task']}/{row['expert']}", row["mean_weight"], step=step)
    writer.flush()


class GateLogger(keras.callbacks.Callback):
    """Mean gate weights on evaluation data after every epoch, as TensorBoard scalars under `log_dir`."""

    def __init__(self, gates: keras.Model, dataset: tf.data.Dataset, experts: Dict[str, Sequence[str]],
                 log_dir: str, max_batches: int = 5):
        super().__init__()
        self.gates, self.dataset, self.experts, self.max_batches = gates, dataset, experts, max_batches
        self.log_dir = os.path.join(log_dir, "gates")
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        weights = mean_gate_weights(self.gates, self.dataset, self.max_batches)
        log_gate_scalars(self._writer, weights, self.experts, step=epoch + 1)
