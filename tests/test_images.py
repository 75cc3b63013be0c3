"""Image loading, ink finding, framing and line segmentation, checked against the data sets' own steps.

The references are written here independently of ``handwritten.images``: EMNIST's framing is
``sample.frame_like_emnist`` (Cohen et al. 2017), MNIST's is :func:`frame_like_mnist` below
(LeCun et al.: fit in 20x20 keeping the aspect ratio, centre of mass to the centre of 28x28).
No TensorFlow is needed, so these run in seconds. Images that must be refused, or read although
they are odd, are checked in test_images_bad_input.py; the drawing helpers here serve other tests too.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from handwritten import images
from handwritten.framing import _measure
from handwritten.errors import HandwrittenError
from handwritten.sample import frame_like_emnist

CHARS = "AbdEFgHkMNpqRstwXyz2345789"


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def draw_char(ch: str, size: int = 160, *, pen: int = 0, rotation: float = 0.0, bold: bool = False) -> np.ndarray:
    """A character as bright ink on black, float in [0, 1], ``size`` px square; ``pen`` thickens strokes."""
    im = Image.new("L", (size, size), 0)
    ImageDraw.Draw(im).text((size / 2, size / 2), ch, fill=255, font=font(int(size * 0.6), bold), anchor="mm",
                            stroke_width=pen, stroke_fill=255)
    if rotation:
        im = im.rotate(rotation, resample=Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.float32) / 255.0


def frame_like_mnist(drawing: np.ndarray) -> np.ndarray:
    """MNIST's framing: ink box fitted in 20x20 keeping the aspect ratio, centre of mass moved to the centre."""
    from scipy import ndimage

    rows, cols = np.flatnonzero(drawing.any(axis=1)), np.flatnonzero(drawing.any(axis=0))
    crop = drawing[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    k = 20 / max(h, w)
    small = np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize(
        (max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.LANCZOS)).clip(0, None)
    out = np.zeros((28, 28), np.float32)
    cy, cx = ndimage.center_of_mass(small)
    top, left = int(round(13.5 - cy)), int(round(13.5 - cx))
    out[top:top + small.shape[0], left:left + small.shape[1]] = small
    return np.round(out * 255 / out.max()).astype(np.uint8)


def on_paper(char28: np.ndarray, rng: np.random.Generator, *, side: int, margin: int, dark_ink: bool = True,
             rotation: float = 0.0, fmt: str = "JPEG") -> bytes:
    """A 28x28 bright-on-dark image re-drawn ``side`` px large on a page with ``margin``, as image bytes."""
    ink = Image.fromarray(char28).resize((side, side), Image.Resampling.BICUBIC)
    if rotation:
        ink = ink.rotate(rotation, resample=Image.Resampling.BICUBIC)
    a = np.asarray(ink, np.float32)[..., None] / 255.0
    paper = rng.uniform(190, 250, 3) if dark_ink else rng.uniform(0, 60, 3)
    pen = rng.uniform(0, 90, 3) if dark_ink else rng.uniform(200, 255, 3)
    h, w = side + 2 * margin + int(rng.integers(0, 200)), side + 2 * margin + int(rng.integers(0, 200))
    page = np.empty((h, w, 3), np.float32)
    page[:] = paper
    y, x = int(rng.integers(margin, h - side - margin + 1)), int(rng.integers(margin, w - side - margin + 1))
    page[y:y + side, x:x + side] = a * pen + (1 - a) * paper
    page += rng.normal(0, 2.5, page.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)).save(buf, fmt, quality=80)
    return buf.getvalue()


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


@pytest.fixture(scope="module")
def drawings() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [draw_char(c, pen=int(rng.integers(0, 6)), rotation=float(rng.uniform(-8, 8))) for c in CHARS]


# ---------------------------------------------------------------- measuring framing


def test_measure_framing_emnist_style(drawings):
    framing = images.measure_framing(np.stack([frame_like_emnist(d) for d in drawings]))
    assert framing["kind"] == "bbox"
    # 24 px plus the soft edges bicubic downsampling leaves, measured at a tenth of the peak.
    assert 23 <= framing["box"] <= 26 and abs(framing["pad"] - (28 - framing["box"]) / 2) < 1e-6
    assert all(abs(c - 13.5) < 0.6 for c in framing["center"])
    assert json.loads(json.dumps(framing)) == framing


def test_measure_framing_mnist_style(drawings):
    framing = images.measure_framing(np.stack([frame_like_mnist(d) for d in drawings]))
    assert framing["kind"] == "com"
    assert 19 <= framing["box"] <= 22
    assert framing["com_spread"] < framing["bbox_spread"]


def test_measure_framing_fashion(fashion_dir):
    from handwritten.idx import read_idx

    framing = images.measure_framing(read_idx(fashion_dir / "t10k-images-idx3-ubyte.gz")[:2000])
    assert framing["kind"] == "bbox" and framing["box"] >= 27


def test_measure_framing_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        images.measure_framing(np.zeros((28, 28), np.uint8))
    with pytest.raises(ValueError, match="blank"):
        images.measure_framing(np.zeros((3, 28, 28), np.uint8))


def test_legacy_framing_string_gets_defaults():
    assert images.framing_from_meta({"framing": "bbox"})["box"] == 24.0
    assert images.framing_from_meta({"framing": "com"})["box"] == 20.0
    assert images.framing_from_meta({})["kind"] == "bbox"


# ---------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("style", ["bbox", "com"])
def test_photos_are_framed_like_the_training_data(drawings, style):
    """Big dark-on-light JPEGs of the drawings come out as the reference framing makes them."""
    reference = frame_like_emnist if style == "bbox" else frame_like_mnist
    expected = np.stack([reference(d) for d in drawings])
    framing = images.measure_framing(expected)
    assert framing["kind"] == style
    rng = np.random.default_rng(1)
    got = []
    for d in drawings:
        side = int(rng.integers(80, 400))
        page = on_paper(np.asarray(Image.fromarray((d * 255).astype(np.uint8)).resize((160, 160))), rng,
                        side=side, margin=int(rng.integers(5, 300)))
        got.append(images.preprocess(page, framing))
    got = np.stack(got)
    assert got.shape == expected.shape and got.dtype == np.uint8
    again = images.measure_framing(got)
    assert again["kind"] == style
    assert abs(again["box"] - framing["box"]) <= 1
    assert np.abs(np.subtract(again["center"], framing["center"])).max() < 0.6
    scores = [corr(a, b) for a, b in zip(got, expected)]
    assert np.median(scores) > 0.92 and min(scores) > 0.8, scores


def test_polarity_alpha_and_colour_do_not_matter():
    d = draw_char("R", 200, pen=3)
    u8 = (d * 255).astype(np.uint8)
    black_on_white = Image.fromarray(255 - u8)
    white_on_black = Image.fromarray(u8)
    clear = np.zeros((200, 200), np.uint8)
    rgba_black = Image.fromarray(np.dstack([clear, clear, clear, u8]), "RGBA")  # black strokes, transparent paper
    rgba_white = Image.fromarray(np.dstack([clear + 255, clear + 255, clear + 255, u8]), "RGBA")
    paper, pen = np.array([250, 240, 170]), np.array([20, 40, 200])  # blue ink on yellow paper
    colour = Image.fromarray((d[..., None] * pen + (1 - d[..., None]) * paper).astype(np.uint8))
    base = images.preprocess(black_on_white)
    for im in (white_on_black, rgba_black, rgba_white, colour, u8, d):
        assert corr(images.preprocess(im), base) > 0.97


def test_specks_paper_edges_and_shadows_do_not_decide_the_crop():
    d = draw_char("K", 200, pen=4)
    clean = images.preprocess(1 - d)
    page = np.full((700, 900), 0.9, np.float32)
    page[250:450, 350:550] = 1 - 0.85 * d
    rng = np.random.default_rng(3)
    for y, x in rng.integers(0, 690, (40, 2)):  # specks, some far from the character
        page[y:y + 2, x:x + 2] = 0.2
    page[:, :60] = 0.15  # the dark table beside the sheet
    page[-25:, :] = 0.3  # a shadow along the bottom
    page *= np.linspace(0.75, 1.0, 900)[None, :]  # uneven light across the photo
    out = images.preprocess((page * 255).astype(np.uint8))
    assert corr(out, clean) > 0.95


def draw_h(side: int, width: int) -> np.ndarray:
    """An H of three straight strokes ``width`` px wide, dark on white, ``side`` px square."""
    im = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(im)
    a, b = side // 5, 4 * side // 5
    for line in ((a, a, a, b), (b, a, b, b), (a, side // 2, b, side // 2)):
        draw.line(line, fill=0, width=width)
    return np.asarray(im)


def test_thin_pen_on_a_big_image_is_thickened():
    framing = images.framing_from_meta({"framing": "bbox"})
    thin = images.preprocess(draw_h(1000, 3), framing)  # a fine pen on a photo: 0.1 px once scaled to 24 px
    marker = images.preprocess(draw_h(1000, 60), framing)  # about the training data's stroke
    stroke = _measure(np.stack([thin, marker]))["stroke"]
    assert stroke[0] > 0.75 * framing["stroke"]
    assert corr(thin, marker) > 0.85


def test_model_input_orientation():
    x = np.zeros((1, 28, 28), np.uint8)
    x[0, 2, 20] = 255  # top right
    upright = images.model_input(x)
    assert upright.shape == (1, 28, 28, 1) and upright.dtype == np.float32 and upright[0, 2, 20, 0] == 1.0
    assert images.model_input(x, "transposed")[0, 20, 2, 0] == 1.0


# ---------------------------------------------------------------- bad input (checked in test_images_bad_input.py)


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (its pixel data is a stub)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def bad_inputs(folder: Path) -> dict[str, str]:
    """Files that must each give a clear error: path -> a phrase the error must contain."""
    good = io.BytesIO()
    Image.fromarray((255 - draw_char("A") * 255).astype(np.uint8)).save(good, "PNG")
    files = {
        "notimage.png": (b"this is text, not a picture\n", "not an image"),
        "empty.png": (b"", "empty"),
        "blank.png": (None, "no ink"),
        "zero.png": (png_header(0, 0), "0x0"),
        "bomb.png": (png_header(50000, 50000), "more than the limit"),
        "big.png": (png_header(6000, 4000), "6000x4000 pixels is more than the limit"),
        "truncated.png": (good.getvalue()[: len(good.getvalue()) // 2], "truncated"),
    }
    out = {}
    for name, (data, phrase) in files.items():
        path = folder / name
        if data is None:
            Image.new("RGB", (640, 480), (245, 245, 240)).save(path)
        else:
            path.write_bytes(data)
        out[str(path)] = phrase
    out[str(folder / "missing.png")] = "not found"
    out[str(folder)] = "folder"
    return out


# ---------------------------------------------------------------- a line


def compose_line(glyphs: list[np.ndarray | None], gap: int = 14, space: int = 90) -> np.ndarray:
    """Glyphs (bright on dark, square) side by side, dark on light; ``None`` is a space."""
    height = max(g.shape[0] for g in glyphs if g is not None)
    parts, pad = [np.zeros((height, 30), np.float32)], np.zeros((height, gap), np.float32)
    for g in glyphs:
        if g is None:
            parts.append(np.zeros((height, space - gap), np.float32))
            continue
        cols = np.flatnonzero(g.any(axis=0))
        parts += [g[:, cols[0]:cols[-1] + 1], pad]
    parts.append(np.zeros((height, 30), np.float32))
    return ((1 - np.concatenate(parts, axis=1)) * 255).astype(np.uint8)


def test_line_is_split_into_characters_with_dots_merged_and_spaces():
    line = compose_line([draw_char(c, 120, pen=2) for c in "Hij"] + [None] + [draw_char(c, 120, pen=2) for c in "42"])
    ink, parts = images.segment_line(line, name="line.png")
    assert len(parts) == 5  # the dots of i and j belong to their letters
    assert [p["space_before"] for p in parts] == [False, False, False, True, False]
    lefts = [p["box"][0] for p in parts]
    assert lefts == sorted(lefts)
    i_box = parts[1]["box"]
    assert i_box[3] - i_box[1] > 2 * (i_box[2] - i_box[0])  # the i's box reaches up to its dot
    for p in parts:
        assert images.frame(ink, p["mask"], images.framing_from_meta({})).shape == (28, 28)


def test_a_dot_off_to_the_side_of_a_slanted_stem_joins_it_and_small_letters_stay_apart():
    page = np.full((130, 400), 240, np.uint8)
    page[40:110, 40:52] = 20  # a slanted i's stem, its dot up and to the right, not above it
    page[18:30, 56:68] = 20
    page[10:110, 100:112] = 20  # an l
    page[65:110, 140:185] = 20  # an o: small against the l, but no dot
    page[75:100, 152:173] = 240
    page[100:110, 300:310] = 20  # a full stop far from everything: not pulled into the o
    ink, parts = images.segment_line(page, name="line.png")
    boxes = [p["box"] for p in parts]
    assert len(boxes) == 4, boxes
    assert boxes[0][0] <= 40 and boxes[0][1] <= 18 and boxes[0][2] >= 67 and boxes[0][3] >= 109
    assert boxes[2][0] >= 139 and boxes[2][2] <= 186 and boxes[3][0] >= 299


def test_two_lines_of_writing_are_read_row_by_row():
    top = compose_line([draw_char(c, 120, pen=2) for c in "Hij"] + [None] + [draw_char(c, 120, pen=2) for c in "42"])
    bottom = compose_line([draw_char(c, 120, pen=2) for c in "7AB"])
    page = np.full((top.shape[0] + bottom.shape[0] + 40, top.shape[1]), 255, np.uint8)
    page[:top.shape[0]] = top
    page[top.shape[0] + 40:, :bottom.shape[1]] = bottom
    ink, parts = images.segment_line(page, name="two-lines.png")
    # Stacked, the rows' characters overlap side to side: read as one line they were merged in pairs.
    assert [p["row"] for p in parts] == [0] * 5 + [1] * 3
    assert [p["space_before"] for p in parts] == [False, False, False, True, False] + [False] * 3
    assert all(p["box"][3] <= top.shape[0] for p in parts[:5]) and all(p["box"][1] >= top.shape[0] for p in parts[5:])
    for row in (parts[:5], parts[5:]):
        assert [p["box"][0] for p in row] == sorted(p["box"][0] for p in row)


def test_rows_are_marks_overlapping_in_height_through_a_chain_and_dots_join_the_nearest_row():
    from handwritten.marks import text_rows

    # A sloped line: each mark overlaps its neighbours in height, the first and the last do not.
    sloped = [[60 * i, 100 - 12 * i, 60 * i + 40, 160 - 12 * i] for i in range(10)]
    assert text_rows(sloped) == [list(range(10))]
    steep = [[60 * i, 300 - 28 * i, 60 * i + 40, 360 - 28 * i] for i in range(10)]  # 25 degrees
    assert text_rows(steep) == [list(range(10))]
    # Two lines, a dot above the second's stem and a comma below the first one.
    boxes = [[0, 0, 40, 60], [50, 0, 90, 60], [0, 100, 40, 160], [50, 100, 90, 160], [55, 86, 62, 93], [95, 62, 99, 70]]
    assert text_rows(boxes) == [[0, 1, 5], [2, 3, 4]]
    assert text_rows([[0, 0, 10, 10]]) == [[0]]
    # Tight rows: a g's tail (the first row's second mark) reaches 15 px into the second row's capitals.
    tight = [[0, 0, 40, 60], [50, 20, 90, 115], [100, 0, 140, 60], [0, 100, 40, 160], [50, 100, 90, 160]]
    assert text_rows(tight) == [[0, 1, 2], [3, 4]]
    # An i's dot just under that tail goes to the row whose marks' middle is nearer: its own.
    assert text_rows(tight + [[105, 84, 111, 90], [100, 100, 110, 160]]) == [[0, 1, 2], [3, 4, 5, 6]]


def test_blank_line_is_an_error():
    with pytest.raises(HandwrittenError, match="no ink"):
        images.segment_line(np.full((100, 400), 240, np.uint8), name="empty-line.png")


# ---------------------------------------------------------------- many marks (checked in test_images_bad_input.py)


def dot_grid(n: int, step: int = 10, dot: int = 3) -> bytes:
    """A PNG of ``n`` x ``n`` square dots: a small file holding thousands of separate marks."""
    page = np.full((n * step + step, n * step + step), 255, np.uint8)
    for r in range(n):
        for c in range(n):
            page[step + r * step:step + r * step + dot, step + c * step:step + c * step + dot] = 0
    buf = io.BytesIO()
    Image.fromarray(page).save(buf, "PNG", optimize=True)
    return buf.getvalue()
