"""``--charset``: named and explicit sets turned into classes, and ``predict`` keeping to them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from handwritten import charset, emnist
from handwritten.cli import main
from handwritten.errors import HandwrittenError

BYCLASS = emnist.SPLITS["byclass"].mapping


def test_named_and_explicit_charsets_become_class_indices():
    assert "".join(BYCLASS[k] for k in charset.classes("digits", BYCLASS)) == "0123456789"
    assert len(charset.classes("letters", BYCLASS)) == 52 and len(charset.classes("alnum", BYCLASS)) == 62
    assert "".join(BYCLASS[k] for k in charset.classes("lower", BYCLASS)) == "abcdefghijklmnopqrstuvwxyz"
    assert "".join(BYCLASS[k] for k in charset.classes("F0A", BYCLASS)) == "0AF"
    assert "".join(BYCLASS[k] for k in charset.classes(" 0011 ", BYCLASS)) == "01"  # each character once
    assert charset.classes(None, BYCLASS) is None


def test_a_merged_split_takes_a_letter_as_its_shared_class():
    merged = emnist.SPLITS["balanced"].mapping  # one class for c and C, o and O ...
    assert "".join(merged[k] for k in charset.classes("cab", merged)) == "Cab"
    letters = emnist.SPLITS["letters"].mapping
    assert len(charset.classes("lower", letters)) == 26


@pytest.mark.parametrize("spec, words", [
    ("", ["empty"]), ("   ", ["empty"]), ("digit", ["unknown charset 'digit'", "did you mean 'digits'"]),
    ("Upper", ["did you mean 'upper'"]), ("lowercase", ["unknown charset"]),
    ("0-9", ["no class for '-'"]), ("ab€", ["no class for '€'"]),
])
def test_bad_charsets_are_named(spec, words):
    with pytest.raises(HandwrittenError) as caught:
        charset.classes(spec, BYCLASS)
    for word in words:
        assert word in str(caught.value)


def test_a_model_without_the_characters_says_which():
    with pytest.raises(HandwrittenError, match=r"no class for 'A' 'B'.*its classes: 0123456789"):
        charset.classes("AB1", emnist.SPLITS["digits"].mapping)


def test_restrict_renormalises_over_the_charset():
    p = np.array([[0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])
    out = charset.restrict(p, np.array([0, 2]))
    np.testing.assert_allclose(out, [[0.25, 0, 0.75], [0, 0, 1]])
    np.testing.assert_allclose(charset.restrict(np.array([[0.0, 1.0, 0.0]]), np.array([0, 2])), [[0.5, 0, 0.5]])
    assert charset.restrict(p, None) is not None and np.array_equal(charset.restrict(p, None), p)


# ---------------------------------------------------------------- the command line


def zero(path, width: int = 170) -> None:
    """A 0 drawn round, as wide as an O: what a model reads as a letter as often as not."""
    im = Image.new("L", (300, 300), 245)
    ImageDraw.Draw(im).ellipse((150 - width // 2, 40, 150 + width // 2, 260), outline=25, width=18)
    im.save(path)


def test_cli_charset_digits_answers_a_digit_over_the_digits(trained_model, tmp_path, capsys):
    image = tmp_path / "zero.png"
    zero(image)
    assert main(["predict", str(trained_model), str(image), "--json", "--top", "62", "--charset", "digits"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["character"] in "0123456789"
    assert {c for c, _ in result["top"]} == set("0123456789")
    assert sum(p for _, p in result["top"]) == pytest.approx(1, abs=1e-6)

    assert main(["predict", str(trained_model), str(image), "--charset", "0O"]) == 0
    assert capsys.readouterr().out.split(": ")[1][0] in "0O"


def test_cli_charset_on_a_line(trained_model, tmp_path, capsys):
    from test_images import compose_line, draw_char

    line = tmp_path / "line.png"
    Image.fromarray(compose_line([draw_char(c, 120, pen=3) for c in "1O7"])).save(line)
    assert main(["predict", str(trained_model), str(line), "--line", "--json", "--charset", "digits"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["characters"]) == 3 and result["text"].isdigit()
    assert main(["predict", str(trained_model), str(line), "--line", "--no-context"]) == 0
    assert capsys.readouterr().out.startswith(f"{line}: ")


def test_cli_prints_each_row_of_a_page_under_the_first(trained_model, tmp_path, capsys):
    from test_images import compose_line, draw_char

    top, bottom = (compose_line([draw_char(c, 120, pen=3) for c in word]) for word in ("1O7", "42"))
    page = np.full((top.shape[0] + bottom.shape[0] + 30, top.shape[1]), 255, np.uint8)
    page[:top.shape[0]], page[-bottom.shape[0]:, :bottom.shape[1]] = top, bottom
    path = tmp_path / "page.png"
    Image.fromarray(page).save(path)
    assert main(["predict", str(trained_model), str(path), "--line", "--charset", "digits"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: ") and len(out[0]) == len(f"{path}: ") + 3 and out[0][-3:].isdigit()
    assert out[1] == " " * len(f"{path}: ") + out[1].strip() and len(out[1].strip()) == 2 and out[1].strip().isdigit()
    assert len(out) == 2 + 5  # the two rows, then one line per character


@pytest.mark.parametrize("spec, message", [("digit", "unknown charset 'digit'"), ("12+", "no class for '+'"),
                                           ("", "is empty")])
def test_cli_bad_charset_is_one_error_and_exit_2(trained_model, tmp_path, capsys, spec, message):
    image = tmp_path / "zero.png"
    zero(image)
    for extra in ([], ["--line"]):
        assert main(["predict", str(trained_model), str(image), str(image), "--charset", spec, *extra]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("error") == 1 and message in err and "Traceback" not in err
