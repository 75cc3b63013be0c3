"""A folder of image files, one sub-folder per character, read as a data set.

The layout is the one ``keras.utils.image_dataset_from_directory`` expects: ``DIR/7/*.png``,
``DIR/A/*.jpg``. A file system that ignores case cannot hold both ``A`` and ``a``, so
``upper-A`` and ``lower-a`` name those classes too, and ``U+0023`` names any character by its
code point (for characters a file name cannot hold). ``DIR/train/...`` and ``DIR/test/...``
are used as the two parts when present; otherwise a seeded fifth of each class is held out.

Every image goes through ``images.preprocess``, as ``handwritten predict`` reads a person's
image, with the framing of the model it is for, so photos and scans work. A framed image is
cached under ``idx.cache_dir()/images`` by the file's content and the framing, so a folder
is preprocessed once. The result is the same :class:`emnist.Dataset` the IDX loader returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from handwritten.emnist import IMAGE_SIZE, SPLITS, Dataset, Split
from handwritten.errors import DataError, HandwrittenError
from handwritten.idx import cache_dir
from handwritten.images import MAX_PIXELS, framing_from_meta, preprocess

# Files read by extension, as image_dataset_from_directory does; others are counted and ignored.
EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
MAX_FILES = 20_000  # preprocessing costs ~10 ms an image: more is a job for IDX files
MAX_FILE_BYTES = 50_000_000  # a 20 MP photo as PNG is under this
TEST_SHARE = 0.2  # held out per class when the folder has no test/ part
PARTS = ("train", "test")
SHOWN = 5  # unreadable files named in the warning; the rest are counted


def class_name(ch: str) -> str:
    """The sub-folder name a character's images are written to: safe on any file system."""
    if ch.isascii() and ch.isalpha():
        return f"{'upper' if ch.isupper() else 'lower'}-{ch}"
    if ch.isascii() and ch.isalnum():
        return ch
    return f"U+{ord(ch):04X}"


def character_of(name: str, mapping: str) -> str | None:
    """The character a sub-folder name stands for, if it is one of ``mapping``'s; else None."""
    ch = None
    if len(name) == 1:
        ch = name
    elif name.lower().startswith(("upper-", "lower-")) and len(name) == 7 and name[6].isalpha():
        ch = name[6].upper() if name.lower().startswith("upper-") else name[6].lower()
    elif name.upper().startswith("U+") and 6 <= len(name) <= 8:
        try:
            ch = chr(int(name[2:], 16))
        except (ValueError, OverflowError):
            return None
    return ch if ch is not None and ch in mapping else None


def expected_names(mapping: str) -> str:
    """The sub-folder names ``mapping`` accepts, as a message lists them."""
    letters = [c for c in mapping if c.isascii() and c.isalpha()]
    others = [c for c in mapping if c not in letters]
    parts = []
    if others:
        parts.append(f"one of the characters {''.join(others)!r}")
    if letters:
        parts.append(f"a letter of {''.join(letters)!r} as itself or as upper-A / lower-a")
    return " or ".join(parts) + ", or U+XXXX (a character's code point)"


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"{folder}: cannot be read ({exc.strerror})") from None


def is_image_folder(path) -> bool:
    """Whether ``path`` is a folder with sub-folders and no IDX files: a data set of image files."""
    from handwritten.emnist import _has_data

    if path is None:
        return False
    path = Path(path)
    try:
        subs = path.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())
    except OSError:
        return False
    return subs and not (_has_data(path) or _has_data(path / "gzip"))


def _files(part: Path, mapping: str) -> tuple[list[tuple[Path, int]], int]:
    """``(path, class)`` of every image file under ``part``'s class folders, and how many other files were ignored."""
    found, ignored, unknown = [], 0, []
    for sub in _subfolders(part):
        ch = character_of(sub.name, mapping)
        if ch is None:
            unknown.append(sub.name)
            continue
        try:
            paths = sorted(sub.iterdir())
        except OSError as exc:
            raise DataError(f"{sub}: cannot be read ({exc.strerror})") from None
        for path in paths:
            if path.name.startswith(".") or not path.is_file():
                continue
            if path.suffix.lower() in EXTENSIONS:
                found.append((path, mapping.index(ch)))
            else:
                ignored += 1
    if unknown:
        more = f" and {len(unknown) - SHOWN} more" if len(unknown) > SHOWN else ""
        shown = ", ".join(repr(n) for n in unknown[:SHOWN]) + more
        raise DataError(f"{part}: sub-folder(s) {shown} name no character of the {len(mapping)} classes; "
                        f"a class folder is named {expected_names(mapping)}")
    return found, ignored


def _cache_key(data: bytes, framing: dict) -> str:
    text = json.dumps(framing, sort_keys=True).encode()
    return hashlib.sha256(hashlib.sha256(text).digest() + data).hexdigest()


def framed_image(path: Path, framing: dict, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image file framed for a model, from the cache when this content was framed this way before.

    Raises:
        HandwrittenError: naming the file, when it cannot be read or holds no ink.
    """
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise HandwrittenError(f"{path}: {size:,} bytes is more than the limit of {MAX_FILE_BYTES:,} for an image")
        data = path.read_bytes()
    except OSError as exc:
        raise HandwrittenError(f"{path}: cannot be read ({exc.strerror})") from None
    key = _cache_key(data, framing)
    cached = cache_dir() / "images" / key[:2] / f"{key}.u8"
    try:
        raw = cached.read_bytes()
        if len(raw) == IMAGE_SIZE * IMAGE_SIZE:
            return np.frombuffer(raw, np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)
    except OSError:
        pass
    image = preprocess(data, framing, name=str(path), max_pixels=max_pixels)
    _write_atomically(cached, image.tobytes())
    return image


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name beside ``path`` and rename: a reader never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written costs time, not correctness


def _read_part(files: list[tuple[Path, int]], framing: dict,
               max_pixels: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    images, labels, skipped = [], [], []
    for path, label in files:
        try:
            images.append(framed_image(path, framing, max_pixels))
            labels.append(label)
        except HandwrittenError as exc:
            skipped.append(str(exc))
    x = np.stack(images) if images else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    return x, np.asarray(labels, dtype=np.int32), skipped


def _hold_out(files: list[tuple[Path, int]], seed: int) -> tuple[list, list]:
    """Per class, a seeded ``TEST_SHARE`` of the files (at least one of two or more) for the test part."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in sorted({label for _, label in files}):
        mine = [f for f in files if f[1] == label]
        mine = [mine[i] for i in rng.permutation(len(mine))]
        held = max(1, int(len(mine) * TEST_SHARE)) if len(mine) >= 2 else 0
        test += mine[:held]
        train += mine[held:]
    return sorted(train), sorted(test)


def load(folder, *, split: Split | None = None, framing=None, seed: int = 0, max_pixels: int = MAX_PIXELS,
         max_files: int = MAX_FILES) -> Dataset:
    """Read a folder of character images as a :class:`emnist.Dataset`.

    Args:
        folder: ``DIR/<character>/*.png ...``, or ``DIR/train/<character>/...`` and ``DIR/test/...``.
        split: the classes (default: byclass's 62); a fine-tune passes its model's.
        framing: the model's framing (its ``meta["framing"]``; default EMNIST's bounding box).
        seed: chooses the held-out fifth when the folder has no test part.
        max_pixels: larger images are skipped unread, as ``predict`` refuses them.
        max_files: more image files than this is an error.

    Raises:
        DataError: a sub-folder that names no character of the split, too many files, or no
            readable image at all. Unreadable images are skipped and reported on stderr.
    """
    folder = Path(folder)
    split = split or SPLITS["byclass"]
    framing = framing_from_meta({"framing": framing})
    names = {p.name for p in _subfolders(folder)}
    if names & set(PARTS):
        if "train" not in names:
            raise DataError(f"{folder}: has a test/ part but no train/ part")
        parts = {part: _files(folder / part, split.mapping) if part in names else ([], 0) for part in PARTS}
        files = {part: found for part, (found, _) in parts.items()}
        ignored = sum(n for _, n in parts.values())
        if "test" not in names:
            files["train"], files["test"] = _hold_out(files["train"], seed)
    else:
        found, ignored = _files(folder, split.mapping)
        files = dict(zip(PARTS, _hold_out(found, seed)))
    total = sum(len(f) for f in files.values())
    if total > max_files:
        raise DataError(f"{folder}: {total:,} image files is more than the limit of {max_files:,}; "
                        "turn a set this large into IDX files")
    if total == 0:
        raise DataError(f"{folder}: no image files ({', '.join(sorted(EXTENSIONS))}) in its class folders")

    out, skipped = {}, []
    for part in PARTS:
        out[f"x_{part}"], out[f"y_{part}"], bad = _read_part(files[part], framing, max_pixels)
        skipped += bad
    if skipped:
        shown = "; ".join(skipped[:SHOWN]) + (f"; and {len(skipped) - SHOWN} more" if len(skipped) > SHOWN else "")
        print(f"warning: skipped {len(skipped)} of {total} images that could not be used: {shown}",
              file=sys.stderr, flush=True)
    if ignored:
        print(f"note: ignored {ignored} file(s) in {folder} that are not images by their extension", file=sys.stderr)
    if not len(out["y_train"]):
        raise DataError(f"{folder}: none of its {total} image files could be used for training")
    return Dataset(**out, split=split, folder=folder, files={"images": folder}, skipped=skipped)
