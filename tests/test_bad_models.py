"""Hostile and careless model files: the wrong input or output shape, broken metadata, odd paths.

Each must be refused when the model is loaded, with one line naming the file and the fault,
by every command that loads a model (predict, evaluate, finetune, export, serve).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from handwritten.cli import main
from test_bad_files import KINDS, _fifo, _loop

META = {"format": 1, "model_name": "tiny", "split": "digits", "mapping": "0123456789", "orientation": "upright",
        "framing": "bbox"}


def _keras_model(shape, flatten=True, classes=10):
    import keras

    inputs = keras.Input(shape=shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs) if flatten else inputs
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax", name="scores")(x))


SHAPES = {  # what the model takes, whether it flattens, and the message
    "32x32": ((32, 32, 1), True, r"the model takes input of shape \(N, 32, 32, 1\); expected \(N, 28, 28, 1\)"),
    "flat": ((784,), False, r"the model takes input of shape \(N, 784\); expected \(N, 28, 28, 1\)"),
    "rgb": ((28, 28, 3), True, r"the model takes input of shape \(N, 28, 28, 3\); expected \(N, 28, 28, 1\)"),
    "4d-output": ((28, 28, 1), False, r"the model gives output of shape \(N, 28, 28, 10\); expected \(N, classes\)"),
}


@pytest.fixture(scope="module")
def odd_models(tmp_path_factory) -> dict:
    """A tiny model per entry of SHAPES, plus one of the right shape, each saved with good metadata."""
    from handwritten.modelio import save_model

    folder = tmp_path_factory.mktemp("odd-models")
    out = {name: save_model(_keras_model(shape, flatten), folder / f"{name}.keras", META)
           for name, (shape, flatten, _) in SHAPES.items()}
    out["good.keras"] = save_model(_keras_model((28, 28, 1)), folder / "good.keras", META)
    out["good.h5"] = save_model(_keras_model((28, 28, 1)), folder / "good.h5", META)
    return out


@pytest.fixture
def ink_png(tmp_path):
    from PIL import Image

    image = np.full((40, 30), 255, np.uint8)
    image[8:32, 12:18] = 0
    path = tmp_path / "one.png"
    Image.fromarray(image).save(path)
    return path


@pytest.mark.parametrize("name", SHAPES)
def test_model_of_the_wrong_shape_is_refused_at_load(odd_models, name, ink_png, tmp_path, capsys):
    from handwritten.errors import HandwrittenError
    from handwritten.predict import Recognizer
    from test_emnist import make

    path, message = odd_models[name], SHAPES[name][2]
    with pytest.raises(HandwrittenError, match=rf"{path}: {message}"):
        Recognizer(path)
    digits = make(tmp_path / "digits", split="digits")
    for argv in (["predict", str(path), str(ink_png)], ["evaluate", str(path), "--data", str(digits)],
                 ["export", str(path), "--out", str(tmp_path / "x.onnx")],
                 ["finetune", "--model", str(path), "--out", str(tmp_path / "ft.keras"), "--data", str(digits)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"{path}: " in err and ("28, 28, 1" in err or "(N, classes)" in err), err
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "ft.keras").exists()


def test_server_refuses_a_model_of_the_wrong_shape_at_start(odd_models):
    from handwritten.errors import HandwrittenError
    from handwritten.server import create_app

    with pytest.raises(HandwrittenError, match=r"input of shape \(N, 32, 32, 1\)"):
        create_app(odd_models["32x32"])


def _onnx_model(path, input_shape, classes=10, meta=META, uint8=False):
    """A hand-made ONNX graph: flatten the input (cast to float) and multiply by a weight matrix."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    size = int(np.prod([d for d in input_shape[1:]]))
    weights = numpy_helper.from_array(np.full((size, classes), 0.01, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
         helper.make_node("Flatten", ["xf"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "w"], ["y"])],
        "odd", [helper.make_tensor_value_info("x", TensorProto.UINT8 if uint8 else TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if meta is not None:
        helper.set_model_props(model, {"handwritten": meta if isinstance(meta, str) else json.dumps(meta)})
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("shape, shown", [(["N", 32, 32, 1], "(N, 32, 32, 1)"), (["N", 784], "(N, 784)"),
                                          (["N", 28, 28, 3], "(N, 28, 28, 3)")])
def test_onnx_model_of_the_wrong_shape_is_refused_at_load(tmp_path, shape, shown):
    from handwritten.errors import HandwrittenError
    from handwritten.predict import Recognizer

    path = _onnx_model(tmp_path / "odd.onnx", shape)
    with pytest.raises(HandwrittenError, match=rf"odd.onnx: the model takes input of shape {re.escape(shown)}; "
                                               r"expected \(N, 28, 28, 1\)"):
        Recognizer(path)


def test_onnx_model_of_the_right_shape_still_runs(tmp_path, ink_png):
    from handwritten.predict import Recognizer

    result = Recognizer(_onnx_model(tmp_path / "fine.onnx", ["N", 28, 28, 1])).predict([ink_png])[0]
    assert result["character"] in META["mapping"] and "error" not in result


def test_onnx_model_that_takes_bytes(tmp_path):
    from handwritten.errors import HandwrittenError
    from handwritten.predict import Recognizer

    path = _onnx_model(tmp_path / "odd.onnx", ["N", 28, 28, 1], uint8=True)
    with pytest.raises(HandwrittenError, match=r"odd.onnx: the model takes input of type tensor\(uint8\); "
                                               r"expected tensor\(float\)"):
        Recognizer(path)


def test_onnx_model_with_the_wrong_number_of_classes(tmp_path):
    from handwritten.errors import HandwrittenError
    from handwritten.predict import Recognizer

    path = _onnx_model(tmp_path / "odd.onnx", ["N", 28, 28, 1], classes=12)
    with pytest.raises(HandwrittenError, match=r"output of shape \(N, 12\); expected \(N, 10\)"):
        Recognizer(path)


BAD_META = {  # the stored text, and what the message must say after "<file>: "
    "not-json": ("{mapping: 0123", r"its handwritten metadata is not valid JSON \(Expecting property name"),
    "list": ("[1, 2]", "its handwritten metadata is a JSON list, not an object"),
    "no-mapping": (json.dumps({"framing": "bbox"}), "metadata field 'mapping' is missing"),
    "empty-mapping": (json.dumps({**META, "mapping": ""}), "metadata field 'mapping' must be a non-empty string"),
    "number-mapping": (json.dumps({**META, "mapping": 12}), "metadata field 'mapping' must be a non-empty string"),
    "twice": (json.dumps({**META, "mapping": "0123456780"}), "metadata field 'mapping' names a character more "
                                                             "than once: '0'"),
    "orientation": (json.dumps({**META, "orientation": "sideways"}), "metadata field 'orientation' must be one of "
                                                                     "upright, transposed"),
    "framing-kind": (json.dumps({**META, "framing": "wobbly"}), "metadata field 'framing': unknown framing 'wobbly'"),
    "framing-list": (json.dumps({**META, "framing": [1, 2]}), "metadata field 'framing': a framing is a kind"),
    "framing-box": (json.dumps({**META, "framing": {"kind": "bbox", "box": "big"}}),
                    "metadata field 'framing': 'box' must be a number from 0.5 to 28, got 'big'"),
    "framing-size": (json.dumps({**META, "framing": {"kind": "com", "size": 32}}),
                     "metadata field 'framing': 'size' must be 28"),
    "split": (json.dumps({**META, "split": ["digits"]}), "metadata field 'split' must be a string"),
    "history": (json.dumps({**META, "history": [1, 2]}), "metadata field 'history' must be an object or a list"),
    # A temperature divides the model's logits: text, NaN, 0 or below would give tracebacks, NaN
    # probabilities or the classes' order reversed.
    "temperature-text": (json.dumps({**META, "temperature": "abc"}),
                         "metadata field 'temperature' must be a positive finite number, got \"abc\""),
    "temperature-nan": (json.dumps({**META, "temperature": float("nan")}),
                        "metadata field 'temperature' must be a positive finite number, got NaN"),
    "temperature-negative": (json.dumps({**META, "temperature": -1.0}),
                             "metadata field 'temperature' must be a positive finite number, got -1.0"),
    "min-confidence": (json.dumps({**META, "min_confidence": "x"}),
                       "metadata field 'min_confidence' must be a probability between 0 and 1"),
    "min-confidence-2": (json.dumps({**META, "min_confidence": 2}),
                         "metadata field 'min_confidence' must be a probability between 0 and 1, got 2"),
}


def _with_meta(source, target, text: str):
    """A copy of the model file ``source`` whose stored metadata is ``text``."""
    import shutil
    import zipfile

    from handwritten.modelio import META_KEY, META_MEMBER

    if source.suffix == ".h5":
        import h5py

        shutil.copy(source, target)
        with h5py.File(target, "a") as f:
            f.attrs[META_KEY] = text
        return target
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            if item.filename != META_MEMBER:
                new.writestr(item, old.read(item))
        new.writestr(META_MEMBER, text)
    return target


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("case", BAD_META)
def test_bad_metadata_is_refused_naming_the_field(odd_models, tmp_path, case, suffix):
    from handwritten.errors import HandwrittenError
    from handwritten.modelio import read_meta

    text, message = BAD_META[case]
    path = _with_meta(odd_models[f"good{suffix}"], tmp_path / f"bad{suffix}", text)
    with pytest.raises(HandwrittenError, match=rf"{path}: {message}"):
        read_meta(path)


@pytest.mark.parametrize("case", ["not-json", "list", "no-mapping", "framing-kind", "split", "temperature-nan"])
def test_bad_metadata_in_every_command(odd_models, tmp_path, case, ink_png, sample_dir, capsys):
    path = _with_meta(odd_models["good.keras"], tmp_path / "bad.keras", BAD_META[case][0])
    for argv in (["predict", str(path), str(ink_png)], ["evaluate", str(path), "--data", str(sample_dir)],
                 ["finetune", "--model", str(path), "--out", str(tmp_path / "ft.keras"), "--data", str(sample_dir)],
                 ["export", str(path), "--out", str(tmp_path / "x.onnx")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(BAD_META[case][1], err), err


@pytest.mark.parametrize("case", ["not-json", "list", "no-mapping", "twice", "framing-box", "temperature-text"])
def test_bad_onnx_metadata_is_refused_naming_the_field(tmp_path, case):
    from handwritten.errors import HandwrittenError
    from handwritten.predict import Recognizer
    from handwritten.server import create_app

    text, message = BAD_META[case]
    path = _onnx_model(tmp_path / "bad.onnx", ["N", 28, 28, 1], meta=text)
    with pytest.raises(HandwrittenError, match=rf"{path}: {message}"):
        Recognizer(path)
    with pytest.raises(HandwrittenError, match=rf"{path}: {message}"):
        create_app(path)


# ---------------------------------------------------------------- model paths that are not files

@pytest.mark.parametrize("suffix", [".keras", ".h5", ".onnx"])
@pytest.mark.parametrize("kind", KINDS)
def test_model_path_that_is_not_a_file(tmp_path, kind, suffix, ink_png, capsys):
    make, message = KINDS[kind]
    path = make(tmp_path / f"model{suffix}")
    message = message.replace("not a file", "not a model file")
    assert main(["predict", str(path), str(ink_png)]) == 2  # a FIFO is never opened: no hang
    assert re.fullmatch(rf"handwritten predict: error: {path}: {message}\n", capsys.readouterr().err)


def test_report_folder_that_is_not_a_folder_is_refused_before_evaluating(odd_models, tmp_path, capsys, monkeypatch):
    from handwritten import evaluate

    monkeypatch.setattr(evaluate, "evaluate", lambda *a, **k: pytest.fail("evaluated before checking --report"))
    for make, message in ((_loop, "is a symbolic link loop"), (_fifo, "is a FIFO, not a report folder")):
        report = make(tmp_path / f"report-{make.__name__}")
        assert main(["evaluate", str(odd_models["good.keras"]), "--report", str(report)]) == 2
        assert capsys.readouterr().err == f"handwritten evaluate: error: {report}: {message}\n"
