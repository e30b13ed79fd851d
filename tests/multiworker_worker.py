"""One worker of tests/test_multiworker.py: trains the configured model under MultiWorkerMirroredStrategy
(TF_CONFIG names the workers) and saves its final weights to argv[1].

Each global batch is split between the workers (DATA sharding), so the workers compute different
gradients: they can only end with the same weights if the strategy all-reduced them.

The strategy is created first, before any other TensorFlow op, as MultiWorkerMirroredStrategy requires.
"""

import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import mtrank  # noqa: E402,F401
import numpy as np  # noqa: E402

from components import distribution  # noqa: E402
from mtrank import config as config_lib  # noqa: E402

STEPS = 5
GLOBAL_BATCH = 64
EAGER = True  # no graph tracing: the all-reduces run step by step, which is quicker for a few steps


def synthetic(cfg, n, seed=0):
    """Transformed-feature batch for the configured model (ids for embedded features, z-scores for numeric)."""
    from mtrank.models import builder

    rng = np.random.default_rng(seed)
    cards = builder.default_cardinalities(cfg)
    x = {f.transformed_name: (rng.normal(size=n).astype(np.float32) if f.kind == "numeric"
                              else rng.integers(0, cards[f.name], size=n)) for f in cfg.features}
    click = (rng.random(n) < 0.3).astype(np.float32)
    y = {t.name: click[:, None] for t in cfg.tasks}
    for t in cfg.tasks:
        if t.type == "regression":
            y[t.name] = (click * rng.normal(3, 1, n))[:, None].astype(np.float32)
        elif t.follows:
            y[t.name] = (click * (rng.random(n) < 0.3))[:, None].astype(np.float32)
    w = {t.name: click for t in cfg.tasks if t.weight_by}
    return x, y, w


def main(out_path: str) -> None:
    import dataclasses
    import time

    started = time.time()
    cfg = config_lib.load()
    cfg = cfg.replace(kubeflow=dataclasses.replace(cfg.kubeflow, distribution="multi_worker_mirrored"))
    strategy = distribution.strategy(cfg.kubeflow.distribution)  # first: before any other TensorFlow op
    print(f"strategy {time.time() - started:.1f}s", flush=True)
    import tensorflow as tf

    from mtrank.models import builder, layers, optimizers

    x, y, w = synthetic(cfg, GLOBAL_BATCH * STEPS)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = tf.data.Dataset.from_tensor_slices((x, y, w) if w else (x, y)).batch(GLOBAL_BATCH).with_options(options)
    with strategy.scope():
        net = builder.build(cfg, builder.default_cardinalities(cfg))
        loss, loss_weights = builder.losses(cfg, net)
        net.trainee.compile(optimizer=optimizers.build(cfg.model.optimizer, cfg.model.learning_rate), loss=loss,
                            loss_weights=loss_weights, weighted_metrics=[], run_eagerly=EAGER)
    layers.add_admission_counts(cfg, net.model, dataset)  # the ids' counts, a mirrored int64 weight, as the Trainer
    print(f"built {time.time() - started:.1f}s", flush=True)
    initial = net.model.get_weights()
    history = net.trainee.fit(dataset, epochs=1, verbose=0)
    print(f"trained {time.time() - started:.1f}s", flush=True)
    weights = net.model.get_weights()
    moved = sum(not np.array_equal(a, b) for a, b in zip(initial, weights))
    np.savez(out_path, *weights, num_replicas=strategy.num_replicas_in_sync, moved=moved,
             loss=np.array(history.history["loss"]))


if __name__ == "__main__":
    main(sys.argv[1])
