"""A model saved by the original Keras 2 script: a bare .h5, 62-way softmax, trained on EMNIST's transposed images."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from handwritten import emnist, modelio

# Written with tf-keras (Keras 2), trained as the original script did: on EMNIST's files as
# stored, that is on transposed images, with no metadata in the file.
MAKE_LEGACY = """
import sys
import numpy as np
import tf_keras as k
from handwritten import emnist
data = emnist.load(sys.argv[1])
x = np.asarray(data.x_train).transpose(0, 2, 1)[..., None] / 255.0
k.utils.set_random_seed(0)
model = k.Sequential([
    k.layers.Conv2D(16, 3, activation="relu", input_shape=(28, 28, 1)),
    k.layers.MaxPooling2D(),
    k.layers.Conv2D(32, 3, activation="relu"),
    k.layers.MaxPooling2D(),
    k.layers.Flatten(),
    k.layers.Dense(62, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, np.asarray(data.y_train), epochs=8, batch_size=32, verbose=0)
model.save(sys.argv[2])
"""


@pytest.fixture(scope="module")
def legacy_h5(tmp_path_factory, sample_dir):
    pytest.importorskip("tf_keras")
    path = tmp_path_factory.mktemp("legacy") / "NN_model1.h5"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1")
    done = subprocess.run([sys.executable, "-c", MAKE_LEGACY, str(sample_dir), str(path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return path


def accuracy(model, images, labels) -> float:
    x = np.asarray(images, dtype=np.float32)[..., None] / 255.0
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == labels))


@pytest.mark.slow
def test_legacy_h5_reads_as_byclass_with_transposed_input(legacy_h5, sample_dir):
    import h5py

    with h5py.File(legacy_h5) as f:
        assert "keras_version" in f.attrs and "handwritten" not in f.attrs  # really a bare Keras 2 file
    meta = modelio.read_meta(legacy_h5)
    assert meta["legacy"] and meta["split"] == "byclass" and meta["orientation"] == "transposed"

    model, meta = modelio.load_model(legacy_h5, compile=False)
    data = emnist.load(sample_dir)
    transposed = accuracy(model, np.asarray(data.x_test).transpose(0, 2, 1), data.y_test)
    upright = accuracy(model, data.x_test, data.y_test)
    # The check below means something only if orientation matters to this model.
    assert transposed > upright + 0.2, (transposed, upright)


@pytest.mark.slow
def test_legacy_h5_continues_training_on_transposed_images(legacy_h5, sample_dir, tmp_path):
    import keras

    from handwritten.train import next_train

    model, _ = modelio.load_model(legacy_h5, compile=False)
    data = emnist.load(sample_dir)
    before = accuracy(model, np.asarray(data.x_test).transpose(0, 2, 1), data.y_test)

    out = tmp_path / "NN_model1_trained.keras"
    summary = next_train(out, legacy_h5, data=sample_dir, epochs=1, verbose=0)
    assert summary["orientation"] == "transposed" and summary["epochs"] == 1 and summary["classes"] == 62
    # Fed upright images, a model that learnt transposed ones would fall towards chance.
    assert summary["test_accuracy"] > before - 0.15, (summary["test_accuracy"], before)

    meta = modelio.read_meta(out)
    assert meta["orientation"] == "transposed" and meta["split"] == "byclass" and meta["model_name"] == "legacy"
    assert meta["parent"]["path"] == str(legacy_h5)
    assert keras.models.load_model(out).output_shape == (None, 62)
    trained, _ = modelio.load_model(out)
    assert accuracy(trained, np.asarray(data.x_test).transpose(0, 2, 1), data.y_test) == pytest.approx(
        summary["test_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_legacy_h5_learns_a_folder_of_samples_with_replay(legacy_h5, sample_dir, tmp_path):
    from PIL import Image

    from handwritten.folder_data import class_name
    from handwritten.train import next_train

    data = emnist.load(sample_dir)
    for ch in "3Kk":
        folder = tmp_path / "mine" / class_name(ch)
        folder.mkdir(parents=True)
        for i in np.flatnonzero(data.y_test == data.mapping.index(ch))[:3]:
            Image.fromarray(255 - np.asarray(data.x_test[i])).resize((84, 84)).save(folder / f"{i}.png")
    out = tmp_path / "NN_model1_mine.h5"
    # The legacy file names no data folder: the replay is given.
    summary = next_train(out, legacy_h5, data=tmp_path / "mine", replay=sample_dir, epochs=1, verbose=0)
    report = summary["teach"]
    assert report["replay"] == str(sample_dir) and report["samples_held_out"] == 3
    assert report["before"]["original"] is not None and report["after"]["original"] is not None
    assert summary["orientation"] == "transposed" and summary["classes"] == 62
    meta = modelio.read_meta(out)
    assert meta["orientation"] == "transposed" and meta["mapping"] == emnist.SPLITS["byclass"].mapping
    # Fed upright images, a model that learnt transposed ones would fall towards chance.
    assert report["after"]["original"] > report["before"]["original"] - 0.15
