"""Installs the `mtrank` project: its packages and the `mtrank` command.

Dependencies are not declared here on purpose: the TFX 1.16 stack only installs on Python 3.11 from a
fully pinned lock with `--no-deps --ignore-requires-python` (see requirements/ and `make install`).
"""

from setuptools import find_packages, setup

setup(
    name="mtrank",
    version="0.1.0",
    description="A TFX pipeline for multi-task ranking models (click-through, conversion, value)",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["mtrank", "mtrank.*", "components", "components.*", "pipeline",
                                    "pipeline.*", "serving", "serving.*"]),
    entry_points={"console_scripts": ["mtrank=mtrank.cli:main"]},
)
