"""--distribute: MirroredStrategy over two logical CPU devices, and two workers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from handwritten import modelio

# Logical devices must be configured before TensorFlow starts, hence a fresh process.
MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from handwritten.train import create_model
summary = create_model("model_2", sys.argv[1], data=sys.argv[2], epochs=3, seed=0, distribute="mirrored", verbose=0)
print(json.dumps(summary))
"""


def env() -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus(tmp_path, sample_dir):
    out = tmp_path / "mirrored.keras"
    done = subprocess.run([sys.executable, "-c", MIRRORED, str(out), str(sample_dir)],
                          capture_output=True, text=True, env=env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["replicas"] == 2 and summary["distribute"] == "mirrored"
    assert summary["config"]["batch_size"] == 128 and summary["global_batch_size"] == 256  # scaled per replica

    model, meta = modelio.load_model(out)
    assert model.output_shape == (None, 62)
    losses = [epoch["loss"] for epoch in meta["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0] * 0.8, losses


@pytest.mark.slow
def test_multiworker_two_processes_complete_an_epoch(tmp_path, sample_dir):
    out = tmp_path / "multiworker.keras"
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    procs = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        command = [sys.executable, "-m", "handwritten", "train", "--model", "model_2", "--data", str(sample_dir),
                   "--epochs", "1", "--part", "2", "--distribute", "multiworker", "--out", str(out), "--json"]
        procs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=dict(env(), TF_CONFIG=json.dumps(config))))
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=300)
            assert proc.returncode == 0, stderr[-3000:]
            results.append(json.loads(stdout))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    chief, other = results
    assert chief["chief"] and not other["chief"]
    assert chief["replicas"] == other["replicas"] == 2 and chief["epochs"] == other["epochs"] == 1
    # Only the chief writes; both saw the same synchronised model.
    assert chief["model_path"] == str(out) and other["model_path"] is None
    assert chief["test_accuracy"] == pytest.approx(other["test_accuracy"])
    model, meta = modelio.load_model(out)
    assert model.output_shape == (None, 62) and meta["config"]["distribute"] == "multiworker"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multiworker.keras"]
