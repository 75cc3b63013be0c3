"""Crash safety: SIGKILL mid-epoch, resuming from the checkpoint, Ctrl-C, settings that cannot change."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handwritten import modelio
from handwritten.checkpoint import checkpoint_path

EPOCHS = 4


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_command(sample_dir: Path, out: Path, *extra: str) -> list[str]:
    # Small batches make an epoch long enough (a second or more) to be killed in the middle of.
    return [sys.executable, "-m", "handwritten", "train", "--model", "model_2", "--data", str(sample_dir),
            "--epochs", str(EPOCHS), "--batch-size", "16", "--out", str(out), *extra]


def start(command: list[str]) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_checkpoint(proc: subprocess.Popen, ckpt: Path, timeout: float = 240) -> None:
    """Wait until the first epoch's checkpoint is complete (readable), then return at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training ended (status {proc.returncode}) before a checkpoint appeared: "
                        f"{proc.stderr.read()[-2000:]}")
        if ckpt.is_file():
            try:
                if modelio.read_meta(ckpt)["epoch"] >= 1:
                    return
            except Exception:  # caught between rename and read; try again
                pass
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no checkpoint within the time limit")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_finishes_only_the_remaining_epochs(tmp_path, sample_dir, trained_model):
    out = tmp_path / "model.keras"
    shutil.copy(trained_model, out)  # a previous model that must survive the crash untouched
    before = sha256(out)
    ckpt = checkpoint_path(out)

    proc = start(train_command(sample_dir, out, "--overwrite"))  # to replace it once training ends
    wait_for_checkpoint(proc, ckpt)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    assert sha256(out) == before  # never touched, let alone half-written
    modelio.load_model(out)
    done_epochs = modelio.read_meta(ckpt)["epoch"]
    assert 1 <= done_epochs < EPOCHS, "the kill must land before the last epoch"

    # A different setting is refused rather than silently changing the run.
    changed = subprocess.run(train_command(sample_dir, out, "--overwrite", "--seed", "5"), capture_output=True, text=True,
                             timeout=120)
    assert changed.returncode == 2 and "checkpoint was made with seed=0" in changed.stderr

    # Re-running the same command continues from the checkpoint.
    proc = start(train_command(sample_dir, out, "--overwrite", "--json"))
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    summary = json.loads(stdout)
    assert summary["resumed_from"] == done_epochs
    assert summary["epochs_run"] == EPOCHS - done_epochs
    assert summary["epochs"] == EPOCHS
    assert f"epoch {done_epochs}/{EPOCHS}" not in stderr and f"epoch {EPOCHS}/{EPOCHS}" in stderr

    meta = modelio.read_meta(out)
    assert [e["epoch"] for e in meta["history"]] == list(range(1, EPOCHS + 1))
    assert sha256(out) != before and not ckpt.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]  # no temporary left behind
    model, _ = modelio.load_model(out)
    assert model.output_shape == (None, 62)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_says_how_to_resume_and_resume_finishes(tmp_path, sample_dir):
    out = tmp_path / "model.h5"
    ckpt = checkpoint_path(out)
    proc = start(train_command(sample_dir, out))
    wait_for_checkpoint(proc, ckpt)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "checkpoint saved to" in stderr and "to resume: handwritten train" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    saved = modelio.read_meta(ckpt)
    assert 1 <= saved["epoch"] < EPOCHS
    assert saved["settings"]["epochs"] == EPOCHS and saved["settings"]["batch_size"] == 16

    # --resume needs no other option: the settings come from the checkpoint.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-m", "handwritten", "train", "--model", "model_2", "--out", str(out),
                           "--data", str(sample_dir), "--resume", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["resumed_from"] == saved["epoch"] and summary["epochs"] == EPOCHS
    assert summary["config"]["batch_size"] == 16
    assert out.is_file() and not ckpt.exists()
