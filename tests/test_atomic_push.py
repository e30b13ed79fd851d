"""Atomic push: a version folder appears only when complete; an interrupted push leaves nothing a server loads."""

import os
import shutil

import pytest

from components import atomic_pusher
from serving.versions import ModelConfig, ModelVersions, scan_versions
from test_serving_support import build_tiny_model

MODEL = "ranker"


@pytest.fixture(scope="module")
def saved_model(cfg, tmp_path_factory):
    return build_tiny_model(cfg, tmp_path_factory.mktemp("build") / "model")


def _files(path):
    return sum(len(files) for _, _, files in os.walk(path))


class _FailAfter:
    """A copy function that fails after `n` files: a disk full or a killed copy, half-way."""

    def __init__(self, n, base):
        self.n, self.base, self.copied, self.visible = n, base, 0, []

    def __call__(self, src, dst):
        self.visible.append(sorted(scan_versions(self.base)))  # what a polling server sees at this moment
        if self.copied >= self.n:
            raise OSError(28, "No space left on device (injected)")
        self.copied += 1
        return shutil.copy2(src, dst)


def test_a_push_failing_mid_copy_publishes_nothing_and_leaves_nothing(saved_model, tmp_path):
    base = tmp_path / MODEL
    version1, _ = atomic_pusher.push_atomically(str(saved_model), str(base))
    failing = _FailAfter(n=_files(saved_model) // 2, base=str(base))
    with pytest.raises(atomic_pusher.PushError) as caught:
        atomic_pusher.push_atomically(str(saved_model), str(base), copy_function=failing)
    assert "No space left" in str(caught.value) and str(saved_model) in str(caught.value)
    assert "previous version keeps serving" in str(caught.value)
    assert failing.copied > 0 and all(seen == [version1] for seen in failing.visible)  # never half-visible
    assert sorted(os.listdir(base)) == [str(version1)]  # no version folder, no staging folder left


def test_while_copying_no_new_version_is_visible_and_after_the_rename_it_is_complete(saved_model, tmp_path):
    base = tmp_path / MODEL
    watcher = _FailAfter(n=10**6, base=str(base))
    version, path = atomic_pusher.push_atomically(str(saved_model), str(base), copy_function=watcher)
    assert watcher.copied == _files(saved_model) and all(seen == [] for seen in watcher.visible)
    assert path == str(base / str(version)) and _files(path) == _files(saved_model)


def test_a_killed_push_leaves_only_a_staging_folder_that_servers_ignore_and_the_next_push_removes(
        cfg, saved_model, tmp_path):
    base = tmp_path / MODEL
    version1, _ = atomic_pusher.push_atomically(str(saved_model), str(base))
    leftover = base / f"{atomic_pusher.STAGING_PREFIX}{version1 + 1}-99999"  # a SIGKILLed push, mid-copy
    shutil.copytree(saved_model, leftover)
    (leftover / "saved_model.pb").write_bytes(b"truncated")
    old = os.path.getmtime(leftover) - 2 * atomic_pusher.STALE_AFTER_S  # killed two hours ago
    os.utime(leftover, (old, old))
    recent = base / f"{atomic_pusher.STAGING_PREFIX}{version1 + 5}-4242"  # a push running right now
    recent.mkdir()

    model = ModelVersions(ModelConfig(name=MODEL, base_path=str(base)))
    model.poll(), model.poll()
    assert sorted(model.served) == [version1]  # the staging folder is not a version
    assert all(s.error_code == 0 for s in model.statuses())

    version2, _ = atomic_pusher.push_atomically(str(saved_model), str(base))
    assert version2 > version1 and not leftover.exists() and recent.exists()
    model.poll(), model.poll()
    assert sorted(model.served) == [version2]


def test_versions_are_integers_and_always_increase(tmp_path):
    base = tmp_path / MODEL
    base.mkdir()
    (base / "2000000000").mkdir()  # a version from the future (a clock that went back)
    assert atomic_pusher.next_version(str(base), now=1_800_000_000) == 2000000001
    assert atomic_pusher.next_version(str(tmp_path / "none"), now=1_800_000_000.7) == 1800000000


def test_an_incomplete_model_is_refused(tmp_path):
    (tmp_path / "model" / "variables").mkdir(parents=True)
    with pytest.raises(atomic_pusher.PushError, match="no saved_model.pb"):
        atomic_pusher.push_atomically(str(tmp_path / "model"), str(tmp_path / MODEL))
    assert not (tmp_path / MODEL).exists() or os.listdir(tmp_path / MODEL) == []


def test_pipeline_pushes_through_the_atomic_pusher_under_the_blessing_gate():
    import inspect

    from pipeline import pipeline

    source = inspect.getsource(pipeline.create_pipeline)
    assert "tfx.dsl.Cond(" in source and "atomic_pusher.AtomicPusher(" in source
    assert "tfx.components.Pusher(" not in source  # TFX's Pusher copies in place


def test_object_store_destinations_get_saved_model_pb_last(saved_model):
    import tensorflow as tf

    base = "ram://serving-test/ranker"  # TensorFlow's in-memory filesystem stands in for gs://
    order = []
    real_copy = tf.io.gfile.copy

    def recording_copy(src, dst, overwrite=False):
        order.append(os.path.basename(dst))
        return real_copy(src, dst, overwrite)

    tf.io.gfile.copy = recording_copy
    try:
        version, target = atomic_pusher.push_atomically(str(saved_model), base)
    finally:
        tf.io.gfile.copy = real_copy
    assert target == f"{base}/{version}" and tf.io.gfile.exists(f"{target}/saved_model.pb")
    assert order[-1] == "saved_model.pb" and order.count("saved_model.pb") == 1
