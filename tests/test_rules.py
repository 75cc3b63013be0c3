"""Ruled lines of notebook paper are taken out before the characters are found; characters'
own bars, in pictures cropped to them, are not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from handwritten import images, marks, rules
from handwritten.errors import NoInk
from test_images import compose_line, draw_char


def ruled(page: np.ndarray, rules_at: list[tuple[float, float]], width: int = 3, grey: int = 90) -> np.ndarray:
    """``page`` (dark ink on light paper) with straight rules from (0, y0) to (right edge, y1)."""
    im = Image.fromarray(page)
    draw = ImageDraw.Draw(im)
    for y0, y1 in rules_at:
        draw.line([(0, y0), (page.shape[1], y1)], fill=grey, width=width)
    return np.asarray(im)


def boxes_of(page: np.ndarray) -> list[list[int]]:
    return [p["box"] for p in images.segment_line(page, name="line.png")[1]]


def found(page: np.ndarray):
    """(mask before, what rules.remove gives) for a page of dark ink on light paper."""
    ink, mask = images.normalise(page.astype(np.float32) / 255)
    labels, comps = marks.components(mask, min_size=3)
    return mask, rules.remove(ink, mask, labels, comps)


@pytest.fixture(scope="module")
def line() -> np.ndarray:
    return compose_line([draw_char(c, 120, pen=2) for c in "5UK7"] + [None] + [draw_char(c, 120, pen=2) for c in "42"])


def bottoms(page: np.ndarray) -> float:
    return float(np.median([b[3] for b in boxes_of(page)]))


@pytest.mark.parametrize("where, width, grey", [
    ("baseline", 3, 90),  # the characters rest on it: one mark, unless it goes
    ("sloped", 2, 90),  # a photo turned a little: the rule crosses the bottoms
    ("faint", 1, 170),  # a thin light rule: dashes after the ink threshold
    ("lined", 2, 90),  # a rule above, one under and one through the writing
    ("leaving", 2, 90),  # a sloped rule that leaves the picture through its bottom edge
])
def test_characters_on_ruled_paper_are_found_as_without_rules(line, where, width, grey):
    plain = boxes_of(line)
    low = bottoms(line)
    top = min(b[1] for b in plain)
    rules_at = {"baseline": [(low, low)], "sloped": [(low + 12, low - 14)], "faint": [(low + 1, low + 1)],
                "lined": [(top - 12, top - 12), (low, low), ((top + low) / 2, (top + low) / 2 + 6)],
                "leaving": [(line.shape[0] + 12, low - 10)]}[where]
    page = ruled(line, rules_at, width, grey)
    before = images.segment_line(page, name="line.png")
    got = [p["box"] for p in before[1]]
    assert len(got) == len(plain), (got, plain)
    assert [p["space_before"] for p in before[1]] == [p["space_before"] for p in images.segment_line(line)[1]]
    # Each character keeps its place and size, give or take the rule's thickness where it touches.
    assert np.abs(np.array(got) - np.array(plain)).max() <= width + 3, (got, plain)


def test_without_rules_the_whole_ruled_line_would_be_one_mark(line):
    low = bottoms(line)
    page = ruled(line, [(low, low)])
    mask, (_, kept, _, comps) = found(page)
    assert kept is not mask
    assert len(marks.components(mask, min_size=3)[1]) < 3  # the rule joins the characters
    assert len(comps) == len(boxes_of(line))


def test_a_stroke_crossing_a_rule_stays_whole():
    page = np.full((200, 600), 235, np.uint8)
    page[40:160, 280:292] = 30  # a bar crossing the rule
    page[60:120, 100:160] = 30  # a block above it
    page = ruled(page, [(130, 130)], width=3)
    mask, (_, kept, _, comps) = found(page)
    boxes = sorted(c["box"] for c in comps if c["size"] > 100)
    assert len(boxes) == 2
    assert boxes[1][1] <= 41 and boxes[1][3] >= 159  # the bar, top to bottom, in one piece
    assert not kept[128:133, 0:50].any() and not kept[128:133, 400:].any()  # the rule is gone


def test_one_character_above_a_rule_is_framed_as_without_it():
    glyph = (255 - draw_char("0", 200, pen=3) * 255).astype(np.uint8)
    page = ruled(glyph, [(178, 176)], width=4)
    framing = images.framing_from_meta({})
    alone, on_rule = images.preprocess(glyph, framing), images.preprocess(page, framing)
    assert np.abs(alone.astype(int) - on_rule.astype(int)).mean() < 3
    # ... where keeping the rule would have framed the character and the rule together.
    ink, mask = images.normalise(page.astype(np.float32) / 255)
    labels, comps = marks.components(mask, min_size=3)
    both = images.frame(ink, marks.select_character(labels, comps), framing)
    assert np.abs(alone.astype(int) - both.astype(int)).mean() > 10


@pytest.mark.parametrize("shape", ["Z", "T", "E", "dash"])
def test_a_characters_bar_spanning_a_picture_cropped_to_it_stays(shape):
    page = np.full((120, 150), 235, np.uint8)
    if shape == "E":  # a wide E in a square-ended marker: each bar ends in the stem that crosses it
        page = np.full((150, 300), 235, np.uint8)
        page[:, :6] = 20
        page[:8] = page[71:79] = page[-8:] = 20
    elif shape == "Z":  # both bars reach the left and right edges; a rule would be the bottom one
        draw = ImageDraw.Draw(im := Image.fromarray(page))
        draw.line([(0, 8), (149, 8), (0, 112), (149, 112)], fill=20, width=12, joint="curve")
        page = np.asarray(im)
    elif shape == "T":  # a wide T: its bar spans the picture, its stem reaches the bottom edge
        page[5:17, :] = 20
        page[5:, 69:81] = 20
    else:  # a dash alone: nothing would be left
        page[55:65, :] = 20
    mask, (_, kept, _, _) = found(page)
    assert kept is mask


def test_a_page_of_many_rules_is_bounded():
    page = np.full((1200, 900), 235, np.uint8)
    page[540:600, 300:340] = 30  # one mark amid thirty rules
    page = ruled(page, [(y, y + 5) for y in range(20, 1200, 40)], width=2)
    mask, (_, kept, _, _) = found(page)
    removed = mask & ~kept
    # At most MAX_RULES rules go; the mark stays.
    assert kept[545:595, 305:335].all()
    assert 0 < removed.sum() <= rules.MAX_RULES * 900 * 4


def test_a_strip_too_long_to_be_a_page_is_left_as_it_is():
    # The Hough accumulator grows with width plus height; a strip of 30,000 px would cost hundreds
    # of MB for nothing a page holds. Below the bound, the same rule goes.
    for width, left_alone in ((rules.MAX_SIDES + 1000, True), (4000, False)):
        page = np.full((40, width), 235, np.uint8)
        page[8:30, 100:112] = 30  # a bar
        page[34:36, :] = 60  # a rule under it
        mask, (_, kept, _, _) = found(page)
        assert (kept is mask) == left_alone, width


def columns(page: np.ndarray, xs: list[float], width: int = 2, grey: int = 90) -> np.ndarray:
    """``page`` with vertical rules from top to bottom at ``xs``: a margin, or squared paper's."""
    im = Image.fromarray(page)
    draw = ImageDraw.Draw(im)
    for x in xs:
        draw.line([(x, 0), (x + 3, page.shape[0])], fill=grey, width=width)
    return np.asarray(im)


def test_a_margin_rule_beside_a_line_is_no_character(line):
    plain = boxes_of(line)
    page = columns(ruled(line, [(bottoms(line), bottoms(line))]), [12])
    got = boxes_of(page)
    assert len(got) == len(plain) and np.abs(np.array(got) - np.array(plain)).max() <= 5, (got, plain)


def test_one_character_on_squared_paper_is_framed_as_without_it():
    glyph = (255 - draw_char("4", 200, pen=3) * 255).astype(np.uint8)
    squared = columns(ruled(glyph, [(y, y) for y in range(15, 200, 40)], width=2), list(range(10, 200, 40)), width=2)
    framing = images.framing_from_meta({})
    alone, on_grid = images.preprocess(glyph, framing), images.preprocess(squared, framing)
    assert np.abs(alone.astype(int) - on_grid.astype(int)).mean() < 8  # small notches where the rules crossed


@pytest.mark.parametrize("shape", ["1", "H", "H on the edge"])
def test_a_stem_spanning_a_picture_cropped_to_it_stays(shape):
    page = np.full((150, 120), 235, np.uint8)
    if shape == "1":
        page[:, 54:66] = 20
    elif shape == "H":
        page[:, :12] = 20
        page[:, -12:] = 20
        page[70:82, :] = 20
    else:  # a wide bar nearly edge to edge, square-ended stems, one reaching the bottom edge only
        page[70:82, 1:119] = 20
        page[8:146, 8:20] = 20
        page[14:, 98:110] = 20
    mask, (_, kept, _, _) = found(page)
    assert kept is mask


@pytest.mark.parametrize("step, width, blur", [(40, 2, 0), (70, 2, 0), (40, 3, 1.0), (70, 3, 1.0)])
def test_a_line_on_squared_paper_is_found_as_without_it(line, step, width, blur):
    # A grid with a rule near each edge of the picture: each rule's ends lie in the other way's.
    # Blurred as in a photo, each crossing leaves a stub of one way's rule, a little thicker than
    # the other, when that one is taken out.
    plain = boxes_of(line)
    h, w = line.shape
    page = columns(ruled(line, [(y, y) for y in range(3, h, step)], width=width), list(range(2, w, step)), width=width)
    if blur:
        page = np.asarray(Image.fromarray(page).filter(ImageFilter.GaussianBlur(blur)))
    got = boxes_of(page)
    assert len(got) == len(plain), (got, plain)
    assert np.abs(np.array(got) - np.array(plain)).max() <= 5, (got, plain)


@pytest.mark.parametrize("paper", ["lined", "squared", "hash"])
def test_a_blank_page_of_rules_has_no_ink(paper):
    page = np.full((300, 420), 240, np.uint8)
    page = ruled(page, [(y, y) for y in range(20, 300, 45)], width=2)
    if paper != "lined":
        page = columns(page, list(range(15, 420, 45)), width=2)
    if paper == "hash":  # two bars each way and nothing else, as a drawn # cropped to it: it stays
        page = columns(ruled(np.full((120, 120), 240, np.uint8), [(30, 30), (90, 90)], width=8), [30, 90], width=8)
    mask, (_, kept, _, _) = found(page)
    if paper == "hash":
        assert kept is mask
        return
    assert not kept.any()
    with pytest.raises(NoInk):
        images.preprocess(page)
