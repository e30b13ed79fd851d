"""AtomicPusher: publishes a blessed model so that a server never sees a half-written version.

Why not TFX's Pusher: it copies the SavedModel straight into `<base>/<version>/` (saved_model.pb last).
A push killed half-way leaves a numbered folder without saved_model.pb that nothing removes: a server
polling with the newest-version policy aspires to a version that can never load, and a folder copied
by another tool in another order can be loaded half-written. Here the model is copied into a staging
folder `<base>/.staging-<version>-<pid>` (same filesystem, a name no server takes for a version: TF
Serving and serving/versions.py only load integer folders), then renamed into `<base>/<version>` in
one step. A failed push removes its staging folder; one left behind by a killed process is removed by
the next push once it is an hour old. On object stores (gs://, s3://) there is no atomic rename of a
folder: there the files are copied in place with saved_model.pb last (TFX's order), and the server's
guard (serving/versions.py: a version loads only once saved_model.pb exists and its files stopped
changing) covers the gap; see docs/faults.md.

The output keeps TFX's Pusher contract: a PushedModel artifact with custom properties `pushed`
(1/0), `pushed_destination` and `pushed_version`; versions are integers (Unix seconds, as TFX's
Pusher), always above every version already there.
"""

import os
import shutil
import time
from typing import Callable, Optional, Tuple

import mtrank  # noqa: F401
import tensorflow as tf
from absl import logging
from tfx import v1 as tfx
from tfx.utils import path_constants

STAGING_PREFIX = ".staging-"
SERVING_FORMAT_DIR = path_constants.SERVING_MODEL_DIR  # "Format-Serving": where a Model artifact keeps the SavedModel
STALE_AFTER_S = 3600.0  # a staging folder this old belongs to a push that was killed


class PushError(RuntimeError):
    """A push that did not complete; nothing was published and the previous version keeps serving."""


def next_version(base_directory: str, now: Optional[float] = None) -> int:
    """Unix seconds, or one above the newest version present if that is higher (two pushes in a second)."""
    present = [int(n) for n in os.listdir(base_directory) if n.isdigit()] if os.path.isdir(base_directory) else []
    return max([int(now if now is not None else time.time())] + [v + 1 for v in present])


def remove_stale_staging(base_directory: str, older_than_s: float = STALE_AFTER_S) -> None:
    """Staging folders left by a killed push (never visible to a server) are removed; younger ones may belong
    to a push running right now (two scheduled runs overlapping) and are left alone."""
    if not os.path.isdir(base_directory):
        return
    for name in os.listdir(base_directory):
        path = os.path.join(base_directory, name)
        if name.startswith(STAGING_PREFIX) and time.time() - os.path.getmtime(path) > older_than_s:
            logging.warning("removing %s, left by an interrupted push", os.path.join(base_directory, name))
            shutil.rmtree(os.path.join(base_directory, name), ignore_errors=True)


def push_atomically(model_dir: str, base_directory: str,
                    copy_function: Callable[[str, str], object] = shutil.copy2) -> Tuple[int, str]:
    """Copies `model_dir` (a SavedModel) to `<base_directory>/<version>`; returns (version, path).

    The version folder appears by rename only once every file is written; on any error the staging
    folder is removed and PushError names the model, the destination and the cause.
    """
    if not tf.io.gfile.exists(os.path.join(model_dir, "saved_model.pb")):
        raise PushError(f"{model_dir} has no saved_model.pb; refusing to push an incomplete model")
    if "://" in base_directory:
        return _push_to_object_store(model_dir, base_directory)
    os.makedirs(base_directory, exist_ok=True)
    remove_stale_staging(base_directory)
    version = next_version(base_directory)
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{version}-{os.getpid()}")
    target = os.path.join(base_directory, str(version))
    try:
        shutil.copytree(model_dir, staging, copy_function=copy_function)
        os.rename(staging, target)  # atomic on one filesystem; fails if the target exists
    except BaseException as e:  # KeyboardInterrupt too: never leave a staging folder behind if we can help it
        shutil.rmtree(staging, ignore_errors=True)
        raise PushError(f"pushing {model_dir} to {target} failed ({type(e).__name__}: {e}); nothing was published "
                        "and the previous version keeps serving. Run the day again to retry the push.") from e
    logging.info("model published as version %d at %s", version, target)
    return version, target


def _push_to_object_store(model_dir: str, base_directory: str) -> Tuple[int, str]:
    """No atomic folder rename on object stores: copy in place, saved_model.pb last (what servers wait for)."""
    from tfx.utils import io_utils

    present = [int(n.rstrip("/")) for n in tf.io.gfile.listdir(base_directory) if n.rstrip("/").isdigit()] \
        if tf.io.gfile.isdir(base_directory) else []
    version = max([int(time.time())] + [v + 1 for v in present])
    target = f"{base_directory.rstrip('/')}/{version}"
    try:
        io_utils.copy_dir(model_dir, target, deny_regex_patterns=[r"saved_model\.pb"])
        io_utils.copy_file(os.path.join(model_dir, "saved_model.pb"), f"{target}/saved_model.pb")
    except Exception as e:
        raise PushError(f"pushing {model_dir} to {target} failed ({type(e).__name__}: {e}); it has no "
                        "saved_model.pb, so no server loads it. Delete it and run the day again.") from e
    return version, target


def serving_model_dir(model_uri: str) -> str:
    """The SavedModel inside a Trainer Model artifact (`<uri>/Format-Serving`, or the uri for old artifacts)."""
    nested = os.path.join(model_uri, SERVING_FORMAT_DIR)
    return nested if tf.io.gfile.isdir(nested) else model_uri


@tfx.dsl.components.component
def AtomicPusher(
    model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model],
    pushed_model: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.PushedModel],
    base_directory: tfx.dsl.components.Parameter[str],
) -> None:
    """Publishes a model atomically (see the module docstring).

    The blessing is checked by the pipeline's `tfx.dsl.Cond` around this node, as in TFX's own examples:
    taking the blessing as an input too would make TFX 1.16's Kubeflow V2 compiler write the condition
    against an input the task does not have."""
    version, target = push_atomically(serving_model_dir(model.uri), base_directory)
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", target)
    pushed_model.set_string_custom_property("pushed_version", str(version))
