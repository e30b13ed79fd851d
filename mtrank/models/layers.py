"""Building blocks shared by every multi-task architecture: experts, gates, towers, inputs.

Written once here; architectures only wire them together. Experts are one batched einsum rather
than a Python list of Dense layers: the same maths, one kernel launch per layer instead of N.
"""

from __future__ import annotations

import math
import zlib
from typing import Dict, List, Sequence, Tuple

import mtrank  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras

from mtrank import config as config_lib
from mtrank import feature_kinds


def weight_seed(base: int, name: str) -> int:
    """The initial-value seed of one weight: the configured `model.seed` and the weight's own name. Every
    weight draws from its own stream (two embedding tables of one width no longer start identical row by
    row, as they did when every table used `model.seed`), and adding a layer moves no other weight's."""
    return (base * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2 ** 31 - 1)


def _uniform(fan_in: int, fan_out: int, seed: int) -> keras.initializers.Initializer:
    """Glorot-uniform per expert: a [D, N, U] kernel must be scaled by D and U, not by N·D."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return keras.initializers.RandomUniform(-limit, limit, seed=seed)


class Experts(keras.layers.Layer):
    """N independent MLPs over the same input, computed together: [B, D] -> [B, N, U]."""

    def __init__(self, num_experts: int, units: Sequence[int], dropout: float = 0.0, l2: float = 0.0,
                 seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = num_experts
        self.units = list(units)
        self.dropout = dropout
        self.l2 = l2
        self.seed = seed

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        reg = keras.regularizers.l2(self.l2) if self.l2 else None
        self.kernels, self.biases = [], []
        for i, units in enumerate(self.units):
            shape = (fan_in, self.num_experts, units) if i == 0 else (self.num_experts, fan_in, units)
            self.kernels.append(self.add_weight(
                name=f"kernel_{i}", shape=shape,
                initializer=_uniform(fan_in, units, weight_seed(self.seed, f"{self.name}/kernel_{i}")),
                regularizer=reg))
            self.biases.append(self.add_weight(name=f"bias_{i}", shape=(self.num_experts, units),
                                               initializer="zeros"))
            fan_in = units
        super().build(input_shape)

    def call(self, x, training=None):
        h = tf.nn.relu(tf.einsum("bd,dnu->bnu", x, self.kernels[0]) + self.biases[0])
        for kernel, bias in zip(self.kernels[1:], self.biases[1:]):
            if self.dropout and training:
                h = tf.nn.dropout(h, self.dropout)
            h = tf.nn.relu(tf.einsum("bnu,nuv->bnv", h, kernel) + bias)
        return h

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts, "units": self.units,
                "dropout": self.dropout, "l2": self.l2, "seed": self.seed}


class Gate(keras.layers.Layer):
    """Softmax over experts from the gate's input: [B, D] -> [B, N], rows sum to 1.

    With no hidden `units` it is the paper's softmax layer; with units it is a small gate network,
    which can route on interactions of the input a linear gate cannot see.
    """

    def __init__(self, num_experts: int, units: Sequence[int] = (), seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = num_experts
        self.units = list(units)
        self.seed = seed
        self.hidden = [keras.layers.Dense(u, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(
                           weight_seed(seed, f"{self.name}/hidden_{i}")))
                       for i, u in enumerate(self.units)]
        self.dense = keras.layers.Dense(num_experts, kernel_initializer=keras.initializers.GlorotUniform(
            weight_seed(seed, f"{self.name}/logits")))

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return tf.nn.softmax(self.dense(x), axis=-1)

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts, "units": self.units, "seed": self.seed}


class SoleExpertGate(keras.layers.Layer):
    """The gate of a single shared network (Shared-Bottom): weight 1 on its one expert, [B, D] -> [B, 1].

    Lets Shared-Bottom go through the same `mix` and the same gate diagnostics as every other bottom.
    """

    def call(self, x):
        return tf.ones_like(x[:, :1])


def mix(experts: tf.Tensor, gate: tf.Tensor) -> tf.Tensor:
    """Gate-weighted sum of expert outputs: [B, N, U] x [B, N] -> [B, U]. The one place it is written.

    A broadcast multiply and a sum, not einsum("bnu,bn->bu"): the einsum lowers to B tiny batched
    matrix products, which on CPU made the whole training step slower (bench/trainer_throughput.py)."""
    return tf.reduce_sum(experts * tf.expand_dims(gate, -1), axis=1)


def pool(groups: Sequence[tf.Tensor]) -> tf.Tensor:
    """Expert outputs of several groups side by side, [B, N_i, U] ... -> [B, sum N_i, U] (CGC/PLE gates
    choose among a task's own experts and the shared ones)."""
    return groups[0] if len(groups) == 1 else tf.concat(list(groups), axis=1)


class PositionTower(keras.layers.Layer):
    """Shallow tower over the position bucket, [B] int -> [B, 1] logit (YouTube ranking, RecSys 2019).

    Its logit is added to one task's logit only while training, so the main towers learn relevance
    with the position effect explained away, and serving needs no position.
    """

    def __init__(self, num_buckets: int, embedding_dim: int, units: Sequence[int], seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.num_buckets = num_buckets
        self.embedding_dim = embedding_dim
        self.units = list(units)
        self.seed = seed
        self.embed = keras.layers.Embedding(num_buckets + 1, embedding_dim,
                                            embeddings_initializer=keras.initializers.RandomUniform(
                                                -EMB_INIT, EMB_INIT, weight_seed(seed, f"{self.name}/embedding")))
        self.tower = Tower(self.units, seed=seed, name=f"{self.name}_tower")  # named: seeds follow names

    def call(self, position):
        bucket = tf.clip_by_value(tf.cast(position, tf.int64), 0, self.num_buckets)  # deeper positions share one
        return self.tower(self.embed(bucket))

    def get_config(self):
        return {**super().get_config(), "num_buckets": self.num_buckets, "embedding_dim": self.embedding_dim,
                "units": self.units, "seed": self.seed}


class TaskUncertainty(keras.layers.Layer):
    """One learned log-variance s_k per task (Kendall, Gal & Cipolla, CVPR 2018), unclipped.

    An identity on its input: it sits in the graph only so that the model owns and saves the
    variables; `mtrank.models.losses` reads them to weigh each task's loss by exp(-s_k).
    """

    def __init__(self, task_names: Sequence[str], **kwargs):
        super().__init__(**kwargs)
        self.task_names = list(task_names)

    def build(self, input_shape):
        self.log_vars = self.add_weight(name="log_vars", shape=(len(self.task_names),), initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        return x

    def log_var(self, task: str) -> tf.Tensor:
        return self.log_vars[self.task_names.index(task)]

    def get_config(self):
        return {**super().get_config(), "task_names": self.task_names}


class Tower(keras.layers.Layer):
    """A task's own MLP ending in one logit: [B, U] -> [B, 1] (Keras losses reduce the last axis)."""

    def __init__(self, units: Sequence[int], dropout: float = 0.0, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.units = list(units)
        self.dropout = dropout
        self.seed = seed
        self.hidden = [keras.layers.Dense(u, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(
                           weight_seed(seed, f"{self.name}/hidden_{i}")))
                       for i, u in enumerate(self.units)]
        self.drop = keras.layers.Dropout(dropout, seed=weight_seed(seed, f"{self.name}/dropout")) if dropout else None
        self.logit = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(
            weight_seed(seed, f"{self.name}/logit")))

    def call(self, x, training=None):
        for layer in self.hidden:
            x = layer(x)
            if self.drop is not None:
                x = self.drop(x, training=training)
        return self.logit(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "dropout": self.dropout, "seed": self.seed}


EMB_INIT = 0.05


def feature_inputs(cfg: config_lib.Config) -> Dict[str, keras.Input]:
    """One Keras input per transformed feature, named as Transform names it."""
    inputs = {}
    for f in cfg.features:
        inputs[f.transformed_name] = keras.Input(shape=(), name=f.transformed_name,
                                                 dtype=feature_kinds.of(f).input_dtype)
    return inputs


def admission_layer_name(feature: config_lib.FeatureSpec) -> str:
    return f"admit_{feature.name}"


def admits(feature: config_lib.FeatureSpec) -> bool:
    """Whether the feature's rows are admitted by count (`min_count` on a kind that takes it)."""
    return feature_kinds.of(feature).takes_min_count and feature.min_count >= 1


class IdAdmission(keras.layers.Layer):
    """Count-based feature admission (`min_count` on an id feature): a row is looked up only once the model
    has been trained on at least `min_count` impressions of it; until then, and for ids never seen, row 0,
    which all of them share and which learns the average newcomer.

    The counts are a non-trainable weight of the model, one per row, so they are saved with it, served with
    it, and carried forward by a warm start: in a daily chain an id is admitted once the runs together have
    trained on it `min_count` times, and an id admitted yesterday keeps its learned row today even when
    today's window alone holds few of its impressions. (Counting in tf.Transform, over one window, dropped
    those rows again every day: on 100,000 rows a day, a user's 40 impressions in a 2-day window stayed
    under 50 for ever.) The same idea as the count filter of ByteDance's Monolith (Liu et al., 2022), on a
    hashed table. Written here because neither Keras nor tf.Transform keeps a count that survives a warm
    start; `Trainer` adds each run's counts before it fits (`add_admission_counts`).

    The counts are training exposures, not distinct impressions: a warm run that fits its whole window
    (`warm_start_days: 0`, a 2-day window) counts each day in two runs, so in such a chain `min_count: 50`
    admits an id after about 25 distinct impressions; and a run admits the ids its own rows take over the
    threshold from its first step."""

    def __init__(self, num_rows: int, min_count: int, **kwargs):
        super().__init__(**kwargs)
        self.num_rows, self.min_count = int(num_rows), int(min_count)

    def build(self, input_shape):
        self.counts = self.add_weight(name="counts", shape=(self.num_rows,), dtype=tf.int64,
                                      initializer="zeros", trainable=False)

    def call(self, rows):
        seen = tf.gather(self.counts, rows) >= self.min_count
        return tf.where(seen, rows, tf.zeros_like(rows))

    def add_counts(self, counts: tf.Tensor) -> None:
        """Adds one run's impressions per row (a [num_rows] int64 vector: `add_admission_counts`)."""
        self.counts.assign_add(counts)

    def admitted(self) -> int:
        """Ids on a row of their own (row 0 is shared, however often it was counted)."""
        return int(tf.reduce_sum(tf.cast(self.counts[1:] >= self.min_count, tf.int64)))

    def get_config(self):
        return {**super().get_config(), "num_rows": self.num_rows, "min_count": self.min_count}


def admit_ids(cfg: config_lib.Config, inputs: Dict[str, tf.Tensor],
              cardinalities: Dict[str, int]) -> Dict[str, tf.Tensor]:
    """The inputs as the tables look them up: admitted rows for features with `min_count`, else as given."""
    looked_up = dict(inputs)
    for f in cfg.features:
        if admits(f):
            looked_up[f.transformed_name] = IdAdmission(cardinalities[f.name], f.min_count,
                                                        name=admission_layer_name(f))(inputs[f.transformed_name])
    return looked_up


def add_admission_counts(cfg: config_lib.Config, model: keras.Model, dataset: tf.data.Dataset) -> Dict[str, Dict]:
    """Counts the rows of every admitted feature in one pass over `dataset` (the batches a run fits on:
    (features, labels[, weights])) into the model's admission layers; returns, per feature, the rows now
    admitted and the share of this run's impressions that reach their own row. Batch by batch into one
    vector per table: memory grows with the table, not with the run's rows."""
    admission = {f.name: model.get_layer(admission_layer_name(f)) for f in cfg.features if admits(f)}
    if not admission:
        return {}
    columns = {f.name: f.transformed_name for f in cfg.features if f.name in admission}
    run = {name: np.zeros([layer.num_rows], np.int64) for name, layer in admission.items()}
    for batch in dataset:
        for name, column in columns.items():  # O(batch) per batch: np.add.at, not a table-sized bincount
            np.add.at(run[name], np.asarray(batch[0][column]).ravel(), 1)
    out = {}
    for name, layer in admission.items():
        layer.add_counts(tf.constant(run[name]))
        own = (layer.counts.numpy() >= layer.min_count) & (np.arange(layer.num_rows) > 0)  # row 0 is shared
        out[name] = {"admitted_rows": layer.admitted(), "rows": layer.num_rows, "min_count": layer.min_count,
                     "impressions_on_own_row": round(float(run[name][own].sum() / max(run[name].sum(), 1)), 4)}
    return out


def _looked_up_l2(feature: config_lib.FeatureSpec):
    """L2 on the rows a batch looks up, not on the whole table: Keras divides an activity regulariser by the
    batch size, so this is l2 · mean over examples of |row|², and a row is pulled back each time it is used
    (frequency-aware, as in Rendle's SGD for factorisation machines). A whole-table `embeddings_regularizer`
    would instead decay every one of millions of id rows on every step, most of them absent from the batch."""
    return keras.regularizers.l2(feature.l2) if feature.l2 else None


def bias_layer_name(feature: config_lib.FeatureSpec) -> str:
    return f"bias_{feature.name}"


def value_tables(feature: config_lib.FeatureSpec) -> Tuple[str, ...]:
    """The layers holding one row per value of an embedded feature: what a warm start remaps by value."""
    return (embedding_layer_name(feature),) + ((bias_layer_name(feature),) if feature.bias else ())


def value_biases(cfg: config_lib.Config, inputs: Dict[str, tf.Tensor], cardinalities: Dict[str, int],
                 task_names: Sequence[str]) -> Dict[str, tf.Tensor]:
    """The wide part: for each feature with `bias`, a scalar per value and per task, summed into one [B, 1]
    logit term per task (zero at start, so a fresh model is the deep part alone). Ids carry most of their
    signal as such main effects (a user's own propensity), which a linear term learns from few impressions
    where an embedding fed through experts needs many."""
    terms: Dict[str, List[tf.Tensor]] = {t: [] for t in task_names}
    for f in cfg.features:
        if not f.bias:
            continue
        table = keras.layers.Embedding(cardinalities[f.name], len(task_names), name=bias_layer_name(f),
                                       embeddings_initializer="zeros", activity_regularizer=_looked_up_l2(f))
        per_task = table(inputs[f.transformed_name])  # [B, tasks]
        for k, t in enumerate(task_names):
            terms[t].append(per_task[:, k:k + 1])
    return {t: (parts[0] if len(parts) == 1 else keras.layers.Add(name=f"bias_sum_{t}")(parts))
            for t, parts in terms.items() if parts}


def embedding_layer_name(feature: config_lib.FeatureSpec) -> str:
    """The embedding table's layer: a warm start finds a feature's rows by this name."""
    return f"embed_{feature.name}"


def embed_features(cfg: config_lib.Config, inputs: Dict[str, tf.Tensor],
                   cardinalities: Dict[str, int]) -> Dict[str, tf.Tensor]:
    """Each feature as the model sees it: an embedding row ([B, dim]) for ids and categories, the value
    ([B, 1]) for numeric ones."""
    parts: Dict[str, tf.Tensor] = {}
    for f in cfg.features:
        x = inputs[f.transformed_name]
        if f.is_embedded:
            name = embedding_layer_name(f)
            emb = keras.layers.Embedding(cardinalities[f.name], f.embedding_dim, name=name,
                                         embeddings_initializer=keras.initializers.RandomUniform(
                                             -EMB_INIT, EMB_INIT, weight_seed(cfg.model.seed, name)),
                                         activity_regularizer=_looked_up_l2(f))
            parts[f.name] = emb(x)
        else:
            parts[f.name] = tf.expand_dims(x, -1)
    return parts


def shared_input(cfg: config_lib.Config, parts: Dict[str, tf.Tensor]) -> tf.Tensor:
    """The features side by side: the one [B, D] input every architecture starts from (features with
    `deep: false` stay out: only their bias and interactions read them)."""
    values = [parts[f.name] for f in cfg.features if f.deep]
    return keras.layers.Concatenate(name="shared_input")(values) if len(values) > 1 else values[0]


def widen_pair_weights(cfg: config_lib.Config, target: tf.Variable, value: np.ndarray) -> np.ndarray:
    """An `interaction_weights: pair` kernel ([pairs, 1]) as the `dimension` kernel ([sum of the pairs'
    widths, 1]) of the same logit: each pair's weight on every coordinate of its element-wise product
    (a dot product is their sum). What a warm start across that change copies (components/trainer.py)."""
    dims = {f.name: f.embedding_dim for f in cfg.features if f.is_embedded}
    widths = [dims[a] for a, _ in cfg.model.interactions]
    if value.shape != (len(widths), 1) or tuple(target.shape) != (sum(widths), 1):
        raise ValueError(f"weight {target.name}: {value.shape} in production, {tuple(target.shape)} now")
    return np.repeat(value, widths, axis=0)


def pair_interactions(cfg: config_lib.Config, parts: Dict[str, tf.Tensor],
                      task_names: Sequence[str]) -> Dict[str, tf.Tensor]:
    """The factorisation-machine term of DeepFM (Guo et al., IJCAI 2017) for the configured pairs
    (`model.interactions`), weighed per task into a [B, 1] logit term. A user segment's taste for a category
    is a product of two rows here, which the experts' ReLU layers only approximate from the concatenated
    rows, slowly.

    `interaction_weights: pair` weighs each pair's dot product; `dimension` weighs each coordinate of the
    element-wise product (NCF's GMF), one bilinear form per task: with one shared dot product, a purchase
    logit could only follow the click's reasons to like an item, scaled."""
    pairs = cfg.model.interactions
    if not pairs:
        return {}
    if cfg.model.interaction_weights == "dimension":
        terms = [keras.layers.Multiply(name=f"interaction_{a}_{b}")([parts[a], parts[b]]) for a, b in pairs]
    else:
        terms = [keras.layers.Dot(axes=1, name=f"interaction_{a}_{b}")([parts[a], parts[b]]) for a, b in pairs]
    products = terms[0] if len(terms) == 1 else keras.layers.Concatenate(name="interactions")(terms)
    return {t: keras.layers.Dense(1, name=f"interactions_{t}", kernel_initializer=keras.initializers.GlorotUniform(
                weight_seed(cfg.model.seed, f"interactions_{t}")))(products) for t in task_names}
