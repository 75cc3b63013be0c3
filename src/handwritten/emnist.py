"""EMNIST splits, where their files are found, and loading them upright as uint8 arrays.

The same loader reads any data set in the MNIST family's layouts (MNIST, Fashion-MNIST,
KMNIST, the offline sample). Images stay uint8 and memory-mapped where the file allows it;
scaling to float happens per batch in the training pipeline.

EMNIST stores every image transposed (the NIST scans were written column by column). This
module is the one place that turns them upright, so everything downstream sees characters
the way a person wrote them.
"""

from __future__ import annotations

import os
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from handwritten.errors import DataError
from handwritten.idx import cache_dir, read_idx
from handwritten.paths import check_file, check_given, folder_problem

DIGITS = string.digits
UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
# bymerge and balanced merge the 15 lower-case letters that look like their capitals.
MERGED_LOWER = "abdefghnqrt"

IMAGE_SIZE = 28
SYNTHETIC_MARKER = "SYNTHETIC-SAMPLE.txt"


@dataclass(frozen=True)
class Split:
    """One way of labelling the data: its classes and the character each class stands for."""

    name: str
    mapping: str  # mapping[k] is the character of class k
    label_offset: int = 0  # the letters split numbers its classes 1..26 in the files

    @property
    def classes(self) -> int:
        return len(self.mapping)


SPLITS = {
    "byclass": Split("byclass", DIGITS + UPPER + LOWER),
    "bymerge": Split("bymerge", DIGITS + UPPER + MERGED_LOWER),
    "balanced": Split("balanced", DIGITS + UPPER + MERGED_LOWER),
    "letters": Split("letters", UPPER, label_offset=1),
    "digits": Split("digits", DIGITS),
    "mnist": Split("mnist", DIGITS),
}
DEFAULT_SPLIT = "byclass"
# How classes of a data set that is not EMNIST are named: digits, letters, then other printable symbols.
GENERIC_ALPHABET = DIGITS + UPPER + LOWER + "!#$%&*+-<=>?@^~"
MAX_CLASSES = len(GENERIC_ALPHABET)


def get_split(name: str) -> Split:
    """The split called ``name``; a clear error listing the valid names otherwise."""
    if name not in SPLITS:
        raise DataError(f"unknown split {name!r}; choose one of: {', '.join(SPLITS)}")
    return SPLITS[name]


def generic_split(classes: int) -> Split:
    """A split for a data set that is not EMNIST: 10 classes read as digits, others as numbers."""
    if classes == 10:
        return Split("custom", DIGITS)
    if classes > MAX_CLASSES:
        raise DataError(f"a data set with {classes} classes is more than this tool can label (max {MAX_CLASSES})")
    return Split("custom", GENERIC_ALPHABET[:classes])


@dataclass
class Dataset:
    """A data set ready for training: uint8 images ``(N, 28, 28)`` upright, int labels ``0..classes-1``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    split: Split
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    transposed: bool = False  # the files store images transposed (EMNIST); already undone here
    synthetic: bool = False  # the offline sample, not real handwriting
    skipped: list[str] = field(default_factory=list)  # a folder of images: why each unusable file was left out

    @property
    def mapping(self) -> str:
        return self.split.mapping

    @property
    def classes(self) -> int:
        return self.split.classes

    def describe(self) -> str:
        """A few lines saying which files were used and what they hold."""
        kind = "synthetic offline sample (not EMNIST)" if self.synthetic else f"split {self.split.name}"
        lines = [f"data: {self.folder} ({kind}, {self.classes} classes)"]
        for part, path in self.files.items():
            lines.append(f"  {part:<13} {path.name}")
        lines.append(f"  train {len(self.x_train)} images, test {len(self.x_test)} images, "
                     f"{self.x_train.shape[1]}x{self.x_train.shape[2]}"
                     + (", stored transposed (turned upright)" if self.transposed else ""))
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} unusable image files")
        return "\n".join(lines)


PARTS = ("train-images", "train-labels", "test-images", "test-labels")


def _variants(stem: str) -> list[str]:
    return [stem, stem + ".gz"]


def _find(folder: Path, stems: list[str]) -> Path | None:
    """The first of the names that is a file; else the first that exists as something else.

    Something else (a folder, a FIFO, a broken link) is returned so that reading it says what
    it is, rather than calling the file missing.
    """
    names = [folder / name for stem in stems for name in _variants(stem)]
    return next((p for p in names if p.is_file()), None) or next((p for p in names if os.path.lexists(p)), None)


def _emnist_names(split: str) -> dict[str, list[str]]:
    return {
        "train-images": [f"emnist-{split}-train-images-idx3-ubyte"],
        "train-labels": [f"emnist-{split}-train-labels-idx1-ubyte"],
        "test-images": [f"emnist-{split}-test-images-idx3-ubyte"],
        "test-labels": [f"emnist-{split}-test-labels-idx1-ubyte"],
    }


PLAIN_NAMES = {
    "train-images": ["train-images-idx3-ubyte", "train-images.idx3-ubyte", "train-images"],
    "train-labels": ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte", "train-labels"],
    "test-images": ["t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte", "test-images"],
    "test-labels": ["t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte", "test-labels"],
}


def _emnist_splits_in(folder: Path) -> list[str]:
    return [s for s in SPLITS if _find(folder, _emnist_names(s)["train-images"])]


def _has_data(folder: Path) -> bool:
    return folder.is_dir() and (bool(_emnist_splits_in(folder)) or _find(folder, PLAIN_NAMES["train-images"]) is not None)


def candidate_folders(data: str | os.PathLike | None = None) -> list[Path]:
    """Where data is looked for, in order: ``data``; ``./emnist``; the user cache."""
    if data is not None:
        return [Path(data)]
    return [Path("emnist"), cache_dir() / "emnist"]


def find_data(data: str | os.PathLike | None = None) -> Path:
    """The folder that holds the data: ``data`` if given, else ``./emnist``, else the user cache.

    A folder counts when it, or its ``gzip/`` subfolder (as the EMNIST archive unpacks), holds
    IDX files under the EMNIST, MNIST or short names; else, when ``data`` is given, when it has
    sub-folders of character images (``handwritten.folder_data``).
    """
    from handwritten import folder_data

    if data is not None:
        check_given(data, "a data folder")
    for folder in candidate_folders(data):
        for sub in (folder, folder / "gzip"):
            if _has_data(sub):
                return sub
        if data is not None and folder_data.is_image_folder(folder):
            return folder
    if data is not None:
        problem = folder_problem(data, "data folder")
        if problem:
            raise DataError(f"{data}: {problem}")
        raise DataError(
            f"{data}: no IDX data files found; expected EMNIST names (emnist-byclass-train-images-idx3-ubyte[.gz] ...), "
            "MNIST names (train-images-idx3-ubyte[.gz], t10k-images-idx3-ubyte[.gz] ...) or short names "
            "(train-images, train-labels, test-images, test-labels), or sub-folders of images named by "
            "character (7/, upper-A/, lower-a/ ...)"
        )
    places = ", ".join(str(p) for p in candidate_folders())
    raise DataError(
        f"no data found (looked in {places}); pass --data DIR, run 'handwritten download' for EMNIST, "
        "or 'handwritten sample' for the offline synthetic sample"
    )


def _check_mapping(path: Path, split: Split) -> None:
    """Check an ``emnist-<split>-mapping.txt`` (lines 'label ascii [ascii]') against the split."""
    check_file(path, "mapping file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable mapping file ({exc})") from None
    pairs = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            label, code = (int(word) for word in line.split()[:2])
            # chr() raises OverflowError past the C long range, ValueError past U+10FFFF.
            pairs[label - split.label_offset] = chr(code)
        except (ValueError, OverflowError):
            shown = line if len(line) <= 60 else line[:60] + "..."
            raise DataError(f"{path}: not a mapping file of lines 'label ascii-code': line {number} is {shown!r} "
                            f"(a character code is 0..{sys.maxunicode})") from None
    expected = dict(enumerate(split.mapping))
    if pairs != expected:
        wrong = sorted(set(pairs.items()) ^ set(expected.items()))[:3]
        raise DataError(f"{path}: mapping disagrees with split {split.name} (for example {wrong})")


def _inferred_split(files: dict[str, Path], arrays: dict[str, np.ndarray]) -> Split:
    """The split of files under MNIST or short names, from their largest label."""
    top = {part: int(arrays[part].max()) for part in ("train-labels", "test-labels") if arrays[part].size}
    part = max(top, key=top.get)
    labels = arrays[part]
    if top[part] + 1 > MAX_CLASSES:
        index = int(np.argmax(labels))
        raise DataError(
            f"{files[part]}: label {top[part]} at index {index} is more than this tool can label: a data set "
            f"without EMNIST names may have labels 0..{MAX_CLASSES - 1}"
        )
    lo = int(labels.min())
    if lo < 0:
        raise DataError(f"{files[part]}: label {lo} at index {int(np.argmin(labels))} is negative")
    return generic_split(top[part] + 1)


def _check_labels(path: Path, labels: np.ndarray, split: Split) -> np.ndarray:
    if labels.ndim != 1:
        raise DataError(f"{path}: labels must be one-dimensional, got shape {labels.shape}")
    if labels.size:
        lo, hi = int(labels.min()), int(labels.max())
        first, last = split.label_offset, split.label_offset + split.classes - 1
        if lo < first or hi > last:
            bad = lo if lo < first else hi
            raise DataError(
                f"{path}: label {bad} is outside split {split.name}'s classes ({first}..{last})"
            )
    return (labels.astype(np.int32) - split.label_offset) if split.label_offset else labels


def _check_images(path: Path, images: np.ndarray) -> None:
    if images.ndim != 3:
        raise DataError(f"{path}: images must have 3 dimensions (count, height, width), got shape {images.shape}")
    if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(
            f"{path}: wrong image size {images.shape[1]}x{images.shape[2]}; expected {IMAGE_SIZE}x{IMAGE_SIZE}"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{path}: images must be unsigned bytes (IDX type 0x08), got {images.dtype}")


def _file_names(folder: Path, split: str | None) -> tuple[dict[str, list[str]], bool, Split | None]:
    """The file names to read for ``split``, whether they hold transposed EMNIST images, and the split
    (None: to be inferred from the labels)."""
    available = _emnist_splits_in(folder)
    if available and (split is None or split in available):
        name = split or (DEFAULT_SPLIT if DEFAULT_SPLIT in available else available[0])
        return _emnist_names(name), True, SPLITS[name]
    if available and _find(folder, PLAIN_NAMES["train-images"]) is None:
        raise DataError(f"{folder}: has EMNIST files for split(s) {', '.join(available)} but not for split {split}")
    return PLAIN_NAMES, False, SPLITS[split] if split else None


def _locate_parts(folder: Path, names: dict[str, list[str]]) -> dict[str, Path]:
    """The path of each of the four parts; an error naming the first one missing."""
    files = {}
    for part in PARTS:
        path = _find(folder, names[part])
        if path is None:
            raise DataError(f"{folder}: missing file {names[part][0]}[.gz] ({part})")
        files[part] = path
    return files


def _check_parts_agree(files: dict[str, Path], arrays: dict[str, np.ndarray]) -> None:
    """Shapes and counts first: a label range means nothing if the file is not a label file."""
    for which in ("train", "test"):
        ipath, lpath = files[f"{which}-images"], files[f"{which}-labels"]
        images, labels = arrays[f"{which}-images"], arrays[f"{which}-labels"]
        _check_images(ipath, images)
        if labels.ndim != 1:
            raise DataError(f"{lpath}: labels must be one-dimensional, got shape {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise DataError(f"{lpath}: labels must be an integer IDX type (0x08 unsigned byte for MNIST and "
                            f"EMNIST), got {labels.dtype}")
        if len(images) != len(labels):
            raise DataError(f"{ipath} has {len(images)} images but {lpath.name} has {len(labels)} labels")
    if not len(arrays["train-labels"]):
        raise DataError(f"{files['train-images']}: holds no images")


def load(data: str | os.PathLike | None = None, split: str | None = None, *, mmap: bool = True) -> Dataset:
    """Load a data set, checked and upright.

    Args:
        data: a folder of IDX files; ``None`` looks in ``./emnist`` then the user cache.
        split: the EMNIST split (``byclass`` by default when the folder has it). For files
            under the MNIST or short names, the split is inferred from the labels unless given.
        mmap: memory-map uncompressed images (the default) rather than reading them into memory.

    Returns:
        A :class:`Dataset` of uint8 images ``(N, 28, 28)``, upright, and labels ``0..classes-1``.

    Raises:
        DataError: no data, a missing or malformed file, or files that disagree with each other.
    """
    folder = find_data(data)
    if split is not None:
        get_split(split)
    if not _has_data(folder):
        from handwritten import folder_data

        return folder_data.load(folder, split=SPLITS[split] if split else None)
    names, transposed, chosen = _file_names(folder, split)
    files = _locate_parts(folder, names)
    arrays = {part: read_idx(path, mmap=mmap) for part, path in files.items()}
    _check_parts_agree(files, arrays)
    if chosen is None:
        chosen = _inferred_split(files, arrays)
    if transposed:
        mapping = folder / f"emnist-{chosen.name}-mapping.txt"
        if os.path.lexists(mapping):
            _check_mapping(mapping, chosen)
            files["mapping"] = mapping

    out = {}
    for which in ("train", "test"):
        out[f"y_{which}"] = _check_labels(files[f"{which}-labels"], arrays[f"{which}-labels"], chosen)
        # Turn EMNIST's transposed images upright: a view, no copy.
        images = arrays[f"{which}-images"]
        out[f"x_{which}"] = images.transpose(0, 2, 1) if transposed else images
    return Dataset(
        **out,
        split=chosen,
        folder=folder,
        files=files,
        transposed=transposed,
        synthetic=(folder / SYNTHETIC_MARKER).exists(),
    )


def summary(dataset: Dataset) -> dict:
    """Per part: count, image size, classes present and the range of per-class counts."""
    parts = {}
    for which in ("train", "test"):
        x, y = getattr(dataset, f"x_{which}"), getattr(dataset, f"y_{which}")
        counts = np.bincount(np.asarray(y), minlength=dataset.classes)
        parts[which] = {
            "count": int(len(x)),
            "image_size": [int(x.shape[1]), int(x.shape[2])],
            "classes": int((counts > 0).sum()),
            "per_class_min": int(counts.min()) if counts.size else 0,
            "per_class_max": int(counts.max()) if counts.size else 0,
        }
    return {
        "folder": str(dataset.folder),
        "split": dataset.split.name,
        "classes": dataset.classes,
        "synthetic": dataset.synthetic,
        "transposed": dataset.transposed,
        "files": {k: str(v) for k, v in dataset.files.items()},
        "parts": parts,
    }
