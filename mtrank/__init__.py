"""mtrank: a TFX pipeline for multi-task ranking models (click, conversion, value).

tf.Transform 1.16 and TFMA 0.47 run on Keras 2 (tf_keras). The switch must be set before TensorFlow
is first imported, so every package of the project imports this one first.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
