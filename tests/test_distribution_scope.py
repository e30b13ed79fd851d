"""The Trainer enters its strategy's scope twice (the model, then the optimizer a warm start fills): one
strategy, a fresh `with` context each time. A strategy's scope object can be entered only once."""

import dataclasses

import tensorflow as tf

from components import distribution


def test_the_trainer_enters_one_mirrored_strategy_once_per_block(cfg):
    mirrored = cfg.replace(kubeflow=dataclasses.replace(cfg.kubeflow, distribution="mirrored"))
    scope = distribution.scope(mirrored)
    with scope():
        built = tf.Variable(1.0)
        strategy = tf.distribute.get_strategy()
    with scope():  # the second block: the optimizer's slots, beside the weights they follow
        filled = tf.Variable(2.0)
        assert tf.distribute.get_strategy() is strategy
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert all(isinstance(v, tf.distribute.DistributedValues) for v in (built, filled))


def test_without_distribution_the_scope_changes_nothing(cfg):
    scope = distribution.scope(cfg)
    with scope(), scope():
        assert not tf.distribute.has_strategy()
