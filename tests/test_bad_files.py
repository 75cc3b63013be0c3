"""Hostile and careless data files, mapping files and paths that are not what their names say.

Each case must end in a one-line message naming the file and the fault: no traceback, no
hang, nothing left behind in the cache.
"""

from __future__ import annotations

import gzip
import os
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


def test_gzip_promising_more_than_deflate_can_hold_is_refused_unread(tmp_path):
    # A header promising 2^64 bytes on a small stream of zeros: never decompressed towards it.
    path = _gzip_of(tmp_path / "vast-images.gz", struct.pack(">IIII", 2051, 2**31, 2**31, 4), 1 << 20)
    with pytest.raises(DataError, match=r"vast-images.gz: truncated: the header promises shape "
                                        r"\(2147483648, 2147483648, 4\) .* but a gzip file of \d+ bytes holds at most"):
        read_idx(path)
    assert not [name for name in cached_copies() if name.startswith("vast")]


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


@pytest.mark.parametrize("kind", KINDS)
def test_image_path_that_is_not_a_file(tmp_path, kind):
    from handwritten.errors import HandwrittenError
    from handwritten.images import preprocess

    make, message = KINDS[kind]
    path = make(tmp_path / "char.png")
    with pytest.raises(HandwrittenError, match=rf"{path}: {message}"):
        preprocess(str(path))  # a FIFO is refused before it is opened: opening one waits for a writer


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


@pytest.mark.parametrize("kind, message", [("loop", "is a symbolic link loop"), ("fifo", "is a FIFO, not a folder"),
                                           ("file", "is a file, not a folder")])
def test_sample_folder_that_is_not_a_folder(tmp_path, kind, message, capsys):
    path = tmp_path / "out"
    {"loop": _loop, "fifo": _fifo, "file": lambda p: p.write_text("mine")}[kind](path)
    assert main(["sample", "--dir", str(path)]) == 2
    assert capsys.readouterr().err == f"handwritten sample: error: {path}: {message}\n"


EMPTY_PATHS = [["sample", "--dir", ""], ["inspect", " "], ["download", "--dir", ""], ["train", "--data", "", "--dry-run"],
               ["train", "--out", ""], ["finetune", "--model", "", "--out", "m.keras"],
               ["finetune", "--model", "m.keras", "--out", "m2.keras", "--replay", ""], ["evaluate", ""],
               ["evaluate", "m.keras", "--data", ""], ["evaluate", "m.keras", "--report", ""], ["predict", "", "a.png"],
               ["predict", "m.keras", "a.png", ""], ["export", "m.keras", "--out", ""], ["serve", ""],
               ["serve", "m.keras", "--collect", ""]]


@pytest.mark.parametrize("argv", EMPTY_PATHS, ids=lambda a: "-".join(x.strip() or "EMPTY" for x in a))
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch, argv, capsys):
    """An unset shell variable gives an empty argument; as a Path it would be ".", the current folder."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: handwritten {argv[0]}")
    assert err.endswith("is an empty path (an unset variable?)\n")
    assert list(tmp_path.iterdir()) == []  # nothing written where the command was run


def test_an_empty_model_path_is_refused_by_the_python_api(tmp_path):
    from handwritten import create_model
    from handwritten.errors import HandwrittenError
    from handwritten.predict import Recognizer

    for call in (lambda: Recognizer(""), lambda: create_model("model_2", "", 0.01, data=tmp_path)):
        with pytest.raises(HandwrittenError, match="^'' is an empty path"):
            call()
    with pytest.raises(DataError, match="^'' is an empty path"):
        emnist.load("")
