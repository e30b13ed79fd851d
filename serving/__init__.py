"""Serving: the TF Serving layout of pushed models."""

import mtrank  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
