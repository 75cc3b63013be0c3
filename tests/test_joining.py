"""Characters split in two on a line: which neighbours are candidates, which are joined, and read_line's use of it."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from handwritten import joining
from handwritten.images import find_line
from handwritten.predict import Recognizer


def test_only_a_gap_far_narrower_than_the_lines_typical_gap_is_a_candidate():
    # Four characters 40 px wide: gaps 60, 8, 60 (typical 60; 8 < 0.25 * 60).
    boxes = [[0, 0, 40, 80], [100, 0, 140, 80], [148, 0, 188, 80], [248, 0, 288, 80]]
    assert joining.candidates(boxes).tolist() == [1]
    # Overlapping neighbours (a negative gap) are candidates too.
    boxes[2] = [135, 0, 175, 80]
    assert joining.candidates(boxes).tolist() == [1]
    # Evenly spaced characters: none.
    assert joining.candidates([[i * 100, 0, i * 100 + 40, 80] for i in range(5)]).tolist() == []


def test_no_candidates_without_a_typical_gap():
    assert joining.candidates([[0, 0, 40, 80], [45, 0, 80, 80]]).tolist() == []  # two characters: one gap
    # Joined-up writing: the marks touch or overlap, no gap to compare with.
    assert joining.candidates([[0, 0, 40, 80], [38, 0, 80, 80], [79, 0, 120, 80], [118, 0, 160, 80]]).tolist() == []


def test_a_pair_is_joined_only_when_read_better_whole():
    apart = np.array([0.99, 0.5, 0.8, 0.99])
    assert joining.choose(np.array([1]), apart, np.array([0.9])) == [1]  # 0.9 > 0.5 * 0.8
    assert joining.choose(np.array([1]), apart, np.array([0.3])) == []  # 0.3 < 0.4
    # Two sure pieces stay apart even when the whole is read fairly surely.
    assert joining.choose(np.array([0]), np.array([0.99, 0.98, 0.5]), np.array([0.9])) == []


def test_a_character_is_joined_into_one_pair_only():
    apart = np.array([0.5, 0.5, 0.5, 0.5])
    # Pairs (0, 1), (1, 2) and (2, 3) all gain; (1, 2) gains most, so neither of the others can be taken.
    assert joining.choose(np.array([0, 1, 2]), apart, np.array([0.3, 0.9, 0.4])) == [1]
    # (0, 1) and (2, 3) share nothing: both are taken.
    assert joining.choose(np.array([0, 2]), apart, np.array([0.3, 0.4])) == [0, 2]


def test_join_renumbers_the_pixels_and_unites_the_boxes():
    groups = np.array([[0, 1, 2, 3, 4, 0]])
    parts = [{"box": [i * 10, i, i * 10 + 5, 20 + i], "space_before": i == 3} for i in range(4)]
    joined, merged = joining.join(groups, parts, [1])
    assert joined.tolist() == [[0, 1, 2, 2, 3, 0]]
    assert [p["box"] for p in merged] == [[0, 0, 5, 20], [10, 1, 25, 22], [30, 3, 35, 23]]
    assert [p["space_before"] for p in merged] == [False, False, True]
    assert parts[1]["box"] == [10, 1, 15, 21]  # the caller's parts are left as they were


def _line(tmp_path, split_gap: int) -> str:
    """Five bars 60 px apart; the third is drawn as two bars ``split_gap`` px apart."""
    image = Image.new("L", (520, 140), 255)
    draw = ImageDraw.Draw(image)
    x = 30
    for k in range(5):
        draw.line([(x, 30), (x, 110)], fill=0, width=6)
        if k == 2:
            x += split_gap
            draw.line([(x, 30), (x + 30, 110)], fill=0, width=6)
            x += 30
        x += 66
    path = tmp_path / "line.png"
    image.save(path)
    return str(path)


@pytest.fixture
def scripted(trained_model, monkeypatch):
    """A recogniser whose model reads each batch as the test says: ``calls`` records the batch sizes."""
    r = Recognizer(trained_model)
    calls, script = [], []

    def predict_arrays(x, **kwargs):
        calls.append(len(x))
        probs = np.full((len(x), len(r.mapping)), 0.0)
        for row, (character, p) in zip(probs, script.pop(0)(len(x))):
            row[:] = (1 - p) / (len(r.mapping) - 1)
            row[r.mapping.index(character)] = p
        return probs

    monkeypatch.setattr(r, "predict_arrays", predict_arrays)
    return r, calls, script


def test_read_line_joins_a_split_character_the_model_reads_better_whole(scripted, tmp_path):
    r, calls, script = scripted
    script.append(lambda n: [("1", 0.99)] * 2 + [("l", 0.5), ("t", 0.6)] + [("1", 0.99)] * (n - 4))
    script.append(lambda n: [("K", 0.9)] * n)
    line = _line(tmp_path, split_gap=8)
    result = r.read_line(line, context=False)
    assert calls == [6, 1]  # six marks, one candidate pair
    assert result["text"] == "11K11"
    marks = [p["box"] for p in find_line(line)[2]]
    left, right = marks[2], marks[3]
    united = [min(left[0], right[0]), min(left[1], right[1]), max(left[2], right[2]), max(left[3], right[3])]
    assert [c["box"] for c in result["characters"]] == marks[:2] + [united] + marks[4:]
    assert result["characters"][2]["input"].shape == (28, 28)


def test_read_line_keeps_two_sure_characters_written_close_apart(scripted, tmp_path):
    r, calls, script = scripted
    script.append(lambda n: [("1", 0.99)] * n)
    script.append(lambda n: [("K", 0.9)] * n)
    result = r.read_line(_line(tmp_path, split_gap=8), context=False)
    assert calls == [6, 1]
    assert result["text"] == "111111"


def test_read_line_reads_evenly_spaced_marks_once(scripted, tmp_path):
    r, calls, script = scripted
    script.append(lambda n: [("1", 0.5)] * n)
    result = r.read_line(_line(tmp_path, split_gap=60), context=False)
    assert calls == [6] and result["text"] == "111111"
