"""The IDX reader and writer: round trips, agreement with idx2numpy, and every malformed file."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from handwritten.errors import DataError
from handwritten.idx import read_idx, write_idx

SUFFIXES = ["", ".gz"]


def _raw(path, data: bytes):
    """Write bytes as they are, gzip-compressed when the name ends in .gz."""
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def _images_header(n, h=28, w=28) -> bytes:
    return struct.pack(">IIII", 2051, n, h, w)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip_images_and_labels(tmp_path, suffix, mmap):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 62, size=7, dtype=np.uint8)
    back_images = read_idx(write_idx(tmp_path / f"images{suffix}", images), mmap=mmap)
    back_labels = read_idx(write_idx(tmp_path / f"labels{suffix}", labels), mmap=mmap)
    assert back_images.dtype == np.uint8 and back_images.shape == (7, 28, 28)
    np.testing.assert_array_equal(back_images, images)
    np.testing.assert_array_equal(back_labels, labels)


def test_header_is_the_mnist_one(tmp_path):
    write_idx(tmp_path / "i", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "l", np.zeros(3, np.uint8))
    assert (tmp_path / "i").read_bytes()[:16] == _images_header(3)
    assert (tmp_path / "l").read_bytes()[:8] == struct.pack(">II", 2049, 3)


@pytest.mark.parametrize("dtype", ["i1", ">i2", "<i4", "f4", "f8"])
def test_round_trip_other_types_big_endian_on_disk(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = write_idx(tmp_path / "a", array)
    np.testing.assert_array_equal(read_idx(path), array)
    # The payload is big-endian whatever the machine's order.
    assert path.read_bytes()[16:] == array.astype(np.dtype(dtype).newbyteorder(">")).tobytes()


def test_gzip_output_is_deterministic(tmp_path):
    array = np.arange(28 * 28 * 4, dtype=np.uint32).astype(np.uint8).reshape(4, 28, 28)
    a = write_idx(tmp_path / "a" / "x.gz", array).read_bytes()
    b = write_idx(tmp_path / "b" / "x.gz", array).read_bytes()
    assert a == b


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_agrees_with_idx2numpy(tmp_path, suffix):
    idx2numpy = pytest.importorskip("idx2numpy")
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    ipath, lpath = write_idx(tmp_path / "i", images), write_idx(tmp_path / "l", labels)
    if suffix:  # idx2numpy reads plain files; compress a copy for our reader
        ipath = _raw(tmp_path / "i.gz", ipath.read_bytes())
        lpath = _raw(tmp_path / "l.gz", lpath.read_bytes())
    np.testing.assert_array_equal(read_idx(ipath), idx2numpy.convert_from_file(str(tmp_path / "i")))
    np.testing.assert_array_equal(read_idx(lpath), idx2numpy.convert_from_file(str(tmp_path / "l")))


def test_agrees_with_idx2numpy_on_fashion_mnist(fashion_dir):
    idx2numpy = pytest.importorskip("idx2numpy")
    ours = read_idx(fashion_dir / "t10k-labels-idx1-ubyte.gz")
    with gzip.open(fashion_dir / "t10k-labels-idx1-ubyte.gz") as f:
        theirs = idx2numpy.convert_from_file(f)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_missing_file(tmp_path, suffix):
    with pytest.raises(DataError, match=rf"nothing{suffix}: file not found"):
        read_idx(tmp_path / f"nothing{suffix}")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_wrong_magic(tmp_path, suffix):
    path = _raw(tmp_path / f"x{suffix}", b"\x50\x4b\x03\x04" + bytes(100))
    with pytest.raises(DataError, match=rf"x{suffix}: not an IDX file: wrong magic number 1347093252 \(0x504b0304\); "
                                        "expected 2051 for images or 2049 for labels"):
        read_idx(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_too_short_for_a_header(tmp_path, suffix):
    path = _raw(tmp_path / f"x{suffix}", b"\x00\x00")
    with pytest.raises(DataError, match="not an IDX file: only 2 bytes, too short for a header"):
        read_idx(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_truncated_header(tmp_path, suffix):
    path = _raw(tmp_path / f"x{suffix}", struct.pack(">II", 2051, 10))
    with pytest.raises(DataError, match="truncated header: 3 dimensions need 16 bytes, file has 8"):
        read_idx(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_truncated_payload(tmp_path, suffix):
    path = _raw(tmp_path / f"images{suffix}", _images_header(10) + bytes(28 * 28 * 9 + 5))
    with pytest.raises(DataError, match=rf"images{suffix}: truncated: the header promises shape \(10, 28, 28\) "
                                        rf"\(7856 bytes with the header\) but the file has only 7077 bytes"):
        read_idx(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_oversized_payload(tmp_path, suffix):
    path = _raw(tmp_path / f"labels{suffix}", struct.pack(">II", 2049, 4) + bytes(6))
    with pytest.raises(DataError, match=rf"labels{suffix}: oversized: the header promises shape \(4,\) "
                                        r"\(12 bytes with the header\) but the file has 14 bytes \(2 extra\)"):
        read_idx(path)


def test_gzip_that_is_not_gzip(tmp_path):
    path = _raw(tmp_path / "x", b"not gzip at all")
    path = path.rename(tmp_path / "x.gz")
    with pytest.raises(DataError, match=r"x.gz: not a readable gzip file"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    data = gzip.compress(_images_header(50) + np.random.default_rng(0).bytes(50 * 784))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.gz: not a readable gzip file"):
        read_idx(path)


def test_writer_refuses_what_idx_cannot_hold(tmp_path):
    with pytest.raises(DataError, match="IDX cannot store dtype uint16"):
        write_idx(tmp_path / "a", np.zeros(3, np.uint16))
    with pytest.raises(DataError, match=r"IDX stores 1 to 4 dimensions, got shape \(1, 1, 1, 1, 1\)"):
        write_idx(tmp_path / "a", np.zeros((1, 1, 1, 1, 1), np.uint8))
