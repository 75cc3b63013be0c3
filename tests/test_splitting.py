"""Characters written touching on a line: which marks are tried, where they are cut, and read_line's use of it."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from handwritten import joining, splitting
from handwritten.images import find_line
from handwritten.predict import Recognizer


def _boxes(*sizes):
    """Marks side by side as ``find_objects`` gives them, each (height, width)."""
    out, x = [], 0
    for h, w in sizes:
        out.append((slice(0, h), slice(x, x + w)))
        x += w + 10
    return out


def test_only_marks_far_wider_than_high_and_than_their_row_are_tried():
    boxes = _boxes((80, 50), (80, 130), (80, 100), (80, 45))
    rows = np.zeros(4, int)
    assert splitting.wide(boxes, rows, [None] * 4).tolist() == [False, True, False, False]  # 100 < 1.4 * 80
    # A mark no character (a dash, a scribble) is never split.
    assert not splitting.wide(boxes, rows, [None, "wide", None, None])[1]
    # In a row of wide characters, one as wide as the rest is not two.
    boxes = _boxes((80, 120), (80, 125), (80, 130))
    assert not splitting.wide(boxes, rows[:3], [None] * 3).any()
    # Fewer than three characters in its row: its own height decides.
    assert splitting.wide(_boxes((80, 120)), np.zeros(1, int), [None]).tolist() == [True]


def test_cuts_are_spread_across_the_mark_and_pieces_sized_like_characters():
    cuts = splitting.cuts(100, 200)
    assert 0 < cuts.min() and cuts.max() < 200 and np.all(np.diff(cuts) >= splitting.STEP * 100)
    assert len(splitting.cuts(100, 400)) == splitting.CUTS  # a wider mark: no more than CUTS
    assert len(splitting.cuts(100, 10)) == 0  # too narrow to hold two characters
    bounds = np.array([0, 50, 100, 150, 200])
    for i, j in splitting.segments(100, bounds):
        assert splitting.MIN_PIECE * 100 <= bounds[j] - bounds[i] <= splitting.WIDE * 100
    assert (0, 4) not in splitting.segments(100, bounds)  # the whole mark is too wide for one piece


def test_the_split_read_most_surely_is_found():
    bounds = 5  # 0, three cuts, the width
    spans = [(i, j) for i in range(bounds) for j in range(i + 1, bounds)]
    log_p = np.full(len(spans), np.log(0.1))
    log_p[spans.index((0, 1))] = np.log(0.9)
    log_p[spans.index((1, 3))] = np.log(0.8)
    log_p[spans.index((3, 4))] = np.log(0.95)
    score, inner = splitting.best_split(bounds, spans, log_p)
    assert inner == [1, 3] and score == pytest.approx(np.log(0.9 * 0.8 * 0.95))
    # Two pieces beat three when they are read more surely together.
    log_p[spans.index((0, 3))] = np.log(0.99)
    assert splitting.best_split(bounds, spans, log_p)[1] == [3]
    # No pieces fit: no split.
    assert splitting.best_split(bounds, [(0, 4)], np.zeros(1)) == (-np.inf, [])


def test_split_renumbers_the_pixels_and_cuts_the_box():
    groups = np.array([[1, 2, 2, 2, 2, 2, 3],
                       [1, 2, 2, 0, 2, 2, 3]])  # character 2 (index 1) spans columns 1-5
    parts = [{"box": [0, 0, 10, 20], "space_before": False}, {"box": [20, 0, 70, 20], "space_before": True},
             {"box": [100, 0, 110, 20], "space_before": True}]
    box = (slice(0, 2), slice(1, 6))
    out, new = splitting.split(groups, parts, 1, box, [2, 4])
    assert out.tolist() == [[1, 2, 2, 3, 3, 4, 5], [1, 2, 2, 0, 3, 4, 5]]
    # The part's 50 input pixels over 5 columns and 20 over 2 rows: 10 a pixel each way.
    assert [p["box"] for p in new] == [[0, 0, 10, 20], [20, 0, 40, 20], [40, 0, 60, 20], [60, 0, 70, 20],
                                       [100, 0, 110, 20]]
    assert [p["space_before"] for p in new] == [False, True, False, False, True]
    assert groups[0, 3] == 2 and len(parts) == 3  # the caller's arrays are left as they were


def _line(tmp_path, touching: bool) -> str:
    """Four rings 60 px wide and 80 px high; the second and third drawn touching (or 40 px apart)."""
    image = Image.new("L", (480, 140), 255)
    draw = ImageDraw.Draw(image)
    for x in [30, 130, 190 if touching else 230, 330]:
        draw.ellipse([x, 30, x + 60, 110], outline=0, width=6)
    path = tmp_path / "line.png"
    image.save(path)
    return str(path)


@pytest.fixture
def scripted(trained_model, monkeypatch):
    """A recogniser whose model reads a batch by the images' ink: a ring (narrow) is an O, read
    surely; anything wider (two rings) or narrower (a piece of a ring) is unsure."""
    r = Recognizer(trained_model)
    calls = []

    def predict_arrays(x, **kwargs):
        calls.append(len(x))
        probs = np.full((len(x), len(r.mapping)), 0.01 / (len(r.mapping) - 1))
        for row, image in zip(probs, x):
            cols = np.flatnonzero((image > 64).any(axis=0))
            ring = 16 <= cols[-1] - cols[0] + 1 <= 20  # a ring framed 24 high is about 18 wide
            row[:] = 0.01 / (len(r.mapping) - 1) if ring else 0.6 / (len(r.mapping) - 1)
            row[r.mapping.index("O" if ring else "m")] = 0.99 if ring else 0.4
        return probs

    monkeypatch.setattr(r, "predict_arrays", predict_arrays)
    return r, calls


def test_read_line_splits_characters_written_touching(scripted, tmp_path):
    r, calls = scripted
    line = _line(tmp_path, touching=True)
    assert len(find_line(line)[2]) == 3  # the touching rings are one mark
    result = r.read_line(line, context=False)
    assert result["text"] == "OOOO"
    boxes = [c["box"] for c in result["characters"]]
    assert boxes[1][2] <= boxes[2][0] + 8 and boxes[1][0] < boxes[2][0]  # side by side, in order
    assert all(c["input"].shape == (28, 28) for c in result["characters"])
    assert joining.candidates(boxes).tolist() in ([], [1])  # a candidate to join, read better apart
    assert len(calls) == 3  # the marks, the wide mark's pieces, the pair's check against joining


def test_read_line_leaves_separate_characters_alone(scripted, tmp_path):
    r, calls = scripted
    result = r.read_line(_line(tmp_path, touching=False), context=False)
    assert result["text"] == "OOOO" and calls == [4]


def test_a_mark_with_a_gap_across_it_is_cut_only_into_pieces_with_ink():
    """Parts joined into one mark across empty columns: no piece may be all gap (it has nothing to frame)."""
    groups = np.zeros((60, 150), np.int32)
    groups[0:60, 0:30] = 1
    groups[0:60, 100:150] = 1  # columns 30-99 are empty
    ink = (groups > 0).astype(np.float32)
    parts = [{"box": [0, 0, 150, 60], "space_before": True, "row": 0}]

    def frame(window, mask):
        assert mask.any(), "a piece without ink was framed"
        return np.zeros((28, 28), np.float32)

    def read(framed):
        return np.tile([0.9, 0.1], (len(framed), 1))

    groups, parts, framed, probs, why = splitting.split_touching(
        ink, groups, parts, np.zeros((1, 28, 28)), np.array([[0.1, 0.9]]) * 0.5, [None], read, frame)
    assert len(parts) > 1 and len(framed) == len(probs) == len(why) == len(parts)  # split: 0.9 each beats 0.45
    for number in range(1, len(parts) + 1):
        assert (groups == number).any()
