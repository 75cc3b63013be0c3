"""A folder of image files, one sub-folder per character, read as a data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from handwritten import emnist, folder_data
from handwritten.errors import DataError
from handwritten.idx import cache_dir, write_idx

STROKES = {  # a few pen strokes per character, on a 100x110 sheet
    "7": [(20, 10), (80, 10), (40, 100)],
    "A": [(20, 100), (50, 10), (80, 100)],
    "a": [(30, 60), (70, 60), (70, 100), (30, 100), (30, 60)],
    "L": [(25, 10), (25, 100), (80, 100)],
}


def write(path: Path, ch: str, shift: int = 0) -> Path:
    """A dark character on white paper, as a phone or a scanner gives it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("L", (100, 110), 255)
    ImageDraw.Draw(image).line([(x + shift, y) for x, y in STROKES[ch]], fill=0, width=9)
    image.save(path)
    return path


def folder_of(root: Path, names: dict[str, str], count: int = 3) -> Path:
    for name, ch in names.items():
        for i in range(count):
            write(root / name / f"{i}.png", ch, shift=2 * i)
    return root


def test_class_folders_by_character_and_by_case_name(tmp_path):
    root = folder_of(tmp_path / "mine", {"7": "7", "upper-A": "A", "lower-a": "a", "L": "L"})
    data = emnist.load(root)  # the IDX loader's entry point hands the folder over
    assert isinstance(data, emnist.Dataset) and data.split.name == "byclass" and data.classes == 62
    assert data.x_train.dtype == np.uint8 and data.x_train.shape[1:] == (28, 28)
    mapping = data.mapping
    found = {mapping[k] for k in np.concatenate([data.y_train, data.y_test])}
    assert found == {"7", "A", "a", "L"}
    # Three a class: one held out, seeded, the same every time.
    assert len(data.y_test) == 4 and len(data.y_train) == 8
    again = folder_data.load(root)
    assert np.array_equal(again.x_test, data.x_test) and np.array_equal(again.y_test, data.y_test)
    # The ink is bright on dark and framed like EMNIST, as predict frames a person's image.
    assert data.x_train.max() == 255 and data.x_train[:, 0, :].max() < 40


@pytest.mark.parametrize("name, expected", [
    ("A", "A"), ("a", "a"), ("upper-A", "A"), ("lower-a", "a"), ("upper-a", "A"), ("LOWER-Q", "q"),
    ("7", "7"), ("U+0037", "7"), ("U+0041", "A"), ("upper-7", None), ("AB", None), ("seven", None), ("U+00E9", None),
])
def test_folder_names(name, expected):
    assert folder_data.character_of(name, emnist.SPLITS["byclass"].mapping) == expected


def test_names_written_are_read_back():
    mapping = emnist.SPLITS["byclass"].mapping + "#"
    names = {folder_data.class_name(c) for c in mapping}
    assert len({n.lower() for n in names}) == len(mapping)  # distinct where case is ignored
    assert all(folder_data.character_of(folder_data.class_name(c), mapping) == c for c in mapping)


def test_train_and_test_parts_are_used_when_present(tmp_path):
    root = tmp_path / "mine"
    folder_of(root / "train", {"7": "7", "upper-A": "A"}, count=2)
    folder_of(root / "test", {"7": "7"}, count=1)
    data = folder_data.load(root)
    assert len(data.y_train) == 4 and list(data.y_test) == [data.mapping.index("7")]


def test_bad_images_are_skipped_and_counted(tmp_path, capsys):
    root = folder_of(tmp_path / "mine", {"7": "7", "L": "L"}, count=2)
    (root / "7" / "broken.png").write_text("not a picture")
    Image.new("L", (50, 50), 255).save(root / "L" / "blank.png")  # no ink
    (root / "L" / "notes.txt").write_text("about my samples")
    data = folder_data.load(root)
    assert len(data.y_train) + len(data.y_test) == 4
    assert len(data.skipped) == 2
    err = capsys.readouterr().err
    assert "skipped 2 of 6 images" in err and "broken.png" in err and "blank.png" in err
    assert "ignored 1 file" in err
    assert "skipped 2 unusable" in data.describe()


def test_unknown_folder_names_are_an_error_listing_the_expected_names(tmp_path):
    root = folder_of(tmp_path / "mine", {"7": "7"}, count=1)
    (root / "sevens").mkdir()
    with pytest.raises(DataError, match=r"'sevens' name no character.*upper-A / lower-a"):
        emnist.load(root)
    with pytest.raises(DataError, match="name no character of the 10 classes"):
        folder_data.load(root, split=emnist.SPLITS["digits"])


def test_no_images_too_many_files_and_test_without_train(tmp_path):
    root = tmp_path / "mine"
    (root / "7").mkdir(parents=True)
    with pytest.raises(DataError, match="no image files"):
        folder_data.load(root)
    folder_of(root, {"7": "7"}, count=3)
    with pytest.raises(DataError, match="3 image files is more than the limit of 2"):
        folder_data.load(root, max_files=2)
    folder_of(tmp_path / "parts" / "test", {"7": "7"}, count=1)
    with pytest.raises(DataError, match="test/ part but no train/"):
        folder_data.load(tmp_path / "parts")


def test_framed_images_are_cached_by_content(tmp_path, monkeypatch):
    root = folder_of(tmp_path / "mine", {"7": "7", "L": "L"}, count=2)
    first = folder_data.load(root)
    cached = list((cache_dir() / "images").rglob("*.u8"))
    assert len(cached) >= 4 and not list((cache_dir() / "images").rglob("*.tmp"))

    def no_preprocessing(*args, **kwargs):
        raise AssertionError("preprocessed again")

    monkeypatch.setattr(folder_data, "preprocess", no_preprocessing)
    again = folder_data.load(root)
    assert np.array_equal(first.x_train, again.x_train)
    # Changed content is framed anew: the key is the content, not the name.
    write(root / "7" / "0.png", "7", shift=7)
    with pytest.raises(AssertionError, match="preprocessed again"):
        folder_data.load(root)


def test_idx_folder_with_subfolders_is_still_idx(tmp_path):
    """EMNIST's archive unpacks into gzip/; other sub-folders do not make it a folder of images."""
    root = tmp_path / "emnist"
    (root / "notes").mkdir(parents=True)
    x = np.zeros((2, 28, 28), np.uint8)
    x[:, 10:18, 12:16] = 255
    for part in ("train", "test"):
        write_idx(root / "gzip" / f"{part}-images", x)
        write_idx(root / "gzip" / f"{part}-labels", np.array([0, 1], np.uint8))
    assert not folder_data.is_image_folder(root)
    assert emnist.load(root).folder == root / "gzip"
