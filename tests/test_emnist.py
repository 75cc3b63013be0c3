"""The loader: splits and mappings, folder layouts, search order, upright images, bad data, ``inspect``."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest

from handwritten import emnist
from handwritten.cli import main
from handwritten.errors import DataError
from handwritten.idx import cache_dir, write_idx

NAMES = {
    "emnist": lambda split: {
        "train-images": f"emnist-{split}-train-images-idx3-ubyte", "train-labels": f"emnist-{split}-train-labels-idx1-ubyte",
        "test-images": f"emnist-{split}-test-images-idx3-ubyte", "test-labels": f"emnist-{split}-test-labels-idx1-ubyte"},
    "mnist": lambda split: {
        "train-images": "train-images-idx3-ubyte", "train-labels": "train-labels-idx1-ubyte",
        "test-images": "t10k-images-idx3-ubyte", "test-labels": "t10k-labels-idx1-ubyte"},
    "short": lambda split: {p: p for p in emnist.PARTS},
}


def make(folder, *, layout="emnist", split="digits", classes=10, offset=0, per_class=(3, 2), gz=True,
         images=None, labels=None):
    """Write a tiny data set: ``per_class`` train/test images of each class, random pixels."""
    rng = np.random.default_rng(0)
    names = NAMES[layout](split)
    suffix = ".gz" if gz else ""
    for which, n in zip(("train", "test"), per_class):
        y = np.tile(np.arange(offset, offset + classes), n).astype(np.uint8)
        x = rng.integers(0, 256, size=(len(y), 28, 28), dtype=np.uint8)
        if images is not None:
            x = images(which, x)
        if labels is not None:
            y = labels(which, y)
        write_idx(folder / (names[f"{which}-images"] + suffix), x)
        write_idx(folder / (names[f"{which}-labels"] + suffix), y)
    return folder


def mapping_text(split: str) -> str:
    s = emnist.SPLITS[split]
    return "".join(f"{k + s.label_offset} {ord(c)}\n" for k, c in enumerate(s.mapping))


# ---------------------------------------------------------------- splits

@pytest.mark.parametrize("name, classes, mapping", [
    ("byclass", 62, string.digits + string.ascii_uppercase + string.ascii_lowercase),
    ("bymerge", 47, string.digits + string.ascii_uppercase + "abdefghnqrt"),
    ("balanced", 47, string.digits + string.ascii_uppercase + "abdefghnqrt"),
    ("letters", 26, string.ascii_uppercase),
    ("digits", 10, string.digits),
    ("mnist", 10, string.digits),
])
def test_split_classes_and_mapping(tmp_path, name, classes, mapping):
    split = emnist.get_split(name)
    assert split.classes == classes and split.mapping == mapping
    offset = 1 if name == "letters" else 0
    make(tmp_path, split=name, classes=classes, offset=offset)
    (tmp_path / f"emnist-{name}-mapping.txt").write_text(mapping_text(name))
    data = emnist.load(tmp_path, name)
    assert data.classes == classes and data.mapping == mapping and data.split.name == name
    assert data.y_train.min() == 0 and data.y_train.max() == classes - 1
    assert data.files["mapping"].name == f"emnist-{name}-mapping.txt"


def test_letters_labels_1_to_26_become_0_to_25(tmp_path):
    make(tmp_path, split="letters", classes=26, offset=1)
    data = emnist.load(tmp_path)
    assert data.split.name == "letters"
    raw = np.tile(np.arange(1, 27), 3)
    np.testing.assert_array_equal(data.y_train, raw - 1)
    assert data.mapping[int(data.y_train[0])] == "A"


def test_letters_label_0_is_outside_the_split(tmp_path):
    make(tmp_path, split="letters", classes=26, offset=0)
    with pytest.raises(DataError, match=r"emnist-letters-train-labels-idx1-ubyte.gz: label 0 is outside split "
                                        r"letters's classes \(1..26\)"):
        emnist.load(tmp_path)


def test_unknown_split():
    with pytest.raises(DataError, match="unknown split 'bytes'; choose one of: byclass, bymerge, balanced, letters, "
                                        "digits, mnist"):
        emnist.get_split("bytes")


def test_split_absent_from_an_emnist_folder(tmp_path):
    make(tmp_path, split="digits")
    with pytest.raises(DataError, match="has EMNIST files for split.s. digits but not for split letters"):
        emnist.load(tmp_path, "letters")


def test_byclass_is_the_default_when_several_splits_are_there(tmp_path):
    make(tmp_path, split="digits")
    make(tmp_path, split="byclass", classes=62)
    assert emnist.load(tmp_path).split.name == "byclass"
    assert emnist.load(tmp_path, "digits").split.name == "digits"


# ---------------------------------------------------------------- mapping file

def test_mapping_that_disagrees(tmp_path):
    make(tmp_path, split="digits")
    (tmp_path / "emnist-digits-mapping.txt").write_text(mapping_text("digits").replace("9 57", "9 65"))
    with pytest.raises(DataError, match=r"emnist-digits-mapping.txt: mapping disagrees with split digits "
                                        r"\(for example \[\(9, '9'\), \(9, 'A'\)\]\)"):
        emnist.load(tmp_path)


def test_mapping_that_is_not_a_mapping(tmp_path):
    make(tmp_path, split="digits")
    (tmp_path / "emnist-digits-mapping.txt").write_text("zero is 48\n")
    with pytest.raises(DataError, match="emnist-digits-mapping.txt: not a mapping file of lines 'label ascii-code'"):
        emnist.load(tmp_path)


def test_real_letters_mapping_format_with_two_codes(tmp_path):
    make(tmp_path, split="letters", classes=26, offset=1)
    # EMNIST's letters mapping lists the upper- and lower-case code of each label.
    (tmp_path / "emnist-letters-mapping.txt").write_text(
        "".join(f"{k + 1} {65 + k} {97 + k}\r\n" for k in range(26)))
    assert emnist.load(tmp_path).files["mapping"].name == "emnist-letters-mapping.txt"


# ---------------------------------------------------------------- layouts and search order

@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["emnist", "mnist", "short"])
def test_three_layouts_plain_and_gz(tmp_path, layout, gz):
    make(tmp_path, layout=layout, gz=gz)
    data = emnist.load(tmp_path)
    assert (len(data.x_train), len(data.x_test)) == (30, 20)
    assert data.x_train.dtype == np.uint8 and data.x_train.shape[1:] == (28, 28)
    assert data.classes == 10 and data.transposed == (layout == "emnist")
    expected = NAMES[layout]("digits")["train-images"] + (".gz" if gz else "")
    assert data.files["train-images"].name == expected
    assert expected in data.describe()
    # Images stay memory-mapped uint8 (a .gz file through its decompressed copy), never float.
    assert isinstance(data.x_train, np.memmap)


def test_archive_subfolder_gzip(tmp_path):
    make(tmp_path / "gzip", split="digits")
    assert emnist.find_data(tmp_path) == tmp_path / "gzip"


def test_search_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"no data found \(looked in emnist, .*cache.emnist\); pass --data DIR, "
                                        r"run 'handwritten download' for EMNIST, or 'handwritten sample'"):
        emnist.find_data()
    make(cache_dir() / "emnist", split="digits")
    assert emnist.find_data() == cache_dir() / "emnist"
    make(tmp_path / "emnist", split="mnist")
    assert emnist.find_data().resolve() == tmp_path / "emnist"
    assert emnist.load().split.name == "mnist"  # ./emnist comes before the cache
    make(tmp_path / "mine", layout="short")
    assert emnist.find_data(tmp_path / "mine") == tmp_path / "mine"  # --data comes first
    assert emnist.load(tmp_path / "mine").folder == tmp_path / "mine"


def test_explicit_folder_that_is_missing_or_empty(tmp_path):
    with pytest.raises(DataError, match="nowhere: data folder not found"):
        emnist.load(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"no IDX data files found; expected EMNIST names \(emnist-byclass-train"):
        emnist.load(tmp_path)


# ---------------------------------------------------------------- upright images

def _asymmetric() -> np.ndarray:
    """An upright 'L' plus one bright pixel at row 2, column 20: no transpose or flip leaves it unchanged."""
    image = np.zeros((28, 28), np.uint8)
    image[5:23, 6:9] = 200  # the L's stem
    image[20:23, 6:18] = 200  # its foot
    image[2, 20] = 255
    return image


def test_emnist_files_are_turned_upright(tmp_path):
    upright = _asymmetric()
    # Stored the way EMNIST stores it: transposed.
    make(tmp_path, images=lambda which, x: np.concatenate([upright.T[None], x[1:]]))
    data = emnist.load(tmp_path)
    assert data.transposed
    np.testing.assert_array_equal(data.x_train[0], upright)
    assert data.x_train[0][2, 20] == 255 and data.x_train[0][20, 2] == 0


def test_mnist_named_files_are_returned_as_they_are(tmp_path):
    upright = _asymmetric()
    make(tmp_path, layout="mnist", images=lambda which, x: np.concatenate([upright[None], x[1:]]))
    data = emnist.load(tmp_path)
    assert not data.transposed
    np.testing.assert_array_equal(data.x_train[0], upright)


def test_sample_is_marked_synthetic(sample_dir):
    data = emnist.load(sample_dir)
    assert data.synthetic and data.transposed and data.classes == 62
    assert "synthetic offline sample (not EMNIST)" in data.describe()


# ---------------------------------------------------------------- bad data

def test_image_and_label_counts_differ(tmp_path):
    make(tmp_path, labels=lambda which, y: y[:-1] if which == "test" else y)
    with pytest.raises(DataError, match=r"emnist-digits-test-images-idx3-ubyte.gz has 20 images but "
                                        r"emnist-digits-test-labels-idx1-ubyte.gz has 19 labels"):
        emnist.load(tmp_path)


def test_label_outside_the_split(tmp_path):
    make(tmp_path, labels=lambda which, y: np.where(np.arange(len(y)) == 4, 12, y).astype(np.uint8))
    with pytest.raises(DataError, match=r"emnist-digits-train-labels-idx1-ubyte.gz: label 12 is outside split "
                                        r"digits's classes \(0..9\)"):
        emnist.load(tmp_path)


def test_wrong_image_size(tmp_path):
    make(tmp_path, layout="mnist", gz=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((20, 32, 32), np.uint8))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte: wrong image size 32x32; expected 28x28"):
        emnist.load(tmp_path)


def test_labels_where_images_belong(tmp_path):
    make(tmp_path, layout="short", gz=False)
    write_idx(tmp_path / "train-images", np.zeros(30, np.uint8))
    with pytest.raises(DataError, match=r"train-images: images must have 3 dimensions \(count, height, width\), "
                                        r"got shape \(30,\)"):
        emnist.load(tmp_path)


def test_missing_file(tmp_path):
    make(tmp_path)
    (tmp_path / "emnist-digits-test-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing file emnist-digits-test-labels-idx1-ubyte\[.gz\] \(test-labels\)"):
        emnist.load(tmp_path)


def test_truncated_file_in_a_folder(tmp_path):
    make(tmp_path, gz=False)
    path = tmp_path / "emnist-digits-train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"emnist-digits-train-images-idx3-ubyte: truncated"):
        emnist.load(tmp_path)


# ---------------------------------------------------------------- handwritten inspect

def test_inspect_good_data(tmp_path, capsys):
    make(tmp_path, split="letters", classes=26, offset=1)
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train: 78 images of 28x28, 26 classes, 3-3 images per class" in out
    assert "test: 52 images of 28x28, 26 classes, 2-2 images per class" in out
    assert "emnist-letters-train-images-idx3-ubyte.gz" in out and "usable: yes" in out


def test_inspect_json(tmp_path, capsys):
    make(tmp_path, layout="short")
    assert main(["inspect", str(tmp_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parts"]["train"] == {"count": 30, "image_size": [28, 28], "classes": 10,
                                      "per_class_min": 3, "per_class_max": 3}


def test_inspect_bad_data(tmp_path, capsys):
    make(tmp_path, labels=lambda which, y: y[:-1] if which == "train" else y)
    assert main(["inspect", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "usable" not in captured.out
    assert captured.err.startswith("handwritten inspect: error: ")
    assert "has 30 images but emnist-digits-train-labels-idx1-ubyte.gz has 29 labels" in captured.err


def test_inspect_fashion_mnist(fashion_dir, capsys):
    assert main(["inspect", str(fashion_dir)]) == 0
    out = capsys.readouterr().out
    assert "train: 60000 images of 28x28, 10 classes, 6000-6000 images per class" in out
    assert "test: 10000 images of 28x28, 10 classes, 1000-1000 images per class" in out
    assert "train-images-idx3-ubyte.gz" in out and "t10k-labels-idx1-ubyte.gz" in out
