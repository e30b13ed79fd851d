"""The model in production is the newest complete version under the serving root: what a server loads,
so a half-copied version or a staging folder never becomes a warm start or a baseline, and a manual
rollback (the newest version folder removed) is followed by the next run. A corrupt newest version is passed
over, as a server passes it over."""

import shutil

from components import production_model


def _version(base, name, complete=True, corrupt=False):
    """A version folder: a minimal SavedModel proto (it parses), a corrupt one, or none yet."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = base / name
    (path / "variables").mkdir(parents=True)
    if complete:
        model = saved_model_pb2.SavedModel(saved_model_schema_version=1)
        model.meta_graphs.add().meta_info_def.tags.append("serve")
        (path / "saved_model.pb").write_bytes(b"\x08\x01 a truncated SavedModel" if corrupt else model.SerializeToString())
    return path


def test_nothing_in_production_without_a_complete_version(tmp_path):
    assert production_model.newest_complete_version(str(tmp_path / "missing")) is None
    _version(tmp_path, "1700000000", complete=False)  # still being copied (object stores: saved_model.pb last)
    _version(tmp_path, ".staging-1700000001-42")
    assert production_model.newest_complete_version(str(tmp_path)) is None


def test_the_newest_complete_version_is_in_production_and_a_rollback_is_followed(tmp_path):
    _version(tmp_path, "1700000000")
    _version(tmp_path, "1700000100")
    _version(tmp_path, "1700000200", complete=False)
    _version(tmp_path, "1700000250", corrupt=True)  # a server skips it and keeps 1700000100 serving
    _version(tmp_path, ".staging-1700000300-7")
    (tmp_path / "notes.txt").write_text("not a version")
    assert production_model.newest_complete_version(str(tmp_path)) == (1700000100, str(tmp_path / "1700000100"))
    shutil.rmtree(tmp_path / "1700000100")  # a person rolls back
    assert production_model.newest_complete_version(str(tmp_path))[0] == 1700000000


def test_a_model_artifact_holds_a_model_only_with_a_saved_model(tmp_path):
    assert not production_model.holds_model(str(tmp_path))
    (tmp_path / "Format-Serving").mkdir()
    (tmp_path / "Format-Serving" / "saved_model.pb").write_bytes(b"x")
    assert production_model.holds_model(str(tmp_path))
