"""The boxes of a form (a comb field, a row of squares) taken out before the characters are found,
and characters that look like boxes left alone."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from handwritten import boxes, images, marks
from handwritten.images import find_line, preprocess
from test_images import draw_char

H, W, LINE = 130, 100, 3  # a box's height and width, and its lines' thickness


def _form(text: str, gap: int = 0, shift: int = 0, size: int = 90, frames: bool = True) -> np.ndarray:
    """``text`` written a character a box (bright ink on black, float): a comb field when ``gap``
    is 0, else squares ``gap`` px apart; a space leaves its box empty; ``shift`` moves the
    characters down (across the bottom line when large); ``frames=False``: the characters alone."""
    page = np.zeros((H + 100, 80 + len(text) * (W + gap)), np.float32)
    for k, ch in enumerate(text):
        x = 40 + k * (W + gap)
        if frames:
            page[30:30 + H, x + W - LINE:x + W] = 1
            page[30:30 + LINE, x:x + W] = page[30 + H - LINE:30 + H, x:x + W] = 1
            if gap or k == 0:
                page[30:30 + H, x:x + LINE] = 1
        if ch != " ":
            y, left = 30 + (H - size) // 2 + shift, x + (W - size) // 2
            page[y:y + size, left:left + size] = np.maximum(page[y:y + size, left:left + size], draw_char(ch, size, pen=2))
    return page


def _written(text: str, gap: int = 0, shift: int = 0, size: int = 90) -> np.ndarray:
    """The same characters at the same places, without the boxes."""
    return _form(text, gap, shift, size, frames=False)


def _grey(page: np.ndarray, turn: float = 0.0) -> np.ndarray:
    if turn:
        page = ndimage.rotate(page, turn, reshape=True, order=1)
    return ((1 - np.clip(page, 0, 1)) * 255).astype(np.uint8)


@pytest.mark.parametrize("gap", [0, 15])
def test_a_number_written_in_boxes_is_found_as_without_them(gap):
    """A comb field and a row of squares: the same characters, in the same places."""
    found = [c["box"] for c in find_line(_grey(_form("90210", gap)))[2]]
    bare = [c["box"] for c in find_line(_grey(_written("90210", gap)))[2]]
    assert len(found) == len(bare) == 5
    assert np.abs(np.array(found) - np.array(bare)).max() <= 2


def test_boxes_turned_by_three_degrees_and_empty_boxes_go_too():
    for gap in (0, 15):
        assert len(find_line(_grey(_form("90210", gap), turn=3))[2]) == 5
        ink, groups, parts = find_line(_grey(_form("90 2  ", gap)))
        assert len(parts) == 3 and (ink > 0.5).sum() < (_written("90 2  ", gap) > 0.5).sum() * 1.1


def test_a_character_across_a_box_line_keeps_what_lies_beyond_it():
    """Written too low, a character crosses the box's bottom line: only the line's own pixels go."""
    parts = find_line(_grey(_form("7", 15, shift=60, size=100)))[2]
    bare = find_line(_grey(_written("7", 15, shift=60, size=100)))[2]
    assert len(parts) == 1 and parts[0]["box"][3] > 30 + H  # below the bottom line
    assert abs(parts[0]["box"][3] - bare[0]["box"][3]) <= 2 and abs(parts[0]["box"][1] - bare[0]["box"][1]) <= 2


def test_one_boxed_character_is_framed_as_without_its_box():
    boxed, bare = preprocess(_grey(_form("7", 15))), preprocess(_grey(_written("7", 15)))
    assert np.corrcoef(boxed.ravel().astype(float), bare.ravel().astype(float))[0, 1] > 0.95


def test_a_box_with_nothing_written_in_it_stays():
    """An empty rectangle (a drawn shape) is no form: it is left for rejection to judge."""
    grey = _grey(_form(" ", 15))
    ink, mask = images.normalise(grey)
    labels, comps = marks.components(mask, min_size=3)
    assert boxes.remove(ink, mask, labels, comps)[1] is mask


def test_a_zero_written_in_a_box_without_touching_it_is_a_character():
    """A frame inside another's outline is a character (an oval 0 with straight sides)."""
    parts = find_line(_grey(_form("0", 15)))[2]
    assert len(parts) == 1 and parts[0]["box"][3] - parts[0]["box"][1] < H / 2


@pytest.mark.parametrize("pen", [0, 4])
def test_no_character_is_taken_for_a_box(pen):
    """Characters drawn large in a typeface, whose lines are straighter than anyone's writing."""
    for ch in "0OoDBEHMNUW8#":
        crop = draw_char(ch, 220, pen=pen) > 0.5
        rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
        assert boxes._frame(crop[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]) is None, ch


def test_a_table_of_two_rows_of_boxes_is_found_row_by_row():
    """The line between a table's rows of boxes goes too: it would join each row's characters."""
    top, bottom = _form("1234"), _form("5678")
    table = np.concatenate([top[:30 + H], bottom[30:]], axis=0)
    parts = find_line(_grey(table))[2]
    assert [p["row"] for p in parts] == [0] * 4 + [1] * 4
    assert all(p["box"][3] - p["box"][1] < H / 2 for p in parts)


def _on_a_line(text: str, where: float = 1.0, reach: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``text`` written without and with a printed line 4 px thick at ``where`` of its height (1:
    under it, touching it), reaching ``reach`` px past it both ways: grey images."""
    from test_images import compose_line

    word = np.pad(compose_line([draw_char(c, 100, pen=2) for c in text]), ((0, 30), (reach, reach)),
                  constant_values=255)
    rows, cols = np.flatnonzero((word < 128).any(axis=1)), np.flatnonzero((word < 128).any(axis=0))
    y = int(rows[0] + where * (rows[-1] - rows[0]))
    lined = word.copy()
    lined[y:y + 4, cols[0] - reach:cols[-1] + reach] = 0
    return word, lined


def test_writing_resting_on_a_printed_line_is_found_as_without_it():
    """A form's line the letters touch: only the line's own pixels go, not where letters meet it."""
    word, lined = _on_a_line("KERAS")
    found, bare = ([c["box"] for c in find_line(image)[2]] for image in (lined, word))
    assert len(found) == len(bare) == 5
    assert np.abs(np.array(found)[:, :3] - np.array(bare)[:, :3]).max() <= 2
    assert np.abs(np.array(found)[:, 3] - np.array(bare)[:, 3]).max() <= 4  # at most the line's thickness


def test_one_character_on_a_long_printed_line_is_framed_as_without_it():
    word, lined = _on_a_line("7", reach=150)
    assert np.corrcoef(preprocess(lined).ravel().astype(float), preprocess(word).ravel().astype(float))[0, 1] > 0.95


def test_a_line_through_the_middle_of_a_word_crosses_it_out_and_stays():
    _, crossed = _on_a_line("KERAS", where=0.5)
    assert len(find_line(crossed)[2]) == 1


def test_a_characters_own_bar_is_no_printed_line():
    """An L's base, a Z's or a 2's, under one character and no further: they stay."""
    for ch in "LZ2E":
        crop = draw_char(ch, 220, pen=3) > 0.5
        rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
        assert boxes._underline(crop[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]) is None, ch
