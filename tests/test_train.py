"""Training and fine-tuning: the seed's API, the saved files and their metadata, the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from handwritten import cli, emnist, modelio
from handwritten.errors import HandwrittenError
from handwritten.idx import write_idx
from handwritten.train import parse_part

HANDWRITTEN = [sys.executable, "-m", "handwritten"]
REQUIRED_META = {"format", "model_name", "split", "mapping", "orientation", "framing", "history", "config",
                 "test_accuracy", "data", "synthetic", "classes", "params"}
SUMMARY_KEYS = {"test_accuracy", "epochs", "seconds", "samples_per_second", "model_path"}


def run_cli(*args, cwd=None, timeout=300):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([*HANDWRITTEN, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


@pytest.mark.parametrize("given, expected", [(1.0, 1.0), (0.25, 0.25), (1, 1.0), (2, 0.5), (4, 0.25),
                                             ("0.5", 0.5), ("3", 1 / 3), (1e-3, 1e-3)])
def test_part_accepts_fractions_and_the_original_integers(given, expected):
    assert parse_part(given) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.5, -2, True, None, "half", float("nan"), [0.5]])
def test_part_refuses_anything_else_naming_the_value(bad):
    with pytest.raises(HandwrittenError, match="part"):
        parse_part(bad)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_create_model_saves_a_file_keras_can_load(tmp_path, sample_dir, suffix, capsys):
    import keras

    from handwritten.train import create_model

    out = tmp_path / f"m{suffix}"
    summary = create_model("model_2", str(out), 2, data=sample_dir, epochs=1, seed=1, verbose=0)
    assert capsys.readouterr() == ("", "")  # verbose=0 is silent
    assert SUMMARY_KEYS <= set(summary)
    assert summary["model_path"] == str(out) and out.is_file()
    assert not Path(str(out) + ".ckpt.keras").exists()  # the finished model supersedes the checkpoint

    model = keras.models.load_model(out)
    meta = modelio.read_meta(out)
    assert REQUIRED_META <= set(meta)
    assert meta["format"] == 1 and meta["model_name"] == "model_2" and meta["orientation"] == "upright"
    assert meta["split"] == "byclass" and meta["classes"] == 62 == len(meta["mapping"]) and meta["synthetic"]
    assert meta["params"] == model.count_params()
    assert meta["config"]["part"] == 0.5 and meta["config"]["seed"] == 1
    assert isinstance(meta["framing"], dict)
    (epoch,) = meta["history"]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds", "samples_per_second"} <= set(epoch)
    assert epoch["samples_per_second"] > 0

    data = emnist.load(sample_dir)
    assert meta["train_samples"] + meta["validation_samples"] == round(len(data.y_train) * 0.5)
    # The reported test accuracy is the saved model's accuracy on the whole test part.
    x = np.asarray(data.x_test, dtype=np.float32)[..., None] / 255.0
    predicted = np.argmax(model.predict(x, verbose=0), axis=1)
    assert summary["test_accuracy"] == pytest.approx(float(np.mean(predicted == data.y_test)), abs=1e-6)
    assert summary["test_samples"] == len(data.y_test)


@pytest.mark.slow
def test_the_seeds_two_line_example(tmp_path, monkeypatch):
    """``create_model('model_1', 'NN_model1.h5')`` then ``next_train(...)``, as written, in a folder with emnist/."""
    import keras

    from handwritten.sample import write_sample

    write_sample(tmp_path / "emnist", train_per_class=6, test_per_class=2, seed=0)
    monkeypatch.chdir(tmp_path)
    code = ("from handwritten import create_model, next_train\n"
            "create_model('model_1', 'NN_model1.h5')\n"
            "next_train('NN_model1_trained.h5', 'NN_model1.h5')\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("test accuracy: ") == 2
    for name in ("NN_model1.h5", "NN_model1_trained.h5"):
        model = keras.models.load_model(tmp_path / name)
        assert model.output_shape == (None, 62)
        meta = modelio.read_meta(tmp_path / name)
        assert meta["model_name"] == "model_1" and meta["split"] == "byclass"
    trained = modelio.read_meta(tmp_path / "NN_model1_trained.h5")
    assert trained["parent"]["path"] == "NN_model1.h5"
    assert trained["config"]["base_model"] == "NN_model1.h5"


@pytest.mark.slow
def test_cli_json_is_one_object_and_text_has_the_summary_line(tmp_path, sample_dir):
    out = tmp_path / "cli.keras"
    done = run_cli("train", "--model", "model_2", "--data", str(sample_dir), "--epochs", "1", "--part", "4",
                   "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)  # fails unless stdout is exactly one JSON object
    assert SUMMARY_KEYS <= set(summary)
    assert summary["model_path"] == str(out) and out.is_file()
    assert summary["epochs"] == 1 and 0.0 <= summary["test_accuracy"] <= 1.0
    assert "epoch 1/1" in done.stderr  # the progress bar goes to stderr

    done = run_cli("finetune", "--model", str(out), "--out", str(tmp_path / "ft.h5"), "--data", str(sample_dir),
                   "--epochs", "1", "--part", "4")
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^test accuracy: [01]\.\d{4}$", done.stdout, re.M), done.stdout
    assert f"fine-tuned from {out}" in done.stdout
    assert modelio.read_meta(tmp_path / "ft.h5")["parent"]["path"] == str(out)


def test_dry_run_saves_nothing(tmp_path, sample_dir):
    from handwritten.train import create_model

    out = tmp_path / "dry.keras"
    summary = create_model("model_2", out, data=sample_dir, dry_run=True, verbose=0)
    assert summary["dry_run"] and summary["model_path"] is None and summary["epochs"] == 1
    assert summary["train_samples"] + summary["validation_samples"] <= 256
    assert list(tmp_path.iterdir()) == []


def ten_class_folder(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    for part, n in (("train", 40), ("t10k", 20)):
        write_idx(folder / f"{part}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{part}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 10)
    return folder


def test_finetune_refuses_data_with_other_classes(tmp_path, trained_model, capsys):
    data = ten_class_folder(tmp_path)
    status = cli.main(["finetune", "--model", str(trained_model), "--out", str(tmp_path / "x.keras"),
                       "--data", str(data)])
    err = capsys.readouterr().err
    assert status == 2
    assert "has 10 classes" in err and "trained for 62" in err and str(trained_model) in err
    assert "Traceback" not in err and not (tmp_path / "x.keras").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--part", "0"], "part 0"),
    (["train", "--part", "1.5"], "part 1.5"),
    (["train", "--out", "model.txt"], "model.txt: a model file must end in .h5 or .keras"),
    (["train", "--out", "no/such/folder/m.keras"], "does not exist"),
    (["finetune", "--model", "missing.h5", "--out", "m.keras"], "missing.h5: model file not found"),
    (["finetune", "--model", "exported.onnx", "--out", "m.keras"], "exported.onnx: an ONNX model cannot be trained further"),
    (["train", "--out", "m.ONNX"], "m.ONNX: an ONNX model cannot be written by training"),
    (["train", "--resume", "--out", "fresh.keras"], "no checkpoint to resume from"),
])
def test_cli_errors_name_the_input_without_a_traceback(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith(f"handwritten {args[0]}: error: ")
    assert "Traceback" not in err


def test_every_option_states_its_default():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in ("train", "finetune"):
        for action in sub.choices[command]._actions:
            if action.dest != "help":
                assert "(default:" in action.help or "(required)" in action.help, (command, action.dest)


def test_training_pipeline_visits_every_image_once_per_epoch_in_a_new_order():
    import tensorflow as tf

    from handwritten.train import _pipeline

    # Image i is filled with the value i, its label is i: a batch shows which images it holds.
    x = tf.constant(np.arange(250, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8))
    y = tf.constant(np.arange(250, dtype=np.int32))
    indices = np.arange(0, 250, 2)  # a subset, as --part and the validation hold-out leave
    ds = _pipeline(x, y, indices, batch=32, input_shape=(28, 28, 1), transposed=False, train=True,
                   augment=False, seed=0)
    assert int(ds.cardinality()) == 4
    # The autotuner's thread held each new epoch back for seconds while the old iterator waited for it.
    assert ds.options().autotune.enabled is False
    epochs = [np.concatenate([labels.numpy() for _, labels in ds]) for _ in range(2)]
    for order in epochs:
        assert sorted(order) == list(indices)
    assert list(epochs[0]) != list(epochs[1]) and list(epochs[0]) != list(indices)
    images, labels = next(iter(ds))
    assert images.dtype == tf.float32 and images.shape[1:] == (28, 28, 1)
    np.testing.assert_allclose(images.numpy()[:, 0, 0, 0], labels.numpy() / 255.0, rtol=1e-6)


def test_augmented_batches_follow_the_seed_whatever_thread_warps_them():
    import tensorflow as tf

    from handwritten.train import _pipeline

    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 256, (300, 28, 28), dtype=np.uint8))
    y = tf.constant(np.arange(300, dtype=np.int32))

    def epochs(seed):
        ds = _pipeline(x, y, np.arange(300), batch=16, input_shape=(28, 28, 1), transposed=False, train=True,
                       augment=True, seed=seed)
        return [np.concatenate([images.numpy() for images, _ in ds]) for _ in range(2)]

    first, again, other = epochs(3), epochs(3), epochs(4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[0], other[0])


def test_a_share_of_each_batch_is_warped_and_the_rest_left_as_it_is():
    import tensorflow as tf

    from handwritten.pipeline import WARPED_SHARE, random_affine

    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((400, 28, 28, 1), dtype=np.float32))
    seed = tf.constant(11, tf.int64)

    def unchanged(share):
        out = random_affine(images, seed, share).numpy()
        return np.all(out == images.numpy(), axis=(1, 2, 3))

    assert unchanged(0.0).all()  # the identity transform returns the very pixels
    assert not unchanged(1.0).any()
    kept = unchanged(WARPED_SHARE)
    assert abs(kept.mean() - (1 - WARPED_SHARE)) < 0.08, kept.mean()
    # The images left alone are the ones the share's draw picked, whatever the share.
    assert (unchanged(0.25) >= kept).all()


def test_training_twice_with_one_seed_gives_the_same_weights(tmp_path, sample_dir):
    import keras

    from handwritten.train import create_model

    for name in ("a.keras", "b.keras"):
        create_model("model_2", str(tmp_path / name), 0.25, data=sample_dir, epochs=1, augment=True, seed=5, verbose=0)
    a, b = (keras.saving.load_model(tmp_path / name) for name in ("a.keras", "b.keras"))
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_recalibration_gives_batch_norm_the_statistics_of_clean_data_without_dropout():
    import keras

    from handwritten.train import _recalibrate

    inputs = keras.Input((4,))
    x = keras.layers.Dropout(0.5, name="drop")(inputs)
    outputs = keras.layers.BatchNormalization(momentum=0.99, name="norm")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    data = rng.normal([1.0, -2.0, 3.0, 0.5], [1.0, 2.0, 0.5, 3.0], size=(1024, 4)).astype(np.float32)
    batches = [(data[i:i + 256], None) for i in range(0, len(data), 256)]

    assert _recalibrate(model, batches) == len(data)
    norm = model.get_layer("norm")
    np.testing.assert_allclose(norm.moving_mean.numpy(), data.mean(axis=0), rtol=1e-4, atol=1e-4)
    # Dropout left on would inflate the variance by about 1 / (1 - 0.5).
    per_batch = np.mean([b.var(axis=0) for b, _ in batches], axis=0)
    np.testing.assert_allclose(norm.moving_variance.numpy(), per_batch, rtol=1e-3)
    assert norm.momentum == 0.99 and model.get_layer("drop").rate == 0.5  # both put back


@pytest.mark.slow
def test_a_short_model_1_run_tests_near_its_training_accuracy(tmp_path, fashion_dir):
    """Two epochs on 3,000 images: batch norm's moving statistics alone would test far below training."""
    from handwritten.train import create_model

    result = create_model("model_1", str(tmp_path / "short.keras"), 0.05, data=fashion_dir, epochs=2, seed=0,
                          verbose=0)
    assert result["train_accuracy"] > 0.5
    assert result["test_accuracy"] > result["train_accuracy"] - 0.1, result


def test_the_cli_keeps_tensorflows_start_up_lines_off_the_terminal(tmp_path, sample_dir):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([*HANDWRITTEN, "train", "--model", "model_2", "--data", str(sample_dir), "--dry-run",
                           "--out", str(tmp_path / "m.keras")], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test accuracy: " in done.stdout
    noise = [line for line in done.stderr.splitlines()
             if re.match(r"[IWE]\d{4} \d\d:\d\d:", line) or "absl::InitializeLog" in line]
    assert noise == []


def test_version_is_the_installed_packages(capsys):
    import importlib.metadata

    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"handwritten {importlib.metadata.version('handwritten')}\n"
