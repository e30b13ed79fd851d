"""Resume: `mtrank run` killed (SIGKILL) right after a randomly chosen component finished, then started again,
finishes with the same result and reuses every component that had finished (CACHED in ml-metadata).

Slow (about 2 minutes): two real runs of the pipeline on small simulated days.
"""

import datetime as dt
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mtrank import config as config_lib
from mtrank import simulate

pytestmark = pytest.mark.slow

START = dt.date(2026, 8, 1)
ROWS = 3000
KILL_AFTER = ["CsvExampleGen", "StatisticsGen", "ExampleValidator", "DataGate", "Transform"]
FINISHED = re.compile(r"\[pipeline\] (\S+)\s+finished in")
MTRANK = str(Path(sys.executable).parent / "mtrank")
REPO = Path(__file__).resolve().parent.parent


def _small_config(tmp_path: Path) -> Path:
    raw = yaml.safe_load(config_lib.DEFAULT_CONFIG_PATH.read_text())
    raw["data"]["schema"] = str(REPO / "schemas" / "impressions" / "schema.pbtxt")
    raw["model"].update(epochs=1, batch_size=256)
    # A floor every model passes: a 1-epoch model on small days is blessed (no threshold = no blessing at all).
    raw["evaluation"] = {"slices": [], "thresholds": [{"task": "click", "metric": "auc", "lower_bound": 0.0}]}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _runs(workspace: Path, cfg):
    """Component runs of each pipeline run, oldest run first."""
    from pipeline import local_runner, results

    store = results._store(str(workspace / "metadata.sqlite"))
    contexts = sorted(results._run_contexts(store, local_runner.pipeline_name(cfg)).values(),
                      key=lambda c: (c.create_time_since_epoch, c.id))
    return [results.component_runs(store, c) for c in contexts]


def test_a_killed_run_resumes_from_what_finished(tmp_path):
    seed = int(os.environ.get("MTRANK_RESUME_SEED", time.time()))
    target = random.Random(seed).choice(KILL_AFTER)
    print(f"\nkilling `mtrank run` right after {target} finished (MTRANK_RESUME_SEED={seed} repeats this choice)")
    simulate.simulate(tmp_path / "data", START, 2, ROWS)
    config_path = _small_config(tmp_path)
    cfg = config_lib.load(config_path)
    workspace = tmp_path / "workspace"
    command = [MTRANK, "run", "--config", str(config_path), "--workspace", str(workspace),
               "--data-root", str(tmp_path / "data"), "--date", (START + dt.timedelta(days=1)).isoformat()]

    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finished_before_kill = []
    deadline = time.monotonic() + 300  # a hang guard only (~50 s alone, more beside the other test worker)
    for line in first.stdout:  # bounded: the process ends, or is killed below
        match = FINISHED.search(line)
        if match:
            finished_before_kill.append(match.group(1))
            if match.group(1) == target:
                os.kill(first.pid, signal.SIGKILL)
                break
        assert time.monotonic() < deadline, "the first run took too long"
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL, f"the run ended before {target} finished"
    model_dir = workspace / "serving" / cfg.serving.model_name
    assert not model_dir.exists() or not os.listdir(model_dir)

    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    killed, resumed = _runs(workspace, cfg)
    for node in finished_before_kill:
        assert resumed[node].state == "CACHED", (node, resumed[node].state)
        assert resumed[node].outputs == killed[node].outputs, node  # the very same artifacts are reused
    for node, run in resumed.items():
        if node not in finished_before_kill:
            assert run.state == "COMPLETE", (node, run.state)
    assert {"Transform", "Trainer", "Evaluator", "Pusher"} <= set(resumed), second.stdout[-3000:]
    # The same result as an uninterrupted run: one complete version pushed, nothing half-written left behind.
    versions = os.listdir(model_dir)
    assert len(versions) == 1 and versions[0].isdigit(), versions
    assert (model_dir / versions[0] / "saved_model.pb").exists()
    assert "Pushed model: " + str(model_dir / versions[0]) in second.stdout
    print(f"resumed: {sum(r.state == 'CACHED' for r in resumed.values())} component(s) reused, "
          f"{sum(r.state == 'COMPLETE' for r in resumed.values())} run")
