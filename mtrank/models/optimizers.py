"""The Trainer's optimizer (`model.optimizer`), built in one place for every training path.

`lazy_adam` is Adam that, for a sparse gradient (an embedding table's: `tf.IndexedSlices`), reads, updates
and writes only the rows the batch looked up; dense weights get tf_keras's own Adam step. tf_keras's Adam
(2.16) decays the first and second moments of the whole table and moves every row on every step, even when
the gradient touches 1,000 of 100,000 rows, so its step costs grow with the table, not with the batch. The
stack has no lazy Adam of its own any more (TensorFlow Addons' `LazyAdam` is archived and needs a TF it
does not support), so it is written here, on tf_keras's Adam: the same slots (`_momentums`,
`_velocities`), so the state `components/warm_start.py` carries is the same whichever is configured.

What changes besides the time: a row no batch of a step looked up keeps its value and its moments
(with `adam`, its momentum keeps moving it for some tens of steps after its last look-up, and its moments
decay). That is what the lookups' L2 (`l2`, applied to looked-up rows only) already assumes.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from mtrank.config import OPTIMIZERS


class LazyAdam(keras.optimizers.Adam):
    """Adam with row-wise (lazy) updates for sparse gradients; tf_keras's Adam for dense ones.

    For the rows i a batch looked up (the optimizer has already summed duplicate indices):
        m_i <- b1 m_i + (1 - b1) g_i,  v_i <- b2 v_i + (1 - b2) g_i^2,  w_i <- w_i - alpha m_i / (sqrt(v_i) + eps)
    with tf_keras's own alpha (the global step's bias correction) and epsilon; other rows are not touched.
    With every row looked up on every step this is tf_keras's Adam to float32 rounding (tests/test_optimizers.py).
    """

    def __init__(self, learning_rate=0.001, name: str = "LazyAdam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable):
        if not isinstance(gradient, tf.IndexedSlices) or self.amsgrad:
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1_power = tf.pow(tf.cast(self.beta_1, dtype), step)
        beta_2_power = tf.pow(tf.cast(self.beta_2, dtype), step)
        alpha = tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        epsilon = self.epsilon * tf.sqrt(1 - beta_2_power) if self.adaptive_epsilon else self.epsilon
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        rows, values = gradient.indices, gradient.values
        m_old, v_old = tf.gather(m, rows), tf.gather(v, rows)
        # tf_keras's dense formula, with (1 - beta) in Python floats as there: 1 - float32(0.999) is 1.3e-5 off
        m_rows = m_old + (values - m_old) * (1 - self.beta_1)
        v_rows = v_old + (tf.square(values) - v_old) * (1 - self.beta_2)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + epsilon), rows))


def build(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """The optimizer `model.optimizer` names (mtrank/config.py refuses any other name)."""
    if name == "lazy_adam":
        return LazyAdam(learning_rate)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    raise ValueError(f"model.optimizer {name!r} is unknown; use one of {OPTIMIZERS}")
