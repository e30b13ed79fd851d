"""TFX component code: Transform and Trainer module functions, evaluation set-up."""

import mtrank  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
