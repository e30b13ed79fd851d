"""Trainer's `run_fn`: trains the configured multi-task model and exports it for TF Serving and TFMA.

Exported signatures:
  serving_default     serialized tf.Example (input columns only) -> {task, <task>_given_<parent>, score}
  raw_features        one tensor per input column -> the same outputs
  ranking_request     `examples` headed by a context tf.Example (the request's shared columns, flagged
                      in `is_context`), then each candidate's own -> the same outputs, one per row
  transform_features  serialized tf.Example (inputs and labels) -> transformed features; TFMA reads
                      labels from here, so evaluation sees the labels training saw.
Beside the SavedModel, `model_run_dir` receives `training_summary.json`: parameter count, per-epoch
losses, and the mean gate weight of every expert for every task (a collapsed gate is visible there).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Dict, List, Optional

import mtrank  # noqa: F401
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components import preprocessing, records, warm_start
from components.preprocessing import CONFIG_KEY
from mtrank import config as config_lib
from mtrank import feature_kinds
from mtrank import fusion as fusion_lib
from mtrank import export_contract
from mtrank.export_contract import SERVING_SIGNATURE, SUMMARY_FILE, TRANSFORM_SIGNATURE
from mtrank import ranking
from mtrank.models import builder, diagnostics, layers, optimizers
from serving import signatures as serving_signatures_lib, warmup



def cardinalities(cfg: config_lib.Config, tf_transform_output: tft.TFTransformOutput) -> Dict[str, int]:
    """Embedding sizes: hash buckets and bucket counts from the configuration, vocabularies from Transform."""
    sizes = {}
    for f in cfg.features:
        if f.is_embedded:
            vocabulary = feature_kinds.of(f).vocabulary
            sizes[f.name] = builder.cardinality(f, tf_transform_output.vocabulary_size_by_name(f.name) if vocabulary else 0)
    return sizes


def vocabularies(cfg: config_lib.Config, tf_transform_output: tft.TFTransformOutput) -> Dict[str, warm_start.Vocabulary]:
    """Today's vocabulary of each embedded categorical feature, which a warm start remaps yesterday's rows to."""
    return {f.name: warm_start.Vocabulary(layers.value_tables(f), warm_start.read_vocabulary(
                tf_transform_output.vocabulary_file_by_name(f.name)), f.num_oov_buckets)
            for f in cfg.features if feature_kinds.of(f).vocabulary}


def split_labels(cfg: config_lib.Config, batch: Dict[str, tf.Tensor]):
    """Transformed batch -> (model inputs, labels per output, sample weights per output)."""
    features = {f.transformed_name: batch[f.transformed_name] for f in cfg.features}
    position = cfg.model.position_bias  # training-only input of the bias tower
    if position is not None and position.transformed_name in batch:
        features[position.transformed_name] = batch[position.transformed_name]
    labels = {t.name: tf.expand_dims(batch[t.transformed_label], -1) for t in cfg.tasks}
    weights = {t.name: batch[t.transformed_weight] for t in cfg.tasks if t.weight_by}
    return (features, labels, weights) if weights else (features, labels)


READ_BATCHES = 32  # TFXIO parses this many training batches at once when streaming
LOAD_BATCH = 16384  # rows per TFXIO batch when a split is read into memory


def count_examples(file_pattern: List[str]) -> int:
    """Rows in Transform's output; Keras needs the number of steps to run several per call."""
    files = [f for pattern in file_pattern for f in tf.io.gfile.glob(pattern)]
    if not files:
        raise FileNotFoundError(f"no transformed examples match {file_pattern}; did Transform write this split?")
    return records.count_records(files)


def held_out(cfg: config_lib.Config, request_key: tf.Tensor) -> tf.Tensor:
    """True for the rows of requests held out of training (`ranking.validation_fraction`, by request hash):
    Keras validation and the weight search read them; the evaluated day is read by nothing before the
    Evaluator. Whole requests are held out, so a held-out list is a complete ranked list."""
    return tf.math.floormod(request_key, 10_000) < int(round(cfg.ranking.validation_fraction * 10_000))


def _rows(cfg: config_lib.Config, batch: Dict[str, tf.Tensor], rows: Optional[str]) -> Dict[str, tf.Tensor]:
    """The batch's training rows ("train"), held-out rows ("validation"), or all of them (None)."""
    if rows is None:
        return batch
    mask = held_out(cfg, batch[export_contract.REQUEST_KEY])
    mask = mask if rows == "validation" else tf.logical_not(mask)
    return {k: tf.boolean_mask(v, mask) for k, v in batch.items()}


def holds_out_requests(cfg: config_lib.Config) -> bool:
    return bool(cfg.ranking.request_column)


def input_fn(cfg: config_lib.Config, file_pattern: List[str], data_accessor: tfx.components.DataAccessor,
             tf_transform_output: tft.TFTransformOutput, batch_size: int, shuffle: bool,
             num_examples: Optional[int] = None, rows: Optional[str] = None,
             extra_columns: Optional[List[str]] = None) -> tf.data.Dataset:
    """Streams batches of `batch_size` as (features, labels[, weights]), parsed READ_BATCHES batches at a time.

    Records are shuffled before parsing (TFXIO), so the batches are those of a per-row shuffle; `rebatch`
    only cuts each large parsed batch into training batches. With `num_examples` the dataset knows its
    length, which `steps_per_execution` > 1 needs. Used when `model.examples_in_memory` is off: reading
    gzipped TFRecords runs at about 50k rows/s on one core (bench/trainer_throughput.py), every epoch.
    `rows` keeps the training or the held-out requests (`held_out`); `extra_columns` adds a dict of those
    transformed columns to each element.
    """
    dataset = data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size * READ_BATCHES, num_epochs=1, shuffle=shuffle,
                                       shuffle_seed=cfg.model.seed if shuffle else None,
                                       shuffle_buffer_size=max(10_000, 2 * batch_size * READ_BATCHES)),
        tf_transform_output.transformed_metadata.schema,
    )
    if rows is not None:
        dataset = dataset.map(lambda batch: _rows(cfg, batch, rows), num_parallel_calls=tf.data.AUTOTUNE)
    if extra_columns:
        dataset = dataset.map(lambda batch: (*split_labels(cfg, batch), {c: batch[c] for c in extra_columns}),
                              num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(lambda batch: split_labels(cfg, batch), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.rebatch(batch_size)
    if num_examples is not None:
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(num_examples / batch_size)))
    return dataset.prefetch(tf.data.AUTOTUNE)


def load_examples(cfg: config_lib.Config, file_pattern: List[str], data_accessor: tfx.components.DataAccessor,
                  tf_transform_output: tft.TFTransformOutput, rows: Optional[str] = None,
                  extra_columns: Optional[List[str]] = None) -> tuple:
    """A whole split in memory, read once through TFXIO: (features, labels[, weights][, extras]) of NumPy arrays."""
    batches = list(input_fn(cfg, file_pattern, data_accessor, tf_transform_output, LOAD_BATCH, shuffle=False,
                            rows=rows, extra_columns=extra_columns).as_numpy_iterator())
    if not batches:
        raise ValueError(f"the split {file_pattern} holds no examples; check the day's data and Transform's output")
    return tuple({k: np.concatenate([b[i][k] for b in batches]) for k in batches[0][i]} for i in range(len(batches[0])))


def in_memory_dataset(arrays: tuple, batch_size: int, shuffle: bool, seed: int) -> tf.data.Dataset:
    """Batches gathered from in-memory arrays, as Keras does for NumPy input: one permutation of the row
    indices per pass (a new one every epoch, from `seed`), cut into batches, one gather per batch. Its
    length is known. A per-row `Dataset.shuffle` of the indices cost 3x more time per epoch (0.28 s
    against 0.09 s for 200k rows), time the training step competes for on two cores."""
    num_examples = len(next(iter(arrays[0].values())))
    num_batches = math.ceil(num_examples / batch_size)

    def order(pass_seed):
        rows = tf.range(num_examples, dtype=tf.int64)
        if not shuffle:
            return rows
        return tf.random.experimental.stateless_shuffle(rows, seed=tf.stack([pass_seed, tf.constant(seed, tf.int64)]))

    # Dataset.random re-draws on every iteration (every epoch), deterministically from `seed`.
    passes = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1).map(order)
    batches = passes.flat_map(lambda rows: tf.data.Dataset.range(num_batches).map(
        lambda i: rows[i * batch_size:(i + 1) * batch_size]))
    batches = batches.apply(tf.data.experimental.assert_cardinality(num_batches))
    tensors = tf.data.Dataset.from_tensors(arrays).repeat()
    return (tf.data.Dataset.zip((batches, tensors))
            .map(lambda idx, data: tf.nest.map_structure(lambda t: tf.gather(t, idx), data),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def _parse_spec(tf_transform_output: tft.TFTransformOutput, columns: List[str]) -> Dict[str, tf.io.FixedLenFeature]:
    raw = tf_transform_output.raw_feature_spec()
    missing = [c for c in columns if c not in raw]
    if missing:
        raise ValueError(f"columns {missing} are in the configuration but not in the schema; add them to the schema")
    return {c: raw[c] for c in columns}


def serving_signatures(cfg: config_lib.Config, model: keras.Model, tf_transform_output: tft.TFTransformOutput,
                       bounds: Optional[serving_signatures_lib.Bounds] = None,
                       fusion: Optional[fusion_lib.Fusion] = None):
    """`bounds`: the schema's numeric ranges, which the serving signatures enforce (serving/signatures.py);
    `fusion`: the score's weights (mtrank/fusion.py; default: the configured ones)."""
    fusion = fusion or fusion_lib.configured(cfg)
    model.tft_layer = tf_transform_output.transform_features_layer()  # tracked, so it is saved with the model
    input_keys = [f.transformed_name for f in cfg.features]
    serving_spec = _parse_spec(tf_transform_output, cfg.input_columns)
    eval_spec = _parse_spec(tf_transform_output, cfg.input_columns + cfg.label_columns)

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve_tf_examples(serialized):
        raw = tf.io.parse_example(serialized, serving_spec)
        serving_signatures_lib.guard_inputs(raw, bounds or {})
        return serving_signatures_lib.scored_outputs(model, raw, input_keys, fusion)  # one value per example

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def transform_features(serialized):
        raw = tf.io.parse_example(serialized, eval_spec)
        return model.tft_layer(raw)

    raw_features = serving_signatures_lib.raw_features_signature(model, serving_spec, input_keys, bounds, fusion)
    return {SERVING_SIGNATURE: serve_tf_examples, TRANSFORM_SIGNATURE: transform_features,
            serving_signatures_lib.RAW_SIGNATURE: raw_features,
            serving_signatures_lib.CONTEXT_SIGNATURE: serving_signatures_lib.ranking_request_signature(serve_tf_examples)}


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """A NaN or infinite loss ends training with an error, so no broken model is ever exported.

    Checked every `every` steps and at each epoch's end: reading the loss forces a device sync.
    """

    def __init__(self, every: int = 25):
        super().__init__()
        self.every = every
        self._last_checked = 0

    def _check(self, where: str, logs) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(
                f"training loss became {float(loss)} at {where}; the model is not exported. Check the "
                "learning rate and the input data (NaN or extreme values in a numeric column).")

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution > 1 Keras calls this once per execution, `batch` being its last step.
        if batch < self._last_checked or batch - self._last_checked >= self.every or batch == 0:
            self._last_checked = batch
            self._check(f"step {batch}", logs)

    def on_epoch_end(self, epoch, logs=None):
        self._check(f"the end of epoch {epoch + 1}", logs)


class EpochProgress(keras.callbacks.Callback):
    """One log line per epoch, "Epoch 2/6: loss 0.3121, val_loss 0.3207": the run's log keeps every figure,
    and the local runner shows the line as the Trainer's progress (pipeline/local_runner.py) instead of
    Keras's own printout, which would break the terminal's one line per component."""

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        figures = ", ".join(f"{k} {float(logs[k]):.4f}" for k in ("loss", "val_loss") if k in logs)
        logging.info("Epoch %d/%d: %s", epoch + 1, self.params.get("epochs", 0), figures)


def early_stopping(cfg: config_lib.Config, held_out: bool) -> Optional[keras.callbacks.EarlyStopping]:
    """Keras's early stopping with the best epoch's weights restored, on held-out requests of the training
    window only: validating on the evaluated day (what the Trainer falls back to without
    `ranking.request_column`) would tune the model on its own test, so there it stays off."""
    m = cfg.model
    if not m.early_stopping_patience or not held_out:
        return None
    return keras.callbacks.EarlyStopping(monitor=m.early_stopping_key(), patience=m.early_stopping_patience,
                                         mode="min", restore_best_weights=True, verbose=0)


def stopping_summary(cfg: config_lib.Config, stopping: Optional[keras.callbacks.EarlyStopping],
                     history: Dict[str, List[float]]) -> Dict:
    """What early stopping did, for the training summary and the run report."""
    if stopping is None:
        why = ("model.early_stopping_patience is 0" if not cfg.model.early_stopping_patience else
               "no request column: the only validation data is the evaluated day, which training must not see")
        return {"active": False, "reason": why}
    curve = history.get(stopping.monitor) or []
    return {"active": True, "monitor": stopping.monitor, "patience": stopping.patience,
            "best_epoch": int(stopping.best_epoch) + 1 if curve else None,
            "best": float(min(curve)) if curve else None, "stopped_early": bool(stopping.stopped_epoch)}


@dataclasses.dataclass
class TrainingData:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    # Held-out requests in memory for the weight search: (features, labels[, weights], extras) or None.
    held_out: Optional[tuple] = None


def _split_arrays(arrays: tuple, keep: np.ndarray) -> tuple:
    return tuple({k: v[keep] for k, v in part.items()} for part in arrays)


def _rows_of(arrays: tuple) -> int:
    return len(next(iter(arrays[0].values())))


def fit_files(cfg: config_lib.Config, train_files: List[str], warm: bool) -> List[str]:
    """The training window's files a run fits on: all of them, or on a warm start the newest
    `model.warm_start_days` (the Trainer's train splits come newest first: components/window.py)."""
    days = cfg.model.warm_start_days
    return list(train_files[:days]) if warm and days else list(train_files)


def _concat_arrays(a: tuple, b: tuple) -> tuple:
    return tuple({k: np.concatenate([x[k], y[k]]) for k in x} for x, y in zip(a, b))


def training_datasets(cfg: config_lib.Config, fn_args: tfx.components.FnArgs,
                      tf_transform_output: tft.TFTransformOutput, fit: Optional[List[str]] = None) -> TrainingData:
    """Training and validation data, from memory (`model.examples_in_memory`, read once) or streamed.

    The model fits on `fit` (default: every train file; see `fit_files`). With `ranking.request_column`,
    validation is the held-out requests of the whole training window (`held_out`), whatever is fitted on;
    without it, the evaluation split, as before."""
    m = cfg.model
    fit = list(fn_args.train_files) if fit is None else fit
    rest = [f for f in fn_args.train_files if f not in fit]  # held out only: validation and the weight search
    extras = [export_contract.REQUEST_KEY] + [export_contract.raw_copy_name(c) for c in preprocessing.ranking_columns(cfg)]
    started = time.perf_counter()
    if holds_out_requests(cfg):
        if m.examples_in_memory:
            arrays = load_examples(cfg, fit, fn_args.data_accessor, tf_transform_output, extra_columns=extras)
            mask = held_out(cfg, tf.constant(arrays[-1][export_contract.REQUEST_KEY])).numpy()
            train, validation = _split_arrays(arrays[:-1], ~mask), _split_arrays(arrays, mask)
            train_ds = in_memory_dataset(train, m.batch_size, shuffle=True, seed=m.seed)
        else:
            validation = load_examples(cfg, fit, fn_args.data_accessor, tf_transform_output,
                                       rows="validation", extra_columns=extras)
            sized = m.steps_per_execution > 1
            train_ds = input_fn(cfg, fit, fn_args.data_accessor, tf_transform_output, m.batch_size,
                                shuffle=True, rows="train", num_examples=(
                                    count_examples(fit) - _rows_of(validation) if sized else None))
        if rest:
            try:
                older = load_examples(cfg, rest, fn_args.data_accessor, tf_transform_output, rows="validation",
                                      extra_columns=extras)
                validation = _concat_arrays(validation, older)
            except ValueError:  # no held-out request on the older days: the fitted days' ones validate
                logging.info("No held-out request on the window's days not fitted on (%s)", rest)
        if _rows_of(validation) == 0:
            raise ValueError("no request of the training window was held out for validation; raise "
                             "ranking.validation_fraction or train on more rows")
        logging.info("Held out %d rows (%.0f%% of the requests) of the training window in %.1f s",
                     _rows_of(validation), 100 * cfg.ranking.validation_fraction, time.perf_counter() - started)
        return TrainingData(train_ds, in_memory_dataset(validation[:-1], m.batch_size * 4, shuffle=False,
                                                        seed=m.seed), held_out=validation)
    if m.examples_in_memory:
        train = load_examples(cfg, fit, fn_args.data_accessor, tf_transform_output)
        evaluation = load_examples(cfg, fn_args.eval_files, fn_args.data_accessor, tf_transform_output)
        logging.info("Read %d training and %d evaluation rows into memory in %.1f s",
                     _rows_of(train), _rows_of(evaluation), time.perf_counter() - started)
        return TrainingData(in_memory_dataset(train, m.batch_size, shuffle=True, seed=m.seed),
                            in_memory_dataset(evaluation, m.batch_size * 4, shuffle=False, seed=m.seed))
    sized = m.steps_per_execution > 1
    return TrainingData(
        input_fn(cfg, fit, fn_args.data_accessor, tf_transform_output, m.batch_size,
                 shuffle=True, num_examples=count_examples(fit) if sized else None),
        input_fn(cfg, fn_args.eval_files, fn_args.data_accessor, tf_transform_output, m.batch_size * 4,
                 shuffle=False, num_examples=count_examples(fn_args.eval_files) if sized else None))


def search_fusion(cfg: config_lib.Config, model: keras.Model, held: tuple,
                  run_dir: str) -> fusion_lib.Fusion:
    """The score's weights: searched on the held-out requests (`ranking.fusion.mode: search`), else the
    configured ones. Writes fusion.json, the grid with its Pareto front and the plot to `run_dir`."""
    if cfg.ranking.fusion.mode != "search":
        return fusion_lib.configured(cfg)
    features, extras = held[0], held[-1]
    outputs = {k: np.asarray(v).reshape(-1) for k, v in model.predict(features, batch_size=8192, verbose=0).items()}
    columns = {c: extras[export_contract.raw_copy_name(c)] for c in preprocessing.ranking_columns(cfg)}
    codes = ranking.request_codes(extras[export_contract.REQUEST_KEY])
    result = fusion_lib.search(cfg, codes, outputs, columns)
    fusion_lib.write_search(result, run_dir, cfg.ranking.top_k)
    logging.info("Fusion: %s (%s); %s@%d per request %.4f, configured %s: %.4f", result.chosen.describe(),
                 result.reason, cfg.ranking.fusion.objective, cfg.ranking.top_k,
                 result.chosen_values[cfg.ranking.fusion.objective], result.configured.describe(),
                 result.configured_values[cfg.ranking.fusion.objective])
    return result.chosen


def compile_for_training(cfg: config_lib.Config, net: builder.MultiTaskModel) -> keras.Model:
    """Compiles the model that is fitted (it shares every weight with the serving model) and returns it.

    The one place training settings reach Keras, so bench/trainer_throughput.py measures what runs here.
    """
    trainee = net.trainee
    loss, loss_weights = builder.losses(cfg, net)
    trainee.compile(optimizer=optimizers.build(cfg.model.optimizer, cfg.model.learning_rate), loss=loss,
                    loss_weights=loss_weights, weighted_metrics=[],
                    steps_per_execution=cfg.model.steps_per_execution, jit_compile=cfg.model.jit_compile)
    return trainee


def learning_rate(cfg: config_lib.Config, trainee: keras.Model, warm: bool, warm_runs: int = 0) -> float:
    """Sets and returns this run's rate: `model.warm_start_learning_rate` on a warm start when given,
    else `model.learning_rate` (what `compile_for_training` built the optimizer with); on a warm start
    shrunk by the chain's age, `warm_runs` runs behind the model it starts from (`model.warm_start_decay`)."""
    m = cfg.model
    rate = m.warm_start_learning_rate if warm and m.warm_start_learning_rate else m.learning_rate
    if warm and m.warm_start_decay:
        window = max(1, cfg.data.train_days)
        rate *= max(m.warm_start_decay_floor, (window / (window + warm_runs)) ** m.warm_start_decay)
    keras.backend.set_value(trainee.optimizer.learning_rate, rate)
    return float(rate)


def restore_warm(cfg: config_lib.Config, model: keras.Model, base_model: Optional[str], sizes: Dict[str, int],
                 tf_transform_output: tft.TFTransformOutput) -> warm_start.WarmStart:
    """The warm start from the model in production (components/warm_start.py). A production model with one
    interaction weight per pair, under a configuration that now weighs each dimension, is carried across
    as the per-dimension model that scores as it did: going cold there would also reset the ids' counts,
    and the cold model would be refused against it (`max_drop`) on every day that followed."""
    vocab = vocabularies(cfg, tf_transform_output) if cfg.model.warm_start and base_model else None
    convertible = bool(cfg.model.interactions) and cfg.model.interaction_weights == "dimension"
    start = warm_start.restore(model, base_model, enabled=cfg.model.warm_start, vocabularies=vocab,
                               build_twin=lambda old_sizes: builder.build(cfg, {**sizes, **old_sizes}).model,
                               quiet=convertible)
    if start.warm or not start.source or not cfg.model.warm_start or not convertible:
        return start
    pair = cfg.replace(model=dataclasses.replace(cfg.model, interaction_weights="pair"))
    converted = warm_start.restore(model, base_model, vocabularies=vocab,
                                   build_twin=lambda old_sizes: builder.build(pair, {**sizes, **old_sizes}).model,
                                   convert=lambda target, value: layers.widen_pair_weights(cfg, target, value),
                                   quiet=True)
    if not converted.warm:
        logging.warning(start.reason)
        return start
    return dataclasses.replace(converted, reason=f"{converted.reason}; interaction weights per pair carried over "
                                                 "as per dimension")


class PhaseClock:
    """Seconds per phase of a run (build and restore, read, fit, fusion search, export): a warm run's cost
    is mostly not its fitting, and only a breakdown shows which part a setting changes."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._last, 2)
        self._last = now


def train(cfg: config_lib.Config, fn_args: tfx.components.FnArgs) -> Dict:
    from components import distribution  # kubeflow.distribution; the strategy must exist before other TF ops

    strategy_scope = distribution.scope(cfg)  # a fresh `with` context per block below, one strategy
    clock = PhaseClock()
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    if cfg.kubeflow.distribution != "none" and cfg.model.steps_per_execution > 1:
        # Sharded datasets have per-worker lengths that are not known here; one step per call is always right.
        logging.info("steps_per_execution %d -> 1 under %s", cfg.model.steps_per_execution, cfg.kubeflow.distribution)
        cfg = cfg.replace(model=dataclasses.replace(cfg.model, steps_per_execution=1))
    with strategy_scope():  # variables built and compiled here are mirrored across devices or workers
        sizes = cardinalities(cfg, tf_transform_output)
        net = builder.build(cfg, sizes)  # the warm start's twin below is built the same way
        trainee = compile_for_training(cfg, net)
    params = int(net.model.count_params())
    param_counts = diagnostics.parameter_counts(net.model, trainee)
    logging.info("Training %s with %d parameters for %d epoch(s): %s", cfg.model.architecture, params,
                 cfg.model.epochs, param_counts)
    fresh = trainee.get_weights()
    start = restore_warm(cfg, net.model, fn_args.base_model, sizes, tf_transform_output)
    with strategy_scope():  # the optimizer's slots are built here, beside the weights they follow
        moments = warm_start.restore_moments(trainee, net.model, start, enabled=cfg.model.warm_start_optimizer)
    logging.info("Optimizer: %s", moments.reason)
    clock.lap("build_and_restore")
    fit = fit_files(cfg, fn_args.train_files, start.warm)  # known only now: a warm run may fit on fewer days
    data = training_datasets(cfg, fn_args, tf_transform_output, fit)
    train_ds, eval_ds = data.train, data.validation
    # What this run fits on counts toward its ids' admission, on top of the counts a warm start restored.
    admission = layers.add_admission_counts(cfg, net.model, train_ds)
    if admission:
        logging.info("Ids admitted to their own rows: %s", admission)
    clock.lap("read")
    epochs = cfg.model.warm_start_epochs if start.warm else cfg.model.epochs
    rate = learning_rate(cfg, trainee, start.warm, moments.warm_runs)
    loss_before_training = warm_start.initial_loss(trainee, eval_ds)
    cold_loss = loss_before_training
    if start.warm:  # the same batches with the fresh weights, then the restored ones back
        restored = trainee.get_weights()
        trainee.set_weights(fresh)
        cold_loss = warm_start.initial_loss(trainee, eval_ds)
        trainee.set_weights(restored)
    logging.info("%s start, %d epoch(s) on %d of %d day(s) at learning rate %g, loss before training %.4f "
                 "(fresh weights: %.4f): %s", "Warm" if start.warm else "Cold", epochs, len(fit),
                 len(fn_args.train_files), rate, loss_before_training, cold_loss, start.reason)
    stopping = early_stopping(cfg, held_out=data.held_out is not None)
    history = trainee.fit(
        train_ds, validation_data=eval_ds, epochs=epochs, verbose=0,
        callbacks=[StopOnNonFiniteLoss(), EpochProgress(),
                   keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
                   diagnostics.GateLogger(net.gates, eval_ds, net.experts, fn_args.model_run_dir)]
        + ([stopping] if stopping is not None else []))
    stopped = stopping_summary(cfg, stopping, history.history)
    logging.info("Early stopping: %s", stopped)
    clock.lap("fit")

    bounds = serving_signatures_lib.schema_bounds(fn_args.schema_path, cfg.input_columns) if fn_args.schema_path else {}
    fusion = search_fusion(cfg, net.model, data.held_out, fn_args.model_run_dir) if data.held_out else \
        fusion_lib.configured(cfg)
    clock.lap("fusion_search")
    signatures = serving_signatures(cfg, net.model, tf_transform_output, bounds, fusion)
    net.model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures)
    fusion_lib.write_served(fusion, fn_args.serving_model_dir)
    warm_start.save_moments(net.model, trainee.optimizer, fn_args.serving_model_dir,
                            warm_runs=moments.warm_runs + 1 if start.warm else 0)
    warmup.write_warmup_requests(fn_args.serving_model_dir, cfg)  # replayed by TF Serving before first traffic
    clock.lap("export")
    logging.info("Trainer seconds: %s", clock.seconds)

    summary = {
        "architecture": cfg.model.architecture,
        "parameters": params,
        "parameter_counts": param_counts,
        "epochs": epochs,
        "fit_days": len(fit),
        "window_days": len(fn_args.train_files),
        "learning_rate": rate,
        "epochs_run": len(next(iter(history.history.values()), [])),
        "early_stopping": stopped,
        "warm_start": start.as_dict(),
        "optimizer_start": moments.as_dict(),
        "id_admission": admission,
        "loss_before_training": loss_before_training,
        "loss_with_fresh_weights": cold_loss,
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
        "gate_weights": diagnostics.mean_gate_weights(net.gates, eval_ds),
        "gate_experts": net.experts,
        "fusion": fusion.as_dict(),
        "fusion_formula": fusion.describe(),
        "seconds": clock.seconds,
    }
    if net.uncertainty is not None:
        summary["uncertainty_log_vars"] = dict(zip(net.uncertainty.task_names,
                                                   net.uncertainty.log_vars.numpy().round(4).tolist()))
    diagnostics.write_gate_tables(fn_args.model_run_dir, summary["gate_weights"], net.experts)
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, SUMMARY_FILE), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def run_fn(fn_args: tfx.components.FnArgs) -> None:
    """Entry point named in the pipeline (`components.trainer.run_fn`)."""
    cfg = config_lib.from_json(fn_args.custom_config[CONFIG_KEY])
    np.random.seed(cfg.model.seed)
    train(cfg, fn_args)
