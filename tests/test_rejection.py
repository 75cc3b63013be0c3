"""Not sure, and not a character: the image cues, the generated non-characters, and ``unsure`` /
``character: null`` in the Python API and the command line. The server's and the page's are in
test_server.py and test_browser.py."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from handwritten import calibration, negatives, rejection
from handwritten.cli import main
from handwritten.images import framing_from_meta
from handwritten.predict import Recognizer
from test_images import compose_line, draw_char

CHARACTERS = "AbC1e7gHkMnpQR3sTuW8xyZ"


def _cues(image):
    return rejection.examine(image, framing_from_meta({}), "image", 20_000_000)[1]


def test_the_generator_makes_over_200_images_of_every_kind():
    items = negatives.generate(count=240, seed=3)
    assert len(items) == 240 and Counter(k for k, _ in items) == {k: 30 for k in negatives.KINDS}
    for _, image in items:
        assert image.dtype == np.uint8 and image.ndim == 2 and min(image.shape) >= 200
    again = negatives.generate(count=16, seed=3)
    assert all((a == b).all() for (_, a), (_, b) in zip(again, items[:16]))


def test_cues_alone_reject_most_non_characters():
    """Without any model: the image's cues reject most kinds; the model's confidence does the rest."""
    items = negatives.generate(count=64, seed=7)
    rejected = Counter(kind for kind, image in items if rejection.judge(_cues(image), None))
    assert sum(rejected.values()) >= 0.8 * len(items), rejected
    for kind in ("blank", "speck", "noise"):
        assert rejected[kind] == 8, rejected
    assert rejected["scribble"] >= 6 and rejected["several"] >= 5, rejected


@pytest.mark.parametrize("dark_ink", [True, False])
def test_cues_accept_characters_of_every_shape(dark_ink):
    for ch in CHARACTERS:
        for pen in (0, 4):
            ink = draw_char(ch, 200, pen=pen)
            image = ((1 - ink if dark_ink else ink) * 255).astype(np.uint8)
            cues = _cues(image)
            assert rejection.reason_from_cues(cues) is None, (ch, pen, cues)


def test_a_blank_image_is_not_a_character_and_not_an_error(trained_model):
    r = Recognizer(trained_model)
    blank = np.full((200, 300), 245, np.uint8)
    scribble = dict(negatives.generate(count=4, seed=0)[:4])["scribble"]
    results = r.predict([blank, scribble, (1 - draw_char("A", 200)) * 255], top=3)
    for res in results[:2]:
        assert res["character"] is None and res["probability"] is None and res["unsure"] is True, res
        assert res["reason"] and "error" not in res
    assert results[0]["reason"] == rejection.REASONS["blank"] and "input" not in results[0]
    assert results[0]["top"] == [] and len(results[1]["top"]) == 3
    assert results[2]["character"] is not None and "reason" not in results[2]
    assert results[2]["unsure"] == (results[2]["probability"] < 0.5)


def test_min_confidence_default_and_bounds(trained_model):
    assert calibration.MIN_CONFIDENCE == 0.5
    assert Recognizer(trained_model).min_confidence == 0.5
    assert Recognizer(trained_model, min_confidence=0.9).info()["min_confidence"] == 0.9
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(Exception, match="min_confidence"):
            Recognizer(trained_model, min_confidence=bad)


def test_cli_answers_not_a_character_and_unsure(trained_model, tmp_path, capsys):
    blank, char = tmp_path / "blank.png", tmp_path / "a.png"
    Image.new("RGB", (640, 480), (245, 245, 240)).save(blank)
    Image.fromarray(((1 - draw_char("A", 200)) * 255).astype(np.uint8)).save(char)

    # Not a character is an answer: exit status 0.
    assert main(["predict", str(trained_model), str(blank), str(char), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["character"] is None and lines[0]["unsure"] is True and "no ink" in lines[0]["reason"]
    assert isinstance(lines[1]["character"], str) and isinstance(lines[1]["unsure"], bool)

    assert main(["predict", str(trained_model), str(blank), str(char), "--min-confidence", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{blank}: not a character (no ink found: a blank page or canvas)"
    # Nothing reaches a probability of 1: unsure, with the best candidates ("? A 41% or H 30%").
    assert out[1].startswith(f"{char}: ? ") and " or " in out[1] and out[1].endswith("%")

    assert main(["predict", str(trained_model), str(char), "--min-confidence", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unsure"] is False

    assert main(["predict", str(trained_model), str(char), "--min-confidence", "2"]) == 2
    assert "min_confidence 2.0" in capsys.readouterr().err


def test_help_states_the_default_threshold(capsys):
    for command in ("predict", "serve"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert "--min-confidence P" in help_text and "else 0.5" in help_text


def test_a_line_marks_unsure_characters(trained_model):
    line = compose_line([draw_char(c, 80) for c in "AB7"])
    sure = Recognizer(trained_model, min_confidence=0.0).read_line(line)
    doubtful = Recognizer(trained_model, min_confidence=1.0).read_line(line)
    assert len(sure["characters"]) == 3
    assert [c["unsure"] for c in sure["characters"]] == [False] * 3
    assert [c["unsure"] for c in doubtful["characters"]] == [True] * 3
    assert [c["character"] for c in doubtful["characters"]] == [c["character"] for c in sure["characters"]]


def test_the_cues_helpers_count_as_their_plain_definitions():
    """Columns, percentile and outline, computed with whole-array operations, against plain ones."""
    rng = np.random.default_rng(0)

    def columns(crop, height):  # runs of inked columns, a new one after a gap of height // 20 or more
        runs, gap, least, inside = 0, 0, max(1, height // 20), False
        for filled in crop.any(axis=0):
            if filled:
                runs += not inside and (runs == 0 or gap >= least)
                inside, gap = True, 0
            else:
                inside, gap = False, gap + 1
        return runs

    for _ in range(500):
        crop = rng.random((int(rng.integers(1, 50)), int(rng.integers(1, 50)))) > rng.uniform(0.6, 1.0)
        height = int(rng.integers(1, 100))
        assert rejection._columns(crop, height) == columns(crop, height)
        padded = np.pad(crop, 1)
        edges = (padded[1:, :] != padded[:-1, :]).sum() + (padded[:, 1:] != padded[:, :-1]).sum()
        assert rejection._outline(crop) == edges
        values = rng.random(int(rng.integers(1, 300))).astype(np.float32)
        assert rejection._percentile(values, 95) == pytest.approx(float(np.percentile(values, 95)), abs=1e-6)


def _blot(size: int, radius: int) -> np.ndarray:
    """A filled disk, bright on dark, ``size`` px square: a blot of ink or a full stop."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disk = np.zeros((size, size), np.float32)
    disk[(yy ** 2 + xx ** 2 <= radius ** 2)] = 1.0
    return disk


def test_a_line_leaves_out_blots_and_full_stops(trained_model):
    """A blot and a full stop among characters are left out of the text, each named with its box."""
    r = Recognizer(trained_model)
    plain = r.read_line(compose_line([draw_char(c, 80, pen=1) for c in "AB7"]))
    stop = np.roll(_blot(80, 5), 25, axis=0)  # on the baseline, as a full stop is written
    blotted = r.read_line(compose_line([draw_char("A", 80, pen=1), _blot(80, 30), draw_char("B", 80, pen=1),
                                        draw_char("7", 80, pen=1), stop]))
    assert len(plain["characters"]) == 3 and plain["ignored"] == [] and "reason" not in plain
    assert [c["character"] for c in blotted["characters"]] == [c["character"] for c in plain["characters"]]
    assert blotted["text"] == plain["text"]
    assert [m["reason"] for m in blotted["ignored"]] == [rejection.REASONS["blob"]] * 2
    first, last = (c["box"] for c in blotted["characters"][::2])
    blot, dot = (m["box"] for m in blotted["ignored"])
    assert first[2] < blot[0] < blot[2] < blotted["characters"][1]["box"][0] and dot[0] > last[2]
    assert "reason" not in blotted


def test_a_line_of_only_a_scribble_reads_no_characters_and_says_why(trained_model, tmp_path, capsys):
    scribble = dict(negatives.generate(count=4, seed=0)[:4])["scribble"]
    result = Recognizer(trained_model).read_line(scribble)
    assert result["text"] == "" and result["characters"] == []
    assert result["reason"] == rejection.REASONS["scribble"] and len(result["ignored"]) == 1

    path = tmp_path / "scribble.png"
    Image.fromarray(scribble).save(path)
    assert main(["predict", str(trained_model), str(path), "--line"]) == 0  # answered, not a failure
    out = capsys.readouterr().out
    assert f"{path}: no characters ({rejection.REASONS['scribble']})" in out and "left out" in out
    assert main(["predict", str(trained_model), str(path), "--line", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["reason"] == rejection.REASONS["scribble"] and answer["characters"] == []


def test_the_grain_of_a_blank_photo_read_as_a_line_reads_no_characters(trained_model):
    """Blank pages and canvases, some photographed on grainy paper: no line reads a character from them."""
    from handwritten.errors import NoInk

    r = Recognizer(trained_model)
    blanks = [image for kind, image in negatives.generate(count=240, seed=0) if kind == "blank"]
    grainy = 0
    for image in blanks:
        try:
            result = r.read_line(image)
        except NoInk:
            continue
        grainy += 1
        assert result["characters"] == [] and result["reason"], result["text"]
    assert grainy >= 5  # the photographed ones have marks to judge


def _bar(size: int, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    glyph = np.zeros((size, size), np.float32)
    glyph[y0:y1, x0:x1] = 1.0
    return glyph


def test_a_line_leaves_out_a_dash_but_keeps_a_t_whose_bar_is_drawn_apart(trained_model):
    """A dash is wider than any character and is left out, named; a T's bar drawn above its stem
    without touching it is as wide alone, and stays the T's."""
    r = Recognizer(trained_model)
    glyphs = [draw_char(c, 80, pen=1) for c in "AB7"]
    plain = r.read_line(compose_line(glyphs))
    dashed = r.read_line(compose_line(glyphs[:1] + [_bar(80, 5, 75, 37, 43)] + glyphs[1:]))
    assert [c["character"] for c in dashed["characters"]] == [c["character"] for c in plain["characters"]]
    assert [m["reason"] for m in dashed["ignored"]] == [rejection.REASONS["wide"]]
    assert dashed["characters"][0]["box"][2] < dashed["ignored"][0]["box"][0] < dashed["characters"][1]["box"][0]

    t = np.maximum(_bar(80, 10, 70, 8, 14), _bar(80, 37, 43, 20, 76))  # 6 px between bar and stem
    apart = r.read_line(compose_line(glyphs[:1] + [t] + glyphs[1:]))
    assert len(apart["characters"]) == 4 and apart["ignored"] == []
    assert apart["characters"][1]["box"][1] < 14 < 20 < apart["characters"][1]["box"][3]


def test_strokes_across_a_photo_read_as_a_line_read_no_characters(trained_model):
    """Wood grain, or lines across a page that are not rules: every mark is far wider than a character."""
    yy, xx = np.mgrid[:280, :280]
    wavy = np.zeros((280, 280), bool)
    for k in range(6):
        wavy |= np.abs(yy - (25 + 45 * k + 8 * np.sin(xx / 23 + k))) < 4
    result = Recognizer(trained_model).read_line(np.where(wavy, 40, 225).astype(np.uint8))
    assert result["characters"] == [] and result["text"] == ""
    assert result["reason"] == rejection.REASONS["wide"] and len(result["ignored"]) == 6


def test_one_image_of_a_dash_is_named_a_dash_not_several_characters(trained_model):
    """Alone, a mark far wider than high in one piece is a dash or joined-up writing; "several
    characters side by side" is for ink in separate columns."""
    dash = np.full((120, 360), 230, np.uint8)
    dash[55:63, 40:320] = 30
    answer = Recognizer(trained_model).predict([dash])[0]
    assert answer["character"] is None and answer["reason"] == rejection.REASONS["wide"]


def test_a_line_drawn_under_a_word_is_left_out_and_joins_none_of_its_letters(trained_model):
    """An underline lies under every letter's columns: taken for part of each, it made the whole
    word one mark, far too wide, and nothing was read."""
    r = Recognizer(trained_model)
    word = compose_line([draw_char(c, 80, pen=1) for c in "AB7"])
    underlined = np.pad(word, ((0, 30), (0, 0)), constant_values=255)
    rows, cols = np.flatnonzero((word < 128).any(axis=1)), np.flatnonzero((word < 128).any(axis=0))
    underlined[rows[-1] + 8:rows[-1] + 12, cols[0]:cols[-1]] = 0
    plain, result = r.read_line(word), r.read_line(underlined)
    assert result["text"] == plain["text"] and len(result["characters"]) == 3
    assert [m["reason"] for m in result["ignored"]] == [rejection.REASONS["wide"]]
    assert result["ignored"][0]["box"][1] > max(c["box"][3] for c in result["characters"])
