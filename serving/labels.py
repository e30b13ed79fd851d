"""Version labels (`stable`, `canary`) in a TF Serving models.config, set when a version is promoted.

The models.config in git carries no version number: a label names a version of one deployment's serving
root, so it is written there at promotion time (`mtrank promote`), into the file the server reads. TF
Serving re-reads that file every --model_config_file_poll_wait_seconds; `mtrank serve` reads it at start.
The file's leading comment block is kept; the rest is printed by protobuf's text format.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.versions import is_complete, scan_versions


class PromotionError(ValueError):
    """A promotion that would point a label at nothing servable; the message says what to do."""


def _read(path: Path):
    text = path.read_text()
    try:
        return text, text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as e:
        raise PromotionError(f"{path}: not a readable ModelServerConfig text proto: {e}") from None


def set_label(config_path: str, model_name: str, label: str, version: Optional[int], serving_root: str,
              out: Optional[str] = None) -> Dict[str, int]:
    """Points `label` of `model_name` at `version` (None: the newest complete version under
    `<serving_root>/<model_name>/`), writes the config to `out` (default: in place, atomically) and returns
    the model's labels. Refuses a version that is not a complete SavedModel folder there."""
    path = Path(config_path)
    text, config = _read(path)
    models = {m.name: m for m in config.model_config_list.config}
    if model_name not in models:
        raise PromotionError(f"{path}: no model {model_name!r} (models: {sorted(models)}); check --model-name")
    if not label or not label.replace("_", "").replace("-", "").isalnum():
        raise PromotionError(f"label {label!r} must be letters, digits, '-' or '_' (e.g. stable, canary)")
    versions = scan_versions(os.path.join(serving_root, model_name))
    complete = sorted(v for v, p in versions.items() if is_complete(p))
    if version is None:
        if not complete:
            raise PromotionError(f"no complete version under {serving_root}/{model_name}; push one first (mtrank run)")
        version = complete[-1]
    elif version not in complete:
        raise PromotionError(f"version {version} of {model_name!r} is not a complete SavedModel under "
                             f"{serving_root}/{model_name} (complete versions: {complete or 'none'})")
    policy = models[model_name].model_version_policy
    if policy.WhichOneof("policy_choice") in (None, "latest"):
        keep = policy.latest.num_versions or 1
        if version not in complete[-keep:]:
            raise PromotionError(f"version {version} is not among the {keep} newest versions the policy of "
                                 f"{path} keeps loaded ({complete[-keep:]}): the server would not serve it")
    elif policy.WhichOneof("policy_choice") == "specific" and version not in policy.specific.versions:
        raise PromotionError(f"version {version} is not in the specific versions {list(policy.specific.versions)} "
                             f"of {path}: the server would not load it")
    models[model_name].version_labels[label] = version
    header = "".join(line for line in text.splitlines(keepends=True)[:_header_lines(text)])
    target = Path(out) if out else path
    staging = target.with_name(f".{target.name}.tmp")
    staging.write_text(header + text_format.MessageToString(config))
    os.replace(staging, target)
    return dict(models[model_name].version_labels)


def _header_lines(text: str) -> int:
    lines = text.splitlines()
    count = 0
    while count < len(lines) and (lines[count].startswith("#") or not lines[count].strip()):
        count += 1
    return count
