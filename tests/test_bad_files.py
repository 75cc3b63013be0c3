"""Hostile and careless files: data sets, mapping files and paths that are not what their names say.

Each case must end in a one-line message naming the file and the fault: no traceback, no
hang, nothing left behind in the cache.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import time
import zlib

import numpy as np
import pytest

from handwritten import emnist
from handwritten.cli import main
from handwritten.errors import DataError
from handwritten.idx import cache_dir, read_idx, write_idx

PLAIN = {"train-images": "train-images-idx3-ubyte", "train-labels": "train-labels-idx1-ubyte",
         "test-images": "t10k-images-idx3-ubyte", "test-labels": "t10k-labels-idx1-ubyte"}


def plain_set(folder, train_labels=None, test_labels=None):
    """A tiny data set under MNIST's file names; labels 0..9 unless given."""
    folder.mkdir(parents=True, exist_ok=True)
    train_labels = np.arange(10, dtype=np.uint8) if train_labels is None else train_labels
    test_labels = np.arange(5, dtype=np.uint8) if test_labels is None else test_labels
    write_idx(folder / PLAIN["train-images"], np.zeros((len(train_labels), 28, 28), np.uint8))
    write_idx(folder / PLAIN["test-images"], np.zeros((len(test_labels), 28, 28), np.uint8))
    write_idx(folder / PLAIN["train-labels"], train_labels)
    write_idx(folder / PLAIN["test-labels"], test_labels)
    return folder


def cached_copies() -> list[str]:
    folder = cache_dir() / "idx"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- sizes in exact arithmetic

def test_dimensions_whose_product_wraps_around_are_truncation(tmp_path):
    path = tmp_path / "wrap"
    path.write_bytes(struct.pack(">IIII", 2051, 2**31, 2**31, 4))  # 2^64 bytes promised: 0 in int64
    with pytest.raises(DataError, match=r"wrap: truncated: the header promises shape \(2147483648, 2147483648, 4\) "
                                        r"\(18446744073709551632 bytes with the header\) but the file has only 16"):
        read_idx(path)


def test_huge_dimensions_give_a_positive_byte_count(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(struct.pack(">IIIII", 0x0804, *[2**32 - 1] * 4) + bytes(100))
    with pytest.raises(DataError, match="huge: truncated") as exc:
        read_idx(path)
    assert f"({20 + (2**32 - 1) ** 4} bytes with the header)" in str(exc.value)


@pytest.mark.parametrize("value", [99999999999999999999, 0x110000, -1])
def test_mapping_code_out_of_range(tmp_path, value):
    from test_emnist import make, mapping_text

    make(tmp_path, split="digits")
    text = mapping_text("digits").replace("\n9 57\n", f"\n9 {value}\n")
    (tmp_path / "emnist-digits-mapping.txt").write_text(text)
    with pytest.raises(DataError, match=rf"emnist-digits-mapping.txt: not a mapping file of lines 'label ascii-code': "
                                        rf"line 10 is '9 {value}'"):
        emnist.load(tmp_path)


@pytest.mark.parametrize("labels", [np.arange(10, dtype=np.float32),
                                    np.array([0, 1, np.nan, 3, 4, 5, 6, 7, 8, 9], np.float32)],
                         ids=["float32", "nan"])
def test_labels_that_are_not_integers(tmp_path, labels, capsys):
    folder = plain_set(tmp_path / "d", train_labels=labels)
    assert main(["inspect", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err == (f"handwritten inspect: error: {folder / PLAIN['train-labels']}: labels must be an integer IDX "
                   "type (0x08 unsigned byte for MNIST and EMNIST), got float32\n")


def test_too_many_classes_names_the_file_the_label_and_where(tmp_path):
    folder = plain_set(tmp_path / "d", test_labels=np.array([1, 2, 255, 3, 4], np.uint8))
    with pytest.raises(DataError, match=rf"{folder / PLAIN['test-labels']}: label 255 at index 2 is more than this "
                                        r"tool can label: a data set without EMNIST names may have labels 0..76"):
        emnist.load(folder)


def test_largest_label_that_fits_is_accepted(tmp_path):
    folder = plain_set(tmp_path / "d", train_labels=np.array([0, 76, 3], np.uint8))
    assert emnist.load(folder).classes == 77


# ---------------------------------------------------------------- gzip files checked as they stream

def _gzip_of(path, head: bytes, zeros: int):
    """``head`` and then ``zeros`` zero bytes, gzip-compressed, written without holding them in memory."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as f:
        f.write(head)
        block = bytes(1 << 20)
        for start in range(0, zeros, len(block)):
            f.write(block[: min(len(block), zeros - start)])
    return path


def test_gzip_bomb_stops_at_what_the_header_promises(tmp_path):
    path = _gzip_of(tmp_path / "bomb-images-idx3-ubyte.gz", struct.pack(">IIII", 2051, 10, 28, 28), 64 << 20)
    assert path.stat().st_size < 1 << 20  # well under a megabyte on disk
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"bomb-images-idx3-ubyte.gz: oversized: the header promises shape "
                                        r"\(10, 28, 28\) \(7856 bytes with the header\) but it decompresses to more "
                                        r"than 1056432 bytes"):
        read_idx(path)
    assert time.perf_counter() - start < 5
    assert not [name for name in cached_copies() if name.startswith("bomb")]


@pytest.mark.parametrize("payload, message", [
    (9 * 784, r"truncated: .* but the file has only 7072 bytes"),
    (10 * 784 + 3, r"oversized: .* but the file has 7859 bytes \(3 extra\)"),
], ids=["short", "long"])
def test_gzip_that_disagrees_with_its_header_leaves_no_copy(tmp_path, payload, message):
    path = _gzip_of(tmp_path / "odd-images.gz", struct.pack(">IIII", 2051, 10, 28, 28), payload)
    with pytest.raises(DataError, match=message):
        read_idx(path)
    assert not [name for name in cached_copies() if name.startswith("odd")]


def test_gzip_with_a_bad_header_is_refused_before_decompressing(tmp_path):
    path = _gzip_of(tmp_path / "junk.gz", b"\x50\x4b\x03\x04", 16 << 20)
    with pytest.raises(DataError, match="junk.gz: not an IDX file: wrong magic number"):
        read_idx(path)
    assert not [name for name in cached_copies() if name.startswith("junk")]


def test_damaged_gzip_leaves_no_copy(tmp_path):
    data = bytearray(gzip.compress(struct.pack(">IIII", 2051, 50, 28, 28) + np.random.default_rng(0).bytes(50 * 784)))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "damaged.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="damaged.gz: not a readable gzip file"):
        read_idx(path)
    assert not [name for name in cached_copies() if name.startswith("damaged")]


def test_good_gzip_still_reads_and_is_cached_once(tmp_path):
    array = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    path = write_idx(tmp_path / "fine-images.gz", array)
    np.testing.assert_array_equal(read_idx(path), array)
    np.testing.assert_array_equal(read_idx(path), array)
    assert len([name for name in cached_copies() if name.startswith("fine")]) == 1
    assert zlib.crc32(read_idx(path).tobytes()) == zlib.crc32(array.tobytes())


# ---------------------------------------------------------------- paths that are not files

def _fifo(path):
    os.mkfifo(path)
    return path


def _loop(path):
    os.symlink(path.name, path)  # a link to itself
    return path


KINDS = {
    "folder": (lambda p: p.mkdir() or p, "is a folder, not a file"),
    "fifo": (_fifo, r"is not a regular file \(a FIFO\)"),
    "loop": (_loop, "is a symbolic link loop"),
    "dangling": (lambda p: os.symlink("elsewhere", p) or p, "is a symbolic link to elsewhere, which does not exist"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("part", ["train-images", "test-labels"])
def test_data_file_that_is_not_a_file(tmp_path, kind, part):
    make, message = KINDS[kind]
    folder = plain_set(tmp_path / "d")
    (folder / PLAIN[part]).unlink()
    make(folder / PLAIN[part])
    with pytest.raises(DataError, match=rf"{folder / PLAIN[part]}: {message}"):
        emnist.load(folder)


@pytest.mark.parametrize("kind", ["fifo", "loop"])
def test_mapping_file_that_is_not_a_file(tmp_path, kind):
    from test_emnist import make

    make(tmp_path, split="digits")
    (tmp_path / "emnist-digits-mapping.txt").unlink(missing_ok=True)
    KINDS[kind][0](tmp_path / "emnist-digits-mapping.txt")
    with pytest.raises(DataError, match=rf"emnist-digits-mapping.txt: {KINDS[kind][1]}"):
        emnist.load(tmp_path)


def test_data_folder_that_is_not_a_folder(tmp_path, capsys):
    plain = tmp_path / "notes.txt"
    plain.write_text("hello")
    assert main(["inspect", str(plain)]) == 2
    assert capsys.readouterr().err == f"handwritten inspect: error: {plain}: is a file, not a data folder\n"
    loop = _loop(tmp_path / "loop")
    with pytest.raises(DataError, match=f"{loop}: is a symbolic link loop"):
        emnist.load(loop)
    fifo = _fifo(tmp_path / "pipe")
    with pytest.raises(DataError, match=f"{fifo}: is a FIFO, not a data folder"):
        emnist.load(fifo)


# ---------------------------------------------------------------- model files

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


@pytest.mark.parametrize("case", ["not-json", "list", "no-mapping", "framing-kind", "split"])
def test_bad_metadata_in_every_command(odd_models, tmp_path, case, ink_png, sample_dir, capsys):
    path = _with_meta(odd_models["good.keras"], tmp_path / "bad.keras", BAD_META[case][0])
    for argv in (["predict", str(path), str(ink_png)], ["evaluate", str(path), "--data", str(sample_dir)],
                 ["finetune", "--model", str(path), "--out", str(tmp_path / "ft.keras"), "--data", str(sample_dir)],
                 ["export", str(path), "--out", str(tmp_path / "x.onnx")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(BAD_META[case][1], err), err


@pytest.mark.parametrize("case", ["not-json", "list", "no-mapping", "twice", "framing-box"])
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


def test_gzip_promising_more_than_deflate_can_hold_is_refused_unread(tmp_path):
    # A header promising 2^64 bytes on a small stream of zeros: never decompressed towards it.
    path = _gzip_of(tmp_path / "vast-images.gz", struct.pack(">IIII", 2051, 2**31, 2**31, 4), 1 << 20)
    with pytest.raises(DataError, match=r"vast-images.gz: truncated: the header promises shape "
                                        r"\(2147483648, 2147483648, 4\) .* but a gzip file of \d+ bytes holds at most"):
        read_idx(path)
    assert not [name for name in cached_copies() if name.startswith("vast")]


@pytest.mark.parametrize("kind, message", [("loop", "is a symbolic link loop"), ("fifo", "is a FIFO, not a folder"),
                                           ("file", "is a file, not a folder")])
def test_sample_folder_that_is_not_a_folder(tmp_path, kind, message, capsys):
    path = tmp_path / "out"
    {"loop": _loop, "fifo": _fifo, "file": lambda p: p.write_text("mine")}[kind](path)
    assert main(["sample", "--dir", str(path)]) == 2
    assert capsys.readouterr().err == f"handwritten sample: error: {path}: {message}\n"


def test_report_folder_that_is_not_a_folder_is_refused_before_evaluating(odd_models, tmp_path, capsys, monkeypatch):
    from handwritten import evaluate

    monkeypatch.setattr(evaluate, "evaluate", lambda *a, **k: pytest.fail("evaluated before checking --report"))
    for make, message in ((_loop, "is a symbolic link loop"), (_fifo, "is a FIFO, not a report folder")):
        report = make(tmp_path / f"report-{make.__name__}")
        assert main(["evaluate", str(odd_models["good.keras"]), "--report", str(report)]) == 2
        assert capsys.readouterr().err == f"handwritten evaluate: error: {report}: {message}\n"
