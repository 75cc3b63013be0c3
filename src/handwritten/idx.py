"""Read and write IDX files, the format of MNIST, EMNIST, Fashion-MNIST and KMNIST.

An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions,
then one uint32 per dimension) followed by the array in C order. Images are magic 2051
(uint8, 3 dimensions), labels magic 2049 (uint8, 1 dimension).

Every header field is checked against the file's real size before a byte of the payload is
trusted. Plain files are memory-mapped, so a 700,000-image set costs no memory until it is
read; a ``.gz`` file is decompressed once into a cache folder, no further than its header
promises, and then memory-mapped.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import math
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np

from handwritten.errors import DataError
from handwritten.paths import check_file

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

# IDX type codes and the numpy dtype each stands for (all big-endian in the file).
DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
CODES = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
MAX_HEADER = 4 + 4 * 4  # magic and four dimensions
CHUNK = 1 << 22
# How far past its promised size a decompressed stream is followed to say by how much it is over.
OVERRUN = 1 << 20
# Deflate writes at most this many bytes per byte it reads, so a header promising more than
# this many times the file's size describes data the file cannot hold.
DEFLATE_RATIO = 1032


def cache_dir() -> Path:
    """Where downloads and decompressed files go: ``$HANDWRITTEN_CACHE`` or ``~/.cache/handwritten``."""
    return Path(os.environ.get("HANDWRITTEN_CACHE") or Path.home() / ".cache" / "handwritten")


def _parse_header(path: Path, head: bytes, size: int) -> tuple[np.dtype, tuple[int, ...], int, int]:
    """Read an IDX header; return dtype, shape, header length and the file size it promises.

    ``size`` is the file's size when known, else at least ``len(head)``: a header is at most
    20 bytes, so a ``head`` shorter than that is the whole file.
    """
    if len(head) < 4:
        raise DataError(f"{path}: not an IDX file: only {size} bytes, too short for a header")
    zero, code, ndim = struct.unpack(">HBB", head[:4])
    if zero != 0 or code not in DTYPES or not 1 <= ndim <= 4:
        magic = struct.unpack(">I", head[:4])[0]
        raise DataError(
            f"{path}: not an IDX file: wrong magic number {magic} (0x{magic:08x}); "
            f"expected {IMAGES_MAGIC} for images or {LABELS_MAGIC} for labels"
        )
    header_len = 4 + 4 * ndim
    if len(head) < header_len:
        raise DataError(f"{path}: truncated header: {ndim} dimensions need {header_len} bytes, file has {size}")
    shape = tuple(int(d) for d in struct.unpack(f">{ndim}I", head[4:header_len]))
    dtype = DTYPES[code]
    # Python ints: a numpy product of dimensions up to 2^32-1 wraps around or turns negative.
    expected = header_len + math.prod(shape) * dtype.itemsize
    return dtype, shape, header_len, expected


def _check_size(path: Path, shape: tuple[int, ...], expected: int, size: int) -> None:
    if size < expected:
        raise DataError(
            f"{path}: truncated: the header promises shape {shape} ({expected} bytes with the header) "
            f"but the file has only {size} bytes"
        )
    if size > expected:
        raise DataError(
            f"{path}: oversized: the header promises shape {shape} ({expected} bytes with the header) "
            f"but the file has {size} bytes ({size - expected} extra)"
        )


def _copy_checked(path: Path, src, dst, compressed: int) -> None:
    """Copy an IDX stream from ``src`` to ``dst`` (a ``compressed``-byte gzip file), never past what its header promises."""
    head = src.read(MAX_HEADER)
    _, shape, _, expected = _parse_header(path, head, len(head))
    if expected > DEFLATE_RATIO * compressed:
        raise DataError(
            f"{path}: truncated: the header promises shape {shape} ({expected} bytes with the header) "
            f"but a gzip file of {compressed} bytes holds at most {DEFLATE_RATIO * compressed}"
        )
    folder = os.path.dirname(dst.name)
    free = shutil.disk_usage(folder).free
    if expected > free:
        raise DataError(f"{path}: decompresses to {expected} bytes but the cache {folder} has only {free} bytes "
                        "free; set HANDWRITTEN_CACHE to a folder on a larger disk")
    dst.write(head)
    written = len(head)
    while written <= expected and (chunk := src.read(min(CHUNK, expected + 1 - written))):
        dst.write(chunk)
        written += len(chunk)
    if written > expected:
        # Count a little further so a few stray bytes are reported exactly; a bomb is cut short.
        while written < expected + OVERRUN and (chunk := src.read(min(CHUNK, expected + OVERRUN - written))):
            written += len(chunk)
        if written >= expected + OVERRUN:
            raise DataError(
                f"{path}: oversized: the header promises shape {shape} ({expected} bytes with the header) "
                f"but it decompresses to more than {expected + OVERRUN} bytes; stopped reading there"
            )
    _check_size(path, shape, expected, written)


def _decompressed(path: Path) -> Path:
    """Decompress a ``.gz`` file once into the cache, checked against its header; later calls reuse the copy.

    The copy is written under a temporary name and renamed only when complete and consistent,
    so an error (a bad header, a stream longer or shorter than promised) leaves nothing behind.
    """
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / "idx" / f"{path.name.removesuffix('.gz')}-{key}"
    if target.exists():
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "rb") as src, open(tmp, "wb") as dst:
            _copy_checked(path, src, dst, stat.st_size)
        os.replace(tmp, target)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot decompress into the cache {target.parent} ({exc})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    return target


def read_idx(path: str | os.PathLike, *, mmap: bool = True) -> np.ndarray:
    """Read an IDX file (plain or ``.gz``) into a numpy array.

    Args:
        path: the file.
        mmap: memory-map the payload (read-only) instead of reading it into memory.

    Returns:
        The array with the header's shape, in native byte order (uint8 for images and labels).

    Raises:
        DataError: the file is missing or not a regular file, is not IDX, or its header disagrees
            with its size.
    """
    path = check_file(path)
    source = _decompressed(path) if path.suffix == ".gz" else path
    size = source.stat().st_size
    with open(source, "rb") as f:
        head = f.read(MAX_HEADER)
    dtype, shape, offset, expected = _parse_header(path, head, size)
    _check_size(path, shape, expected, size)
    if mmap and math.prod(shape) > 0:
        array = np.memmap(source, dtype=dtype, mode="r", offset=offset, shape=shape)
    else:
        array = np.fromfile(source, dtype=dtype, offset=offset).reshape(shape)
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("="))
    return array


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``), atomically."""
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in CODES:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}")
    if not 1 <= array.ndim <= 4:
        raise DataError(f"{path}: IDX stores 1 to 4 dimensions, got shape {array.shape}")
    code = CODES[native]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as raw:
        if path.suffix == ".gz":
            # mtime=0 and the final name (not the temporary one) in the gzip header keep a
            # compressed file byte-identical for identical content.
            with gzip.GzipFile(path.name, "wb", fileobj=raw, mtime=0) as f:
                f.write(header)
                f.write(payload)
        else:
            raw.write(header)
            raw.write(payload)
    os.replace(tmp, path)
    return path
