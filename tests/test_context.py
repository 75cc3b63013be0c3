"""The line as context (``handwritten.context``): case from height, digits or letters from the word.

The rules are checked on made-up boxes and probabilities, no model needed; one test reads a
generated, sloped line end to end with the model's answers fixed, so only the line decides.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from handwritten import context, emnist

MAPPING = emnist.SPLITS["byclass"].mapping


def probs(*rows: dict) -> np.ndarray:
    """One row per character: the given probabilities, the rest spread thinly over the other classes."""
    out = np.full((len(rows), len(MAPPING)), 1e-4)
    for i, row in enumerate(rows):
        for ch, p in row.items():
            out[i, MAPPING.index(ch)] = p
    return out / out.sum(axis=1, keepdims=True)


def read(p: np.ndarray) -> str:
    return "".join(MAPPING[k] for k in p.argmax(axis=1))


def boxes_on(baseline, *spans: tuple[int, int]) -> list[list[int]]:
    """Boxes 50 px wide, 20 px apart, each ``(top, bottom)`` above ``baseline(x)`` (a function of x)."""
    out = []
    for i, (top, bottom) in enumerate(spans):
        x0 = 20 + 70 * i
        base = baseline(x0 + 25)
        out.append([x0, round(base - top), x0 + 50, round(base - bottom)])
    return out


def flat(x):
    return 300.0


TALL, SMALL, DESCENDER = (100, 0), (60, 0), (60, -35)


def test_same_shape_letters_take_their_case_from_their_height():
    p = probs({"H": 0.99}, {"O": 0.45, "o": 0.55}, {"O": 0.55, "o": 0.45}, {"x": 0.45, "X": 0.55}, {"a": 0.95})
    boxes = boxes_on(flat, TALL, TALL, SMALL, SMALL, SMALL)
    assert read(p) == "HoOXa"
    assert read(context.apply(p, boxes, [False] * 5, MAPPING)) == "HOoxa"


def test_p_and_y_are_measured_from_the_baseline_not_by_their_box():
    # A small p is as tall a box as a P, but it hangs below the line; its top is at the x-height.
    p = probs({"a": 0.95}, {"P": 0.6, "p": 0.4}, {"e": 0.95}, {"Y": 0.6, "y": 0.4}, {"T": 0.95})
    boxes = boxes_on(flat, SMALL, DESCENDER, SMALL, DESCENDER, TALL)
    assert read(context.apply(p, boxes, [False] * 5, MAPPING)) == "apeyT"
    capitals = boxes_on(flat, TALL, TALL, TALL, TALL, TALL)
    q = probs({"A": 0.95}, {"P": 0.4, "p": 0.6}, {"E": 0.95}, {"Y": 0.4, "y": 0.6}, {"T": 0.95})
    assert read(context.apply(q, capitals, [False] * 5, MAPPING)) == "APEYT"


def test_height_is_measured_along_a_sloped_line():
    # Rising 0.4 px per px: the last, small s sits higher on the page than the first capitals' tops.
    def sloped(x):
        return 400.0 - 0.4 * x

    p = probs({"B": 0.99}, {"D": 0.99}, {"a": 0.95}, {"S": 0.6, "s": 0.4}, {"S": 0.6, "s": 0.4}, {"R": 0.99})
    boxes = boxes_on(sloped, TALL, TALL, SMALL, SMALL, TALL, TALL)
    assert boxes[3][1] < boxes[0][1]
    assert read(context.apply(p, boxes, [False] * 6, MAPPING)) == "BDasSR"


def test_a_confident_answer_is_never_overridden():
    p = probs({"H": 0.99}, {"o": 0.97, "O": 0.01}, {"A": 0.9, "4": 0.06}, {"1": 0.99}, {"2": 0.99})
    boxes = boxes_on(flat, TALL, TALL, TALL, TALL, TALL)
    assert read(context.apply(p, boxes, [False, False, True, False, False], MAPPING)) == "HoA12"


def test_a_bar_is_an_I_in_a_word_of_capitals_and_an_l_in_a_word_of_small_letters():
    bar = {"l": 0.55, "I": 0.3, "1": 0.15}
    capitals = probs({"H": 0.99}, {"E": 0.97}, bar, {"N": 0.95}, {"A": 0.9})
    boxes = boxes_on(flat, TALL, TALL, TALL, TALL, TALL)
    assert read(capitals) == "HElNA"
    assert read(context.apply(capitals, boxes, [False] * 5, MAPPING)) == "HEINA"
    small = probs({"h": 0.99}, {"e": 0.97}, {"I": 0.55, "l": 0.3}, {"n": 0.95}, {"a": 0.9})
    assert read(context.apply(small, boxes_on(flat, TALL, SMALL, TALL, SMALL, SMALL), [False] * 5, MAPPING)) == "helna"
    # The pair's total is kept: the word moves l's share to I, never to another class.
    weighed = context.case_from_word(capitals, [False] * 5, MAPPING)
    k = MAPPING.index
    assert weighed[2, k("l")] + weighed[2, k("I")] == pytest.approx(capitals[2, k("l")] + capitals[2, k("I")])
    assert weighed[2, k("1")] == capitals[2, k("1")]


def test_a_letter_the_model_found_close_to_its_other_case_takes_its_words_case():
    k = MAPPING.index
    boxes = boxes_on(flat, *[TALL] * 5)
    name = probs({"H": 0.99}, {"E": 0.56, "e": 0.43}, {"R": 0.97}, {"a": 0.51, "A": 0.37, "n": 0.11}, {"S": 0.71, "s": 0.29})
    assert read(context.apply(name, boxes, [False] * 5, MAPPING)) == "HERAS"
    weighed = context.case_from_word(name, [False] * 5, MAPPING)
    assert weighed[3, k("A")] + weighed[3, k("a")] == pytest.approx(name[3, k("A")] + name[3, k("a")])
    assert weighed[3, k("n")] + weighed[3, k("N")] == pytest.approx(name[3, k("n")] + name[3, k("N")])
    np.testing.assert_array_equal(weighed[3, :10], name[3, :10])  # a letter's cases trade; digits keep theirs
    word = probs({"h": 0.99}, {"E": 0.55, "e": 0.44}, {"n": 0.97}, {"r": 0.95})
    assert read(context.case_from_word(word, [False] * 4, MAPPING)) == "henr"
    # A capitalised word shows both cases; a sure answer stays (a, 0.95 against 0.02).
    mixed = probs({"H": 0.99}, {"E": 0.55, "e": 0.44}, {"n": 0.97}, {"r": 0.95})
    assert read(context.case_from_word(mixed, [False] * 4, MAPPING)) == "HEnr"
    sure = probs({"K": 0.99}, {"E": 0.99}, {"a": 0.95, "A": 0.02}, {"R": 0.99})
    assert read(context.case_from_word(sure, [False] * 4, MAPPING)) == "KEaR"


def test_the_case_of_a_word_decides_a_bar_only_when_the_word_shows_one_case():
    bar = {"l": 0.55, "I": 0.3, "1": 0.15}
    boxes = boxes_on(flat, TALL, TALL, TALL, TALL, TALL)
    # A capital starting a word of small letters: the word shows both cases, the bar stays as read.
    mixed = probs({"H": 0.99}, {"e": 0.97}, bar, {"n": 0.95}, {"a": 0.9})
    assert read(context.case_from_word(mixed, [False] * 5, MAPPING)) == "Helna"
    # One sure capital says too little; the capitals of another word say nothing about this one.
    one = probs({"H": 0.99}, bar, {"o": 0.9}, {"E": 0.99}, {"N": 0.99})
    assert read(context.case_from_word(one, [False, False, False, True, False], MAPPING)) == "HloEN"
    # A bar's shape does not show its case: an l the model is sure of is an I among capitals,
    # an I an l among small letters, while any other letter it is sure of keeps its case.
    sure = probs({"H": 0.99}, {"E": 0.97}, {"l": 0.95, "I": 0.02}, {"N": 0.95}, {"A": 0.9})
    assert read(context.apply(sure, boxes, [False] * 5, MAPPING)) == "HEINA"
    small = probs({"h": 0.99}, {"e": 0.97}, {"I": 0.95, "l": 0.02}, {"n": 0.95}, {"a": 0.9})
    assert read(context.case_from_word(small, [False] * 5, MAPPING)) == "helna"
    cased = probs({"H": 0.99}, {"E": 0.97}, {"a": 0.95, "A": 0.02}, {"N": 0.95}, {"A": 0.9})
    assert read(context.case_from_word(cased, [False] * 5, MAPPING)) == "HEaNA"


def test_without_references_height_decides_nothing():
    p = probs({"O": 0.55, "o": 0.45}, {"x": 0.55, "X": 0.45})  # no letter whose height is known
    assert read(context.apply(p, boxes_on(flat, TALL, SMALL), [False, False], MAPPING)) == "Ox"
    one = probs({"O": 0.45, "o": 0.55})
    assert read(context.apply(one, boxes_on(flat, TALL), [False], MAPPING)) == "o"


@pytest.mark.parametrize("word, ambiguous, as_digit", [
    ("1?3", {"O": 0.55, "0": 0.44}, "0"), ("4?", {"l": 0.5, "1": 0.3, "I": 0.2}, "1"),
    ("?99", {"S": 0.6, "5": 0.4}, "5"), ("7?", {"Z": 0.55, "2": 0.4}, "2"), ("3?0", {"B": 0.6, "8": 0.4}, "8"),
    ("2?", {"g": 0.6, "9": 0.35}, "9"),
])
def test_a_run_of_digits_takes_the_digit(word, ambiguous, as_digit):
    rows = [ambiguous if c == "?" else {c: 0.97} for c in word]
    boxes = boxes_on(flat, *[TALL] * len(word))
    assert read(context.apply(probs(*rows), boxes, [False] * len(word), MAPPING)) == word.replace("?", as_digit)


def test_the_longer_the_run_the_more_it_weighs():
    # l read at 85%, 1 at 10%: beside one digit it stays l, inside a row of eight it is a 1.
    fairly_sure = {"l": 0.85, "1": 0.1}
    for word, expected in [("4?", "4l"), ("0?23456789", "0123456789")]:
        rows = [fairly_sure if c == "?" else {c: 0.97} for c in word]
        out = context.apply(probs(*rows), boxes_on(flat, *[TALL] * len(word)), [False] * len(word), MAPPING)
        assert read(out) == expected
    # The weight grows with each sure neighbour of the kind, and letters weigh the other way.
    weights = []
    for k in (1, 2, 4, 8):
        p = probs(*[{"3": 0.99}] * k, {"l": 0.6, "1": 0.4})
        w = context.run_weights(p, MAPPING, [False] * (k + 1))[k]
        weights.append(w[MAPPING.index("1")] / w[MAPPING.index("l")])
    assert weights == sorted(weights) and 3 < weights[0] < weights[-1]
    w = context.run_weights(probs({"H": 0.99}, {"E": 0.99}, {"O": 0.5, "0": 0.5}), MAPPING, [False] * 3)[2]
    assert w[MAPPING.index("O")] > w[MAPPING.index("0")]


def test_a_run_of_letters_takes_the_letter_and_words_are_apart():
    rows = [{"H": 0.97}, {"0": 0.55, "O": 0.44}, {"T": 0.97}, {"1": 0.97}, {"O": 0.55, "0": 0.44}, {"7": 0.97}]
    spaces = [False, False, False, True, False, False]
    out = context.apply(probs(*rows), boxes_on(flat, *[TALL] * 6), spaces, MAPPING)
    assert read(out) == "HOT107"
    np.testing.assert_allclose(out.sum(axis=1), 1)


def test_classes_outside_a_charset_stay_out():
    from handwritten import charset

    allowed = charset.classes("upper", MAPPING)
    p = charset.restrict(probs({"H": 0.9, "h": 0.05}, {"o": 0.6, "O": 0.3}, {"x": 0.6, "X": 0.3}), allowed)
    out = context.apply(p, boxes_on(flat, TALL, SMALL, SMALL), [False] * 3, MAPPING)
    outside = np.setdiff1d(np.arange(len(MAPPING)), allowed)
    assert np.all(out[:, outside] == 0) and read(out) == "HOX"
    np.testing.assert_allclose(out.sum(axis=1), 1)


def test_words_split_at_spaces():
    assert context.words([False, False, True, False, True]) == [[0, 1], [2, 3], [4]]
    assert context.words([]) == []


# ---------------------------------------------------------------- a generated line, end to end


def sloped_line(text: str, gaps: list[int], degrees: float) -> np.ndarray:
    """``text`` typeset glyph by glyph on one baseline, ``gaps[i]`` px after glyph i, rotated a little: a photo's slope."""
    from test_images import font

    face = font(110)
    widths = [face.getbbox(c)[2] - face.getbbox(c)[0] for c in text]
    im = Image.new("L", (sum(widths) + sum(gaps) + 160, 260), 255)
    draw, x = ImageDraw.Draw(im), 60
    for ch, w, gap in zip(text, widths, gaps + [0]):
        draw.text((x - face.getbbox(ch)[0], 190), ch, fill=20, font=face, anchor="ls")
        x += w + gap
    return np.asarray(im.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255))


def test_a_sloped_line_with_uneven_gaps_keeps_its_order_and_space():
    from handwritten import images

    line = sloped_line("AB3x7K", gaps=[12, 30, 140, 18, 40], degrees=5)
    _, _, parts = images.find_line(line, name="sloped.png")
    assert len(parts) == 6
    assert [p["space_before"] for p in parts] == [False, False, False, True, False, False]
    assert [p["box"][0] for p in parts] == sorted(p["box"][0] for p in parts)


def test_read_line_uses_the_line_when_the_model_cannot_tell(trained_model, monkeypatch):
    from handwritten.predict import Recognizer

    r = Recognizer(trained_model)
    # The model's answers are fixed, each close between the two cases: only the line can decide.
    fixed = probs({"H": 0.98}, {"O": 0.45, "o": 0.55}, {"O": 0.55, "o": 0.45}, {"X": 0.55, "x": 0.45}, {"e": 0.98})
    monkeypatch.setattr(r, "predict_arrays", lambda x: fixed[: len(x)])
    line = sloped_line("HOoxe", gaps=[20, 35, 15, 25], degrees=-4)
    alone = r.read_line(line, context=False)
    assert alone["text"] == "HoOXe"
    result = r.read_line(line, top=len(MAPPING))
    assert result["text"] == "HOoxe"
    for c in result["characters"]:
        assert c["top"][0] == [c["character"], c["probability"]]
        assert abs(sum(p for _, p in c["top"]) - 1) < 1e-6


def test_a_twin_takes_the_kind_of_its_word():
    k = MAPPING.index
    # A 2 written like a Z, read Z 97 to 3 inside a row of nine digits: the run alone leaves it a Z.
    digits = probs(*[{"Z": 0.97, "2": 0.03} if c == "?" else {c: 0.99} for c in "01?3456789"])
    boxes = boxes_on(flat, *[TALL] * 10)
    assert read(digits * context.run_weights(digits, MAPPING, [False] * 10)) == "01Z3456789"
    assert read(context.apply(digits, boxes, [False] * 10, MAPPING)) == "0123456789"
    # An S read 5 nine to one among capitals: the 5 is weighed down, the letters keep their shares.
    letters = probs({"5": 0.81, "S": 0.09, "s": 0.01}, {"T": 0.99}, {"A": 0.99}, {"R": 0.99})
    assert read(context.apply(letters, boxes_on(flat, *[TALL] * 4), [False] * 4, MAPPING)) == "STAR"
    weighed = context.twins_from_word(letters, [False] * 4, MAPPING)
    assert weighed[0, k("S")] / weighed[0, k("s")] == pytest.approx(9)
    assert weighed[0, k("5")] / weighed[0, k("S")] == pytest.approx(0.81 / 0.09 / context.CASE_WEIGHT)
    np.testing.assert_allclose(weighed.sum(axis=1), 1)
    # The 5 is a twin, so it does not make the word mixed for the others: their digit twins go down too.
    assert read(weighed[1:]) == "TAR"
    assert (weighed[1:, k("5")] < letters[1:, k("5")]).all() and (weighed[1:].argmax(axis=1) == letters[1:].argmax(axis=1)).all()
    # Among digits, a q loses to its twin 9 and to every other digit alike: a 7 close to a 9 stays as close.
    close = probs({"7": 0.5, "9": 0.3, "q": 0.2}, {"4": 0.99}, {"0": 0.99})
    weighed = context.twins_from_word(close, [False] * 3, MAPPING)[0]
    assert weighed[k("7")] / weighed[k("9")] == pytest.approx(0.5 / 0.3)
    assert weighed[k("q")] / weighed[k("9")] == pytest.approx(0.2 / 0.3 / context.CASE_WEIGHT)


def test_a_twin_is_left_alone_by_a_mixed_word_or_a_single_neighbour():
    for word in ("A?3", "?7", "B?4X"):
        p = probs(*[{"Z": 0.6, "2": 0.4} if c == "?" else {c: 0.99} for c in word])
        i = word.index("?")
        np.testing.assert_array_equal(context.twins_from_word(p, [False] * len(word), MAPPING)[i], p[i])
    # Another word's digits say nothing about this one.
    p = probs({"4": 0.99}, {"7": 0.99}, {"Z": 0.6, "2": 0.4}, {"E": 0.99})
    weighed = context.twins_from_word(p, [False, False, True, False], MAPPING)
    np.testing.assert_array_equal(weighed[2], p[2])


def test_a_twin_read_as_the_other_kind_does_not_make_its_word_mixed():
    k = MAPPING.index
    # A name in capitals whose angular S the model is sure is a 5: the bar still goes to I, not 1.
    name = [{"5": 0.98, "S": 0.01}, {"U": 0.9}, {"K": 0.95}, {"H": 0.99}, {"V": 0.9}, {"1": 0.5, "l": 0.4, "I": 0.08},
            {"R": 0.99}]
    out = context.apply(probs(*name), boxes_on(flat, *[TALL] * 7), [False] * 7, MAPPING)
    assert read(out)[1:] == "UKHVIR"
    assert out[0, k("S")] > 2 * probs(*name)[0, k("S")]  # the 5 itself is weighed towards S as well
    # A number written in twins only (a year) is still a number: a bar read l among them is a 1.
    year = probs({"l": 0.5, "1": 0.4}, {"9": 0.99}, {"9": 0.97}, {"0": 0.95})
    assert read(context.apply(year, boxes_on(flat, *[TALL] * 4), [False] * 4, MAPPING)) == "1990"
    # Twins only witness when fewer than two characters show their kind: a 2 read Z and a 0 read O (sure) beside a 3 and a 4.
    digits = probs({"Z": 0.6, "2": 0.4}, {"3": 0.99}, {"4": 0.99}, {"O": 0.85, "0": 0.14})
    assert read(context.twins_from_word(digits, [False] * 4, MAPPING)) == "2340"


def test_only_neighbours_the_model_is_sure_of_make_a_run():
    # Two unsure letters (each as likely a digit) and one sure digit: the run is digits.
    rows = [{"q": 0.55, "9": 0.4}, {"b": 0.6, "6": 0.35}, {"3": 0.99}, {"Z": 0.55, "2": 0.42}]
    out = context.apply(probs(*rows), boxes_on(flat, *[TALL] * 4), [False] * 4, MAPPING)
    assert read(out) == "9632"


def test_run_weights_are_those_of_each_characters_own_neighbours():
    """The one-pass weights (word totals less the character) against counting each character's neighbours."""
    rng = np.random.default_rng(0)
    digit = np.array([c.isdigit() for c in MAPPING])
    letter = np.array([c.isalpha() for c in MAPPING])
    q = digit.sum() / (digit.sum() + letter.sum())
    for _ in range(20):
        n = int(rng.integers(1, 12))
        raw = rng.random((n, len(MAPPING))) ** 8
        raw[rng.random(n) < 0.5, rng.integers(len(MAPPING))] += 20  # some characters the model is sure of
        p = raw / raw.sum(axis=1, keepdims=True)
        spaces = [bool(s) for s in rng.random(n) < 0.3]
        expected = np.ones_like(p)
        sure = p.max(axis=1) >= context.SURE
        for word in context.words(spaces):
            for i in word:
                others = [k for k in word if k != i and sure[k]]
                if others:
                    d, l = p[others][:, digit].sum(), p[others][:, letter].sum()
                    chance = (d + context.PRIOR_CHARACTERS * q) / (d + l + context.PRIOR_CHARACTERS)
                    expected[i, digit], expected[i, letter] = chance / q, (1 - chance) / (1 - q)
        assert np.allclose(context.run_weights(p, MAPPING, spaces), expected, rtol=1e-12, atol=0)
