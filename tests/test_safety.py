"""Training's output is claimed before any work: one run per output, never the base model, options
in range, a writable place, data that can be tested; a diverging loss stops the run and saves nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from handwritten import cli, train
from handwritten.checkpoint import checkpoint_path, read_checkpoint
from handwritten.errors import HandwrittenError
from handwritten.idx import write_idx
from handwritten.lock import OutputLock, lock_path

HOLDER = """
import sys, time
from handwritten.lock import OutputLock
with OutputLock(sys.argv[1], "handwritten train --out first-run"):
    print("locked", flush=True)
    time.sleep(120)
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if a run gets as far as compiling a model: the error had to come before."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started; the error should have come before it")

    monkeypatch.setattr(train, "_compile", refuse)


def train_args(sample_dir, out, *extra):
    return ["train", "--data", str(sample_dir), "--epochs", "1", "--part", "10", "--out", str(out), *extra]


# --- one run per output --------------------------------------------------------------------------


def test_a_second_run_on_the_same_output_is_refused_naming_the_first(tmp_path, sample_dir, capsys, no_training):
    out = tmp_path / "m.keras"
    out.write_bytes(b"the first run's model")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert cli.main(train_args(sample_dir, out, "--overwrite")) == 2
        err = capsys.readouterr().err
        assert f"process {holder.pid} on " in err and "handwritten train --out first-run" in err, err
        assert "another run is writing this output" in err
        with pytest.raises(HandwrittenError, match=str(holder.pid)):  # the Python API alike
            train.create_model("model_2", out, 10, data=sample_dir, epochs=1, verbose=0, overwrite=True)
    finally:
        holder.kill()
        holder.wait()
    assert out.read_bytes() == b"the first run's model" and not checkpoint_path(out).exists()

    # Killed, the holder leaves its lock file behind; the kernel has dropped its lock, so it is stale.
    assert lock_path(out).exists()
    with OutputLock(out):
        assert str(os.getpid()) in lock_path(out).read_text()
    assert not lock_path(out).exists()


def test_the_lock_is_released_on_errors_and_is_exclusive_within_a_process(tmp_path):
    out = tmp_path / "m.keras"
    with pytest.raises(RuntimeError), OutputLock(out):
        with pytest.raises(HandwrittenError, match=f"process {os.getpid()} "), OutputLock(out):
            pass
        raise RuntimeError("a failing run")
    assert not lock_path(out).exists()
    os.symlink(out, tmp_path / "link.keras")
    with OutputLock(tmp_path / "link.keras"):
        with pytest.raises(HandwrittenError, match="another run"), OutputLock(out):
            pass  # a symbolic link to the output is the same output


def test_a_run_that_finishes_leaves_no_lock(tmp_path, sample_dir):
    out = tmp_path / "m.keras"
    train.create_model("model_2", out, 10, data=sample_dir, epochs=1, verbose=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


# --- never the base model -------------------------------------------------------------------------


def test_finetune_refuses_to_write_over_its_base_model(tmp_path, trained_model, sample_dir, capsys, no_training):
    base = tmp_path / "base.keras"
    shutil.copy(trained_model, base)
    (tmp_path / "sub").mkdir()
    os.link(base, tmp_path / "hard.keras")
    os.symlink(base, tmp_path / "soft.keras")
    before = sha256(base)
    for out in (base, tmp_path / "hard.keras", tmp_path / "soft.keras", tmp_path / "sub" / ".." / "base.keras"):
        assert cli.main(["finetune", "--model", str(base), "--out", str(out), "--data", str(sample_dir)]) == 2
        err = capsys.readouterr().err
        assert "is the model being fine-tuned" in err and "--overwrite" in err, err
    with pytest.raises(HandwrittenError, match="overwrite=True"):
        train.next_train(tmp_path / "hard.keras", base, data=sample_dir, verbose=0)
    assert sha256(base) == before


def test_a_saved_model_at_the_output_is_replaced_only_when_told(tmp_path, trained_model, sample_dir, capsys,
                                                                monkeypatch):
    from handwritten.modelio import read_meta

    saved = tmp_path / "saved.keras"
    shutil.copy(trained_model, saved)
    before = sha256(saved)
    monkeypatch.setattr(train, "_compile", lambda *a, **k: pytest.fail("training started before the check"))
    for argv in (train_args(sample_dir, saved),
                 ["finetune", "--model", str(trained_model), "--out", str(saved), "--data", str(sample_dir)]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert f"{saved}: already exists" in err and "--overwrite" in err, err
    with pytest.raises(HandwrittenError, match="already exists.*overwrite=True"):
        train.create_model("model_2", saved, 10, data=sample_dir, epochs=1, verbose=0)
    assert sha256(saved) == before and sorted(p.name for p in tmp_path.iterdir()) == ["saved.keras"]

    monkeypatch.undo()
    assert cli.main(train_args(sample_dir, saved, "--dry-run")) == 0  # a dry run saves nothing: allowed
    assert sha256(saved) == before
    assert cli.main(train_args(sample_dir, saved, "--overwrite", "--seed", "3", "--json")) == 0
    assert sha256(saved) != before and read_meta(saved)["config"]["seed"] == 3


def test_finetune_overwrites_its_base_model_when_told(tmp_path, trained_model, sample_dir, capsys):
    from handwritten.modelio import read_meta

    base = tmp_path / "base.keras"
    shutil.copy(trained_model, base)
    before = sha256(base)
    assert cli.main(["finetune", "--model", str(base), "--out", str(base), "--overwrite", "--data", str(sample_dir),
                     "--epochs", "1", "--part", "10", "--json"]) == 0
    assert sha256(base) != before and read_meta(base)["parent"]["path"] == str(base)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base.keras"]


# --- numeric options ------------------------------------------------------------------------------


@pytest.mark.parametrize("option, value", [
    ("--learning-rate", "nan"), ("--learning-rate", "inf"), ("--learning-rate", "-0.001"), ("--learning-rate", "0.0"),
    ("--learning-rate", "1000000.0"), ("--epochs", "0"), ("--epochs", "1000000"), ("--batch-size", "0"),
    ("--batch-size", "100000000"), ("--validation", "nan"), ("--validation", "-0.1"), ("--validation", "0.9"),
    ("--seed", "-1"), ("--seed", "99999999999"),
])
def test_numeric_training_options_out_of_range_are_refused(tmp_path, sample_dir, capsys, no_training, option, value):
    assert cli.main(train_args(sample_dir, tmp_path / "m.keras", "--dry-run", option, value)) == 2
    err = capsys.readouterr().err
    assert err.startswith("handwritten train: error: ") and f"{option} {value}:" in err, err
    assert "must be" in err and "Traceback" not in err


@pytest.mark.parametrize("keyword, value", [("learning_rate", float("nan")), ("epochs", 2.5), ("batch_size", True),
                                            ("seed", -3), ("epochs", "4")])
def test_numeric_arguments_of_the_python_api_are_refused(tmp_path, sample_dir, trained_model, keyword, value):
    with pytest.raises(HandwrittenError, match="must be"):
        train.create_model("model_2", tmp_path / "m.keras", data=sample_dir, dry_run=True, verbose=0,
                           **{keyword: value})
    with pytest.raises(HandwrittenError, match="must be"):
        train.next_train(tmp_path / "m.keras", trained_model, data=sample_dir, dry_run=True, verbose=0,
                         **{keyword: value})


@pytest.mark.parametrize("args, message", [
    (["sample", "--seed", "-1"], "--seed -1: must be an integer"),
    (["sample", "--train-per-class", "1000000000"], "--train-per-class 1000000000: must be"),
    (["serve", "x.keras", "--max-mb", "nan"], "--max-mb nan: must be a number"),
    (["serve", "x.keras", "--max-megapixels", "inf"], "--max-megapixels inf: must be a number"),
    (["evaluate", "x.keras", "--batch-size", "0"], "--batch-size 0: must be an integer"),
])
def test_other_commands_numeric_options_are_refused(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


# --- a diverging loss -----------------------------------------------------------------------------


def test_a_loss_that_becomes_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, sample_dir, capsys,
                                                                                   monkeypatch):
    import keras
    import tensorflow as tf

    compile_for_real = train._compile

    def diverging_in_epoch_2(model, settings, steps):
        compile_for_real(model, settings, steps)
        optimizer = model.optimizer

        def loss(y, p):
            nan_from_epoch_2 = tf.where(optimizer.iterations >= steps, float("nan"), 0.0)
            return keras.losses.sparse_categorical_crossentropy(y, p) + nan_from_epoch_2

        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])

    monkeypatch.setattr(train, "_compile", diverging_in_epoch_2)
    out = tmp_path / "m.keras"
    assert cli.main(["train", "--data", str(sample_dir), "--epochs", "3", "--part", "10", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "handwritten train: error: training stopped: the loss became nan in epoch 2" in err, err[-2000:]
    assert f"checkpoint of epoch 1 is kept at {checkpoint_path(out)}" in err
    assert not out.exists() and not lock_path(out).exists()
    assert read_checkpoint(checkpoint_path(out))["epoch"] == 1


# --- what can be checked before the first epoch ------------------------------------------------------


def test_an_output_that_is_a_folder_or_under_a_file_is_refused_before_training(tmp_path, sample_dir, capsys,
                                                                               no_training):
    folder = tmp_path / "m.keras"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    assert cli.main(train_args(sample_dir, folder)) == 2
    assert "m.keras: is a folder" in capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "mine"

    (tmp_path / "file.txt").write_text("mine")
    assert cli.main(train_args(sample_dir, tmp_path / "file.txt" / "m.keras")) == 2
    assert "file.txt is a file, not a folder" in capsys.readouterr().err


def test_an_output_folder_that_cannot_be_written_is_refused_before_training(tmp_path, sample_dir, capsys,
                                                                            no_training):
    locked = tmp_path / "read-only"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that may write in a read-only folder (root)")
        assert cli.main(train_args(sample_dir, locked / "m.keras")) == 2
        err = capsys.readouterr().err
        assert f"cannot write in folder {locked}" in err and "Traceback" not in err, err
    finally:
        locked.chmod(0o755)


def test_data_without_test_images_is_refused_before_training(tmp_path, capsys, no_training):
    rng = np.random.default_rng(0)
    for part, n in (("train", 40), ("t10k", 0)):
        write_idx(tmp_path / f"{part}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{part}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    assert cli.main(train_args(tmp_path, tmp_path / "m.keras")) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: the test part holds no images" in err, err
