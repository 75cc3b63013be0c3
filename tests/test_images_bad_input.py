"""Bad and extreme images: each refused with a clear error naming the file, or read as a plain one is.

Files that are not images, empty, truncated or over the pixel limit; PostScript, EPS and PDF documents,
refused before Pillow's readers run; NaN, infinite and far-out-of-range float pixels; a line 40,000 px
wide; and a sheet of thousands of dots, refused at once as too many marks. The grouping of marks into
characters, fast enough for the most a line may hold, is checked against the grouping as first written.
No TensorFlow is needed, so these run in seconds.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from handwritten import images, marks
from handwritten.errors import HandwrittenError
from test_images import bad_inputs, dot_grid


# ---------------------------------------------------------------- bad input


def test_bad_inputs_give_clear_errors_naming_the_file(tmp_path):
    for path, phrase in bad_inputs(tmp_path).items():
        with pytest.raises(HandwrittenError) as err:
            images.preprocess(path)
        assert path in str(err.value) and phrase in str(err.value), str(err.value)


def test_empty_arrays_and_images_are_errors():
    with pytest.raises(HandwrittenError, match="0x0"):
        images.preprocess(np.zeros((0, 0), np.uint8), name="drawing")
    with pytest.raises(HandwrittenError, match="0x0"):
        images.preprocess(Image.new("L", (0, 0)), name="drawing")


def test_pixel_limit_is_checked_before_decoding():
    big = io.BytesIO()
    Image.new("L", (3000, 3000), 255).save(big, "PNG")
    with pytest.raises(HandwrittenError, match="limit"):
        images.load_grey(big.getvalue(), "big.png", max_pixels=1_000_000)


# ---------------------------------------------------------------- many marks and documents


def merge_until_none_overlap(boxes: list[list[int]]) -> list[list[int]]:
    """The grouping as first written (time growing faster than the cube of the count): the reference."""
    groups = [[k] for k in range(len(boxes))]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = (marks.union([boxes[k] for k in g]) for g in (groups[i], groups[j]))
                if min(a[2], b[2]) - max(a[0], b[0]) >= 0.5 * min(a[2] - a[0], b[2] - b[0]):
                    groups[i] += groups.pop(j)
                    merged = True
                    break
            if merged:
                break
    return groups


def test_line_grouping_matches_merging_pairs_until_none_overlap():
    rng = np.random.default_rng(0)
    for _ in range(400):
        n, span, widest = int(rng.integers(1, 30)), int(rng.integers(20, 300)), int(rng.integers(2, 80))
        boxes = sorted(([int(x), 0, int(x + w), 5] for x, w in zip(rng.integers(0, span, n), rng.integers(1, widest, n))),
                       key=lambda b: b[0])
        assert marks.group_overlapping(boxes) == merge_until_none_overlap(boxes), boxes


def test_a_sheet_of_dots_is_refused_at_once_as_too_many_marks():
    import time

    data = dot_grid(59)  # took minutes to group
    assert len(data) < 2000
    start = time.monotonic()
    with pytest.raises(HandwrittenError, match=r"dots.png: too many separate marks for a line: 3481 \(at most 500\)"):
        images.segment_line(data, name="dots.png")
    with pytest.raises(HandwrittenError, match=r"dots.png: too many separate marks for one character: 3481 \(at most 500\)"):
        images.preprocess(data, name="dots.png")
    assert time.monotonic() - start < 5
    start = time.monotonic()
    ink, parts = images.segment_line(dot_grid(22), name="dots.png")  # 484 marks, under the cap: took 4 s
    assert time.monotonic() - start < 2
    assert len(parts) == 22 * 22  # 22 rows of writing, each of 22 dots
    assert [p["row"] for p in parts] == [r for r in range(22) for _ in range(22)]
    assert [p["box"][0] for p in parts] == [10 + 10 * k for k in range(22)] * 22
    assert sum(int(p["mask"].sum()) for p in parts) == int((ink > 0.5).sum())


@pytest.mark.parametrize("head,kind", [
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "a PostScript or EPS document"),
    (b"\xc5\xd0\xd3\xc6" + bytes(28), "an EPS document"),
    (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "a PDF document"),
])
def test_documents_are_refused_before_pillow_parses_them(tmp_path, monkeypatch, head, kind):
    from PIL import EpsImagePlugin

    def never(*args, **kwargs):
        raise AssertionError("the EPS reader ran (it calls Ghostscript)")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", never)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", never)
    path = tmp_path / "drawing.eps"
    path.write_bytes(head + b"%%EOF\n")
    for source in (str(path), path.read_bytes()):
        with pytest.raises(HandwrittenError) as err:
            images.preprocess(source, name="drawing.eps")
        assert str(err.value).startswith(f"drawing.eps: {kind}, not an image; documents are not read")


def _float_tiff(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.astype(np.float32), mode="F").save(buf, "TIFF")
    return buf.getvalue()


def test_pixels_that_are_not_numbers_are_refused_and_any_float_range_is_read():
    page = np.full((64, 64), 255.0, np.float32)
    page[8:56, 28:36] = 0.0  # a bar
    box = images.find_line(page, "bar.tif")[2][0]["box"]
    for bad, how in ((np.nan, "1 pixel is NaN or infinite"), (np.inf, "384 pixels are NaN or infinite")):
        broken = page.copy()
        if np.isnan(bad):
            broken[0, 0] = bad
        else:
            broken[8:56, 28:36] = bad
        for source in (broken, _float_tiff(broken)):
            with pytest.raises(HandwrittenError, match=f"^bar.tif: {how}"):
                images.load_grey(source, "bar.tif")
    # Floats far beyond 0-255 (or below 0) are stretched from lowest to highest: the same picture.
    for scaled in (page * 1e30, page - 1000.0, page / 255.0):
        for source in (scaled, _float_tiff(scaled)):
            grey, _ = images.load_grey(source, "bar.tif")
            assert grey.min() == 0.0 and grey.max() == pytest.approx(1.0)
            assert images.find_line(source, "bar.tif")[2][0]["box"] == box


def test_boxes_of_a_very_wide_line_are_in_the_input_pixels_on_both_axes():
    wide = np.full((200, 40_000), 255, np.uint8)  # reduced to about WORK_PIXELS, each side rounded on its own
    wide[9:193, 29_995:30_140] = 0
    grey, (fx, fy) = images.load_grey(wide, "wide.png")
    assert fx != fy and grey.shape[1] * fx == pytest.approx(40_000) and grey.shape[0] * fy == pytest.approx(200)
    box = images.find_line(wide, "wide.png")[2][0]["box"]
    assert np.abs(np.array(box) - [29_995, 9, 30_140, 193]).max() <= 2, box
