"""ProductionModel: the model being served, read from the serving root, handed on as a Model artifact.

It feeds the Trainer's warm start and the Evaluator's baseline, so a model is trained from, and judged
against, exactly the version it would replace.

Why not TFX's LatestBlessedModel resolver: a `Resolver` compiles to a `resolver` executor, which only
Vertex AI Pipelines evaluates; the open-source Kubeflow Pipelines backend refuses it before a run starts
(kubeflow/pipelines `backend/src/v2/compiler/argocompiler/argo.go`, `Resolver(...)` returns "resolver not
implemented yet"). A container component runs on every runner: LocalDagRunner, open-source Kubeflow
Pipelines and Vertex AI alike, and the graph is the same everywhere.

Why the serving root and not ml-metadata: what the Pusher wrote into `<serving_root>/<model>/` is what a
server loads (the newest complete integer version, TF Serving's default policy), so it is the truth of
what is in production, and it follows a manual rollback (delete or move the newest version folder and the
next run warm-starts from, and is judged against, the one now served). Querying a cluster's ml-metadata
service would need its address and credentials in every pod, and would still name the last *blessed*
model, which is not necessarily the one served.

Why a copy: a pipeline artifact must not change after it is written, but a version folder can be
rolled back or garbage-collected while the run goes on. The served SavedModel is copied into
`<uri>/Format-Serving`, the layout of the Trainer's own Model artifact, so the Trainer's `base_model` and
the Evaluator's `baseline_model` read it as they read any model. With nothing in production (the first
run) the artifact holds no model: the Trainer starts cold and the Evaluator skips the change thresholds
(components/evaluator.py).
"""

import posixpath
from typing import Optional, Tuple

import mtrank  # noqa: F401
import tensorflow as tf
from absl import logging
from tfx import v1 as tfx
from tfx.utils import io_utils, path_constants

from mtrank.export_contract import COMPLETE_MARKER

SERVING_FORMAT_DIR = path_constants.SERVING_MODEL_DIR  # "Format-Serving": where a Model artifact keeps the SavedModel


def loadable(path: str) -> bool:
    """A complete SavedModel whose graph parses: a server skips a corrupt version and keeps the previous one
    serving (serving/versions.py, TF Serving alike), so a corrupt version is not in production either."""
    from tensorflow.python.saved_model import loader_impl

    if not any(tf.io.gfile.exists(posixpath.join(path, f)) for f in (COMPLETE_MARKER, "saved_model.pbtxt")):
        return False
    try:
        loader_impl.parse_saved_model(path)
    except Exception as e:  # noqa: BLE001 - IOError, DecodeError: whatever a server would fail on
        logging.warning("version %s does not load (%s: %s); a server skips it, and so does the warm start",
                        path, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        return False
    return True


def newest_complete_version(base_directory: str) -> Optional[Tuple[int, str]]:
    """(version, path) of the newest integer folder holding a SavedModel that parses, or None.

    This is what TF Serving's default `latest` policy serves; staging folders (`.staging-*`), versions
    still being copied (no saved_model.pb yet) and corrupt ones are passed over, as a server passes them.
    """
    if not tf.io.gfile.isdir(base_directory):
        return None
    versions = sorted((int(name.rstrip("/")) for name in tf.io.gfile.listdir(base_directory)
                       if name.rstrip("/").isdigit()), reverse=True)
    for version in versions:
        path = posixpath.join(base_directory.rstrip("/"), str(version))
        if loadable(path):
            return version, path
    return None


def holds_model(model_uri: str) -> bool:
    """Whether a Model artifact holds a SavedModel (False for ProductionModel's output on a first run)."""
    return tf.io.gfile.exists(posixpath.join(model_uri, SERVING_FORMAT_DIR, COMPLETE_MARKER))


@tfx.dsl.components.component
def ProductionModel(
    base_directory: tfx.dsl.components.Parameter[str],
    run_date: tfx.dsl.components.Parameter[str],
    model: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Model],
    served_version: tfx.dsl.components.Parameter[str] = "",
) -> None:
    """Copies the served version into `model` (see the module docstring).

    `run_date` and `served_version` are not read: they are the local runner's cache key. `served_version`
    is the newest complete version when the run was built (pipeline/local_runner.py): a resumed run of a
    day reuses the production model that day started from, while a run after a push (the next day, or
    `mtrank run --force` of a pushed day) or after a rollback reads the serving root again. On Kubeflow the
    spec is compiled once, so this task is compiled uncached there (pipeline/kubeflow_runner.py).
    """
    del run_date, served_version
    found = newest_complete_version(base_directory)
    if found is None:
        logging.info("nothing in production under %s: the Trainer starts cold, no change thresholds", base_directory)
        model.set_int_custom_property("in_production", 0)
        tf.io.gfile.makedirs(model.uri)
        return
    version, path = found
    io_utils.copy_dir(path, posixpath.join(model.uri, SERVING_FORMAT_DIR))
    model.set_int_custom_property("in_production", 1)
    model.set_int_custom_property("production_version", version)
    model.set_string_custom_property("production_path", path)
    logging.info("in production: version %d (%s), copied to %s", version, path, model.uri)
