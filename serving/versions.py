"""Which versions of one model serve: the folder scan, the version policy, labels, loading and switching.

Versions are integer folders under `<base_path>/`. A folder becomes a candidate only once it holds
`saved_model.pb` and its files (names, sizes, times) have not changed between two polls: TF Serving
relies on publishers renaming a finished folder into place, and this guard also survives a publisher
that copies in place. A version is loaded (and its warm-up replayed) before the served set is
swapped in one assignment, so requests never see a half-loaded version. A version that fails to load
is reported in the model status and skipped until its files change; the versions already loaded keep
serving.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import grpc
import mtrank  # noqa: F401
from tensorflow_serving.apis import get_model_status_pb2

from serving import warmup
from serving.servable import Servable, ServingStatus, load_servable

log = logging.getLogger("mtrank.serving")
State = get_model_status_pb2.ModelVersionStatus.State
Fingerprint = Tuple[Tuple[str, int, int], ...]


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's `model_version_policy`: the newest N versions, all of them, or the listed ones."""

    kind: str = "latest"  # latest | all | specific
    num_versions: int = 1
    versions: Tuple[int, ...] = ()

    def __post_init__(self):
        if self.kind not in ("latest", "all", "specific"):
            raise ValueError(f"version policy {self.kind!r}: use latest, all or specific")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError("version policy latest needs num_versions >= 1")

    def choose(self, versions: Sequence[int]) -> List[int]:
        ordered = sorted(set(versions), reverse=True)
        if self.kind == "latest":
            return ordered[: self.num_versions]
        if self.kind == "specific":
            return [v for v in ordered if v in self.versions]
        return ordered


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One served model: its name, the folder holding its version folders, its policy and labels."""

    name: str
    base_path: str
    policy: VersionPolicy = VersionPolicy()
    labels: Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    version: int
    state: int  # get_model_status_pb2.ModelVersionStatus.State
    error_code: int = 0  # tensorflow.error.Code (OK = 0)
    error_message: str = ""


def fingerprint(path: str) -> Fingerprint:
    """Relative path, size and modification time of every file under `path`: changes while a copy runs."""
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except FileNotFoundError:  # removed while we looked: the folder is still changing
                continue
            entries.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
    return tuple(sorted(entries))


def is_complete(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, f)) for f in ("saved_model.pb", "saved_model.pbtxt"))


def scan_versions(base_path: str) -> Dict[int, str]:
    """Integer-named folders under `base_path` (anything else, e.g. a `.tmp-123` staging folder, is ignored)."""
    try:
        entries = list(os.scandir(base_path))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return {int(e.name): e.path for e in entries if e.name.isdigit() and e.is_dir()}


def warm_up(servable: Servable) -> int:
    """Replays the version's warm-up requests (TF Serving does this before a version takes traffic)."""
    count = 0
    for request in warmup.read_warmup_requests(servable.path):
        servable.run_arrays(request.model_spec.signature_name, request.inputs, request.output_filter)
        count += 1
    return count


def load_and_warm_up(model_name: str, version: int, path: str, batching=None) -> Servable:
    """Loads, replays the warm-up requests, then turns request batching on when configured
    (`batching`: serving.batching.BatchingConfig)."""
    servable = load_servable(model_name, version, path)
    warm_up(servable)
    if batching is not None:
        servable.enable_batching(batching)
    return servable


class ModelVersions:
    """The served versions of one model. `poll()` runs on one thread; requests read `served` lock-free."""

    def __init__(self, config: ModelConfig, loader: Callable[[str, int, str], Servable] = load_and_warm_up):
        self.config = config
        self._loader = loader
        self.served: Dict[int, Servable] = {}  # replaced, never mutated: readers see one consistent set
        self._statuses: Dict[int, VersionStatus] = {}
        self._seen: Dict[int, Fingerprint] = {}  # fingerprint at the previous poll, for not-yet-loaded versions
        self._failed: Dict[int, Fingerprint] = {}  # fingerprint of a folder that failed to load
        self._poll_lock = threading.Lock()
        self._missing_logged = False

    @property
    def name(self) -> str:
        return self.config.name

    def _ready(self, version: int, path: str) -> bool:
        """Complete, unchanged since the previous poll, and not a folder that already failed as it is."""
        if not is_complete(path):
            self._seen.pop(version, None)
            return False
        current = fingerprint(path)
        previous = self._seen.get(version)
        self._seen[version] = current
        if self._failed.get(version) == current:
            return False
        return previous == current

    def poll(self) -> List[str]:
        """Scans the base path once, loads what the policy wants, swaps the served set; returns what changed."""
        with self._poll_lock:
            return self._poll()

    def _poll(self) -> List[str]:
        events: List[str] = []
        on_disk = scan_versions(self.config.base_path)
        if not on_disk and not os.path.isdir(self.config.base_path) and not self._missing_logged:
            log.warning("model %r: base path %s does not exist (yet); waiting for versions",
                        self.name, self.config.base_path)
            self._missing_logged = True
        current = {v: s for v, s in self.served.items() if v in on_disk}
        candidates = {v for v, p in on_disk.items() if v in current or self._ready(v, p)}
        for v in list(self._seen):
            if v not in on_disk:
                self._seen.pop(v)
        loaded = dict(current)
        for _ in range(len(candidates) + 1):  # each candidate is tried at most once per poll
            wanted = self.config.policy.choose(candidates)
            to_load = [v for v in wanted if v not in loaded]
            if not to_load:
                break
            for v in to_load:
                self._statuses[v] = VersionStatus(v, State.LOADING)
                try:
                    loaded[v] = self._loader(self.name, v, on_disk[v])
                except Exception as e:  # a broken folder must not stop the server or the other versions
                    self._failed[v] = self._seen.get(v, ())
                    candidates.discard(v)
                    message = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                    self._statuses[v] = VersionStatus(v, State.END, error_code=grpc.StatusCode.UNKNOWN.value[0],
                                                      error_message=f"failed to load {on_disk[v]}: {message}")
                    log.error("model %r version %d at %s failed to load and is skipped until its files change; "
                              "the versions already loaded keep serving: %s", self.name, v, on_disk[v], message)
                    events.append(f"failed {v}")
        wanted = self.config.policy.choose(v for v in loaded if v in candidates)
        new_served = {v: loaded[v] for v in wanted}
        for v in new_served:
            if v not in self.served:
                self._statuses[v] = VersionStatus(v, State.AVAILABLE)
                self._failed.pop(v, None)
                events.append(f"loaded {v}")
                log.info("model %r version %d is available (%s)", self.name, v, on_disk[v])
        previously_served = self.served
        self.served = new_served  # the switch: one assignment, requests in flight keep their Servable
        # A served version whose folder was deleted is unloaded too (TF Serving reports it as END), so the
        # model status follows the folders: Predict's NOT_FOUND and GetModelStatus agree.
        for v in set(previously_served) | set(loaded):
            if v not in new_served:
                self._statuses[v] = VersionStatus(v, State.END)
                gone = previously_served.get(v) or loaded.get(v)
                if hasattr(gone, "close"):
                    gone.close()  # its batch threads finish what is queued, then stop
                events.append(f"unloaded {v}")
                log.info("model %r version %d is unloaded", self.name, v)
        return events

    # ---- answering requests ----------------------------------------------------------------------------
    def resolve(self, version: Optional[int] = None, label: str = "") -> Servable:
        """The servable a ModelSpec asks for: a version, a label, or the newest loaded version."""
        served = self.served
        if label:
            if label not in self.config.labels:
                raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"Unrecognized servable version label: {label} (model {self.name!r} has labels "
                                    f"{sorted(self.config.labels) or 'none'})")
            version = self.config.labels[label]
            if version not in served:
                raise ServingStatus(grpc.StatusCode.NOT_FOUND,
                                    f"Servable not found for request: Specific({self.name}, {version}) (label "
                                    f"{label!r}); loaded versions: {sorted(served) or 'none'}")
            return served[version]
        if version is not None:
            if version not in served:
                raise ServingStatus(grpc.StatusCode.NOT_FOUND,
                                    f"Servable not found for request: Specific({self.name}, {version}); loaded "
                                    f"versions: {sorted(served) or 'none'}")
            return served[version]
        if not served:
            raise ServingStatus(grpc.StatusCode.NOT_FOUND,
                                f"Servable not found for request: Latest({self.name}); no version is loaded yet "
                                f"from {self.config.base_path}")
        return served[max(served)]

    def statuses(self, version: Optional[int] = None) -> List[VersionStatus]:
        known = dict(self._statuses)
        if version is not None:
            if version not in known:
                raise ServingStatus(grpc.StatusCode.NOT_FOUND,
                                    f"Could not find version {version} of model {self.name}")
            return [known[version]]
        if not known:
            raise ServingStatus(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {self.name}")
        return [known[v] for v in sorted(known, reverse=True)]
