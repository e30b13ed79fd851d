"""Warm start: continue from the weights of the model now in production.

The Trainer receives that model's serving directory as `fn_args.base_model`: ProductionModel's copy
of the version being served (components/production_model.py), a folder with no model in it while
nothing is served. A SavedModel's `variables/` folder is a TensorFlow checkpoint whose root is the Keras
model, so the new model reads it directly.

Rows are restored by value, not by position. tf.Transform orders a vocabulary by frequency, and the
order changes from day to day (segments `s4 s8 s2 ...`, the next day `s8 s4 s9 ...`), so row k of
yesterday's table is another category today. The SavedModel carries the vocabularies it was trained
with (Transform's files, under `assets/<feature>`); where one differs from today's, the old model is
read into a twin with yesterday's table sizes and each table is remapped by token with Keras's own
`warmstart_embedding_matrix`: a category keeps its row wherever it now sits, a new category keeps its
fresh row, and a category gone from today's vocabulary is dropped. Out-of-vocabulary buckets are hashed
and keep their positions.

The optimizer's state comes along (`save_moments`, `restore_moments`): Adam's moments per weight, remapped
by token like the rows, its step count, and how many warm runs the model has behind it. A fresh Adam
takes full-size first steps on every row it touches and forgets which rows were settled; in the daily
chain that made the newest days wash out what older ones taught (bench/results/warm_optimizer.md).

All or nothing: if the architecture or any other shape changed, no half-restored model is trained;
training starts cold and the reason is logged. A change of form is carried across instead
where `convert` says how (`restore(convert=...)`): a model with one interaction weight per pair becomes the
per-dimension model that scores exactly as it did (components/trainer.py `restore_warm`).
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Callable, Dict, List, Optional, Tuple

import mtrank  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import logging

from mtrank.export_contract import OPTIMIZER_STATE_FILE


Convert = Callable[[tf.Variable, np.ndarray], np.ndarray]  # (today's weight, the old value) -> today's value


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Today's vocabulary of one embedded feature, in the order Transform gave it, and its OOV buckets."""
    layers: Tuple[str, ...]  # the model's tables with one row per value (embedding, bias), by layer name
    tokens: List[bytes]
    num_oov_buckets: int


@dataclasses.dataclass(frozen=True)
class WarmStart:
    warm: bool
    source: Optional[str]
    reason: str
    # feature -> {"kept": categories restored to their own row, "moved": of those, rows that changed
    # position, "new": categories with a fresh row, "dropped": yesterday's categories gone today}
    remapped: Dict[str, Dict[str, int]] = dataclasses.field(default_factory=dict)
    # the features whose vocabulary order changed: yesterday's tokens and today's vocabulary, which is how
    # the optimizer's moments are remapped (`restore_moments`) as the rows were
    changed: Dict[str, Tuple[List[bytes], Vocabulary]] = dataclasses.field(default_factory=dict, repr=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "changed"}


def read_vocabulary(path: str) -> List[bytes]:
    """A tf.Transform vocabulary file: one token a line, row i of the table is line i."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read().splitlines()


def saved_vocabulary(base_model_dir: str, feature: str) -> str:
    """Where a SavedModel keeps the vocabulary file Transform wrote for `feature` (its asset of that name)."""
    return os.path.join(base_model_dir, "assets", feature)


def _snapshot(model: keras.Model):
    return [v.numpy() for v in model.weights]


def _load(model: keras.Model, prefix: str) -> None:
    status = model.load_weights(prefix)
    status.expect_partial()  # the SavedModel also holds the Transform layer and signatures
    status.assert_existing_objects_matched()  # every weight of the model found its value


def _counts(old: List[bytes], new: List[bytes]) -> Dict[str, int]:
    position = {t: i for i, t in enumerate(old)}
    kept = [(i, position[t]) for i, t in enumerate(new) if t in position]
    return {"kept": len(kept), "moved": sum(i != j for i, j in kept),
            "new": len(new) - len(kept), "dropped": len(old) - len(kept)}


def _oov(n: int) -> List[bytes]:
    """Stand-in tokens for the hashed OOV rows after the vocabulary, which keep their positions."""
    return [b"\x00oov-bucket-%d" % i for i in range(n)]


def _remap_rows(old_rows: np.ndarray, old: List[bytes], vocabulary: Vocabulary, fresh: np.ndarray) -> np.ndarray:
    """A table's rows moved from yesterday's vocabulary order to today's by token (Keras's own
    `warmstart_embedding_matrix`); a category new today keeps its row of `fresh`."""
    oov = _oov(vocabulary.num_oov_buckets)
    return keras.utils.warmstart_embedding_matrix(
        base_vocabulary=old + oov, new_vocabulary=vocabulary.tokens + oov, base_embeddings=old_rows,
        new_embeddings_initializer=keras.initializers.Constant(fresh)).numpy()


def _tables(model: keras.Model, features, vocabularies: Dict[str, Vocabulary]) -> Dict[object, str]:
    """The model's tables with one row per value of the given features: variable ref -> feature."""
    return {model.get_layer(layer).embeddings.ref(): name for name in features for layer in vocabularies[name].layers}


def _copy_remapped(twin: keras.Model, model: keras.Model, old: Dict[str, List[bytes]],
                   vocabularies: Dict[str, Vocabulary], convert: Optional[Convert] = None) -> None:
    """Every weight of `twin` (the old model, read with its own table sizes and form) into `model`; the
    tables of the features in `old` remapped by token to today's vocabularies; a weight of another shape
    through `convert`, when given."""
    tables = _tables(model, old, vocabularies)
    if len(twin.weights) != len(model.weights):
        raise ValueError(f"{len(twin.weights)} weights in the model in production, {len(model.weights)} now")
    for source, target in zip(twin.weights, model.weights):
        name = tables.get(target.ref())
        if name is None:
            if source.shape == target.shape:
                target.assign(source)
            elif convert is not None:
                target.assign(convert(target, source.numpy()))
            else:
                raise ValueError(f"weight {target.name}: {source.shape} in production, {target.shape} now")
            continue
        target.assign(_remap_rows(source.numpy(), old[name], vocabularies[name], target.numpy()))


def restore(model: keras.Model, base_model_dir: Optional[str], enabled: bool = True,
            vocabularies: Optional[Dict[str, Vocabulary]] = None,
            build_twin: Optional[Callable[[Dict[str, int]], keras.Model]] = None,
            convert: Optional[Convert] = None, quiet: bool = False) -> WarmStart:
    """Loads `base_model_dir`'s weights into `model` when every weight matches; otherwise leaves it cold.

    `vocabularies`: today's vocabulary per embedded categorical feature; `build_twin(sizes)`: a model of
    this architecture with those features' tables at the given sizes, which reads the old weights when a
    vocabulary changed (module docstring). `convert(target, value)`: a change of form carried across (the
    twin is then built in the old form and always reads the old weights; a weight whose shape differs goes
    through it). `quiet`: a cold start's reason is returned, not logged (the caller has another way in)."""
    if not enabled:
        return WarmStart(False, base_model_dir, "warm start is switched off in the configuration")
    if not base_model_dir or not tf.io.gfile.exists(os.path.join(base_model_dir, "saved_model.pb")):
        return WarmStart(False, None, "no model in production yet: first run, cold start")
    prefix = os.path.join(base_model_dir, "variables", "variables")
    if not tf.io.gfile.exists(prefix + ".index"):
        return WarmStart(False, base_model_dir, f"{base_model_dir} holds no variables checkpoint; cold start")
    vocabularies = vocabularies or {}
    old: Dict[str, List[bytes]] = {}
    for name in vocabularies:
        path = saved_vocabulary(base_model_dir, name)
        if not tf.io.gfile.exists(path):
            reason = (f"the model in production {base_model_dir} has no vocabulary for {name!r} ({path}): its "
                      f"rows cannot be matched to today's categories; cold start")
            logging.warning(reason)
            return WarmStart(False, base_model_dir, reason)
        old[name] = read_vocabulary(path)
    changed = {name: tokens for name, tokens in old.items() if tokens != vocabularies[name].tokens}
    before = _snapshot(model)
    try:
        if not changed and convert is None:
            _load(model, prefix)
        elif build_twin is None:
            raise ValueError(f"the vocabularies of {sorted(changed)} changed and no twin model can read the old ones")
        else:
            twin = build_twin({name: len(tokens) + vocabularies[name].num_oov_buckets
                               for name, tokens in changed.items()})
            _load(twin, prefix)
            _copy_remapped(twin, model, changed, vocabularies, convert)
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        for variable, value in zip(model.weights, before):  # never train a half-restored model
            variable.assign(value)
        reason = (f"the model in production {base_model_dir} does not fit this model (architecture or "
                  f"shape changed): cold start. Detail: {str(e).splitlines()[0][:300]}")
        if not quiet:
            logging.warning(reason)
        return WarmStart(False, base_model_dir, reason)
    remapped = {name: _counts(old[name], vocabularies[name].tokens) for name in vocabularies}
    logging.info("Warm start from the model in production %s; rows by category: %s", base_model_dir, remapped)
    return WarmStart(True, base_model_dir, "weights of the model in production" +
                     (f", rows remapped by category for {', '.join(sorted(changed))}" if changed else ""),
                     remapped, changed={name: (tokens, vocabularies[name]) for name, tokens in changed.items()})


def _moments(optimizer: keras.optimizers.Optimizer, variable: tf.Variable) -> Tuple[tf.Variable, tf.Variable]:
    """Adam's first and second moment of one weight. tf_keras's optimizer offers no public accessor for its
    slots (`get_slot` is the legacy optimizer's), so this reads the index it keeps; one place to change."""
    index = optimizer._index_dict[optimizer._var_key(variable)]
    return optimizer._momentums[index], optimizer._velocities[index]


def save_moments(model: keras.Model, optimizer: keras.optimizers.Optimizer, model_dir: str,
                 warm_runs: int) -> Optional[str]:
    """Writes the optimizer's state for every trainable weight of `model` (the serving model: what a warm
    start restores) into the export's assets.extra, with the step count and the warm runs behind it.

    The state is the optimizer's at the end of the run. When early stopping put back an earlier epoch's
    weights, the moments also hold the epochs after it: that is the setting the learning curve measured
    (bench/results/warm_optimizer.md); Keras's EarlyStopping restores weights only."""
    if len(optimizer.variables) <= 1:  # never built: no step was taken (0 epochs), nothing to carry
        return None
    arrays = {"iterations": np.int64(optimizer.iterations.numpy()), "warm_runs": np.int64(warm_runs)}
    # By position, as the weights themselves are matched (`_copy_remapped`): Keras numbers unnamed layers
    # per process (dense_9 in one run is dense_18 in the next), so names do not identify a weight.
    for i, variable in enumerate(model.trainable_weights):
        m, v = _moments(optimizer, variable)
        arrays[f"m{i}"], arrays[f"v{i}"] = m.numpy(), v.numpy()
    path = os.path.join(model_dir, OPTIMIZER_STATE_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    buffer = io.BytesIO()  # zipfile seeks and reads back; a GFile (gs://, say) only streams
    np.savez(buffer, **arrays)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())
    return path


@dataclasses.dataclass(frozen=True)
class OptimizerStart:
    restored: bool
    warm_runs: int  # warm runs behind the model in production (0: none recorded)
    iterations: int
    reason: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def restore_moments(trainee: keras.Model, model: keras.Model, start: WarmStart, enabled: bool = True
                    ) -> OptimizerStart:
    """Builds `trainee`'s optimizer and fills it with the state saved beside the model a warm start read:
    each weight's moments (tables remapped by token as their rows were: `start.changed`; a category new
    today starts at zero) and the step count.

    The step count comes along only when every weight `trainee` trains got its moments back. Adam's bias
    correction is global: after thousands of steps it is off, and a weight starting from zero moments (the
    training-only position tower, a weight of another form after `restore(convert=...)`) would take steps
    several times the rate for hundreds of steps. At step 0 the carried moments are damped instead, which
    is safe. An export without the file (older ones), a file that cannot be read, or `enabled` false gives
    a fresh Adam, logged; the weights stay warm either way. The warm runs behind the model are read
    whenever they were written."""
    optimizer = trainee.optimizer
    path = os.path.join(start.source or "", OPTIMIZER_STATE_FILE)
    if not start.warm or not tf.io.gfile.exists(path):
        return OptimizerStart(False, 0, 0, "cold start" if not start.warm else f"no optimizer state in {path}: "
                              "a fresh Adam")
    optimizer.build(trainee.trainable_variables)
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            saved = dict(np.load(io.BytesIO(f.read())))
        warm_runs = int(saved.get("warm_runs", 0))
        if not enabled:
            return OptimizerStart(False, warm_runs, 0, "a fresh Adam (model.warm_start_optimizer is off)")
        weights = sum(key.startswith("m") for key in saved)
        if weights != len(model.trainable_weights):
            return OptimizerStart(False, warm_runs, 0, f"the optimizer state in {path} holds {weights} weights, "
                                  f"the model {len(model.trainable_weights)}: a fresh Adam")
        tables = _tables(model, start.changed, {name: vocabulary for name, (_, vocabulary) in start.changed.items()})
        carried = 0
        for i, variable in enumerate(model.trainable_weights):
            slots, name = _moments(optimizer, variable), tables.get(variable.ref())
            old = [saved.get(f"{kind}{i}") for kind in ("m", "v")]
            if any(value is None for value in old):
                continue
            if name is not None:
                tokens, vocabulary = start.changed[name]
                old = [_remap_rows(value, tokens, vocabulary, np.zeros(slot.shape, slot.dtype.as_numpy_dtype))
                       for value, slot in zip(old, slots)]
            elif any(tuple(value.shape) != tuple(slot.shape) for value, slot in zip(old, slots)):
                continue  # a weight of another form (`restore(convert=...)`): its moments start at zero
            for value, slot in zip(old, slots):
                slot.assign(value)
            carried += 1
        fresh = len(trainee.trainable_weights) - carried
        if not fresh:
            optimizer.iterations.assign(int(saved["iterations"]))
    except Exception as e:  # noqa: BLE001 - a damaged file must not stop every daily run from now on
        for variable in optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        reason = f"the optimizer state in {path} cannot be read ({type(e).__name__}: {e}): a fresh Adam"
        logging.warning(reason)
        return OptimizerStart(False, 0, 0, reason)
    steps = (f"its {int(saved['iterations'])} steps" if not fresh else
             f"not its step count ({fresh} weight(s) start from zero moments, so Adam's bias correction restarts)")
    return OptimizerStart(True, warm_runs, int(optimizer.iterations.numpy()),
                          f"Adam's moments of {carried} of {len(trainee.trainable_weights)} weights and {steps}; "
                          f"{warm_runs} warm run(s) behind the model")


def initial_loss(model: keras.Model, dataset: tf.data.Dataset, batches: int = 5) -> float:
    """Loss before the first step: the evidence that a warm start started from somewhere."""
    return float(model.evaluate(dataset.take(batches), verbose=0, return_dict=True)["loss"])
