"""A clean terminal: what TensorFlow's, Beam's and TFDV's runtimes print goes to a log file, not to the user.

Importing TensorFlow 2.16 on a machine without a GPU writes four lines to file descriptor 2 from C++
(cuFFT, cuDNN and cuBLAS factories registered twice, TensorRT not found); every tf.data pass ends with
"Local rendezvous is aborting with status: OUT_OF_RANGE"; TFDV and Beam warn about deprecated calls and
missing accelerators. None of it is ours to act on, and TF_CPP_MIN_LOG_LEVEL cannot hide it without
hiding real errors too, so while TensorFlow loads and while a pipeline or TFDV runs, descriptor 2 (C++,
Python's sys.stderr, child processes) points at a log file. Our own messages (a refusal, a traceback) are
printed after the block, on the terminal; progress goes to stdout.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator


def scratch_log_dir() -> Path:
    """Where a command without a workspace (`mtrank init`, `serve`, `compile`) keeps these lines."""
    return Path(tempfile.gettempdir()) / f"mtrank-{os.getuid()}"


@contextlib.contextmanager
def native_stderr_to(log_file: Path) -> Iterator[None]:
    """Descriptor 2 into `log_file` for the block, then back to where it pointed."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log_file, "ab") as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def import_tensorflow_quietly(log_file: Path) -> None:
    if "tensorflow" in sys.modules:
        return
    with native_stderr_to(log_file):
        import tensorflow  # noqa: F401
