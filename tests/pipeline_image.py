"""The pipeline image as the Dockerfile describes it: what a Kubeflow pod can import and read, and its
environment. Docker cannot run here, so the tests read the recipe the image is built from."""

from __future__ import annotations

import importlib.metadata
import re
import shlex
from pathlib import Path
from typing import Dict, List, Set

REPO = Path(__file__).resolve().parent.parent


class Image:
    """What the pipeline image holds, read from the Dockerfile: its workdir, copied folders, lock files, ENV."""

    def __init__(self, dockerfile: Path = REPO / "Dockerfile", workdir: str = ""):
        """`workdir` overrides the Dockerfile's, for a spec compiled to run from this checkout."""
        text = dockerfile.read_text().replace("\\\n", " ")
        self.workdir = ""
        self.copied: Set[str] = set()
        self.locks: List[Path] = []
        self.env: Dict[str, str] = {}
        for line in text.splitlines():
            words = shlex.split(line) if line and not line.startswith("#") else []
            if not words:
                continue
            if words[0] == "ENV":
                self.env.update(dict(pair.split("=", 1) for pair in words[1:]))
            elif words[0] == "WORKDIR":
                self.workdir = words[1]
            elif words[0] == "COPY":
                for source in words[1:-1]:
                    path = REPO / source
                    if path.is_dir():
                        self.copied.add(source.rstrip("/"))
                    elif source.endswith(".lock"):
                        self.locks.append(path)
        self.workdir = workdir or self.workdir
        pinned = "\n".join(p.read_text() for p in self.locks).lower()
        self.pinned = {re.split(r"[=<>!~ ]", line, 1)[0].replace("_", "-")
                       for line in pinned.splitlines() if line and not line.startswith("#")}

    def provides(self, module: str) -> bool:
        """The module's top-level package is copied from this repository, or installed from the pinned lock."""
        top = module.split(".")[0]
        if top in self.copied:
            return True
        distributions = importlib.metadata.packages_distributions().get(top, [])
        return any(d.lower().replace("_", "-") in self.pinned for d in distributions)
