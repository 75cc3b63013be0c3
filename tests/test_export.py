"""``handwritten export``: the ONNX model agrees with Keras, carries its metadata, and predict/evaluate run it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from handwritten import emnist
from handwritten.cli import main
from test_bad_models import _onnx_model


@pytest.fixture(scope="module")
def onnx_model(trained_model, tmp_path_factory):
    from handwritten.export import export

    out = tmp_path_factory.mktemp("onnx") / "model_2.onnx"
    result = export(trained_model, "onnx", out)
    assert result["max_difference"] <= 1e-4
    return out


def test_onnx_parity_on_the_test_images(onnx_model, trained_model, sample_dir):
    """onnxruntime and Keras agree on >= 99.9% of the test images and within 1e-4 on every probability."""
    import onnxruntime

    from handwritten.images import model_input
    from handwritten.modelio import load_model

    x = model_input(np.asarray(emnist.load(sample_dir).x_test))
    model, _ = load_model(trained_model, compile=False)
    keras_probs = np.asarray(model.predict(x, batch_size=256, verbose=0))
    session = onnxruntime.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])
    onnx_probs = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert onnx_probs.shape == keras_probs.shape == (len(x), 62)
    assert (onnx_probs.argmax(1) == keras_probs.argmax(1)).mean() >= 0.999
    assert np.abs(onnx_probs - keras_probs).max() <= 1e-4


def test_onnx_carries_the_metadata(onnx_model, trained_model):
    import onnx

    from handwritten.modelio import read_meta

    props = {p.key: p.value for p in onnx.load(str(onnx_model)).metadata_props}
    meta = read_meta(trained_model)
    assert json.loads(props["handwritten"]) == meta
    assert props["mapping"] == meta["mapping"] and props["orientation"] == "upright"
    assert json.loads(props["framing"]) == meta["framing"]
    graph = onnx.load(str(onnx_model)).graph
    assert [i.name for i in graph.input] == ["image"] and [o.name for o in graph.output] == ["probabilities"]


def test_predict_and_evaluate_accept_onnx(onnx_model, trained_model, sample_dir, capsys):
    from handwritten.predict import Recognizer

    x = np.asarray(emnist.load(sample_dir).x_test)[:50]
    by_onnx, by_keras = Recognizer(onnx_model), Recognizer(trained_model)
    assert by_onnx.info()["format"] == "onnx" and by_onnx.info()["classes"] == 62
    np.testing.assert_allclose(by_onnx.predict_arrays(x), by_keras.predict_arrays(x), atol=1e-4)
    images = [np.asarray(255 - a) for a in x[:5]]
    assert [r["character"] for r in by_onnx.predict(images)] == [r["character"] for r in by_keras.predict(images)]

    assert main(["evaluate", str(onnx_model), "--data", str(sample_dir), "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(trained_model), "--data", str(sample_dir), "--json"]) == 0
    from_keras = json.loads(capsys.readouterr().out)
    assert from_onnx["format"] == "onnx"
    assert abs(from_onnx["accuracy"] - from_keras["accuracy"]) <= 1 / from_keras["images"]


def test_an_onnx_file_named_in_capitals_is_read(onnx_model, tmp_path, capsys):
    shouted = tmp_path / "MODEL.ONNX"
    shutil.copy(onnx_model, shouted)
    page = np.full((60, 60), 255, np.uint8)
    page[10:50, 27:33] = 0
    from PIL import Image

    Image.fromarray(page).save(tmp_path / "bar.png")
    assert main(["predict", str(shouted), str(tmp_path / "bar.png"), "--json"]) == 0
    read = json.loads(capsys.readouterr().out.splitlines()[0])
    assert "error" not in read and read["top"], read


@pytest.mark.slow
def test_savedmodel_runs_without_this_package(trained_model, sample_dir, tmp_path, capsys):
    import tensorflow as tf

    from handwritten.images import model_input
    from handwritten.modelio import load_model

    out = tmp_path / "saved"
    assert main(["export", str(trained_model), "--format", "savedmodel", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    x = model_input(np.asarray(emnist.load(sample_dir).x_test)[:64])
    loaded = tf.saved_model.load(str(out))  # held: the signature needs its variables alive
    served = np.asarray(loaded.serve(tf.constant(x)))
    model, meta = load_model(trained_model, compile=False)
    np.testing.assert_allclose(served, np.asarray(model.predict(x, verbose=0)), atol=1e-5)
    assert json.loads((out / "handwritten.json").read_text())["mapping"] == meta["mapping"]

    # An earlier export of this command is replaced whole, and nothing is left beside it.
    (out / "variables" / "stale.index").write_text("from the earlier export")
    assert main(["export", str(trained_model), "--format", "savedmodel", "--out", str(out)]) == 0
    assert not (out / "variables" / "stale.index").exists() and (out / "saved_model.pb").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


def test_bad_export_requests_are_clear_errors(trained_model, onnx_model, tmp_path, capsys):
    assert main(["export", str(trained_model), "--out", str(tmp_path / "model.txt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    assert main(["export", str(onnx_model), "--out", str(tmp_path / "again.onnx")]) == 2
    assert "already ONNX" in capsys.readouterr().err
    assert main(["export", str(trained_model), "--out", str(tmp_path / "no" / "such.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not list(tmp_path.glob(".*tmp*"))


def test_export_never_deletes_a_folder_it_did_not_write(trained_model, tmp_path, capsys):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("three years of work")
    assert main(["export", str(trained_model), "--format", "savedmodel", "--out", str(thesis)]) == 2
    err = capsys.readouterr().err
    assert f"{thesis}: is a folder that is not a SavedModel written by 'handwritten export'" in err, err
    assert "thesis.tex" in err and "nothing was changed" in err

    # A SavedModel's own files beside something else are not ours to replace either.
    for name in ("saved_model.pb", "handwritten.json", "notes.txt"):
        (thesis / name).write_text("mine")
    assert main(["export", str(trained_model), "--format", "savedmodel", "--out", str(thesis)]) == 2
    assert "it holds notes.txt" in capsys.readouterr().err

    folder = tmp_path / "x.onnx"
    folder.mkdir()
    (folder / "data.csv").write_text("mine")
    assert main(["export", str(trained_model), "--out", str(folder)]) == 2
    assert f"{folder}: is a folder; an ONNX model is a file" in capsys.readouterr().err

    # A file that is not an ONNX model this command wrote (an ONNX without its metadata too).
    (tmp_path / "notes.onnx").write_bytes(b"mine")
    _onnx_model(tmp_path / "other.onnx", ["N", 28, 28, 1], meta=None)
    for name in ("notes.onnx", "other.onnx"):
        content = (tmp_path / name).read_bytes()
        assert main(["export", str(trained_model), "--out", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / name}: exists and is not an ONNX model written by 'handwritten export'" in err, err
        assert (tmp_path / name).read_bytes() == content

    assert (thesis / "thesis.tex").read_text() == "three years of work" and (folder / "data.csv").read_text() == "mine"
    assert sorted(p.name for p in thesis.iterdir()) == ["handwritten.json", "notes.txt", "saved_model.pb", "thesis.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.onnx", "other.onnx", "thesis", "x.onnx"]


def test_an_onnx_export_replaces_an_earlier_file_in_one_step(trained_model, onnx_model, tmp_path):
    import onnx

    from handwritten.export import export

    out = tmp_path / "m.onnx"
    shutil.copy(onnx_model, out)  # an earlier export
    export(trained_model, "onnx", out)
    assert onnx.load(str(out)).producer_name == "handwritten"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
