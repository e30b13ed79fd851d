"""Multi-worker training for real: two processes on 127.0.0.1, MultiWorkerMirroredStrategy over TF_CONFIG,
the project's model built from the configuration. Both must end with identical weights (the gradients
were all-reduced, not trained separately) and must have seen two replicas."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration  # two TensorFlow worker processes training together

WORKER = Path(__file__).with_name("multiworker_worker.py")
REPO = WORKER.parent.parent


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_finish_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs, outs = [], []
    for index in range(2):
        out = tmp_path / f"worker{index}.npz"
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO),
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(out)], env=env, cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outs.append(out)
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=150)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    first, second = (np.load(o) for o in outs)
    assert int(first["num_replicas"]) == int(second["num_replicas"]) == 2
    arrays = [k for k in first.files if k.startswith("arr_")]
    assert arrays and len(arrays) == len([k for k in second.files if k.startswith("arr_")])
    for key in arrays:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert np.isfinite(first["loss"]).all()
    assert int(first["moved"]) > 0  # the weights were trained, not just initialised alike
