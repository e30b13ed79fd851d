"""The Trainer's tf.distribute strategy, chosen by `kubeflow.distribution` (none | mirrored |
multi_worker_mirrored).

`mirrored` uses every GPU of the Trainer's pod; `multi_worker_mirrored` trains on the workers named in
TF_CONFIG (one process per worker, all running the same `run_fn`), and on one worker when TF_CONFIG is
unset. The model must be built and compiled inside the strategy's scope so its variables are mirrored.
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import mtrank  # noqa: F401
import tensorflow as tf

from mtrank import config as config_lib


def strategy(name: str) -> tf.distribute.Strategy:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "none":
        return tf.distribute.get_strategy()  # the default strategy: no distribution
    raise ValueError(f"kubeflow.distribution {name!r} is unknown; use one of {config_lib.DISTRIBUTIONS}")


def scope(cfg: config_lib.Config) -> Callable[[], ContextManager]:
    """Where to build and compile the model, and later fill its optimizer: a function giving a fresh `with`
    context each time (a strategy's scope object can be entered only once), all of one strategy, created
    here; a no-op for `none`."""
    name = cfg.kubeflow.distribution
    return contextlib.nullcontext if name == "none" else strategy(name).scope
