"""Shared fixtures. TF_USE_LEGACY_KERAS must be set before anything imports TensorFlow."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from mtrank import config as config_lib  # noqa: E402


@pytest.fixture(scope="session")
def cfg() -> config_lib.Config:
    return config_lib.load()
